#include "time/timer.h"

#include <new>

#include "arch/arch.h"
#include "smp/cpu.h"
#include "smp/percpu.h"
#include "sync/cpu_relax.h"
#include "sync/spinlock.h"
#include "time/clock.h"
#include "sync/lock_ranks.h"

namespace cohort {

namespace {

// Ranked above the run queues: the scheduler arms and cancels timers with its queue locked.
LockClass g_timer_class{"timer queue", rank::kTimerQueue, LockScope::PerCpu, false};

struct ByDeadline {
    bool operator()(const Timer& a, const Timer& b) const { return a.deadline_ns < b.deadline_ns; }
};

struct TimerQueue {
    SpinLock lock{&g_timer_class};
    // By deadline, FIFO among equal ones.
    RbTree<Timer, &Timer::link, ByDeadline> pending COHORT_GUARDED_BY(lock);
    uint64_t programmed COHORT_GUARDED_BY(lock) = 0; // deadline the LAPIC is set for, 0 = none
    uint64_t fired = 0;                              // this CPU only
    // The timer whose callback runs now, for timer_cancel_sync (the Timer itself may be gone
    // once its callback has run, so this is the only trace left of it).
    std::atomic<Timer*> running{nullptr};
    std::atomic<bool> ready{false}; // read by other CPUs
};
// Constructed in place by each CPU (timer_init_cpu), not copied from the per-CPU template.
COHORT_PERCPU(TimerQueue, g_timers);

TimerQueue& queue_of(uint32_t cpu) { return per_cpu_on(cpu_by_id(cpu), g_timers); }

// Timer::cpu while timer_evacuate carries the timer from one queue to another.
constexpr uint32_t kMoving = UINT32_MAX - 1;

// Programs the LAPIC for the earliest pending deadline. Only the owning CPU touches its LAPIC.
void reprogram(TimerQueue& q) COHORT_REQUIRES(q.lock) {
    const Timer* first = q.pending.first();
    if (first == nullptr) {
        if (q.programmed != 0) arch::timer_stop();
        q.programmed = 0;
        return;
    }
    if (first->deadline_ns == q.programmed) return;
    if (arch::timer_has_deadline()) {
        // An absolute deadline: nothing is lost between reading the clock and arming, and a
        // deadline already past fires at once.
        arch::timer_at(tsc_at_ns(first->deadline_ns), arch::kVecTimer);
    } else {
        const uint64_t now = monotonic_ns();
        // At least a microsecond, so the interrupt is not lost to a zero count.
        const uint64_t delta = first->deadline_ns > now + 1000 ? first->deadline_ns - now : 1000;
        arch::timer_oneshot(delta, arch::kVecTimer);
    }
    q.programmed = first->deadline_ns;
}

void timer_interrupt(arch::IrqFrame&) {
    TimerQueue& q = per_cpu(g_timers);
    arch::irq_eoi();
    for (;;) {
        Timer* t;
        TimerFn fn;
        void* arg;
        {
            Guard<SpinLock, IrqSave> g(q.lock);
            q.programmed = 0; // the one-shot has expired
            t = q.pending.first();
            if (t == nullptr || t->deadline_ns > monotonic_ns()) {
                reprogram(q);
                return;
            }
            q.pending.remove(*t);
            // Taken under the lock: once it is dropped, a cancel on another CPU finds the timer
            // idle and its owner may re-arm it with another function or free it.
            fn = t->fn;
            arg = t->arg;
            q.running.store(t, std::memory_order_relaxed);
            t->cpu.store(UINT32_MAX, std::memory_order_release);
        }
        ++q.fired;
        // Unlocked: the callback may arm timers (on this queue too) or wake tasks.
        fn(*t, arg);
        q.running.store(nullptr, std::memory_order_release);
    }
}

} // namespace

void timer_init_cpu(CpuData* cpu) {
    TimerQueue* q = &per_cpu_on(cpu, g_timers);
    new (q) TimerQueue();
    arch::set_irq_handler(arch::kVecTimer, timer_interrupt); // shared IDT: same every time
    q->ready.store(true, std::memory_order_release);
}

void timer_arm(Timer& t, uint64_t deadline_ns, TimerFn fn, void* arg) {
    // Interrupts off before choosing the queue: a task moved to another CPU in between would
    // queue the timer where it cannot program the LAPIC.
    arch::IrqOff irq;
    TimerQueue& q = per_cpu(g_timers);
    COHORT_ASSERT(q.ready.load(std::memory_order_relaxed));
    Guard<SpinLock, NoIrq> g(q.lock);
    COHORT_ASSERT(!t.link.linked());
    t.deadline_ns = deadline_ns;
    t.fn = fn;
    t.arg = arg;
    t.cpu.store(this_cpu()->cpu_id, std::memory_order_release);
    q.pending.insert(t);
    if (q.pending.first() == &t) reprogram(q);
}

bool timer_cancel(Timer& t) {
    for (;;) {
        const uint32_t cpu = t.cpu.load(std::memory_order_acquire);
        if (cpu == UINT32_MAX) return false;
        if (cpu == kMoving) { // in neither queue for a moment: wait for where it lands
            cpu_relax();
            continue;
        }
        TimerQueue& q = queue_of(cpu);
        Guard<SpinLock, IrqSave> g(q.lock);
        if (t.cpu.load(std::memory_order_relaxed) != cpu) continue; // fired or moved meanwhile
        const bool was_first = q.pending.first() == &t;
        q.pending.remove(t);
        t.cpu.store(UINT32_MAX, std::memory_order_release);
        // Another CPU cannot touch our LAPIC; a stale early interrupt there just finds nothing.
        if (was_first && cpu == this_cpu()->cpu_id) reprogram(q);
        return true;
    }
}

namespace {
void end_halt(Timer&, void*) {} // the interrupt ending the HLT is the point
} // namespace

uint32_t timer_evacuate(uint32_t to) {
    COHORT_ASSERT(!arch::irqs_enabled() && to != this_cpu()->cpu_id);
    TimerQueue& from = per_cpu(g_timers);
    TimerQueue& dst = queue_of(to);
    uint32_t moved = 0;
    bool dst_first = false;
    for (;;) {
        Timer* t;
        {
            Guard<SpinLock, NoIrq> g(from.lock);
            t = from.pending.first();
            if (t == nullptr) {
                from.ready.store(false, std::memory_order_release);
                from.programmed = 0;
                arch::timer_stop();
                break;
            }
            from.pending.remove(*t);
            t->cpu.store(kMoving, std::memory_order_release);
        }
        // One queue lock at a time: both are of one class, and nothing orders two of them.
        Guard<SpinLock, NoIrq> g(dst.lock);
        t->cpu.store(to, std::memory_order_release);
        dst.pending.insert(*t);
        dst_first = dst_first || dst.pending.first() == t;
        ++moved;
    }
    // Only a CPU touches its own LAPIC timer: one whose queue now starts earlier gets a timer
    // interrupt, which runs what is due and programs the rest. Not a remote call: a call can
    // be held back by the rate limiter, whose retry is itself a timer on that same queue,
    // behind the one nobody programmed (seen as a CPU whose timers all stopped).
    if (dst_first) arch::timer_kick(cpu_running(to)->apic_id, arch::kVecTimer);
    return moved;
}

void timer_halt_until(uint64_t deadline_ns) {
    Timer t;
    // Armed with interrupts off, then enable-and-halt atomically: a timer that fires before the
    // HLT is delivered after it and ends it, instead of leaving this CPU halted for good.
    arch::irq_disable();
    timer_arm(t, deadline_ns, end_halt, nullptr);
    arch::irq_enable_and_wait();
    timer_cancel_sync(t);
}

bool timer_cancel_sync(Timer& t) {
    if (timer_cancel(t)) return true;
    // Fired, or never armed: its callback may still be running somewhere. Wait until no CPU
    // runs it; after that nothing touches `t` again.
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        const CpuData* cpu = cpu_by_id(c);
        if (cpu == nullptr || cpu == this_cpu()) continue; // ours cannot be mid-callback here
        const TimerQueue& q = per_cpu_on(cpu, g_timers);
        while (q.running.load(std::memory_order_acquire) == &t) cpu_relax();
    }
    return false;
}

bool timer_ready_here() { return per_cpu(g_timers).ready.load(std::memory_order_relaxed); }

uint64_t timer_fired_count() { return per_cpu(g_timers).fired; }

} // namespace cohort
