// Pinned control-register bits (docs/security.md): once the boot CPU has turned them on,
// CR0.WP, CR4.SMEP/SMAP/UMIP and EFER.NXE stay on, on every CPU, for good. CR0, CR4 and EFER
// have one writer each (write_cr0/write_cr4/write_efer in arch/x86/cpu.h); a write that would
// clear a pinned bit is undone and reported with its caller, as Linux's CR pinning does.
#pragma once

#include <cstdint>

namespace cohort::x86 {

enum class PinnedReg : uint8_t { Cr0, Cr4, Efer };
const char* pinned_reg_name(PinnedReg r);

/// Pins what the boot CPU has on now among the bits above. Once, on the boot CPU, after
/// enable_security_features; security.cr_pinning=0 leaves it off (for the tests that must see
/// the protection fail).
void cr_pin_enable();
/// The pinned bits of a register (0 before cr_pin_enable).
uint64_t cr_pinned(PinnedReg r);

/// What this CPU's last refused write was.
struct PinViolation {
    PinnedReg reg = PinnedReg::Cr0;
    uint64_t cleared = 0; // the pinned bits the write would have cleared
    uint64_t caller = 0;  // return address of the writer's caller
};
/// Refused writes on this CPU since boot, and the last one (false: none yet).
uint64_t cr_pin_violations_here();
bool cr_pin_last_violation_here(PinViolation& out);
/// Refused writes on every CPU.
uint64_t cr_pin_violations();

} // namespace cohort::x86
