// Fatal errors: print the reason, registers and a symbolised backtrace, then stop the machine.
#pragma once

#include <cstdint>

namespace cohort {

struct CpuData;
namespace x86 {
struct InterruptFrame;
}

/// Stops the kernel with a report. Safe to call from any context, including nested panics.
[[noreturn]] void panic(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

/// As panic(), with the registers of an interrupted context (exceptions).
[[noreturn]] void panic_with_frame(const x86::InterruptFrame& frame, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));

/// Prints "  #n 0xADDR function+0xoff" lines by following frame pointers from `rbp`. With the
/// interrupted `rsp` (0 if unknown), a context stopped in a function's prologue, before its
/// frame pointer was set up, still names its caller (read from the stack).
void print_backtrace(uint64_t rip, uint64_t rbp, uint64_t rsp = 0);
void print_registers(const x86::InterruptFrame& frame);

/// Asks `cpu` (not the caller) to print its backtrace from an NMI, labelled with `why` (a
/// string that must stay valid). Works even if it spins with interrupts off. False if a request
/// is already pending there or it is not online.
bool request_backtrace(CpuData* cpu, const char* why);

/// NMI entry: stops this CPU if another one is panicking, else reports the NMI.
void handle_nmi(const x86::InterruptFrame& frame);

/// Called by the reporting CPU right after the panic banner, with the message (its first line is
/// what fits on a KTAP result line). The test harness uses it to name the test that was running:
/// a panic on any CPU ends the whole run, and a report that does not say which test was running
/// leaves the reader to guess from a backtrace that may be another CPU's. Null to remove.
void panic_set_context_hook(void (*hook)(const char* message));

/// When set (command line `panic=halt`), a panic halts instead of exiting the emulator, so a
/// debugger can be attached.
void panic_set_halt_only(bool halt_only);

} // namespace cohort
