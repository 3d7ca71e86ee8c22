// Ending the machine: emulator exit ports (QEMU isa-debug-exit, Bochs) and halting.
#pragma once

#include <cstdint>

namespace cohort::x86 {

enum class ExitStatus : uint32_t { Success = 0, TestsFailed = 1, Panic = 2 };

/// Stops this machine with a status the host runner can read: QEMU's isa-debug-exit (exit
/// code = 2*status+1), Bochs' magic break (success) or shutdown port (failure). On hardware,
/// where neither exists, the CPU halts with interrupts off.
[[noreturn]] void machine_exit(ExitStatus status);

} // namespace cohort::x86
