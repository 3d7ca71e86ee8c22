// Monotonic time in nanoseconds since boot, from the TSC.
#pragma once

#include <cstdint>

namespace cohort {

/// True once the TSC frequency is known (early in boot).
bool clock_ready();
/// Nanoseconds since the clock was initialised; monotonic on one CPU.
uint64_t monotonic_ns();
/// TSC ticks per second as calibrated.
uint64_t tsc_hz();
/// Converts a TSC delta to nanoseconds.
uint64_t tsc_to_ns(uint64_t ticks);
/// The TSC value at which monotonic_ns() reaches `ns` (on this CPU), rounded up so that a
/// deadline armed with it never fires early.
uint64_t tsc_at_ns(uint64_t ns);
/// Busy-waits for at least `ns` nanoseconds (only for hardware delays: SDM-mandated waits).
void delay_ns(uint64_t ns);

} // namespace cohort
