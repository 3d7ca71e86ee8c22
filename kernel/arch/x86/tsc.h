// TSC frequency discovery (CPUID 0x15/0x16, else the PIT) and the PIT as a reference timer.
#pragma once

#include <cstdint>

namespace cohort::x86 {

enum class TscSource { Cpuid15, Cpuid16Verified, Pit };
const char* tsc_source_name(TscSource s);

/// Determines the TSC frequency and starts the monotonic clock. Logs the source used.
void tsc_init();
TscSource tsc_source();

/// Measures TSC ticks across `pit_ticks` of PIT channel 2 (1.193182 MHz). Returns 0 if the PIT
/// did not count (no PIT, or it is gated off), which callers must treat as "unknown".
/// `uncertainty` (optional) receives the TSC ticks between the last poll that saw the counter
/// running and the first that saw it expired: the end of the window is known only that well.
uint64_t pit_measure_tsc(uint32_t pit_ticks, uint64_t* uncertainty = nullptr);
constexpr uint64_t kPitHz = 1193182;

/// False once some CPU's TSC was found out of step with the boot CPU's (the warp test at SMP
/// bring-up, arch/x86/tsc_sync.h). monotonic_ns() and TSC deadlines assume one time base for
/// every CPU: without it, readings taken on different CPUs may disagree by the warp, and a
/// deadline computed on one CPU may fire early or late on another. True until shown otherwise.
bool tsc_synchronized();
/// Records that the TSCs are not synchronised (logged once, with what it means).
void tsc_mark_unsynchronized(uint64_t max_warp_ns);

} // namespace cohort::x86
