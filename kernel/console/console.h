// The interactive console on the serial port: a `cohort> ` prompt, driven by the port's
// receive interrupt, with commands that show what every CPU is doing (docs/console.md).
#pragma once

namespace cohort {

/// Routes the serial port's receive interrupt and runs the console in the calling task until
/// `poweroff`. Returns only if the console cannot start (no I/O APIC, no serial port): then
/// the caller idles as before, having been told why in the log.
void console_run();

} // namespace cohort
