// Where tasks run: placement of new tasks, the moves between run queues (migration, idle
// CPUs stealing, busy CPUs pushing), and affinity changes.
#include "sched/sched.h"

#include "arch/arch.h"
#include "debug/log.h"
#include "sched/internal.h"
#include "time/clock.h"

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
        // A CPU going offline takes nothing new but its own worker (which waits there for it).
        if (dst.down.load(std::memory_order_relaxed) && t != dst.worker) {
            sched::ProbeCost cost = probe_budget();
            uint32_t alt = choose_cpu(t, cpu, cost);
            if (alt == kMaxCpus || alt == cpu) {
                alt = this_cpu()->cpu_id; // online: we run here
                t->homeless = !t->affinity.test(alt);
            }
            t->cpu.store(alt, std::memory_order_release);
            dst.lock.unlock();
            cpu = alt;
            continue;
        }
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

// A queued fair task of `rq` that may run on `cpu` and is not still on its old CPU: one whose
// home node is `cpu`'s if one of the first few movable ones is, so stealing brings tasks home.
Task* find_movable(RunQueue& rq, uint32_t cpu) COHORT_REQUIRES(rq.lock) {
    constexpr uint32_t kHomeLook = 4; // movable tasks looked at for one of cpu's node
    const uint32_t node = g_topology.node_of(cpu);
    Task* first = nullptr;
    uint32_t looked = 0;
    for (FairEntity* e = rq.fair.last(); e != nullptr && looked < kHomeLook; e = rq.fair.prev(*e)) {
        Task* t = task_of(e);
        if (t->on_cpu || !t->affinity.test(cpu)) continue;
        if (t->home_node == node) return t;
        if (first == nullptr) first = t;
        if (g_topology.nodes() == 1) break;
        ++looked;
    }
    return first;
}

// The `skip`-th queued fair task of `rq` (from the back: the ones that waited least) that is
// not on a CPU, or null.
Task* nth_waiting(RunQueue& rq, uint32_t skip) COHORT_REQUIRES(rq.lock) {
    for (FairEntity* e = rq.fair.last(); e != nullptr; e = rq.fair.prev(*e)) {
        Task* t = task_of(e);
        if (t->on_cpu) continue;
        if (skip == 0) return t;
        --skip;
    }
    return nullptr;
}

// The "no wasted cores" invariant (Lozi et al., EuroSys 2016): no CPU stays idle for more than
// two balance intervals while a CPU of its top domain has a waiting task it may run. Checked
// from the busy side, because idle CPUs halt without ticking, and in this CPU's balance
// intervals, not wall time (a vCPU the host did not run for a while has not had its chances):
// `two_ago` is the start of the older of its last two intervals.

// `cpu` is idle and has been since before `two_ago`.
bool idle_since_before(uint32_t cpu, uint64_t two_ago) {
    const RunQueue& rq = rq_of(cpu);
    return rq.is_idle.load(std::memory_order_relaxed) &&
           rq.idle_since.load(std::memory_order_relaxed) <= two_ago;
}

// This queue has had work waiting that may move since before `two_ago`.
bool waited_two_intervals(const RunQueue& rq, uint64_t two_ago) {
    return two_ago != 0 && rq.waiting_since <= two_ago;
}

// Some CPU of the machine that `t` may run on idles since before `two_ago`. A search of its
// own, apart from the placement rules it checks, over the whole idle mask (a word per 64 CPUs,
// only on a CPU whose work has waited two intervals).
bool long_idle_cpu_for(const Task* t, uint32_t me, uint64_t two_ago) {
    const sched::Topology& topo = g_topology;
    sched::ProbeCost cost{topo.ncpus() / 64 + 1};
    const sched::Topology::Span all{0, static_cast<uint16_t>(topo.ncpus())};
    return sched::probe_words([](uint32_t w) { return g_idle.word(w); }, 1, topo, all,
                              topo.pos(me) + 1, cost, [&](uint32_t c) {
                                  return c != me && t->affinity.test(c) &&
                                         idle_since_before(c, two_ago);
                              }) != kMaxCpus;
}

} // namespace

// Idle CPU: take one waiting task from a queue that has one, nearest domain first, trying a
// bounded number of queues. Interrupts off.
bool try_steal() {
    if (this_rq().down.load(std::memory_order_relaxed)) return false; // going offline
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

// Busy CPU, from its slice timer (so only while tasks wait here), once per balance interval:
// push waiting tasks to idle CPUs, or to busy ones where the move is worth it
// (sched::imbalance_needed: more across NUMA nodes), up to kMaxPushes of them (as Linux's
// sched_nr_migrate bounds one balance pass). Idle CPUs halt instead of polling, so this is
// what evens out the load once they have stopped looking for work: a queue of up to
// 2 x kMaxPushes waiting tasks spreads within the two intervals the wasted-core check allows.
// The first search sees every CPU (sched::full_budget): a busy CPU beside an idle one anywhere
// in the machine finds it within one interval.
void balance(RunQueue& rq, uint64_t now) COHORT_REQUIRES(rq.lock) {
    if (now < rq.next_balance || rq.fair.count() == 0) return;
    rq.next_balance = now + kBalanceIntervalNs;
    const uint64_t two_ago = rq.balanced_at[0];
    rq.balanced_at[0] = rq.balanced_at[1];
    rq.balanced_at[1] = now;
    const uint32_t me = this_cpu()->cpu_id;
    const uint32_t my_node = g_topology.node_of(me);
    constexpr uint32_t kMaxPushes = 32;  // tasks moved per tick
    constexpr uint32_t kMaxFailures = 8; // tasks that found no target: bounded work per tick
    bool searched_all = false, checked = false;
    for (uint32_t pushed = 0, failed = 0; pushed < kMaxPushes && failed < kMaxFailures;) {
        const uint32_t mine = rq.runnable.load(std::memory_order_relaxed);
        if (mine < 2) return;
        // Moving a task drops the lock: the queue is walked afresh each time, past the tasks
        // that found no target.
        Task* t = nth_waiting(rq, failed);
        if (t == nullptr) return;
        // One search a tick covers the machine; after one came back empty, the others stay
        // near (a second full search would find the same nothing).
        sched::ProbeCost cost = searched_all ? probe_budget() : sched::full_budget(g_topology);
        searched_all = true;
        const uint32_t c = sched::find_push_target(machine(), me, mine, t->affinity, load_view,
                                                   cost, t->home_node);
        // Checked once a tick, on the first task that waited two intervals: could it have run
        // on a CPU idle all that time (balancing moves it there only now, or not at all)?
        if (!checked && waited_two_intervals(rq, two_ago)) {
            checked = true;
            if (c != kMaxCpus ? idle_since_before(c, two_ago) : long_idle_cpu_for(t, me, two_ago))
                rq.wasted_core_violations.fetch_add(1, std::memory_order_relaxed);
        }
        if (c == kMaxCpus) {
            ++failed;
            continue;
        }
        rq.pushes.fetch_add(1, std::memory_order_relaxed);
        if (g_topology.node_of(c) != my_node)
            rq.node_pushes.fetch_add(1, std::memory_order_relaxed);
        searched_all = false; // it found something: the next task may find more
        ++pushed;
        migrate_queued(rq, t, c);
    }
}

// Enqueues a new or woken task on the CPU the placement rules choose. Called with `t` Blocked
// (or new) and off every queue and CPU; interrupts off.
// Only new tasks come here (woken ones go through wake_up).
void place(Task* t) COHORT_NO_THREAD_SAFETY_ANALYSIS {
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
    // Checked under the lock: a CPU going offline (chosen from a mask a moment old) has moved
    // its tasks away or will see this one when it does.
    RunQueue* q = &rq_of(cpu);
    q->lock.lock();
    if (q->down.load(std::memory_order_relaxed) && cpu != this_cpu()->cpu_id) {
        q->lock.unlock();
        cpu = this_cpu()->cpu_id;
        t->homeless = !t->affinity.test(cpu);
        q = &rq_of(cpu);
        q->lock.lock();
    }
    RunQueue& rq = *q;
    t->cpu.store(cpu, std::memory_order_release);
    t->fair.vruntime = rq.fair.placement(0, true, kParams);
    enqueue(rq, t);
    kick(cpu, rq, t);
    rq.lock.unlock();
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
        // Work that waited here may go elsewhere from now on, not from when it arrived.
        if (queued(t) && !t->on_cpu) rq.waiting_since = monotonic_ns();
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
