// bench=sched: what the scheduler costs and how well it spreads work.
//   sched.switch           one context switch, from two tasks yielding to each other on one CPU
//   sched.switch_space     the same with one of the two in a private address space: also CR3
//                          writes and lazy-TLB returns per switch (tlb.lazy=0 for the old way)
//   sched.wakeup_remote    from wake_up() on CPU 0 to the woken task running on a halted CPU 1
//   sched.makespan         N x 50 equal tasks on N CPUs: the time until the last one finishes,
//                          against the ideal (the CPU time they consumed / N)
// Cycles are TSC cycles; QEMU's vCPUs share the host TSC, and on hardware the invariant TSC is
// synchronised across cores, so cross-CPU differences are meaningful.
#include <atomic>

#include "arch/x86/cpu.h"
#include "bench/bench.h"
#include "debug/log.h"
#include "mm/address_space.h"
#include "sched/sched.h"
#include "sched/wait.h"
#include "smp/cpu.h"
#include "sync/cpu_relax.h"
#include "time/clock.h"

namespace cohort {
namespace {

constexpr uint32_t kRuns = 200;

void emit(const char* name, uint64_t* samples, uint32_t runs) {
    uint64_t median = 0, p99 = 0;
    kbench::summarize(samples, runs, &median, &p99);
    console_printf("bench: {\"name\":\"%s\",\"cpus\":%u,\"median_cycles\":%lu,\"p99_cycles\":%lu,"
                   "\"runs\":%u}\n",
                   name, cpus_online(), median, p99, runs);
}

// The CPU the single-CPU measurements use: the last one, away from CPU 0's main task (which
// only waits meanwhile, but wakes up now and then to check).
uint32_t bench_cpu() {
    uint32_t last = 0;
    for (uint32_t i = 0; i < cpu_count(); ++i)
        if (cpu_by_id(i)->online.load()) last = i;
    return last;
}

// --- context switch -------------------------------------------------------------------------
constexpr uint32_t kYieldsPerRun = 64;
struct Yielders {
    std::atomic<uint32_t> ready{0};
    std::atomic<bool> go{false};
    uint64_t samples[kRuns];
    AddressSpaceSwitchStats before{}, after{}; // on the bench CPU, around the timed runs
};
Yielders g_yield;

// Both tasks yield kYieldsPerRun times per run; task 0 times each run. Every yield switches
// (yield puts the caller behind the other task), so a run is 2 x kYieldsPerRun switches.
void yielder(void* arg) {
    const bool timer = arg != nullptr;
    g_yield.ready.fetch_add(1);
    while (!g_yield.go.load(std::memory_order_acquire)) yield();
    if (timer) g_yield.before = address_space_switch_stats();
    for (uint32_t r = 0; r < kRuns; ++r) {
        const uint64_t t0 = x86::rdtsc();
        for (uint32_t i = 0; i < kYieldsPerRun; ++i) yield();
        if (timer) g_yield.samples[r] = (x86::rdtsc() - t0) / (2 * kYieldsPerRun);
    }
    if (timer) g_yield.after = address_space_switch_stats();
}

/// Two yielders on the bench CPU, in `space_a` and `space_b` (nullptr: kernel threads), run to
/// the end; returns the switches they made, or 0 if they could not be created.
uint64_t run_yielders(AddressSpace* space_a, AddressSpace* space_b) {
    g_yield.ready = 0;
    g_yield.go = false;
    CpuMask one;
    one.set(bench_cpu());
    Task* a = task_create(yielder, &g_yield,
                          {.name = "yield/a", .affinity = &one, .address_space = space_a});
    Task* b = task_create(yielder, nullptr,
                          {.name = "yield/b", .affinity = &one, .address_space = space_b});
    if (a == nullptr || b == nullptr) {
        log_error("bench: cannot create the yielding tasks");
        return 0;
    }
    while (g_yield.ready.load() < 2) sleep_for(100'000);
    const uint64_t switches0 = a->stats.switches + b->stats.switches;
    g_yield.go.store(true, std::memory_order_release);
    task_join(a);
    task_join(b);
    return a->stats.switches + b->stats.switches - switches0;
}

KBENCH(sched_switch) {
    const uint64_t switches = run_yielders(nullptr, nullptr);
    if (switches == 0) return;
    if (switches < uint64_t{kRuns} * kYieldsPerRun * 2)
        log_warn("bench: sched.switch saw %lu switches for %u yields", switches,
                 kRuns * kYieldsPerRun * 2);
    emit("sched.switch", g_yield.samples, kRuns);
}

KBENCH(sched_switch_space) {
    // Task a runs in a private address space, task b is a kernel thread: every switch crosses
    // between them. Lazy TLB keeps a's space loaded while b runs, so neither direction writes
    // CR3 (which without PCIDs also drops the whole TLB).
    AddressSpace* space = address_space_create();
    if (space == nullptr) return log_error("bench: cannot create an address space");
    const bool ran = run_yielders(space, nullptr) != 0;
    address_space_destroy(space);
    if (!ran) return;
    const uint64_t switches = uint64_t{kRuns} * kYieldsPerRun * 2;
    const AddressSpaceSwitchStats& s0 = g_yield.before;
    const AddressSpaceSwitchStats& s1 = g_yield.after;
    uint64_t median = 0, p99 = 0;
    kbench::summarize(g_yield.samples, kRuns, &median, &p99);
    // Per 1000 switches, as integers.
    console_printf("bench: {\"name\":\"sched.switch_space\",\"cpus\":%u,\"median_cycles\":%lu,"
                   "\"p99_cycles\":%lu,\"runs\":%u,\"cr3_writes_per_kswitch\":%lu,"
                   "\"lazy_returns_per_kswitch\":%lu,\"lazy_flushes_per_kswitch\":%lu}\n",
                   cpus_online(), median, p99, kRuns,
                   (s1.cr3_writes - s0.cr3_writes) * 1000 / switches,
                   (s1.lazy_kept - s0.lazy_kept + s1.lazy_flushed - s0.lazy_flushed) * 1000 / switches,
                   (s1.lazy_flushed - s0.lazy_flushed) * 1000 / switches);
}

KBENCH(sched_switch_spaces) {
    // Tasks a and b each in a private address space of its own: every switch loads the other
    // space (a CR3 write, and the lower half copied into the CPU's own top-level table).
    AddressSpace* sa = address_space_create();
    AddressSpace* sb = address_space_create();
    if (sa == nullptr || sb == nullptr) {
        address_space_destroy(sa); // either may be nullptr
        address_space_destroy(sb);
        return log_error("bench: cannot create address spaces");
    }
    const bool ran = run_yielders(sa, sb) != 0;
    address_space_destroy(sa);
    address_space_destroy(sb);
    if (!ran) return;
    const uint64_t switches = uint64_t{kRuns} * kYieldsPerRun * 2;
    uint64_t median = 0, p99 = 0;
    kbench::summarize(g_yield.samples, kRuns, &median, &p99);
    console_printf("bench: {\"name\":\"sched.switch_spaces\",\"cpus\":%u,\"median_cycles\":%lu,"
                   "\"p99_cycles\":%lu,\"runs\":%u,\"cr3_writes_per_kswitch\":%lu}\n",
                   cpus_online(), median, p99, kRuns,
                   (g_yield.after.cr3_writes - g_yield.before.cr3_writes) * 1000 / switches);
}

// --- cross-CPU wake-up ----------------------------------------------------------------------
struct Wakeup {
    WaitQueue wq;
    std::atomic<uint32_t> round{0}; // the sleeper waits for round r + 1
    std::atomic<uint64_t> woken_at{0};
    std::atomic<bool> asleep{false};
};
Wakeup g_wake;

void sleeper(void*) {
    for (uint32_t r = 0; r < kRuns; ++r) {
        g_wake.wq.wait([r] {
            g_wake.asleep.store(true, std::memory_order_release);
            return g_wake.round.load(std::memory_order_acquire) > r;
        });
        const uint64_t now = x86::rdtsc();
        g_wake.asleep.store(false, std::memory_order_release); // before the CPU 0 side reads it
        g_wake.woken_at.store(now, std::memory_order_release);
    }
}

KBENCH(sched_wakeup_remote) {
    if (cpus_online() < 2) {
        console_printf("bench: {\"name\":\"sched.wakeup_remote\",\"cpus\":1,\"skipped\":true}\n");
        return;
    }
    static uint64_t samples[kRuns];
    g_wake.round = 0;
    CpuMask one;
    one.set(bench_cpu());
    Task* t = task_create(sleeper, nullptr, {.name = "sleeper", .affinity = &one});
    if (t == nullptr) return log_error("bench: cannot create the sleeper");
    for (uint32_t r = 0; r < kRuns; ++r) {
        // Once it is queued and about to block, give its CPU time to switch to the idle task
        // and halt: the wake-up then pays for the IPI and the way out of HLT, as it would on a
        // quiet machine.
        while (!g_wake.asleep.load(std::memory_order_acquire)) cpu_relax();
        sleep_for(200'000);
        g_wake.woken_at.store(0);
        const uint64_t t0 = x86::rdtsc();
        g_wake.round.store(r + 1, std::memory_order_release);
        g_wake.wq.wake_one();
        while (g_wake.woken_at.load(std::memory_order_acquire) == 0) cpu_relax();
        samples[r] = g_wake.woken_at.load() - t0;
    }
    task_join(t);
    emit("sched.wakeup_remote", samples, kRuns);
}

// --- makespan -------------------------------------------------------------------------------
constexpr uint32_t kTasksPerCpu = 50;
constexpr uint64_t kWorkNs = 2'000'000; // CPU time per task
struct Makespan {
    std::atomic<bool> go{false};
    WaitQueue gate;
    std::atomic<uint64_t> last_done{0};
    std::atomic<uint64_t> consumed_ns{0};
};
Makespan g_ms;

void equal_work(void*) {
    g_ms.gate.wait([] { return g_ms.go.load(); });
    // A fixed amount of CPU time: under an emulator with more vCPUs than host cores the
    // vCPUs run at different speeds, which no guest scheduler can correct.
    Task* me = current_task();
    const uint64_t base = task_run_ns(me);
    uint64_t used = 0;
    while ((used = task_run_ns(me) - base) < kWorkNs) cpu_relax();
    // What it really consumed: a vCPU the host deschedules between two checks overshoots by
    // the host's time slice, all of it charged to this task (the guest clock runs on).
    g_ms.consumed_ns.fetch_add(used);
    const uint64_t now = monotonic_ns();
    uint64_t prev = g_ms.last_done.load();
    while (prev < now && !g_ms.last_done.compare_exchange_weak(prev, now)) {
    }
}

KBENCH(sched_makespan) {
    const uint32_t n = cpus_online();
    const uint32_t count = n * kTasksPerCpu;
    static Task* tasks[kMaxCpus * kTasksPerCpu];
    g_ms.go = false;
    g_ms.last_done = 0;
    g_ms.consumed_ns = 0;
    for (uint32_t i = 0; i < count; ++i) {
        tasks[i] = task_create(equal_work, nullptr, {.name = "work"});
        if (tasks[i] == nullptr) return log_error("bench: cannot create task %u", i);
    }
    while (g_ms.gate.waiters() < count) sleep_for(10'000'000);
    const uint64_t start = monotonic_ns();
    g_ms.go = true;
    g_ms.gate.wake_all();
    for (uint32_t i = 0; i < count; ++i) task_join(tasks[i]);
    const uint64_t makespan = g_ms.last_done.load() - start;
    // The ideal: every CPU busy with this work from the start to the end.
    const uint64_t ideal = g_ms.consumed_ns.load() / n;
    console_printf("bench: {\"name\":\"sched.makespan\",\"cpus\":%u,\"tasks\":%u,"
                   "\"work_per_task_us\":%lu,\"consumed_us\":%lu,\"makespan_us\":%lu,"
                   "\"ideal_us\":%lu,\"efficiency_pct\":%lu}\n",
                   n, count, kWorkNs / 1000, g_ms.consumed_ns.load() / 1000, makespan / 1000,
                   ideal / 1000, ideal * 100 / makespan);
}

} // namespace
} // namespace cohort
