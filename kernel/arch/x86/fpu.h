// Extended (x87/SSE/AVX/AVX-512) register state of tasks: XSAVE where the CPU has it, FXSAVE
// otherwise. The kernel itself is compiled without SIMD, so only tasks that use it (through
// assembly) have live state; it is saved and restored eagerly on every context switch, which
// keeps the rules simple (no lazy #NM traps, no state left on another CPU after a migration).
#pragma once

#include <cstddef>
#include <cstdint>

namespace cohort::x86 {

/// Sets CR4.OSXSAVE and XCR0 on the calling CPU. The first caller (the boot CPU) picks every
/// state component it offers among x87, SSE, AVX and AVX-512; later callers load that same
/// XCR0. Called by enable_security_features(); returns XCR0 (0 without XSAVE).
uint64_t fpu_enable_on_this_cpu();

/// Bytes a task's save area needs (64-byte aligned), valid after the boot CPU enabled it.
size_t fpu_state_size();
/// XCR0 in use (0 with FXSAVE only).
uint64_t fpu_xcr0();
/// "xsave", "xsaveopt" or "fxsave".
const char* fpu_method();
/// XCR0 as the calling CPU has it loaded (XGETBV), 0 while CR4.OSXSAVE is clear (XGETBV would
/// #UD then). Tests compare it with fpu_xcr0() on every CPU.
uint64_t fpu_live_xcr0();

/// Writes the state of a task that has not run yet: the processor's reset values with all
/// exceptions masked, so its first XRSTOR/FXRSTOR loads a clean, defined state.
void fpu_init_state(void* area);
/// Saves the calling CPU's extended state into `area` (64-byte aligned, fpu_state_size()).
void fpu_save(void* area);
/// Loads `area` into the calling CPU's extended registers.
void fpu_restore(const void* area);

} // namespace cohort::x86
