// Where the boot CPU's start-up time goes: a handful of named steps, timed with the TSC from
// the kernel's first instruction, logged in one line after the boot line ("boot: steps ...").
#pragma once

#include <cstdint>

namespace cohort {

/// Records the TSC at kernel entry: the zero of every step (called first thing, before the TSC
/// frequency is known).
void boot_trace_start();
/// Ends the step called `name` (a string literal) at the current TSC. Boot CPU only, before
/// the scheduler starts; steps past the table's end are dropped.
void boot_step(const char* name);
/// Milliseconds from kernel entry to now, calibration included (0 before the clock is ready).
uint64_t boot_elapsed_ms();
/// Logs the steps and their durations on one line (at `level`: info with boot.trace=1).
void boot_trace_log();

} // namespace cohort
