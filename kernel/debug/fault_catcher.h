// Recovery points: run code that may fault (deliberately, in tests) and come back with a
// description of the fault instead of a panic.
#pragma once

#include <cstdint>

namespace cohort {

struct JumpBuffer {
    uint64_t rbx, rbp, r12, r13, r14, r15, rsp, rip, rflags;
};
extern "C" int cohort_setjmp(JumpBuffer* buf) __attribute__((returns_twice));
extern "C" [[noreturn]] void cohort_longjmp(JumpBuffer* buf, int value);

struct FaultInfo {
    uint64_t vector;
    uint64_t error_code;
    uint64_t rip;
    uint64_t cr2;
};

/// One recovery point on the running task's stack of catchers (the CPU's before the scheduler
/// runs). It recovers only faults of that task at the interrupt depth it was set at.
struct FaultCatcher {
    JumpBuffer jump;
    FaultInfo fault;
    FaultCatcher* previous;
    uint32_t irq_depth;  // CpuData::irq_depth when set: restored on unwind
    uint32_t locks_held; // CpuData::locks_held when set: restored on unwind
    uint32_t held_depth, held_overflow; // the lock checker's held-lock stack when set
    uint32_t cpu;        // the CPU those counts were read on
    /// Quiet catchers expect the fault and log only a debug line; others print a full report
    /// before recovering (the test harness uses those, so a crashing test is explained).
    bool quiet;
};

/// Runs fn(arg); returns true if it faulted (details in `out`), false if it returned normally.
/// Exceptions with state that cannot be recovered this way (NMI, machine check) are not caught.
bool run_catching_faults(void (*fn)(void*), void* arg, FaultInfo* out, bool quiet = true);

/// The innermost recovery point that may recover a fault here and now (the running task's, at
/// the current interrupt depth), or nullptr.
FaultCatcher* active_fault_catcher();

/// Called by the exception handler: pops the innermost catcher and resumes at its
/// run_catching_faults() call, which then returns true. Requires an active catcher.
[[noreturn]] void fault_catcher_unwind(uint64_t vector, uint64_t error_code, uint64_t rip,
                                       uint64_t cr2);

} // namespace cohort
