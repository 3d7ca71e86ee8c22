// Where tasks run: placement of new tasks, the moves between run queues (migration, idle
// CPUs stealing, busy CPUs pushing), and affinity changes.
#include "sched/sched.h"

#include "arch/arch.h"
#include "debug/log.h"
#include "sched/internal.h"

namespace cohort {
namespace sched_impl {

// The second half of every move between queues. `t` is Ready on no queue and its `cpu` field
// already names `cpu` (stored under the lock of the queue it left, so from then on `cpu`'s lock
// guards it). Its vruntime becomes `lag` past the new queue's floor, so moving neither rewards
// nor punishes it; a woken task is also held to the sleeper credit. If its affinity changed
// while it was between queues (task_set_affinity leaves such a task to us), it moves on.
// Interrupts off, no run-queue lock held.
void arrive(Task* t, uint32_t cpu, int64_t lag, bool woken) COHORT_NO_THREAD_SAFETY_ANALYSIS {
    for (;;) {
        RunQueue& dst = rq_of(cpu);
        dst.lock.lock();
        if (!t->affinity.test(cpu)) {
            sched::ProbeCost cost = probe_budget();
            const uint32_t alt = choose_cpu(t, cpu, cost);
            if (alt != kMaxCpus && alt != cpu) {
                t->cpu.store(alt, std::memory_order_release);
                dst.lock.unlock();
                cpu = alt;
                continue;
            }
            if (alt == kMaxCpus && !t->homeless) {
                // No CPU of its affinity is online: it runs here rather than nowhere, marked so
                // that schedule() does not count every switch into it as a violation.
                t->homeless = true;
                note_problem(dst, RunQueue::Report::Homeless, t, cpu);
            }
        }
        const int64_t vr = static_cast<int64_t>(dst.fair.min_vruntime()) + lag;
        const uint64_t v = vr > 0 ? static_cast<uint64_t>(vr) : 0;
        t->fair.vruntime = woken ? dst.fair.placement(v, false, kParams) : v;
        enqueue(dst, t);
        kick(cpu, dst, t);
        dst.lock.unlock();
        return;
    }
}

// Bookkeeping of a move decided under the source queue's lock.
void note_migration(Task* t, uint32_t dst_cpu) {
    ++t->stats.migrations;
    rq_of(dst_cpu).migrations_in.fetch_add(1, std::memory_order_relaxed);
}

// Moves a queued task (not on a CPU) from `src` to `dst_cpu`. Drops and retakes `src.lock`.
void migrate_queued(RunQueue& src, Task* t, uint32_t dst_cpu) COHORT_NO_THREAD_SAFETY_ANALYSIS {
    dequeue(src, t);
    const int64_t lag = static_cast<int64_t>(t->fair.vruntime - src.fair.min_vruntime());
    t->state.store(TaskState::Ready, std::memory_order_relaxed);
    t->cpu.store(dst_cpu, std::memory_order_release);
    note_migration(t, dst_cpu);
    src.lock.unlock();
    arrive(t, dst_cpu, lag, false);
    src.lock.lock();
}

namespace {

// A queued fair task of `rq` that may run on `cpu` and is not still on its old CPU.
Task* find_movable(RunQueue& rq, uint32_t cpu) COHORT_REQUIRES(rq.lock) {
    for (FairEntity* e = rq.fair.last(); e != nullptr; e = rq.fair.prev(*e)) {
        Task* t = task_of(e);
        if (!t->on_cpu && t->affinity.test(cpu)) return t;
    }
    return nullptr;
}

} // namespace

// Idle CPU: take one waiting task from a queue that has one, nearest domain first, trying a
// bounded number of queues. Interrupts off.
bool try_steal() {
    const uint32_t me = this_cpu()->cpu_id;
    sched::ProbeCost cost = probe_budget();
    const uint32_t from = sched::steal_nearest(machine(), me, cost, [&](uint32_t victim) {
        RunQueue& src = rq_of(victim);
        // Opportunistic: a victim whose lock is taken is busy with its own work or being
        // robbed by another idle CPU already. Waiting in line would turn every wake-up of a
        // busy CPU into a convoy of idle CPUs on its lock (with many vCPUs per host core,
        // seconds long).
        if (!src.lock.try_lock()) return false;
        Task* t = find_movable(src, me);
        if (t != nullptr) migrate_queued(src, t, me);
        src.lock.unlock();
        return t != nullptr;
    });
    if (from == kMaxCpus) return false;
    this_rq().steals.fetch_add(1, std::memory_order_relaxed);
    return true;
}

// Busy CPU, from its slice timer (so only while tasks wait here): now and then push one
// waiting task to an idle CPU, or to one with at least two tasks fewer. Idle CPUs halt instead
// of polling, so this is what evens out the load once they have stopped looking for work.
void balance(RunQueue& rq, uint64_t now) COHORT_REQUIRES(rq.lock) {
    if (now < rq.next_balance || rq.fair.count() == 0) return;
    rq.next_balance = now + kBalanceIntervalNs;
    const uint32_t me = this_cpu()->cpu_id;
    const uint32_t mine = rq.runnable.load(std::memory_order_relaxed);
    constexpr uint32_t kMaxScanned = 8; // the tasks that waited least: bounded work per tick
    uint32_t scanned = 0;
    for (FairEntity* e = rq.fair.last(); e != nullptr && scanned < kMaxScanned;
         e = rq.fair.prev(*e), ++scanned) {
        Task* t = task_of(e);
        if (t->on_cpu) continue;
        sched::ProbeCost cost = probe_budget();
        const uint32_t c = sched::find_push_target(machine(), me, mine, t->affinity, load_view, cost);
        if (c != kMaxCpus) {
            migrate_queued(rq, t, c);
            return;
        }
    }
}

// Enqueues a new or woken task on the CPU the placement rules choose. Called with `t` Blocked
// (or new) and off every queue and CPU; interrupts off.
// Only new tasks come here (woken ones go through wake_up).
void place(Task* t) {
    // A new task has no warm cache anywhere: start the search at a rotating CPU, so tasks created
    // in a burst spread over the idle CPUs instead of all landing on the first one.
    // Pack mode searches for idle CPUs from the creating CPU instead (beside work that is
    // running anyway), and only the fallback among busy CPUs rotates.
    CpuTasks& mine = per_cpu(g_cpu_tasks); // interrupts are off
    const uint32_t hint = (this_cpu()->cpu_id + mine.spread++) % cpu_count();
    const bool pack = g_placement == sched::Placement::Pack;
    sched::ProbeCost cost = probe_budget();
    uint32_t cpu = choose_cpu(t, pack ? this_cpu()->cpu_id : hint, cost, hint);
    if (cpu == kMaxCpus && t->affinity.test(this_cpu()->cpu_id)) {
        cpu = this_cpu()->cpu_id; // bring-up: this CPU is not listed as online yet
    } else if (cpu == kMaxCpus) {
        // No allowed CPU is running the scheduler (affinity to offline CPUs): run it here
        // rather than lose it, and say so.
        cpu = this_cpu()->cpu_id;
        t->homeless = true;
        log_warn("sched: task %lu (%s) has no online CPU in its affinity; running it on cpu%u",
                 t->id, t->name, cpu);
    }
    RunQueue& rq = rq_of(cpu);
    Guard<ParkLock, NoIrq> g(rq.lock);
    t->cpu.store(cpu, std::memory_order_release);
    t->fair.vruntime = rq.fair.placement(0, true, kParams);
    enqueue(rq, t);
    kick(cpu, rq, t);
}

} // namespace sched_impl

using namespace sched_impl;

void task_set_affinity(Task* t, const CpuMask& mask) {
    arch::IrqOff irq;
    for (;;) {
        const uint32_t cpu = t->cpu.load(std::memory_order_acquire);
        RunQueue& rq = rq_of(cpu);
        Guard<ParkLock, NoIrq> g(rq.lock);
        if (t->cpu.load(std::memory_order_relaxed) != cpu) continue;
        set_affinity(t, mask);
        t->homeless = false;
        if (mask.test(cpu)) return;
        if (queued(t) && !t->on_cpu) {
            sched::ProbeCost cost = probe_budget();
            const uint32_t dst = choose_cpu(t, cpu, cost);
            if (dst != kMaxCpus) migrate_queued(rq, t, dst);
        } else if (rq.curr == t) {
            resched(cpu, rq); // it leaves when switched out (finish_switch)
        }
        // Blocked: its waker places it by the new mask. Between two queues: arrive() checks
        // the mask again under the lock we hold now. Being switched out: finish_switch moves it.
        return;
    }
}

void run_pinned(uint32_t cpu, void (*fn)(void*), void* arg) {
    Task* me = current_task();
    if (me == nullptr || !arch::irqs_enabled()) { // nothing can move us: run it here
        COHORT_ASSERT(this_cpu()->cpu_id == cpu);
        fn(arg);
        return;
    }
    const CpuMask saved = me->affinity;
    CpuMask only;
    only.set(cpu);
    task_set_affinity(me, only);
    while (this_cpu()->cpu_id != cpu) yield(); // the affinity change moves us at the switch
    fn(arg);
    task_set_affinity(me, saved);
}

} // namespace cohort
