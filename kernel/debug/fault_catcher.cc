#include "debug/fault_catcher.h"

#include "arch/arch.h"
#include "debug/log.h"
#include "sched/sched.h"
#include "smp/cpu.h"
#include "sync/lock_debug.h"

namespace cohort {

namespace {

// Catchers belong to the task that set them, not to the CPU: the task may block, be preempted
// or move while fn runs, and a fault in another task (or in a handler that interrupted it) is
// not its business. Before the scheduler runs there are no tasks, and the CPU holds them.
FaultCatcher** catcher_slot() {
    if (Task* t = current_task()) return &t->fault_catcher;
    return &this_cpu()->fault_catcher;
}

} // namespace

bool run_catching_faults(void (*fn)(void*), void* arg, FaultInfo* out, bool quiet) {
    FaultCatcher catcher{};
    catcher.quiet = quiet;
    {
        // One CPU's counts, read on that CPU: preempted between finding this CPU and reading
        // them, a task moved elsewhere would read another CPU's counts of that moment (1 in
        // the middle of its switch, say), and restore them into it on a fault.
        arch::IrqOff irq;
        CpuData* cpu = this_cpu();
        catcher.cpu = cpu->cpu_id;
        catcher.irq_depth = cpu->irq_depth;
        catcher.locks_held = cpu->locks_held;
        if (const HeldLockStack* s = current_held_locks()) {
            catcher.held_depth = s->depth;
            catcher.held_overflow = s->overflow;
        }
    }
    FaultCatcher** slot = catcher_slot();
    catcher.previous = *slot;
    // The catcher lives in this frame; `volatile` keeps the compiler from caching anything
    // across the second return of setjmp.
    FaultCatcher* volatile c = &catcher;
    if (cohort_setjmp(&catcher.jump) == 0) {
        *slot = c;
        fn(arg);
        *catcher_slot() = c->previous;
        return false;
    }
    // Back from the exception handler; it already popped the catcher.
    if (out != nullptr) *out = c->fault;
    return true;
}

FaultCatcher* active_fault_catcher() {
    // Never out of an NMI handler: only its IRET ends NMI blocking, so a jump out of it would
    // leave this CPU deaf to NMIs (panic stops, backtrace requests) for good.
    if (this_cpu()->nmi_depth != 0) return nullptr;
    FaultCatcher* c = *catcher_slot();
    // Set at another interrupt depth: a fault in a handler that interrupted the owner (or in
    // the owner after a handler's catcher was left behind) is not the catcher's to recover.
    if (c != nullptr && c->irq_depth != this_cpu()->irq_depth) return nullptr;
    return c;
}

void fault_catcher_unwind(uint64_t vector, uint64_t error_code, uint64_t rip, uint64_t cr2) {
    CpuData* cpu = this_cpu();
    FaultCatcher** slot = catcher_slot();
    FaultCatcher* c = *slot;
    c->fault = FaultInfo{vector, error_code, rip, cr2};
    *slot = c->previous;
    cpu->exception_depth = 0;
    // Spinlocks taken inside fn stay taken (nothing knows how to release them safely), but the
    // counts that gate preemption and lock checking go back to what they were, so the CPU keeps
    // scheduling and later lock checks are not confused by a frame that no longer exists.
    // They are this CPU's counts: if the task moved while fn ran (it may be preempted, or
    // block), it held nothing when it moved, so what it held at the start was nothing either,
    // and the other CPU's entry counts mean nothing here (restoring them corrupted this CPU's
    // count, seen as a task later blocking "holding" a lock it never took).
    const bool moved = c->cpu != cpu->cpu_id;
    const uint32_t base_locks = moved ? 0 : c->locks_held;
    if (cpu->locks_held != base_locks)
        log_error("fault: the faulting code held %u spinlock(s); they stay locked",
                  cpu->locks_held - base_locks);
    cpu->locks_held = base_locks;
    cpu->irq_depth = c->irq_depth;
    if (HeldLockStack* s = current_held_locks()) {
        s->depth = moved ? 0 : c->held_depth;
        s->overflow = moved ? 0 : c->held_overflow;
    }
    cohort_longjmp(&c->jump, 1);
}

} // namespace cohort
