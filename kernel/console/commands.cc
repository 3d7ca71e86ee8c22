#include "console/commands.h"

#include <atomic>
#include <cstring>

#include "arch/arch.h"
#include "bench/bench.h"
#include "console/args.h"
#include "debug/audit.h"
#include "debug/log.h"
#include "debug/panic.h"
#include "debug/symbols.h"
#include "irq/irq.h"
#include "lib/format.h"
#include "mm/address_space.h"
#include "mm/heap.h"
#include "mm/kstack.h"
#include "mm/pmm.h"
#include "mm/vmm.h"
#include "platform/acpi.h"
#include "sched/sched.h"
#include "sched/topology.h"
#include "sched/wait.h"
#include "smp/call.h"
#include "smp/hotplug.h"
#include "smp/cpu.h"
#include "smp/tlb.h"
#include "sync/cpu_relax.h"
#include "sync/lock_class.h"
#include "test/ktest.h"
#include "time/clock.h"

namespace cohort::console {

namespace {

using Words = std::string_view*;

void error(const char* msg) { console_printf("error: %s\n", msg); }

uint64_t sum(const std::atomic<uint64_t>* a, size_t n) {
    uint64_t s = 0;
    for (size_t i = 0; i < n; ++i) s += a[i].load(std::memory_order_relaxed);
    return s;
}

// The name of what `c` runs now: read from another CPU's task, which may change under us, so
// it is copied and only printable bytes kept (a display, never a decision).
void current_name(const CpuData* c, char* out, size_t size) {
    out[0] = 0;
    const Task* t = __atomic_load_n(&c->current_task, __ATOMIC_ACQUIRE);
    if (t == nullptr) return;
    size_t i = 0;
    for (; i + 1 < size && i < sizeof(t->name); ++i) {
        const char ch = __atomic_load_n(&t->name[i], __ATOMIC_RELAXED);
        if (ch == 0) break;
        out[i] = (ch >= 0x20 && ch <= 0x7e) ? ch : '?';
    }
    out[i] = 0;
}

uint32_t busy_pct(const CpuSchedStats& s) {
    const uint64_t total = s.busy_ns + s.idle_ns;
    return total == 0 ? 0 : static_cast<uint32_t>(s.busy_ns * 100 / total);
}

void cmd_help(size_t, Words);

void cmd_cpus(size_t, Words) {
    console_printf("%4s %5s %4s %6s %-16s %4s %5s %10s %9s %9s %9s %8s\n", "CPU", "APIC", "NODE",
                   "ONLINE", "TASK", "RUNQ", "BUSY%", "INTERRUPTS", "DEVICEIRQ", "IPI-SENT",
                   "IPI-RECV", "TLB");
    for (uint32_t i = 0; i < cpu_count(); ++i) {
        const CpuData* c = cpu_by_id(i);
        if (c == nullptr) continue;
        const bool online = c->online.load(std::memory_order_acquire);
        char name[17];
        current_name(c, name, sizeof(name));
        const CpuSchedStats s = online ? sched_cpu_stats(i) : CpuSchedStats{};
        const CpuCounters& k = c->counters;
        console_printf("%4u %5u %4u %6s %-16s %4u %5u %10lu %9lu %9lu %9lu %8lu\n", i, c->apic_id,
                       c->node,
                       online ? "yes"
                       : c->boot_stage.load(std::memory_order_acquire) == BootStage::Absent
                           ? "absent"
                           : "no",
                       name, s.runnable, busy_pct(s),
                       k.interrupts.load(std::memory_order_relaxed), irq_total_on(i),
                       sum(k.ipis_sent, kIpiKinds), sum(k.ipis_received, kIpiKinds),
                       k.tlb_flushes.load(std::memory_order_relaxed));
    }
    console_printf("%u of %u CPUs online; BUSY%% is since boot, TLB counts shootdown requests "
                   "carried out\n", cpus_online(), cpu_count());
}

void cmd_tasks(size_t, Words) {
    constexpr size_t kMax = 512;
    auto* snap = static_cast<TaskSnapshot*>(kmalloc(sizeof(TaskSnapshot) * kMax));
    if (snap == nullptr) {
        error("out of memory");
        return;
    }
    const size_t n = sched_snapshot_tasks(snap, kMax);
    console_printf("%6s %-23s %-8s %4s %-10s %6s %12s\n", "ID", "NAME", "STATE", "CPU",
                   "AFFINITY", "WEIGHT", "RUN-TIME-MS");
    for (size_t i = 0; i < n && i < kMax; ++i) {
        const TaskSnapshot& t = snap[i];
        char aff[16];
        if (t.only_cpu < kMaxCpus) format(aff, sizeof(aff), "cpu%u", t.only_cpu);
        else if (t.allowed >= cpu_count()) format(aff, sizeof(aff), "all");
        else format(aff, sizeof(aff), "%u cpus", t.allowed);
        console_printf("%6lu %-23s %-8s %4u %-10s %6u %12lu\n", t.id, t.name,
                       task_state_name(t.state), t.cpu, aff, t.weight, t.run_ns / 1000000);
    }
    if (n > kMax) console_printf("(%zu more not shown)\n", n - kMax);
    console_printf("%zu tasks (idle tasks and each CPU's worker included)\n", n);
    kfree(snap);
}

void cmd_top(size_t, Words) {
    const uint32_t n = cpu_count();
    auto* prev = static_cast<CpuSchedStats*>(kmalloc(sizeof(CpuSchedStats) * n));
    if (prev == nullptr) {
        error("out of memory");
        return;
    }
    for (uint32_t i = 0; i < n; ++i) prev[i] = sched_cpu_stats(i);
    console_printf("per-CPU load over each second; press any key to stop\n");
    for (;;) {
        if (read_byte_timeout(1'000'000'000) >= 0) break;
        console_printf("[%lu s]", monotonic_ns() / 1000000000);
        uint32_t shown = 0;
        for (uint32_t i = 0; i < n; ++i) {
            const CpuData* c = cpu_by_id(i);
            if (c == nullptr || !c->online.load(std::memory_order_acquire)) continue;
            const CpuSchedStats s = sched_cpu_stats(i);
            const uint64_t busy = s.busy_ns - prev[i].busy_ns;
            const uint64_t all = busy + (s.idle_ns - prev[i].idle_ns);
            prev[i] = s;
            if (shown % 5 == 0 && shown != 0) console_printf("\n       "); // 92 columns
            console_printf(" cpu%-3u%3lu%% q%-2u", i, all == 0 ? 0 : busy * 100 / all, s.runnable);
            ++shown;
        }
        console_printf("\n");
    }
    kfree(prev);
}

void cmd_mem(size_t, Words) {
    const pmm::Stats p = pmm::stats();
    const auto h = heap_stats();
    console_printf("pages (4 KiB): %lu managed, %lu free, %lu in per-CPU caches, %lu used\n",
                   p.managed, p.free, p.cached, p.used);
    console_printf("memory: %lu MiB managed, %lu MiB free (caches included)\n",
                   pmm::managed_bytes() >> 20, pmm::free_bytes() >> 20);
    console_printf("heap: %lu objects, %lu bytes in use, %lu pages held, %lu errors\n", h.objects,
                   h.bytes_in_use, h.pages, h.errors);
    console_printf("kernel stacks in use: %lu; page-table pages: %ld\n", kstack_in_use(),
                   static_cast<long>(vmm::page_table_pages()));
    console_printf("%10s %14s %12s %12s %16s\n", "HEAP-CLASS", "PARTIAL-SLABS", "EMPTY-SLABS",
                   "DEPOT-FREE", "CPU-CACHED-FREE");
    for (size_t cls = 0; cls < SlabHeap::kClassCount; ++cls) {
        const SlabHeap::ClassStats c = heap_class_stats(cls);
        console_printf("%10zu %14u %12u %12u %16lu\n", c.size, c.partial_slabs, c.empty_slabs,
                       c.depot, c.cpu_cached);
    }
}

void cmd_ipi(size_t, Words) {
    console_printf("%4s %9s %9s %9s %9s %9s %9s %9s %9s\n", "CPU", "SENT", "RECEIVED", "CALLS-OUT",
                   "CALLS-RUN", "REJECTED", "THROTTLED", "RESENT", "BROADCAST");
    for (uint32_t i = 0; i < cpu_count(); ++i) {
        const CpuData* c = cpu_by_id(i);
        if (c == nullptr) continue;
        const CpuCounters& k = c->counters;
        console_printf("%4u %9lu %9lu %9lu %9lu %9lu %9lu %9lu %9lu\n", i,
                       sum(k.ipis_sent, kIpiKinds), sum(k.ipis_received, kIpiKinds),
                       k.calls_sent.load(), k.calls_run.load(), k.calls_rejected.load(),
                       k.calls_throttled.load(), k.calls_resent.load(), k.broadcasts.load());
    }
    const CallLimitStats l = call_limit_stats();
    console_printf("remote-call rate limit: %s, window %lu us, budget %lu us, per sender %lu us\n",
                   l.enabled ? "on" : "off", l.window_ns / 1000, l.budget_ns / 1000,
                   l.per_source_ns / 1000);
}

void cmd_tlb(size_t, Words) {
    const TlbStats t = tlb_stats();
    console_printf("shootdowns %lu, CPUs asked %lu, pages %lu, full flushes %lu\n", t.shootdowns,
                   t.remote_cpus, t.pages, t.full_flushes);
    console_printf("%4s %10s\n", "CPU", "FLUSHES");
    for (uint32_t i = 0; i < cpu_count(); ++i)
        if (const CpuData* c = cpu_by_id(i))
            console_printf("%4u %10lu\n", i, c->counters.tlb_flushes.load());
    const AddressSpaceSwitchStats s = address_space_switch_stats();
    console_printf("this CPU's address-space switches: %lu CR3 writes, lazy %lu entered / %lu "
                   "kept / %lu flushed; PCID %s\n", s.cr3_writes, s.lazy_entered, s.lazy_kept,
                   s.lazy_flushed, address_space_pcid_enabled() ? "on" : "off");
}

void cmd_locks(size_t, Words) {
    const uint64_t hz = tsc_hz() / 1000000; // ticks per microsecond
    console_printf("%-28s %-8s %12s %10s %12s %12s\n", "CLASS", "SCOPE", "ACQUIRED", "CONTENDED",
                   "MAX-WAIT-US", "MAX-HOLD-US");
    for (LockClass* c = LockClass::first_registered(); c != nullptr; c = c->next_registered()) {
        const LockStats s = c->stats();
        const char* scope = c->scope() == LockScope::MachineWide ? "machine"
                            : c->scope() == LockScope::PerCpu    ? "per-cpu"
                                                                 : "object";
        console_printf("%-28.28s %-8s %12lu %10lu %12lu %12lu\n", c->name(), scope,
                       s.acquisitions, s.contended, hz ? s.max_wait / hz : 0,
                       hz ? s.max_hold / hz : 0);
    }
}

void cmd_irq(size_t n, Words w) {
    if (n == 4 && w[2] == "cpu") {
        const auto id = parse_u32(w[1]);
        const auto cpu = parse_u32(w[3]);
        if (!id || !cpu) {
            error("usage: irq ID cpu CPU (numbers)");
            return;
        }
        const IrqError e = irq_set_affinity(static_cast<int>(*id), *cpu);
        if (e != IrqError::None) {
            console_printf("error: irq %u cpu %u: %s\n", *id, *cpu, irq_error_name(e));
            return;
        }
        console_printf("irq %u now goes to cpu%u\n", *id, *cpu);
        return;
    }
    if (n != 1) {
        error("usage: irq, or irq ID cpu CPU");
        return;
    }
    console_printf("%u I/O APIC(s); device interrupts spread over the CPUs with the fewest\n",
                   irq_controllers());
    console_printf("%3s %-18s %4s %4s %6s %-11s %4s %6s %s\n", "ID", "NAME", "ISA", "GSI", "VECTOR",
                   "SIGNAL", "CPU", "MASKED", "COUNT PER CPU");
    for (uint32_t id = 0; id < kMaxIrqs; ++id) {
        IrqInfo in;
        if (!irq_info(static_cast<int>(id), &in)) continue;
        console_printf("%3u %-18.18s %4u %4u %#6x %-11s %4u %6s", id, in.name, in.isa_irq, in.gsi,
                       in.vector, in.signal.level ? "level" : "edge",
                       in.cpu, in.masked ? "yes" : "no");
        // As many CPUs as fit in 100 columns (the fixed part takes 63), then how many more.
        size_t width = 63;
        uint32_t more = 0;
        for (uint32_t c = 0; c < cpu_count(); ++c) {
            const uint64_t k = irq_count_on(static_cast<int>(id), c);
            if (k == 0) continue;
            char item[32];
            const size_t n = format(item, sizeof(item), " cpu%u:%lu", c, k);
            if (more == 0 && width + n <= 100 - 10) {
                console_printf("%s", item);
                width += n;
            } else {
                ++more;
            }
        }
        if (more != 0) console_printf(" +%u CPUs", more);
        console_printf("\n");
    }
}

void cmd_acpi(size_t, Words) {
    const PlatformTopology& t = platform_topology();
    if (!t.valid) {
        console_printf("no usable ACPI tables: running on the boot CPU alone\n");
        return;
    }
    console_printf("RSDP revision %u (%s), root table %s\n", t.rsdp_revision, t.rsdp_source,
                   t.root_kind == acpi::RootKind::Xsdt ? "XSDT" : "RSDT");
    console_printf("MADT revision %u: %zu CPUs listed (%zu enabled, %zu online-capable, %zu "
                   "disabled), local APIC at %#lx\n", t.madt_revision, t.madt.cpus.size(),
                   t.madt.enabled, t.madt.online_capable, t.madt.disabled, t.lapic_address);
    for (const acpi::IoApic& a : t.madt.io_apics.items())
        console_printf("  I/O APIC id %u at %#x, GSI base %u\n", a.id, a.address, a.gsi_base);
    for (const acpi::InterruptOverride& o : t.madt.overrides.items())
        console_printf("  override: ISA IRQ %u -> GSI %u, flags %#x\n", o.source_irq, o.gsi,
                       o.flags);
    for (const acpi::NmiSource& s : t.madt.nmi_sources.items())
        console_printf("  NMI source: GSI %u, flags %#x\n", s.gsi, s.flags);
    console_printf("SRAT: %s", t.has_srat ? "" : "none");
    if (t.has_srat)
        console_printf("%zu CPU and %zu memory affinities, %zu nodes", t.srat.cpus.size(),
                       t.srat.memory.size(), t.srat.nodes.size());
    console_printf("; SLIT: %s\n", t.has_slit ? "present" : "none");
    const sched::Topology& topo = sched_topology();
    console_printf("topology: %u package(s) x %u core(s) x %u thread(s)\n", topo.packages(),
                   topo.max_cores(), topo.max_threads());
}

// --- spawn -------------------------------------------------------------------------------------

std::atomic<bool> g_spawn_stop{false};
std::atomic<uint32_t> g_spawned{0};

void spin_task(void*) {
    while (!g_spawn_stop.load(std::memory_order_relaxed)) cpu_relax();
    g_spawned.fetch_sub(1);
}
void sleep_task(void*) {
    while (!g_spawn_stop.load(std::memory_order_relaxed)) sleep_for(10'000'000);
    g_spawned.fetch_sub(1);
}
struct PingPong {
    Semaphore ping{0}, pong{0};
};
void ping_task(void* arg) {
    auto* p = static_cast<PingPong*>(arg);
    while (!g_spawn_stop.load(std::memory_order_relaxed)) {
        p->ping.up();
        p->pong.down();
    }
    p->ping.up(); // let the partner see the stop
    g_spawned.fetch_sub(1);
}
void pong_task(void* arg) {
    auto* p = static_cast<PingPong*>(arg);
    while (!g_spawn_stop.load(std::memory_order_relaxed)) {
        p->ping.down();
        p->pong.up();
    }
    p->pong.up();
    g_spawned.fetch_sub(1);
}
PingPong* g_pairs = nullptr; // freed after the tasks exit (spawn stop)
uint32_t g_pair_count = 0;

bool start(const char* name, TaskFn fn, void* arg) {
    TaskOptions o;
    o.name = name;
    Task* t = task_create(fn, arg, o);
    if (t == nullptr) return false;
    g_spawned.fetch_add(1);
    task_detach(t);
    return true;
}

void spawn_stop() {
    g_spawn_stop.store(true);
    const uint64_t deadline = monotonic_ns() + 5'000'000'000ull;
    while (g_spawned.load() != 0 && monotonic_ns() < deadline) sleep_for(10'000'000);
    if (g_spawned.load() != 0) {
        console_printf("error: %u spawned tasks did not stop within 5 s\n", g_spawned.load());
        return; // the flag stays set: they stop when they get to run; the pairs stay allocated
    }
    g_spawn_stop.store(false);
    if (g_pairs != nullptr) {
        for (uint32_t i = 0; i < g_pair_count; ++i) g_pairs[i].~PingPong();
        kfree(g_pairs);
        g_pairs = nullptr;
        g_pair_count = 0;
    }
    console_printf("spawned tasks stopped\n");
}

void cmd_spawn(size_t n, Words w) {
    if (n == 2 && w[1] == "stop") {
        spawn_stop();
        return;
    }
    const auto count = n == 3 ? parse_u32(w[2]) : std::nullopt;
    if (!count || *count == 0 || *count > 1024) {
        error("usage: spawn spin|sleep|pingpong N (1..1024), or spawn stop");
        return;
    }
    if (g_spawn_stop.load()) {
        error("the last spawn stop has not finished");
        return;
    }
    uint32_t started = 0;
    if (w[1] == "spin" || w[1] == "sleep") {
        const bool spin = w[1] == "spin";
        for (uint32_t i = 0; i < *count; ++i)
            started += start(spin ? "spin" : "sleep", spin ? spin_task : sleep_task, nullptr);
    } else if (w[1] == "pingpong") {
        if (g_pairs != nullptr) {
            error("pingpong pairs are running: spawn stop first");
            return;
        }
        g_pairs = static_cast<PingPong*>(kmalloc(sizeof(PingPong) * *count));
        if (g_pairs == nullptr) {
            error("out of memory");
            return;
        }
        g_pair_count = *count;
        for (uint32_t i = 0; i < *count; ++i) {
            new (&g_pairs[i]) PingPong();
            started += start("ping", ping_task, &g_pairs[i]);
            started += start("pong", pong_task, &g_pairs[i]);
        }
    } else {
        console_printf("error: unknown kind '%.*s' (spin, sleep or pingpong)\n",
                       static_cast<int>(w[1].size() > 40 ? 40 : w[1].size()), w[1].data());
        return;
    }
    console_printf("started %u tasks (`tasks` lists them, `spawn stop` ends them)\n", started);
}

// --- the rest ----------------------------------------------------------------------------------

void copy_selection(std::string_view w, char* out, size_t size) {
    const size_t n = w.size() < size - 1 ? w.size() : size - 1;
    memcpy(out, w.data(), n);
    out[n] = 0;
}

void cmd_test(size_t n, Words w) {
    if (n != 2) {
        error("usage: test GLOB[,GLOB...] (e.g. test all, test smp.*)");
        return;
    }
    char sel[128];
    copy_selection(w[1], sel, sizeof(sel));
    (void)ktest::run_from_console(sel);
}

void cmd_bench(size_t n, Words w) {
    if (n != 2) {
        error("usage: bench NAME (ipi, tlb, locks, sched, scale, or a glob)");
        return;
    }
    char sel[128];
    copy_selection(w[1], sel, sizeof(sel));
    (void)kbench::run(sel);
}

void cmd_panic(size_t, Words) { panic("console: panic requested with the `panic` command"); }
void cmd_poweroff(size_t, Words) {
    console_printf("powering off\n");
    arch::machine_poweroff(true);
}
void cmd_hotplug(size_t n, Words w) {
    const bool offline = w[0] == "offline";
    const auto cpu = n == 2 ? parse_u32(w[1]) : std::nullopt;
    if (!cpu) {
        console_printf("error: usage: %s CPU (a CPU number, 1..%u)\n",
                       offline ? "offline" : "online", cpu_count() - 1);
        return;
    }
    HotplugReport r;
    const HotplugError e = offline ? cpu_offline(*cpu, &r) : cpu_online(*cpu, &r);
    if (e == HotplugError::PinnedTask) {
        console_printf("error: cpu%u stays online: task '%s' may run only there (change its "
                       "affinity first)\n", *cpu, r.task_name);
    } else if (e != HotplugError::None) {
        console_printf("error: cpu%u: %s\n", *cpu, hotplug_error_name(e));
    } else if (offline) {
        console_printf("cpu%u offline in %lu us: %u tasks and %u interrupt lines moved, %u "
                       "timers to cpu%u; %u of %u CPUs online\n", *cpu, r.duration_us,
                       r.tasks_moved, r.irqs_moved, r.timers_moved, r.timer_cpu, cpus_online(),
                       cpu_count());
    } else {
        console_printf("cpu%u online in %lu us; %u of %u CPUs online\n", *cpu, r.duration_us,
                       cpus_online(), cpu_count());
    }
}

void print_audit(uint32_t cpu, size_t max) {
    AuditEntry e[AuditLog::kSize];
    const size_t n = audit_snapshot(cpu, e, max < AuditLog::kSize ? max : AuditLog::kSize);
    const uint64_t total = audit_count(cpu);
    console_printf("cpu%u: %lu configuration writes since boot%s\n", cpu, total,
                   total > n ? ", the last ones:" : "");
    for (size_t i = 0; i < n; ++i) {
        char reg[16];
        if (e[i].kind == AuditKind::Msr) format(reg, sizeof(reg), "MSR %#x", e[i].reg);
        else if (e[i].kind == AuditKind::Cr || e[i].kind == AuditKind::Xcr)
            format(reg, sizeof(reg), "%s%u", audit_kind_name(e[i].kind), e[i].reg);
        else if (e[i].kind == AuditKind::Tss) format(reg, sizeof(reg), "TSS IST%u", e[i].reg);
        else format(reg, sizeof(reg), "%s base", audit_kind_name(e[i].kind));
        uint64_t off = 0;
        const char* fn = symbolize(e[i].caller, &off);
        char where[64];
        if (fn != nullptr) format(where, sizeof(where), "%s+%#lx", fn, off);
        else format(where, sizeof(where), "%#lx", e[i].caller);
        console_printf("  %10lu us  %-12s %#18lx -> %#-18lx %s\n", tsc_to_ns(e[i].cycles) / 1000,
                       reg, e[i].old_value, e[i].new_value, where);
    }
}

void cmd_audit(size_t n, Words w) {
    const auto cpu = n == 2 ? parse_u32(w[1]) : std::nullopt;
    if (n > 2 || (n == 2 && (!cpu || *cpu >= cpu_count()))) {
        console_printf("error: usage: audit [CPU] (a CPU number, 0..%u)\n", cpu_count() - 1);
        return;
    }
    if (cpu) {
        print_audit(*cpu, AuditLog::kSize);
        return;
    }
    for (uint32_t c = 0; c < cpu_count(); ++c)
        if (audit_count(c) != 0) print_audit(c, 4); // the last few of each; `audit CPU` for more
}

struct Command {
    const char* name;
    const char* args;
    const char* help;
    void (*fn)(size_t, Words);
};
constexpr Command kCommands[] = {
    {"help", "", "this list", cmd_help},
    {"cpus", "", "one row per CPU: APIC id, node, task, load, interrupts, IPIs, TLB", cmd_cpus},
    {"tasks", "", "every task: id, name, state, CPU, affinity, weight, run time", cmd_tasks},
    {"top", "", "per-CPU load once a second until a key is pressed", cmd_top},
    {"mem", "", "page allocator, per-CPU caches, heap, stacks", cmd_mem},
    {"ipi", "", "IPIs and remote calls per CPU", cmd_ipi},
    {"tlb", "", "TLB shootdowns and flushes per CPU", cmd_tlb},
    {"locks", "", "lock classes: acquisitions, contention, longest wait and hold", cmd_locks},
    {"irq", "[ID cpu CPU]", "device interrupt routes and counts; move one", cmd_irq},
    {"acpi", "", "ACPI tables and the topology found", cmd_acpi},
    {"spawn", "spin|sleep|pingpong N", "start kernel tasks; `spawn stop` ends them", cmd_spawn},
    {"test", "GLOB", "run in-kernel tests (KTAP), as test= does", cmd_test},
    {"bench", "NAME", "run benchmarks (JSON lines), as bench= does", cmd_bench},
    {"offline", "CPU", "take a CPU offline: its tasks, timers, interrupts move", cmd_hotplug},
    {"audit", "[CPU]", "configuration writes (MSRs, control registers, IDT/GDT/TSS) and who made them", cmd_audit},
    {"online", "CPU", "start an offline CPU again", cmd_hotplug},
    {"panic", "", "panic on purpose (shows the NMI stop of every CPU)", cmd_panic},
    {"poweroff", "", "leave (QEMU exits with status 0)", cmd_poweroff},
};

void cmd_help(size_t, Words) {
    for (const Command& c : kCommands)
        console_printf("  %-8s %-22s %s\n", c.name, c.args, c.help);
    console_printf("Line editing: Backspace, Ctrl-U (erase line), Ctrl-C (cancel), Up/Down "
                   "(history).\n");
}

} // namespace

void execute(std::string_view line) {
    constexpr size_t kMaxWords = 8;
    std::string_view w[kMaxWords];
    const size_t n = split_words(line, w, kMaxWords);
    if (n == 0) return;
    if (n > kMaxWords) {
        console_printf("error: too many words (at most %zu)\n", kMaxWords);
        return;
    }
    for (const Command& c : kCommands) {
        if (w[0] == c.name) {
            c.fn(n, w);
            return;
        }
    }
    console_printf("error: unknown command '%.*s' (`help` lists them)\n",
                   static_cast<int>(w[0].size() > 40 ? 40 : w[0].size()), w[0].data());
}

} // namespace cohort::console
