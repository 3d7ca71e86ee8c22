// Wake-ups and sleeping: a blocked task goes back on a run queue chosen by the placement
// rules (sched/balance.cc), and sleep_for's timer wakes its sleeper.
#include "sched/sched.h"

#include "arch/arch.h"
#include "sched/internal.h"
#include "time/clock.h"

namespace cohort {
namespace sched_impl {

bool wake_up_locked_irqs_off(Task* t) {
    RunQueue* rq;
    uint32_t cpu;
    const uint32_t me = this_cpu()->cpu_id;
    for (;;) {
        cpu = t->cpu.load(std::memory_order_acquire);
        rq = &rq_of(cpu);
        rq->lock.lock();
        if (t->cpu.load(std::memory_order_relaxed) == cpu) break;
        rq->lock.unlock(); // migrated meanwhile
    }
    if (t->state.load(std::memory_order_relaxed) != TaskState::Blocked) {
        rq->lock.unlock();
        return false;
    }
    ++t->stats.wakeups;
    if (t->on_cpu) {
        // Marked Blocked but not switched out yet: cancel the sleep; schedule() keeps it.
        t->state.store(TaskState::Running, std::memory_order_relaxed);
        rq->lock.unlock();
        return true;
    }
    // Fully off its CPU: choose where it runs (under this lock, which guards its affinity), and
    // let it keep its lag relative to its old queue's floor.
    const int64_t lag = static_cast<int64_t>(t->fair.vruntime - rq->fair.min_vruntime());
    t->state.store(TaskState::Ready, std::memory_order_relaxed); // other wakers back off
    sched::ProbeCost cost = probe_budget();
    uint32_t target = choose_cpu(t, cpu, cost);
    if (target == kMaxCpus) target = cpu;
    // What this wake-up cost in other CPUs' lines: the task's old queue (locked above), what
    // the search read, and the queue it goes to (locked in arrive).
    // Counted on this CPU's own queue, by this CPU alone with interrupts off: no locked RMW.
    RunQueue& mine = this_rq();
    mine.wakes_placed.store(mine.wakes_placed.load(std::memory_order_relaxed) + 1,
                            std::memory_order_relaxed);
    const uint32_t lines = cost.lines + (cpu != me) + (target != me && target != cpu);
    mine.wake_lines.store(mine.wake_lines.load(std::memory_order_relaxed) + lines,
                          std::memory_order_relaxed);
    if (lines > mine.wake_lines_max.load(std::memory_order_relaxed))
        mine.wake_lines_max.store(lines, std::memory_order_relaxed);
    if (target != cpu) note_migration(t, target);
    t->cpu.store(target, std::memory_order_release);
    rq->lock.unlock();
    arrive(t, target, lag, true);
    return true;
}

} // namespace sched_impl

using namespace sched_impl;

bool wake_up(Task* t) {
    bool woken;
    {
        arch::IrqOff irq;
        woken = wake_up_locked_irqs_off(t);
    }
    preempt_point();
    return woken;
}

void sleep_for(uint64_t ns) {
    // Once `done` is set the sleeper may return (it may run on another CPU, preempted and moved
    // before it blocked) and `s` is gone with its stack frame: the callback takes what it needs
    // first, and a reference keeps the Task valid until wake_up is finished with it.
    struct Sleep {
        Task* task;
        std::atomic<bool> done{false};
    } s{current_task()};
    Timer timer;
    {
        arch::IrqOff irq; // armed on this CPU: no migration until it is queued
        // The deadline is read on the CPU whose timer queue gets it, so a TSC that differs
        // between CPUs cannot make the sleep short.
        const uint64_t deadline = monotonic_ns() + ns;
        timer_arm(
            timer, deadline,
            [](Timer&, void* arg) {
                auto* sl = static_cast<Sleep*>(arg);
                Task* t = sl->task;
                task_ref(t);
                sl->done.store(true, std::memory_order_seq_cst); // the last touch of `s`
                wake_up(t);
                task_unref(t);
            },
            &s);
    }
    for (;;) {
        // A full barrier between publishing Blocked and reading `done` (an xchg): the callback
        // may run on another CPU (we can be moved before we block), where it stores `done` and
        // then reads our state under its run-queue lock. With a plain store, x86 may let our
        // load of `done` pass the store still in the store buffer: we would read false, it would
        // read Running, and nobody would wake us (the store-buffer case of TSO; a Dekker pair
        // needs seq_cst on both sides).
        s.task->state.exchange(TaskState::Blocked, std::memory_order_seq_cst);
        if (s.done.load(std::memory_order_seq_cst)) break;
        sched_block();
    }
    s.task->state.store(TaskState::Running, std::memory_order_relaxed);
    timer_cancel(timer); // normally already fired; never leave it armed on our stack
}

void sched_kick_worker() {
    RunQueue& rq = this_rq();
    if (rq.ready.load(std::memory_order_relaxed) && rq.worker != nullptr) {
        arch::IrqOff irq; // no preemption point: this runs inside the call handler
        wake_up_locked_irqs_off(rq.worker);
    }
}

} // namespace cohort
