// Scheduler bring-up: every CPU's run queue, idle task (its boot context) and worker, set up
// by each CPU itself as soon as it is online, and the main task.
#include "sched/sched.h"

#include "arch/arch.h"
#include "boot/params.h"
#include "debug/log.h"
#include "debug/panic.h"
#include "lib/format.h"
#include "mm/heap.h"
#include "numa/numa.h"
#include "sched/internal.h"
#include "smp/call.h"
#include "time/clock.h"

namespace cohort {
namespace sched_impl {

namespace {

// Every AP sets up its own scheduler as soon as it is online, all at once.
std::atomic<uint32_t> g_cpus_ready{0};

// The memory an AP's scheduler starts with, allocated for it by the boot CPU in sched_init.
// Allocating it on the APs, 254 of them at once each taking its first objects and a stack,
// convoyed on the allocators' shared locks under an emulator: hundreds of vCPUs spun while the
// host thread of the holder waited for a core (bring-up took 0.5-1 s instead of 0.1 s).
struct CpuProvision {
    Task* idle = nullptr;   // memory only: named, numbered and listed by its CPU
    Task* worker = nullptr; // the same, with its stack
};
COHORT_PERCPU(CpuProvision, g_provision);

void provision(CpuData* cpu) {
    CpuProvision& p = per_cpu_on(cpu, g_provision);
    p.idle = new_task_memory(cpu->node);
    p.worker = new_task_memory(cpu->node);
    if (p.worker != nullptr) {
        p.worker->stack = kstack_alloc_node(TaskOptions{}.stack_size, cpu->node);
        if (!p.worker->stack.valid()) {
            kfree(p.worker->fpu_alloc);
            kfree(p.worker);
            p.worker = nullptr;
        }
    }
    // Whatever is missing, the CPU allocates itself (and reports if it cannot).
}

// Sets up the calling CPU's run queue with its boot context (running, or just out of
// bring-up in sched_enter_ap) as its idle task, and its worker.
void init_cpu(CpuData* cpu) {
    RunQueue* rq = &per_cpu_on(cpu, g_rq);
    if (rq->down.load(std::memory_order_acquire) && rq->idle != nullptr) {
        // Back from offline (CPU hotplug); `ready` stayed off since it parked.
        reinit_cpu(cpu, *rq);
        return;
    }
    CpuProvision& given = per_cpu_on(cpu, g_provision);
    char name[24];
    format(name, sizeof(name), "idle/%u", cpu->cpu_id);
    Task* idle = given.idle != nullptr ? register_task(given.idle, name) : alloc_task(name);
    if (idle == nullptr) panic("sched: cannot allocate the idle task of cpu%u", cpu->cpu_id);
    idle->idle = true;
    idle->state.store(TaskState::Running);
    idle->cpu.store(cpu->cpu_id);
    idle->on_cpu = true;
    idle->stack.top = cpu->kernel_stack_top;
    // The boot context becomes the idle task with the canary its frames were entered with.
    idle->canary = cpu->stack_canary;
    idle->stack.bottom = cpu->kernel_stack_bottom;
    CpuMask just_here;
    just_here.set(cpu->cpu_id);
    set_affinity(idle, just_here);
    rq->idle = rq->curr = idle;
    rq->last_account = monotonic_ns();
    rq->irq_cycles_seen = cpu->counters.irq_cycles.load(std::memory_order_relaxed);
    rq->pos = g_topology.pos(cpu->cpu_id);
    cpu->current_task = idle;
    {
        // Ready and idle in one step under the lock: a task placed here meanwhile (by another
        // CPU) finds the idle bit set and clears it in publish_load, never the other way round.
        Guard<ParkLock, IrqSave> g(rq->lock);
        rq->ready.store(true, std::memory_order_release);
        g_idle.set(rq->pos);
        g_online.set(rq->pos);
    }
    CpuMask only_it;
    only_it.set(cpu->cpu_id);
    format(name, sizeof(name), "worker/%u", cpu->cpu_id);
    TaskOptions o;
    o.name = name;
    o.affinity = &only_it;
    // Fair, but weighted 8x: run_on work is served promptly (a waking heavy task preempts) yet
    // a flood of it cannot starve the CPU's other tasks, as a strict-priority task would.
    o.weight = 8 * sched::kDefaultWeight;
    Task* worker = given.worker != nullptr
                       ? start_task(register_task(given.worker, name), worker_main, nullptr, o)
                       : task_create(worker_main, nullptr, o);
    if (worker == nullptr) panic("sched: cannot create the worker of cpu%u", cpu->cpu_id);
    given = {};
    rq->worker = worker;
    task_detach(worker);
    g_cpus_ready.fetch_add(1, std::memory_order_release);
}

// The scheduling domains, from every CPU's APIC id and the boot CPU's CPUID topology. Before any
// CPU schedules: placement reads them from the first task on.
void build_topology() {
    const arch::CpuTopology hw = arch::cpu_topology();
    const sched::TopologyWidths widths{hw.smt_bits, hw.package_shift};
    const uint32_t n = cpu_count();
    auto* places = static_cast<sched::CpuPlace*>(kmalloc(n * sizeof(sched::CpuPlace)));
    if (places == nullptr) panic("sched: no memory for the topology of %u CPUs", n);
    for (uint32_t c = 0; c < n; ++c) {
        const CpuData* cpu = cpu_by_id(c);
        // A CPU id without a CPU (none today) sorts last, a package of its own.
        places[c] = cpu != nullptr ? sched::place_of(cpu->apic_id, widths)
                                   : sched::CpuPlace{UINT32_MAX, c, 0, 0};
        if (cpu != nullptr) places[c].node = cpu->node;
    }
    // The NUMA levels come from the node map's distances (numa/numa.h).
    static_assert(sched::Topology::kMaxNodes == numa::kMaxNodes);
    const numa::NodeMap& map = numa_map();
    const uint32_t nodes = map.nodes();
    auto* dist = static_cast<uint8_t*>(kmalloc(nodes * nodes));
    if (dist == nullptr) panic("sched: no memory for the distances of %u nodes", nodes);
    for (uint32_t i = 0; i < nodes; ++i)
        for (uint32_t j = 0; j < nodes; ++j) dist[i * nodes + j] = map.distance(i, j);
    g_topology.build(places, n, nodes, dist);
    kfree(dist);
    kfree(places);
    char levels[160];
    size_t len = 0;
    levels[0] = 0;
    for (uint32_t l = 0; l < g_topology.levels(); ++l) {
        len += format(levels + len, sizeof(levels) - len, "%s%s", l == 0 ? "" : ", ",
                      sched::domain_kind_name(g_topology.kind(l)));
        if (g_topology.kind(l) == sched::DomainKind::Numa)
            len += format(levels + len, sizeof(levels) - len, "<=%u",
                          g_topology.level_distance(l));
        len += format(levels + len, sizeof(levels) - len, " %u",
                      g_topology.domain_size(this_cpu()->cpu_id, l));
        if (len >= sizeof(levels)) break;
    }
    if (g_topology.numa_levels_dropped() != 0)
        log_warn("sched: %u SLIT distances beyond the first %u get no scheduling level of their "
                 "own (they join the machine level)", g_topology.numa_levels_dropped(),
                 sched::Topology::kMaxNumaLevels);
    log_info("sched: topology %u package(s) x %u core(s) x %u thread(s) (%s, SMT %u bits, "
             "package shift %u); cpu%u's domains: %s; placement %s",
             g_topology.packages(), g_topology.max_cores(), g_topology.max_threads(), hw.source,
             hw.smt_bits, hw.package_shift, this_cpu()->cpu_id, levels,
             g_placement == sched::Placement::Pack ? "pack" : "spread");
}

void read_placement_param() {
    const auto v = params().get("sched.placement");
    if (!v || *v == "spread") {
        g_placement = sched::Placement::Spread;
    } else if (*v == "pack") {
        g_placement = sched::Placement::Pack;
    } else {
        log_error("sched: sched.placement=%.*s is not spread or pack; using spread",
                  static_cast<int>(v->size()), v->data());
        g_placement = sched::Placement::Spread;
    }
}

} // namespace

} // namespace sched_impl

using namespace sched_impl;

void sched_init() {
    call_limits_start();
    read_placement_param();
    build_topology();
    // Every CPU's queue, task lists and timers exist from here on, whether it ever starts or
    // not: lookups that walk every CPU (task listings, hotplug's pinned-task check, balancing)
    // read them, and a hot-add slot may start much later.
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        CpuData* cpu = cpu_by_id(c); // never null: cpu_by_id checks
        new (&per_cpu_on(cpu, g_rq)) RunQueue();
        new (&per_cpu_on(cpu, g_cpu_tasks)) CpuTasks(); // its lists point at themselves
        timer_init_cpu(cpu);
        if (cpu != this_cpu()) provision(cpu);
    }
    init_cpu(this_cpu());
}

[[noreturn]] void sched_start(TaskFn main, void* arg) {
    // Main (the tests, the benchmarks) starts once every CPU can run tasks. Halted between
    // checks, woken by a timer: a spinning boot CPU would take a host core from the APs under
    // an emulator.
    const uint32_t want = cpus_online();
    const uint64_t deadline = monotonic_ns() + param_u64("sched.ready_timeout_ms", 2000) * 1'000'000;
    while (g_cpus_ready.load(std::memory_order_acquire) < want && monotonic_ns() < deadline)
        timer_halt_until(monotonic_ns() + 200'000);
    if (const uint32_t ready = g_cpus_ready.load(std::memory_order_acquire); ready < want) {
        log_error("sched: only %u of %u online CPUs set up their scheduler in time; no task is "
                  "placed on the others", ready, want);
        for (uint32_t c = 0; c < cpu_count(); ++c) {
            const CpuData* cpu = cpu_by_id(c);
            if (cpu != nullptr && cpu->online.load() && !per_cpu_on(cpu, g_rq).ready.load())
                log_error("sched:   cpu%u (APIC id %u) is not ready", c, cpu->apic_id);
        }
    }
    TaskOptions o;
    o.name = "main";
    CpuMask boot_cpu;
    boot_cpu.set(this_cpu()->cpu_id);
    o.affinity = &boot_cpu; // tests and benches expect to run on the boot CPU
    o.stack_size = 64 * 1024;
    Task* t = task_create(main, arg, o);
    if (t == nullptr) panic("sched: cannot create the main task");
    task_detach(t);
    idle_main();
    __builtin_unreachable();
}

[[noreturn]] void sched_enter_ap() {
    // Straight on from bring-up, while this vCPU is running anyway: no second wake-up. Under
    // an emulator with many more vCPUs than host cores, waking 254 halted vCPUs a second time
    // cost as much as starting them.
    arch::irq_enable(); // creating the worker may take a stack whose purge needs remote calls
    init_cpu(this_cpu());
    idle_main();
    __builtin_unreachable();
}

uint32_t sched_cpus_ready() { return g_cpus_ready.load(std::memory_order_acquire); }

} // namespace cohort
