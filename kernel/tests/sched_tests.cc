// The scheduler: many tasks, affinity, weighted fairness, preemption, wake-ups, SIMD state,
// sleeping and private address spaces. Run at 1, 2, 4 and 8 CPUs (kernel.sched.*).
#include <atomic>
#include <new>
#include <optional>
#include <string_view>

#include "arch/arch.h"
#include "arch/x86/cpu.h"
#include "arch/x86/cpu_features.h"
#include "arch/x86/fpu.h"
#include "boot/params.h"
#include "mm/caches.h"
#include "mm/address_space.h"
#include "mm/kstack.h"
#include "mm/phys.h"
#include "mm/pmm.h"
#include "sched/placement.h"
#include "sched/sched.h"
#include "sched/topology.h"
#include "sched/wait.h"
#include "smp/cpu.h"
#include "sync/cpu_relax.h"
#include "test/ktest.h"
#include "time/clock.h"

namespace cohort {
namespace {

uint32_t online_cpus() { return cpus_online(); }

/// The highest online CPU id: tests that pin work to one CPU use it, away from the main task's
/// CPU 0 when there is a choice.
uint32_t last_cpu() {
    uint32_t last = 0;
    for (uint32_t i = 0; i < cpu_count(); ++i)
        if (cpu_by_id(i)->online.load()) last = i;
    return last;
}

void spin_ns(uint64_t ns) {
    const uint64_t end = monotonic_ns() + ns;
    while (monotonic_ns() < end) cpu_relax();
}

// --- many short tasks ------------------------------------------------------------------------
constexpr uint32_t kMaxShortTasks = 1000;
struct Short {
    std::atomic<uint32_t> done{0};
    std::atomic<uint32_t> per_cpu[kMaxCpus];
    std::atomic<bool> go{false};
    std::atomic<uint32_t> started{0};
    uint32_t backlog = 0;
    // Sixteen gates, chosen by CPU: one wait queue's lock would have 255 CPUs queue on it one
    // by one (a fair lock hands over only as fast as the host runs the next waiter).
    static constexpr uint32_t kGates = 16;
    WaitQueue gates[kGates];
    uint32_t waiting() {
        uint32_t n = 0;
        for (WaitQueue& g : gates) n += g.waiters();
        return n;
    }
};
Short g_short;

void short_task(void*) {
    // Released together, so they really compete for the CPUs: on a slow emulator creating a
    // task takes longer than running it, and each would finish before the next exists.
    uint32_t gate;
    {
        NoPreempt here;
        gate = this_cpu()->cpu_id % Short::kGates; // any gate works if we move meanwhile
    }
    g_short.gates[gate].wait([] { return g_short.go.load(); });
    g_short.started.fetch_add(1);
    spin_ns(100'000); // long enough that the CPUs fill up, short enough for 1000 of them
    // And until half of them have started (time-sliced, 2 ms each): meanwhile no CPU goes idle
    // and steals, so the tasks queued on the boot CPU (busy releasing the others) wait for it,
    // however slow an emulator is at waking tasks compared with running them.
    while (g_short.started.load() < g_short.backlog) cpu_relax();
    g_short.per_cpu[this_cpu()->cpu_id].fetch_add(1);
    g_short.done.fetch_add(1);
}

KTEST(sched, thousand_short_tasks_all_finish_and_spread) {
    mm_drain_caches(); // stacks in CPU caches count as in use
    const uint64_t stacks_before = kstack_in_use();
    const uint64_t tasks_before = sched_live_tasks();
    // 1000, or 200 beyond 64 CPUs: each exit still unmaps a stack with a shootdown to every CPU
    // (review M8), which 255 vCPUs on two host cores answer slowly.
    const uint32_t kShortTasks = online_cpus() > 64 ? 200 : kMaxShortTasks;
    g_short.done = 0;
    g_short.go = false;
    g_short.started = 0;
    g_short.backlog = online_cpus() > 1 ? kShortTasks / 2 : 0;
    for (auto& c : g_short.per_cpu) c = 0;
    static Task* tasks[kMaxShortTasks];
    for (uint32_t i = 0; i < kShortTasks; ++i) {
        tasks[i] = task_create(short_task, nullptr, {.name = "short"});
        KASSERT(tasks[i] != nullptr);
    }
    // A slow poll: a 1 ms one would leave the tasks queued on this CPU little time to get there
    // on a slow emulator (each switch costs a good part of a millisecond under Bochs).
    while (g_short.waiting() < kShortTasks) sleep_for(10'000'000);
    g_short.go = true;
    for (WaitQueue& g : g_short.gates) g.wake_all();
    for (uint32_t i = 0; i < kShortTasks; ++i) task_join(tasks[i]);
    KEXPECT_EQ(g_short.done.load(), kShortTasks);
    uint32_t cpus_used = 0, min = UINT32_MAX, max = 0;
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        if (!cpu_by_id(c)->online.load()) continue;
        const uint32_t n = g_short.per_cpu[c].load();
        cpus_used += n > 0;
        min = n < min ? n : min;
        max = n > max ? n : max;
    }
    uint32_t total = 0;
    for (uint32_t c = 0; c < cpu_count(); ++c) total += g_short.per_cpu[c].load();
    ktest::note("%u tasks on %u CPUs: %u CPUs ran some, per CPU min %u max %u", kShortTasks,
                online_cpus(), cpus_used, min, max);
    // What the scheduler guarantees: every task ran to its end exactly once, and work queued
    // while other CPUs sat idle was shared (placement spreads new tasks, idle CPUs steal). Not
    // that every CPU got some: the boot CPU, busy creating them, may rightly lose all of its
    // share to idle ones (it did at 64 CPUs and under Bochs).
    KEXPECT_EQ(total, kShortTasks);
    if (online_cpus() > 1) KEXPECT(cpus_used >= 2);
    // Joined means reaped: every stack is back (in a CPU cache until the drain). The task
    // structures go with their last reference, which the worker drops just after waking the
    // joiner. (At most the baseline: a task an earlier test detached may be reaped meanwhile;
    // more would be a leak.)
    mm_drain_caches();
    KEXPECT(kstack_in_use() <= stacks_before);
    const uint64_t end = monotonic_ns() + 2'000'000'000;
    while (sched_live_tasks() > tasks_before && monotonic_ns() < end) sleep_for(1'000'000);
    KEXPECT(sched_live_tasks() <= tasks_before);
    ktest::note("tasks %lu before, %lu after; kernel stacks %lu before, %lu after", tasks_before,
                sched_live_tasks(), stacks_before, kstack_in_use());
}

// --- affinity --------------------------------------------------------------------------------
struct Pinned {
    CpuMask allowed;
    std::atomic<uint32_t> violations{0};
    std::atomic<uint32_t> checks{0};
};

void pinned_task(void* arg) {
    auto* p = static_cast<Pinned*>(arg);
    for (int i = 0; i < 60; ++i) {
        if (!p->allowed.test(this_cpu()->cpu_id)) p->violations.fetch_add(1);
        p->checks.fetch_add(1);
        if (i % 3 == 0) sleep_for(200'000); // woken by a timer: placement runs again
        else if (i % 3 == 1) yield();
        else spin_ns(300'000); // long enough to be preempted now and then
    }
}

KTEST(sched, affinity_is_never_violated) {
    static Pinned p;
    p.allowed.clear_all();
    p.violations = 0;
    p.checks = 0;
    const uint64_t switch_violations_before = sched_affinity_violations();
    // Half the CPUs (at least one), the upper half so CPU 0's main task does not interfere.
    const uint32_t n = online_cpus();
    for (uint32_t c = n / 2; c < n; ++c) p.allowed.set(c);
    Task* tasks[16];
    for (Task*& t : tasks) {
        t = task_create(pinned_task, &p, {.name = "pinned", .affinity = &p.allowed});
        KASSERT(t != nullptr);
    }
    // Meanwhile four more tasks have their affinity flipped between the lower and the upper
    // half while they run, sleep, wait in a queue or move between queues; the scheduler's own
    // check on every switch must never see them outside their current mask.
    static Pinned flipping;
    flipping.allowed.clear_all();
    for (uint32_t c = 0; c < n; ++c) flipping.allowed.set(c);
    CpuMask lower, upper;
    for (uint32_t c = 0; c < n; ++c) (c < (n + 1) / 2 ? lower : upper).set(c);
    if (upper.empty()) upper = lower;
    Task* flipped[4];
    for (Task*& t : flipped) {
        t = task_create(pinned_task, &flipping, {.name = "flipped", .affinity = &lower});
        KASSERT(t != nullptr);
    }
    for (uint32_t round = 0; round < 200; ++round) {
        for (Task* t : flipped) task_set_affinity(t, round % 2 ? lower : upper);
        sleep_for(100'000);
    }
    for (Task* t : flipped) task_join(t);
    for (Task* t : tasks) task_join(t);
    ktest::note("%u checks on CPUs %u..%u, %u outside the set; %lu switches outside affinity",
                p.checks.load(), n / 2, n - 1, p.violations.load(),
                sched_affinity_violations() - switch_violations_before);
    KEXPECT_EQ(p.violations.load(), 0u);
    // The scheduler checks every switch, of every task (these and all others meanwhile).
    KEXPECT_EQ(sched_affinity_violations(), switch_violations_before);
    KEXPECT_EQ(p.checks.load(), 16u * 60);
}

// A task alone on its CPU takes itself off it: the switch that follows must not pick it again
// there, there being nothing else to run.
struct Mover {
    uint32_t from, to;
    std::atomic<uint32_t> ended_on{UINT32_MAX};
};

void move_myself(void* arg) {
    auto* m = static_cast<Mover*>(arg);
    CpuMask dest;
    dest.set(m->to);
    task_set_affinity(current_task(), dest);
    // No yield, no sleep: the reschedule the affinity change asked for must do it alone.
    const uint64_t end = monotonic_ns() + 2'000'000'000;
    while (this_cpu()->cpu_id != m->to && monotonic_ns() < end) cpu_relax();
    m->ended_on = this_cpu()->cpu_id;
}

KTEST(sched, a_task_alone_on_its_cpu_leaves_when_its_affinity_excludes_it) {
    if (online_cpus() < 2) return ktest::skip("needs 2 CPUs");
    static Mover m;
    m.from = last_cpu();
    m.to = m.from - 1;
    m.ended_on = UINT32_MAX;
    CpuMask start;
    start.set(m.from);
    Task* t = task_create(move_myself, &m, {.name = "mover", .affinity = &start});
    KASSERT(t != nullptr);
    task_join(t);
    KEXPECT_EQ(m.ended_on.load(), m.to);
}

// Tasks that are preempted and moved all the time ask who they are, millions of times: the
// answer must never be another CPU's task (reading this_cpu() and then its current task is two
// loads, and a move can fall between them).
struct WhoAmI {
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> asked{0}, wrong{0};
};

void ask_who_i_am(void* arg) {
    auto* w = static_cast<WhoAmI*>(arg);
    Task* me = current_task();
    uint64_t asked = 0, wrong = 0;
    while (!w->stop.load(std::memory_order_relaxed)) {
        for (int i = 0; i < 256; ++i) {
            wrong += current_task() != me;
            ++asked;
        }
    }
    w->asked.fetch_add(asked);
    w->wrong.fetch_add(wrong);
}

KTEST(sched, a_task_always_finds_itself_as_the_current_task) {
    static WhoAmI w;
    w.stop = false;
    w.asked = w.wrong = 0;
    const uint32_t n = online_cpus() * 3; // more tasks than CPUs: slices, steals, pushes
    Task* tasks[3 * 16];
    const uint32_t count = n > 48 ? 48 : n;
    for (uint32_t i = 0; i < count; ++i) {
        tasks[i] = task_create(ask_who_i_am, &w, {.name = "whoami"});
        KASSERT(tasks[i] != nullptr);
    }
    // Move them around while they run: each affinity change lands as a reschedule interrupt
    // somewhere in their loop and moves them at once.
    const uint32_t cpus = online_cpus();
    const uint64_t end = monotonic_ns() + 300'000'000;
    for (uint32_t round = 0; monotonic_ns() < end; ++round) {
        CpuMask to;
        to.set((round / count) % cpus);
        task_set_affinity(tasks[round % count], to);
        sleep_for(200'000);
    }
    w.stop = true;
    uint64_t migrations = 0;
    for (uint32_t i = 0; i < count; ++i) migrations += tasks[i]->stats.migrations;
    for (uint32_t i = 0; i < count; ++i) task_join(tasks[i]);
    ktest::note("%u tasks asked %lu times, %lu migrations, %lu wrong answers", count,
                w.asked.load(), migrations, w.wrong.load());
    KEXPECT_EQ(w.wrong.load(), uint64_t{0});
}

// --- fairness --------------------------------------------------------------------------------
struct Hog {
    std::atomic<bool>* stop;
    Task* self;
};

void hog_task(void* arg) {
    auto* h = static_cast<Hog*>(arg);
    while (!h->stop->load(std::memory_order_relaxed)) cpu_relax();
}

KTEST(sched, weights_one_two_four_share_one_cpu) {
    static std::atomic<bool> stop;
    stop = false;
    CpuMask one;
    one.set(last_cpu());
    static Hog hogs[3];
    const uint32_t weights[3] = {1024, 2048, 4096};
    for (int i = 0; i < 3; ++i) {
        hogs[i].stop = &stop;
        hogs[i].self = task_create(hog_task, &hogs[i],
                                   {.name = "hog", .weight = weights[i], .affinity = &one});
        KASSERT(hogs[i].self != nullptr);
    }
    sleep_for(800'000'000);
    const uint64_t r0 = hogs[0].self->stats.run_ns, r1 = hogs[1].self->stats.run_ns,
                   r2 = hogs[2].self->stats.run_ns;
    stop = true;
    for (Hog& h : hogs) task_join(h.self);
    const uint64_t total = r0 + r1 + r2;
    KASSERT(total > 0);
    ktest::note("run time %lu : %lu : %lu ms = %lu : %lu : %lu per mille (ideal 143 : 286 : 571)",
                r0 / 1000000, r1 / 1000000, r2 / 1000000, r0 * 1000 / total, r1 * 1000 / total,
                r2 * 1000 / total);
    // Within 10 % of the ideal share each.
    KEXPECT(r0 * 7 * 10 >= total * 9 && r0 * 7 * 10 <= total * 11);
    KEXPECT(r1 * 7 * 10 >= total * 2 * 9 && r1 * 7 * 10 <= total * 2 * 11);
    KEXPECT(r2 * 7 * 10 >= total * 4 * 9 && r2 * 7 * 10 <= total * 4 * 11);
}

struct Equal {
    uint64_t start;
    uint64_t work_ns;
    std::atomic<uint64_t> finished[2 * kMaxCpus];
    std::atomic<uint32_t> next{0};
    std::atomic<bool> go{false};
    WaitQueue gate;
};

void equal_task(void* arg) {
    auto* e = static_cast<Equal*>(arg);
    // All start together: creating a task can take as long as the work itself on a slow
    // emulator (Bochs at 4 M instructions per virtual second), which would stagger the finish.
    e->gate.wait([e] { return e->go.load(); });
    // A fixed amount of CPU time, not of instructions: an emulator runs its virtual CPUs at
    // different speeds when there are more of them than host cores, which is no scheduler's doing.
    Task* me = current_task();
    const uint64_t base = task_run_ns(me);
    while (task_run_ns(me) - base < e->work_ns) cpu_relax();
    e->finished[e->next.fetch_add(1)] = monotonic_ns() - e->start;
}

KTEST(sched, equal_tasks_on_all_cpus_finish_together) {
    const uint32_t n = online_cpus();
    const uint32_t count = n == 1 ? 3 : 2 * n; // more tasks than CPUs: sharing and balancing
    static Equal e;
    e.next = 0;
    e.go = false;
    // Long against the noise: a vCPU the host deschedules just before a task checks its clock
    // overshoots by a host time slice (tens of ms with 8 vCPUs on 2 cores).
    // Beyond 8 CPUs only completion is judged: a little work each is enough.
    e.work_ns = n <= 8 ? 600'000'000 : n <= 64 ? 100'000'000 : 20'000'000;
    static Task* tasks[2 * kMaxCpus];
    for (uint32_t i = 0; i < count; ++i) {
        tasks[i] = task_create(equal_task, &e, {.name = "equal"});
        KASSERT(tasks[i] != nullptr);
    }
    while (e.gate.waiters() < count) sleep_for(10'000'000);
    e.start = monotonic_ns();
    e.go = true;
    e.gate.wake_all();
    for (uint32_t i = 0; i < count; ++i) task_join(tasks[i]);
    uint64_t first = UINT64_MAX, last = 0;
    for (uint32_t i = 0; i < count; ++i) {
        const uint64_t f = e.finished[i].load();
        first = f < first ? f : first;
        last = f > last ? f : last;
    }
    ktest::note("%u tasks of %lu ms CPU time on %u CPUs: first done after %lu ms, last after %lu ms",
                count, e.work_ns / 1000000, n, first / 1000000, last / 1000000);
    // CPU time here is time as the current task, and a vCPU the host does not run still charges
    // its task: with up to 8 vCPUs run alone (RUN_SERIAL) that noise stays well inside 10 %. With
    // more vCPUs than host cores by far, a vCPU waits hundreds of ms for the host, so the spread
    // measures the host scheduler: reported, and the verdict is that every task finished.
    if (n <= 8) KEXPECT(first * 10 >= last * 9);
}

// --- preemption ------------------------------------------------------------------------------
struct Spinner {
    std::atomic<bool> stop{false};
    std::atomic<bool> started{false};
    std::atomic<uint32_t> other_progress{0};
};

void spin_forever(void* arg) {
    auto* s = static_cast<Spinner*>(arg);
    s->started = true;
    while (!s->stop.load(std::memory_order_relaxed)) cpu_relax(); // never yields, never blocks
}

void polite(void* arg) {
    auto* s = static_cast<Spinner*>(arg);
    for (int i = 0; i < 20; ++i) {
        spin_ns(1'000'000);
        s->other_progress.fetch_add(1);
    }
}

KTEST(sched, a_task_spinning_forever_does_not_stop_others) {
    static Spinner s;
    s.stop = false;
    s.started = false;
    s.other_progress = 0;
    CpuMask one;
    one.set(last_cpu());
    Task* hog = task_create(spin_forever, &s, {.name = "spinner", .affinity = &one});
    KASSERT(hog != nullptr);
    while (!s.started.load()) sleep_for(1'000'000);
    Task* other = task_create(polite, &s, {.name = "polite", .affinity = &one});
    KASSERT(other != nullptr);
    task_join(other); // returns only if the spinner was preempted for it
    KEXPECT_EQ(s.other_progress.load(), 20u);
    s.stop = true;
    task_join(hog);
}

// --- the system class ------------------------------------------------------------------------
struct Urgent {
    uint64_t created_at = 0;
    std::atomic<uint64_t> started_at{0};
    std::atomic<bool> done{false};
};

void urgent_task(void* arg) {
    auto* u = static_cast<Urgent*>(arg);
    u->started_at = monotonic_ns();
    spin_ns(20'000'000); // longer than any fair slice: the timer must not take the CPU away
    u->done = true;
}

KTEST(sched, a_system_task_runs_first_and_is_not_time_sliced) {
    static Spinner s;
    s.stop = false;
    s.started = false;
    CpuMask one;
    one.set(last_cpu());
    Task* hog = task_create(spin_forever, &s, {.name = "spinner", .affinity = &one});
    Task* hog2 = task_create(spin_forever, &s, {.name = "spinner", .affinity = &one});
    KASSERT(hog != nullptr && hog2 != nullptr);
    while (!s.started.load()) sleep_for(1'000'000);
    static Urgent u;
    u.started_at = 0;
    u.done = false;
    Task* t = task_create(urgent_task, &u, {.name = "urgent", .affinity = &one, .system = true});
    // From the moment it is queued (creating a task takes milliseconds on a slow emulator); it
    // may well have started before task_create returned.
    u.created_at = monotonic_ns();
    KASSERT(t != nullptr);
    while (!u.done.load()) sleep_for(1'000'000);
    const uint64_t switches = t->stats.switches;
    task_join(t);
    s.stop = true;
    task_join(hog);
    task_join(hog2);
    const uint64_t started = u.started_at.load();
    const uint64_t delay = started > u.created_at ? started - u.created_at : 0;
    ktest::note("started %lu us after being queued beside two spinning fair tasks; switched in "
                "%lu time(s) for 20 ms of work", delay / 1000, switches);
    KEXPECT(delay < 10'000'000); // at once, not after the spinners' slices (an emulator's latency)
    KEXPECT_EQ(switches, uint64_t{1}); // never preempted by the fair tasks' timer
}

// --- wake-ups --------------------------------------------------------------------------------
struct PingPong {
    WaitQueue wq[2];
    std::atomic<uint32_t> turn{0};
    uint32_t rounds;
    std::atomic<uint32_t> done{0};
};

void ping_pong_side(void* arg, uint32_t me) {
    auto* p = static_cast<PingPong*>(arg);
    for (uint32_t i = 0; i < p->rounds; ++i) {
        p->wq[me].wait([&] { return p->turn.load(std::memory_order_acquire) == me; });
        p->turn.store(1 - me, std::memory_order_release);
        p->wq[1 - me].wake_one();
    }
    p->done.fetch_add(1);
}
void ping(void* arg) { ping_pong_side(arg, 0); }
void pong(void* arg) { ping_pong_side(arg, 1); }

KTEST(sched, ping_pong_through_wait_queues_loses_no_wakeup) {
    static PingPong p;
    p.turn = 0;
    p.done = 0;
    // 20,000 round trips: each a wake-up that could be lost, across two CPUs; more only adds
    // minutes to the suite (about 80 us a round trip under TCG, far more with 255 vCPUs).
    p.rounds = 20'000;
    const uint32_t n = online_cpus();
    CpuMask a, b;
    a.set(n > 1 ? 1 : 0);
    b.set(n > 2 ? 2 : 0);
    const uint64_t start = monotonic_ns();
    Task* t0 = task_create(ping, &p, {.name = "ping", .affinity = &a});
    Task* t1 = task_create(pong, &p, {.name = "pong", .affinity = &b});
    KASSERT(t0 != nullptr && t1 != nullptr);
    task_join(t0);
    task_join(t1);
    const uint64_t ns = monotonic_ns() - start;
    ktest::note("%u round trips between cpu%u and cpu%u in %lu ms (%lu ns each)", p.rounds,
                a.first(), b.first(), ns / 1000000, ns / p.rounds);
    KEXPECT_EQ(p.done.load(), 2u);
    KEXPECT_EQ(p.turn.load(), 0u);
}

KTEST(sched, mutex_and_semaphore_exclude_and_count) {
    static Mutex m;
    static Semaphore items(0);
    static uint64_t counter = 0;
    static std::atomic<uint32_t> inside{0}, overlaps{0};
    counter = 0;
    struct Args {
        uint32_t iterations;
    };
    static Args args;
    // 200 rounds each; 40 with vCPUs far beyond the host's cores, where each hand-over across
    // CPUs waits for the host to run the woken task's vCPU.
    args.iterations = online_cpus() > 16 ? 40 : 200;
    auto worker = [](void*) {
        for (uint32_t i = 0; i < args.iterations; ++i) {
            m.lock();
            if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
            const uint64_t c = counter;
            if (i % 16 == 0) yield(); // hold it across a switch: others must block, not enter
            counter = c + 1;
            inside.fetch_sub(1);
            m.unlock();
        }
        items.up();
    };
    const uint32_t n = online_cpus() < 4 ? 4 : online_cpus();
    Task* tasks[16];
    const uint32_t count = n > 16 ? 16 : n;
    for (uint32_t i = 0; i < count; ++i) {
        tasks[i] = task_create(worker, nullptr, {.name = "mutex"});
        KASSERT(tasks[i] != nullptr);
    }
    for (uint32_t i = 0; i < count; ++i) items.down(); // one up() per finished worker
    KEXPECT_EQ(items.count(), 0);
    KEXPECT(!items.try_down());
    for (uint32_t i = 0; i < count; ++i) task_join(tasks[i]);
    KEXPECT_EQ(counter, uint64_t{count} * args.iterations);
    KEXPECT_EQ(overlaps.load(), 0u);
}

// --- SIMD state ------------------------------------------------------------------------------
struct Simd {
    std::atomic<uint32_t> errors{0};
    std::atomic<uint32_t> migrations{0};
    bool avx;
};

// Fills xmm0-15 (or ymm0-15) from `in`, and reads them back into `out`. The kernel is compiled
// without SIMD, so nothing but this code and the context switch touches these registers.
void simd_load(const uint64_t* in, bool avx) {
    if (avx) {
        asm volatile("vmovdqu 0(%0), %%ymm0\n vmovdqu 32(%0), %%ymm1\n vmovdqu 64(%0), %%ymm2\n"
                     "vmovdqu 96(%0), %%ymm3\n vmovdqu 128(%0), %%ymm4\n vmovdqu 160(%0), %%ymm5\n"
                     "vmovdqu 192(%0), %%ymm6\n vmovdqu 224(%0), %%ymm7\n vmovdqu 256(%0), %%ymm8\n"
                     "vmovdqu 288(%0), %%ymm9\n vmovdqu 320(%0), %%ymm10\n vmovdqu 352(%0), %%ymm11\n"
                     "vmovdqu 384(%0), %%ymm12\n vmovdqu 416(%0), %%ymm13\n vmovdqu 448(%0), %%ymm14\n"
                     "vmovdqu 480(%0), %%ymm15\n" : : "r"(in) : "memory");
    } else {
        asm volatile("movdqu 0(%0), %%xmm0\n movdqu 32(%0), %%xmm1\n movdqu 64(%0), %%xmm2\n"
                     "movdqu 96(%0), %%xmm3\n movdqu 128(%0), %%xmm4\n movdqu 160(%0), %%xmm5\n"
                     "movdqu 192(%0), %%xmm6\n movdqu 224(%0), %%xmm7\n movdqu 256(%0), %%xmm8\n"
                     "movdqu 288(%0), %%xmm9\n movdqu 320(%0), %%xmm10\n movdqu 352(%0), %%xmm11\n"
                     "movdqu 384(%0), %%xmm12\n movdqu 416(%0), %%xmm13\n movdqu 448(%0), %%xmm14\n"
                     "movdqu 480(%0), %%xmm15\n" : : "r"(in) : "memory");
    }
}
void simd_store(uint64_t* out, bool avx) {
    if (avx) {
        asm volatile("vmovdqu %%ymm0, 0(%0)\n vmovdqu %%ymm1, 32(%0)\n vmovdqu %%ymm2, 64(%0)\n"
                     "vmovdqu %%ymm3, 96(%0)\n vmovdqu %%ymm4, 128(%0)\n vmovdqu %%ymm5, 160(%0)\n"
                     "vmovdqu %%ymm6, 192(%0)\n vmovdqu %%ymm7, 224(%0)\n vmovdqu %%ymm8, 256(%0)\n"
                     "vmovdqu %%ymm9, 288(%0)\n vmovdqu %%ymm10, 320(%0)\n vmovdqu %%ymm11, 352(%0)\n"
                     "vmovdqu %%ymm12, 384(%0)\n vmovdqu %%ymm13, 416(%0)\n vmovdqu %%ymm14, 448(%0)\n"
                     "vmovdqu %%ymm15, 480(%0)\n" : : "r"(out) : "memory");
    } else {
        asm volatile("movdqu %%xmm0, 0(%0)\n movdqu %%xmm1, 32(%0)\n movdqu %%xmm2, 64(%0)\n"
                     "movdqu %%xmm3, 96(%0)\n movdqu %%xmm4, 128(%0)\n movdqu %%xmm5, 160(%0)\n"
                     "movdqu %%xmm6, 192(%0)\n movdqu %%xmm7, 224(%0)\n movdqu %%xmm8, 256(%0)\n"
                     "movdqu %%xmm9, 288(%0)\n movdqu %%xmm10, 320(%0)\n movdqu %%xmm11, 352(%0)\n"
                     "movdqu %%xmm12, 384(%0)\n movdqu %%xmm13, 416(%0)\n movdqu %%xmm14, 448(%0)\n"
                     "movdqu %%xmm15, 480(%0)\n" : : "r"(out) : "memory");
    }
}
// One SIMD computation per round, so the registers are used, not just parked: the four 32-bit
// lanes of xmm0 get xmm1's added. With AVX it is the VEX form, which also zeroes ymm0's upper
// half (the model below does the same): a 256-bit integer add would need AVX2, which AVX CPUs
// such as Sandy and Ivy Bridge lack (#UD). ymm1-15 keep all 256 bits and are checked.
void simd_step(bool avx) {
    if (avx) asm volatile("vpaddd %%xmm1, %%xmm0, %%xmm0" ::: "memory");
    else asm volatile("paddd %%xmm1, %%xmm0" ::: "memory");
}

void simd_task(void* arg) {
    auto* s = static_cast<Simd*>(arg);
    const bool avx = s->avx;
    alignas(32) uint64_t want[64], got[64];
    const uint64_t seed = current_task()->id * 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 64; ++i) want[i] = seed ^ (uint64_t(i) * 0x0101010101010101ull);
    if (!avx)
        for (int r = 0; r < 16; ++r) want[r * 4 + 2] = want[r * 4 + 3] = 0; // upper halves unused
    simd_load(want, avx);
    uint32_t last_cpu_seen = this_cpu()->cpu_id;
    const uint32_t n = cpus_online();
    for (int round = 0; round < 40; ++round) {
        simd_step(avx);
        auto* w32 = reinterpret_cast<uint32_t*>(want);
        for (uint32_t l = 0; l < 4; ++l) w32[l] += w32[8 + l]; // the same step in C
        if (avx) want[2] = want[3] = 0;
        // Give the CPU away in every way the scheduler has: yield, sleep, and moving.
        if (round % 4 == 0) yield();
        else if (round % 4 == 1) sleep_for(100'000);
        else if (round % 4 == 2 && n > 1) {
            CpuMask m;
            m.set((this_cpu()->cpu_id + 1) % n);
            task_set_affinity(current_task(), m);
            yield();
        } else spin_ns(200'000);
        if (this_cpu()->cpu_id != last_cpu_seen) s->migrations.fetch_add(1);
        last_cpu_seen = this_cpu()->cpu_id;
        for (uint64_t& g : got) g = 0;
        simd_store(got, avx);
        for (int i = 0; i < 64; ++i)
            if (got[i] != want[i]) {
                s->errors.fetch_add(1);
                simd_load(want, avx); // report once per divergence, then carry on
                break;
            }
    }
}

KTEST(sched, simd_registers_survive_switches_and_migrations) {
    static Simd s;
    s.errors = 0;
    s.migrations = 0;
    s.avx = (x86::fpu_xcr0() & 4) != 0;
    Task* tasks[8];
    for (Task*& t : tasks) {
        t = task_create(simd_task, &s, {.name = "simd"});
        KASSERT(t != nullptr);
    }
    for (Task* t : tasks) task_join(t);
    ktest::note("%s state (%s, %zu bytes): 8 tasks x 40 rounds, %u migrations, %u corruptions",
                s.avx ? "AVX" : "SSE", x86::fpu_method(), x86::fpu_state_size(), s.migrations.load(),
                s.errors.load());
    KEXPECT_EQ(s.errors.load(), 0u);
    if (cpus_online() > 1) KEXPECT(s.migrations.load() > 0);
}

// --- sleeping --------------------------------------------------------------------------------
KTEST(sched, sleep_for_is_never_early_and_boundedly_late) {
    // Never early, strictly. Lateness is the emulator's business (a descheduled vCPU, a busy
    // host): reported as a distribution, and a failure only past a second, which means a lost
    // timer rather than a slow one.
    constexpr uint64_t kSleepsUs[] = {50, 1000, 5000, 20000};
    constexpr int kRounds = 8;
    for (uint64_t us : kSleepsUs) {
        uint64_t late[kRounds];
        for (int r = 0; r < kRounds; ++r) {
            const uint64_t start = monotonic_ns();
            sleep_for(us * 1000);
            const uint64_t slept = monotonic_ns() - start;
            KEXPECT(slept >= us * 1000);
            late[r] = slept >= us * 1000 ? slept - us * 1000 : 0;
            KEXPECT(late[r] < 1'000'000'000);
        }
        for (int i = 1; i < kRounds; ++i) // insertion sort: eight values
            for (int j = i; j > 0 && late[j] < late[j - 1]; --j) {
                const uint64_t t = late[j];
                late[j] = late[j - 1];
                late[j - 1] = t;
            }
        ktest::note("sleep_for(%lu us) x%d late by: min %lu us, median %lu us, max %lu us", us,
                    kRounds, late[0] / 1000, late[kRounds / 2] / 1000, late[kRounds - 1] / 1000);
    }
}

// --- private address spaces ------------------------------------------------------------------
constexpr uint64_t kSharedVa = 0x50000000;
struct SharedSpace {
    std::atomic<uint32_t> phase{0}; // 0 read A, 1 stop reading, 2 read B, 3 done
    std::atomic<uint32_t> paused{0};
    WaitQueue paused_wq; // the test waits here for every reader to pause
    std::atomic<uint32_t> stale{0}, reads{0};
    std::atomic<uint32_t> cpus_seen[kMaxCpus];
    uint64_t a, b;
};

void space_reader(void* arg) {
    auto* s = static_cast<SharedSpace*>(arg);
    const auto* p = reinterpret_cast<volatile uint64_t*>(kSharedVa);
    bool paused = false;
    for (;;) {
        const uint32_t ph = s->phase.load(std::memory_order_acquire);
        if (ph == 3) return;
        if (ph == 1) {
            if (!paused) {
                s->paused.fetch_add(1);
                s->paused_wq.wake_all();
                paused = true;
            }
            yield();
            continue;
        }
        const uint64_t v = *p; // through this task's address space
        s->reads.fetch_add(1, std::memory_order_relaxed);
        s->cpus_seen[this_cpu()->cpu_id].store(1, std::memory_order_relaxed);
        if (v != (ph == 0 ? s->a : s->b)) s->stale.fetch_add(1);
        if (s->reads.load(std::memory_order_relaxed) % 16 == 0) yield();
    }
}

KTEST(sched, threads_of_a_private_space_see_an_unmap_on_every_cpu) {
    AddressSpace* as = address_space_create();
    KASSERT(as != nullptr);
    const uint64_t fa = pmm::alloc_zeroed_page(), fb = pmm::alloc_zeroed_page();
    KASSERT(fa != 0 && fb != 0);
    static SharedSpace s;
    s.phase = 0, s.paused = 0, s.stale = 0, s.reads = 0;
    for (auto& c : s.cpus_seen) c = 0;
    s.a = 0xa1a1'0000'0000'0001;
    s.b = 0xb2b2'0000'0000'0002;
    *phys_to_virt<uint64_t>(fa) = s.a;
    *phys_to_virt<uint64_t>(fb) = s.b;
    KASSERT(address_space_map(as, kSharedVa, fa, false));
    const uint32_t n = cpus_online();
    // One reader per CPU up to 16: enough CPUs caching the translation to catch a missed one,
    // few enough that 255 vCPUs do not turn the pause handshake into minutes.
    const uint32_t readers = n < 2 ? 2 : n > 16 ? 16 : n;
    Task* tasks[64];
    KASSERT(readers <= 64);
    for (uint32_t i = 0; i < readers; ++i) {
        tasks[i] = task_create(space_reader, &s, {.name = "reader", .address_space = as});
        KASSERT(tasks[i] != nullptr);
    }
    sleep_for(50'000'000); // every reader has read A: each CPU it ran on caches the translation
    s.phase = 1;
    // Woken, not polled: on a slow emulator a 1 ms polling loop on the reader's CPU can leave
    // that reader no time between the switches (Bochs runs 4,000 instructions per ms).
    s.paused_wq.wait([readers] { return s.paused.load() >= readers; });
    // The readers still run (yielding) in `as`, on their CPUs: the shootdown must reach them.
    KEXPECT_EQ(address_space_unmap(as, kSharedVa, 4096), uint64_t{1});
    KASSERT(address_space_map(as, kSharedVa, fb, false));
    s.phase = 2;
    sleep_for(50'000'000);
    s.phase = 3;
    for (uint32_t i = 0; i < readers; ++i) task_join(tasks[i]);
    uint32_t cpus = 0;
    for (uint32_t c = 0; c < cpu_count(); ++c) cpus += s.cpus_seen[c].load();
    ktest::note("%u readers on %u CPUs, %u reads, %u stale", readers, cpus, s.reads.load(),
                s.stale.load());
    KEXPECT_EQ(s.stale.load(), 0u);
    KEXPECT(as->active.snapshot().empty()); // its last thread left: loaded nowhere
    address_space_destroy(as);
    pmm::free_pages(fa);
    pmm::free_pages(fb);
}


// --- joins and transient references ---------------------------------------------------------

// A waker may hold a task_ref (wait.cc, the sleep_for callback) at the very moment the reaper
// lets the task go. The joiner must still wake: it waits for the reaper, not for the reference
// count, which the last task_unref drops without waking anybody.
struct JoinCase {
    Task* target;
    std::atomic<bool> joined{false};
};

KTEST(sched, join_wakes_while_a_waker_holds_a_reference) {
    static JoinCase jc;
    jc.joined = false;
    jc.target = task_create([](void*) {}, nullptr, {.name = "short-lived"});
    KASSERT(jc.target != nullptr);
    task_ref(jc.target); // the waker's reference, held across the exit and the reaping
    Task* joiner = task_create(
        [](void*) {
            task_join(jc.target);
            jc.joined.store(true);
        },
        nullptr, {.name = "joiner"});
    KASSERT(joiner != nullptr);
    // Let the target exit and the reaper free its stack (counted, not timed: the reaper's
    // wake-up of the joiner has happened once the joiner has finished or is blocked again).
    const uint64_t end = monotonic_ns() + 2'000'000'000;
    while (!jc.joined.load() && monotonic_ns() < end) sleep_for(1'000'000);
    task_unref(jc.target); // the waker lets go: refs may drop to the joiner's alone
    const uint64_t end2 = monotonic_ns() + 2'000'000'000;
    while (!jc.joined.load() && monotonic_ns() < end2) sleep_for(1'000'000);
    KEXPECT(jc.joined.load());
    if (jc.joined.load()) task_join(joiner);
}

// --- sleepers that move ----------------------------------------------------------------------

// sleep_for's Dekker pair (state vs. done) under migration: every sleeper changes CPU between
// sleeps, so the timer callback often runs on a CPU other than the sleeper's. A lost wake-up
// leaves a sleeper blocked forever: counted against a deadline far beyond any sleep.
struct MovingSleepers {
    std::atomic<uint32_t> finished{0};
    std::atomic<uint64_t> sleeps{0};
    std::atomic<uint64_t> early{0};
    uint32_t rounds = 0;
};
MovingSleepers g_moving;

void moving_sleeper(void* arg) {
    const uint32_t n = online_cpus();
    uint32_t cpu = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(arg));
    const CpuMask all = CpuMask::first_n(cpu_count());
    for (uint32_t i = 0; i < g_moving.rounds; ++i) {
        CpuMask one;
        cpu = (cpu + 1) % cpu_count();
        while (!cpu_by_id(cpu)->online.load()) cpu = (cpu + 1) % cpu_count();
        one.set(cpu);
        task_set_affinity(current_task(), one); // moves at the next switch...
        const uint64_t ns = 20'000 + (i % 7) * 30'000;
        const uint64_t t0 = monotonic_ns();
        sleep_for(ns); // ...which is this sleep: armed here, often fired after the move
        if (monotonic_ns() - t0 < ns) g_moving.early.fetch_add(1);
        g_moving.sleeps.fetch_add(1);
        if (n > 1 && i % 3 == 0) task_set_affinity(current_task(), all);
    }
    g_moving.finished.fetch_add(1);
}

KTEST(sched, sleepers_that_migrate_always_wake) {
    const uint32_t n = online_cpus();
    const uint32_t tasks = 2 * n < 32 ? 2 * n : 32;
    g_moving.finished = 0;
    g_moving.sleeps = g_moving.early = 0;
    // Fewer rounds where many vCPUs share the host's two cores (each round waits for the host
    // to run a timer's CPU and the sleeper's new one); the count, not a time, ends the test.
    g_moving.rounds = n <= 8 ? 200 : n <= 64 ? 30 : 10;
    Task* ts[32];
    for (uint32_t i = 0; i < tasks; ++i) {
        ts[i] = task_create(moving_sleeper, reinterpret_cast<void*>(uintptr_t{i}), {.name = "mover"});
        KASSERT(ts[i] != nullptr);
    }
    // Each sleeper needs well under a second of sleeping; a minute means one never woke.
    const uint64_t end = monotonic_ns() + 60'000'000'000;
    while (g_moving.finished.load() < tasks && monotonic_ns() < end) sleep_for(10'000'000);
    ktest::note("%u sleepers on %u CPUs: %lu sleeps, %lu early, %u finished", tasks, n,
                g_moving.sleeps.load(), g_moving.early.load(), g_moving.finished.load());
    KEXPECT_EQ(g_moving.finished.load(), tasks);
    KEXPECT_EQ(g_moving.early.load(), uint64_t{0});
    if (g_moving.finished.load() == tasks)
        for (uint32_t i = 0; i < tasks; ++i) task_join(ts[i]);
}

// --- domains and bounded placement ------------------------------------------------------------

// "SxCxT" from test.expect_topology, or false.
bool expected_topology(uint32_t& sockets, uint32_t& cores, uint32_t& threads) {
    const auto v = params().get("test.expect_topology");
    if (!v) return false;
    uint32_t parts[3] = {0, 0, 0}, i = 0;
    for (const char ch : *v) {
        if (ch == 'x' && i < 2) ++i;
        else if (ch >= '0' && ch <= '9') parts[i] = parts[i] * 10 + static_cast<uint32_t>(ch - '0');
        else return false;
    }
    sockets = parts[0], cores = parts[1], threads = parts[2];
    return i == 2;
}

KTEST(sched, domains_follow_the_cpu_topology) {
    const sched::Topology& t = sched_topology();
    const uint32_t n = cpu_count();
    KASSERT(t.levels() >= 1);
    KEXPECT_EQ(t.ncpus(), n);
    KEXPECT(t.kind(t.levels() - 1) == sched::DomainKind::Machine);
    for (uint32_t c = 0; c < n; ++c) {
        KEXPECT_EQ(t.cpu_at(t.pos(c)), c);
        KEXPECT_EQ(t.span(c, t.levels() - 1).size(), n);
        for (uint32_t l = 0; l < t.levels(); ++l) {
            const sched::Topology::Span s = t.span(c, l);
            KEXPECT(s.contains(t.pos(c)));
            if (l > 0) KEXPECT(t.span(c, l - 1).lo >= s.lo && t.span(c, l - 1).hi <= s.hi);
        }
    }
    uint32_t sockets, cores, threads;
    if (!expected_topology(sockets, cores, threads)) {
        ktest::note("%u package(s) x %u core(s) x %u thread(s), %u level(s) (no "
                    "test.expect_topology to compare with)", t.packages(), t.max_cores(),
                    t.max_threads(), t.levels());
        return;
    }
    KEXPECT_EQ(t.packages(), sockets);
    KEXPECT_EQ(t.max_cores(), cores);
    KEXPECT_EQ(t.max_threads(), threads);
    const uint32_t levels = (threads > 1 ? 1 : 0) + (sockets > 1 && cores > 1 ? 1 : 0) + 1;
    KEXPECT_EQ(t.levels(), levels);
    if (threads > 1) KEXPECT(t.kind(0) == sched::DomainKind::Smt);
}

struct WakePair {
    WaitQueue wq;
    std::atomic<uint32_t> turn{0};
    uint32_t rounds = 0;
};
struct WakeSide {
    WakePair* pair;
    uint32_t me;
};

void wake_side(void* arg) {
    auto* side = static_cast<WakeSide*>(arg);
    WakePair& p = *side->pair;
    for (uint32_t i = 0; i < p.rounds; ++i) {
        p.wq.wait([&] { return p.turn.load(std::memory_order_acquire) == side->me; });
        p.turn.store(side->me ^ 1, std::memory_order_release);
        p.wq.wake_one();
    }
}

KTEST(sched, wake_ups_read_a_bounded_number_of_other_cpus_lines) {
    // Pairs of tasks free to run anywhere hand a turn back and forth: every hand-over is a
    // wake-up placed by the search. The most any wake-up read must stay within the bound the
    // placement policy states, which depends on the shape of packages, not on N.
    constexpr uint32_t kMaxPairs = 16;
    static WakePair pairs[kMaxPairs];
    static WakeSide sides[2 * kMaxPairs];
    const uint32_t n = online_cpus();
    const uint32_t npairs = n / 2 < 1 ? 1 : (n / 2 > kMaxPairs ? kMaxPairs : n / 2);
    uint64_t wakes0 = 0;
    for (uint32_t c = 0; c < cpu_count(); ++c) wakes0 += sched_cpu_stats(c).wakes_placed;
    Task* tasks[2 * kMaxPairs];
    for (uint32_t i = 0; i < npairs; ++i) {
        new (&pairs[i]) WakePair();
        pairs[i].rounds = n > 64 ? 50 : 300;
        for (uint32_t k = 0; k < 2; ++k) {
            sides[2 * i + k] = WakeSide{&pairs[i], k};
            tasks[2 * i + k] = task_create(wake_side, &sides[2 * i + k], {.name = "wake"});
            KASSERT(tasks[2 * i + k] != nullptr);
        }
    }
    for (uint32_t i = 0; i < 2 * npairs; ++i) task_join(tasks[i]);
    uint64_t wakes = 0, lines = 0;
    uint32_t most = 0;
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        const CpuSchedStats st = sched_cpu_stats(c);
        wakes += st.wakes_placed;
        lines += st.wake_lines;
        if (st.wake_lines_max > most) most = st.wake_lines_max;
    }
    // The search's lines plus the task's old queue and its new one.
    const uint32_t bound = sched::max_search_lines(sched_topology()) + 2;
    ktest::note("%lu wake-ups placed since boot (%lu by this test), %lu.%02lu lines each on "
                "average, at most %u (bound %u)", wakes, wakes - wakes0,
                wakes == 0 ? 0 : lines / wakes, wakes == 0 ? 0 : lines * 100 / wakes % 100, most,
                bound);
    KEXPECT(wakes > wakes0);
    KEXPECT(most <= bound);
}

KTEST(sched, placement_mode_packs_or_spreads_over_packages) {
    // Three short-lived sleepers created by the main task (on CPU 0, running): pack puts them
    // beside it in CPU 0's package, spread gives them idle cores, which the 4 CPUs of a
    // package this size cannot all provide.
    const sched::Topology& t = sched_topology();
    const uint32_t me = this_cpu()->cpu_id;
    const bool pack = params().get("sched.placement") == std::optional<std::string_view>("pack");
    uint32_t pkg_level = 0;
    while (pkg_level + 1 < t.levels() && t.kind(pkg_level) != sched::DomainKind::Package) ++pkg_level;
    if (t.packages() < 2 || t.kind(pkg_level) != sched::DomainKind::Package ||
        t.span(me, pkg_level).size() < 4 || online_cpus() != cpu_count()) {
        ktest::skip("needs two or more packages of at least 4 CPUs, all online");
        return;
    }
    const sched::Topology::Span home = t.span(me, pkg_level);
    struct Sleeper {
        std::atomic<uint32_t> outside{0}, runs{0};
        sched::Topology::Span home;
    };
    static Sleeper s;
    s.outside = 0;
    s.runs = 0;
    s.home = home;
    auto body = [](void*) {
        for (int i = 0; i < 20; ++i) {
            {
                arch::IrqOff irq;
                const uint32_t pos = sched_topology().pos(this_cpu()->cpu_id);
                if (!s.home.contains(pos)) s.outside.fetch_add(1);
                s.runs.fetch_add(1);
            }
            sleep_for(200'000);
        }
    };
    Task* tasks[3];
    for (Task*& task : tasks) {
        task = task_create(body, nullptr, {.name = "sleeper"});
        KASSERT(task != nullptr);
    }
    for (Task* task : tasks) task_join(task);
    ktest::note("%s: %u of %u runs outside cpu%u's package", pack ? "pack" : "spread",
                s.outside.load(), s.runs.load(), me);
    KEXPECT_EQ(s.runs.load(), 60u);
    if (pack) KEXPECT_EQ(s.outside.load(), 0u);
    else KEXPECT(s.outside.load() > 0);
}

} // namespace
} // namespace cohort
