// bench=numa: where memory and work land on a NUMA machine, counted (QEMU's TCG does not model
// remote-access latency, so nothing here is timed). One line per run:
//   bench: {"name":"numa.placement","bench":"numa","cpus":N,"nodes":K,"allocations":A,
//           "alloc_local_pct":P,"home_tasks":T,"home_runtime_pct":H,"spread_tasks":S,
//           "spread_ms":M,"node_pushes":X,"wasted_core_violations":V}
// alloc_local_pct: of the page allocations every CPU makes at once (1 and 16 pages, while its
// node has plenty free), the share served by the CPU's home node (target >= 99.5).
// home_runtime_pct: one task per node with CPUs and memory, created on a CPU of that node,
// touches a buffer on that node for bench.numa_ms (default 300); the share of their run time
// spent on a CPU of their node (target >= 90).
// spread_tasks (only where two nodes have CPUs): as many CPU-bound tasks as the boot CPU's
// node and its nearest neighbour have CPUs, queued on one CPU and then allowed on both nodes
// (the numa test's load); spread_ms is how long until each ran on a CPU of its own,
// node_pushes how many balancing moved across nodes on the way.
// wasted_core_violations: the scheduler's online check over the whole run (a CPU idle for two
// balance intervals of a CPU with a waiting task it could run; target 0).
#include <atomic>

#include "bench/bench.h"
#include "boot/params.h"
#include "debug/log.h"
#include "lib/format.h"
#include "mm/phys.h"
#include "mm/pmm.h"
#include "numa/numa.h"
#include "sched/sched.h"
#include "smp/call.h"
#include "smp/cpu.h"
#include "time/clock.h"

namespace cohort {
namespace {

std::atomic<uint64_t> g_allocs{0}, g_local{0};

void allocate_here(void*) {
    const uint32_t home = numa_map().nearest_node_with_memory(this_cpu()->node);
    constexpr uint32_t kBatch = 32, kRounds = 8;
    uint64_t pages[kBatch];
    uint64_t allocs = 0, local = 0;
    for (uint32_t r = 0; r < kRounds; ++r) {
        for (uint32_t i = 0; i < kBatch; ++i) {
            const uint64_t count = i % 4 == 3 ? 16 : 1;
            pages[i] = pmm::alloc_pages(count);
            if (pages[i] == 0) continue;
            ++allocs;
            local += pmm::node_of(pages[i]) == home;
        }
        for (uint32_t i = 0; i < kBatch; ++i)
            if (pages[i] != 0) pmm::free_pages(pages[i], i % 4 == 3 ? 16 : 1);
    }
    g_allocs.fetch_add(allocs);
    g_local.fetch_add(local);
}

struct HomeTask {
    uint32_t node = 0;
    uint64_t run_ns = 0;
    std::atomic<uint64_t> home_ns{0}, away_ns{0};
    Task* task = nullptr;
};

void touch_home(void* arg) {
    auto* h = static_cast<HomeTask*>(arg);
    constexpr uint64_t kPages = 16;
    const uint64_t phys = pmm::alloc_pages_node(h->node, kPages);
    if (phys == 0) return;
    auto* buf = phys_to_virt<volatile uint64_t>(phys);
    const uint64_t end = monotonic_ns() + h->run_ns;
    uint64_t last = monotonic_ns(), home = 0, away = 0, i = 0;
    while (last < end) {
        for (uint32_t k = 0; k < 512; ++k) {
            const uint64_t at = (i++ * 67) % (kPages * 512);
            buf[at] = buf[at] + 1;
        }
        const uint64_t now = monotonic_ns();
        // The slice since the last look is charged to where the task is now: a migration in
        // between is off by at most one slice of 512 touches.
        (this_cpu()->node == h->node ? home : away) += now - last;
        last = now;
    }
    h->home_ns = home;
    h->away_ns = away;
    pmm::free_pages(phys, kPages);
}

struct Spinner {
    std::atomic<uint32_t> cpu{kMaxCpus};
    Task* task = nullptr;
};
std::atomic<bool> g_stop_spinning{false};

void spin(void* arg) {
    auto* s = static_cast<Spinner*>(arg);
    while (!g_stop_spinning.load(std::memory_order_relaxed))
        s->cpu.store(this_cpu()->cpu_id, std::memory_order_relaxed);
}

// The two-node spread; returns the tasks and sets `ms` to the time until they had a CPU each
// (or the limit, bench.numa_spread_ms, default 10000).
uint32_t spread_over_two_nodes(uint64_t& ms) {
    const numa::NodeMap& m = numa_map();
    const uint32_t a = this_cpu()->node;
    uint32_t b = numa::kNoNode;
    for (uint32_t n = 0; n < m.nodes(); ++n)
        if (n != a && !m.cpuless(n) && (b == numa::kNoNode || m.distance(a, n) < m.distance(a, b)))
            b = n;
    CpuMask both;
    uint32_t k = 0, start = kMaxCpus;
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        const CpuData* cpu = cpu_by_id(c);
        if (!cpu->online.load() || (cpu->node != a && cpu->node != b)) continue;
        both.set(c);
        ++k;
        if (start == kMaxCpus && c != this_cpu()->cpu_id) start = c;
    }
    if (start == kMaxCpus) return 0;
    static Spinner spinners[kMaxCpus];
    CpuMask only;
    only.set(start);
    g_stop_spinning = false;
    for (uint32_t i = 0; i < k; ++i) {
        spinners[i].cpu = kMaxCpus;
        TaskOptions o;
        o.name = "numa-spread";
        o.affinity = &only;
        spinners[i].task = task_create(spin, &spinners[i], o);
    }
    const uint64_t t0 = monotonic_ns();
    for (uint32_t i = 0; i < k; ++i)
        if (spinners[i].task != nullptr) task_set_affinity(spinners[i].task, both);
    const uint64_t limit = t0 + param_u64("bench.numa_spread_ms", 10000) * 1'000'000;
    uint64_t now = t0;
    for (;;) {
        CpuMask seen;
        uint32_t distinct = 0;
        for (uint32_t i = 0; i < k; ++i) {
            const uint32_t c = spinners[i].cpu.load(std::memory_order_relaxed);
            if (c < cpu_count() && !seen.test(c)) seen.set(c), ++distinct;
        }
        now = monotonic_ns();
        if (distinct == k || now >= limit) break;
        sleep_for(1'000'000);
    }
    ms = (now - t0) / 1'000'000;
    g_stop_spinning = true;
    for (uint32_t i = 0; i < k; ++i)
        if (spinners[i].task != nullptr) task_join(spinners[i].task);
    return k;
}

uint64_t node_pushes() {
    uint64_t n = 0;
    for (uint32_t c = 0; c < cpu_count(); ++c) n += sched_cpu_stats(c).node_pushes;
    return n;
}

void create_home_task(void* arg) {
    auto* h = static_cast<HomeTask*>(arg);
    TaskOptions o;
    o.name = "numa-home";
    h->task = task_create(touch_home, h, o);
}

} // namespace

KBENCH(numa) {
    const numa::NodeMap& m = numa_map();
    const uint64_t violations_before = sched_wasted_core_violations();
    g_allocs = 0;
    g_local = 0;
    CpuMask online;
    for (uint32_t c = 0; c < cpu_count(); ++c)
        if (cpu_by_id(c)->online.load()) online.set(c);
    run_on_many(online, allocate_here, nullptr);

    static HomeTask tasks[numa::kMaxNodes];
    const uint64_t run_ns = param_u64("bench.numa_ms", 300) * 1'000'000;
    uint32_t ntasks = 0;
    for (uint32_t n = 0; n < m.nodes(); ++n) {
        if (m.cpuless(n) || m.memoryless(n)) continue;
        uint32_t first = kMaxCpus;
        for (uint32_t c = 0; c < cpu_count() && first == kMaxCpus; ++c)
            if (cpu_by_id(c)->node == n && cpu_by_id(c)->online.load()) first = c;
        if (first == kMaxCpus) continue;
        HomeTask& h = tasks[ntasks++];
        h.node = n;
        h.run_ns = run_ns;
        h.home_ns = 0;
        h.away_ns = 0;
        h.task = nullptr;
        run_pinned(first, create_home_task, &h);
    }
    uint64_t home = 0, away = 0;
    for (uint32_t i = 0; i < ntasks; ++i) {
        if (tasks[i].task == nullptr) continue;
        task_join(tasks[i].task);
        home += tasks[i].home_ns.load();
        away += tasks[i].away_ns.load();
    }
    const uint64_t pushes_before = node_pushes();
    uint64_t spread_ms = 0;
    const uint32_t spread = m.nodes() > 1 ? spread_over_two_nodes(spread_ms) : 0;
    const uint64_t pushes = node_pushes() - pushes_before;
    const uint64_t violations = sched_wasted_core_violations() - violations_before;
    const uint64_t allocs = g_allocs.load(), local = g_local.load();
    const uint64_t local_pm = allocs ? local * 100000 / allocs : 0;     // thousandths of %
    const uint64_t home_pm = home + away ? home * 100000 / (home + away) : 0;
    // The spread needs two nodes with CPUs: on other machines its fields are left out.
    char spread_fields[96] = "";
    if (spread != 0)
        format(spread_fields, sizeof(spread_fields),
               ",\"spread_tasks\":%u,\"spread_ms\":%lu,\"node_pushes\":%lu", spread, spread_ms,
               pushes);
    console_printf("bench: {\"name\":\"numa.placement\",\"bench\":\"numa\",\"cpus\":%u,\"nodes\":%u,"
                   "\"allocations\":%lu,\"alloc_local_pct\":%lu.%03lu,\"home_tasks\":%u,"
                   "\"home_runtime_pct\":%lu.%03lu%s,\"wasted_core_violations\":%lu}\n",
                   cpus_online(), m.nodes(), allocs, local_pm / 1000, local_pm % 1000, ntasks,
                   home_pm / 1000, home_pm % 1000, spread_fields, violations);
}

} // namespace cohort
