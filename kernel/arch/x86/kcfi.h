// Kernel control-flow integrity (-fsanitize=kcfi, clang 16): what a failed check looks like
// when it reaches the #UD handler. docs/security.md, "Indirect calls (KCFI)".
#pragma once

#include <cstddef>
#include <cstdint>

namespace cohort::x86 {

struct InterruptFrame;

/// The kernel was built with KCFI checks.
bool kcfi_enabled();
/// `rip` is one of the ud2 instructions of a KCFI check (the compiler lists them all).
bool kcfi_is_trap(uint64_t rip);
/// If `f` is a #UD at a KCFI trap, writes what failed (call site, target, both type ids) to
/// `buf` and returns true.
bool kcfi_describe(const InterruptFrame& f, char* buf, size_t len);

} // namespace cohort::x86
