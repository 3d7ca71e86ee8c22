// The 8254 PIT's channel 0 as an interrupt source (ISA IRQ 0). Channel 2 is the TSC
// calibration's (tsc.cc), polled; the two do not interfere.
#pragma once

#include <cstdint>

namespace cohort::x86 {

inline constexpr uint32_t kPitHz = 1193182;

/// Channel 0 in rate-generator mode: an interrupt every 1/hz second (hz clamped to what the
/// 16-bit divider allows: 19..1193182).
void pit_start_periodic(uint32_t hz);
/// Channel 0 in one-shot mode with the longest count, not restarted: at most one more edge.
void pit_stop();

} // namespace cohort::x86
