// AP bring-up, the generic policy: which CPUs to start (smp.max_cpus, kMaxCpus), their
// per-CPU data, one timeout for all, the report, and failure injection for the tests. The
// architecture does the mechanics (arch/arch.h: ap_prepare_cpu, ap_prepare, ap_start,
// ap_recall, ap_finish; on x86 the trampoline and INIT/SIPI in arch/x86/ap_boot.cc).
#include "smp/smp.h"

#include <atomic>
#include <cstring>
#include <new>

#include "arch/arch.h"
#include "boot/boot_trace.h"
#include "boot/params.h"
#include "debug/log.h"
#include "lib/format.h"
#include "mm/heap.h"
#include "mm/phys.h"
#include "mm/pmm.h"
#include "numa/numa.h"
#include "sched/sched.h"
#include "smp/call.h"
#include "smp/cpu.h"
#include "smp/percpu.h"
#include "time/clock.h"
#include "time/timer.h"

namespace cohort {

COHORT_PERCPU(uint32_t, g_cpu_probe);

namespace {

SmpBootReport g_report{1, 0, 0, 1, 0, 0, false};

// Stall injection (smp.inject_stall=APICID[@stage]), for tests.
uint32_t g_stall_apic = UINT32_MAX;
BootStage g_stall_stage = BootStage::Lapic;

std::atomic<uint64_t> g_last_online_cycles{0};

// What smp_prepare made for smp_start.
CpuData** g_table = nullptr; // every CPU, the boot CPU first
size_t g_aps = 0;

bool terminal(BootStage s) {
    return s == BootStage::Online || s == BootStage::FeatureMismatch || s == BootStage::Stalled;
}

void parse_stall_injection() {
    auto v = params().get("smp.inject_stall");
    if (!v) return;
    std::string_view text = *v;
    std::string_view stage = "lapic";
    if (size_t at = text.find('@'); at != std::string_view::npos) {
        stage = text.substr(at + 1);
        text = text.substr(0, at);
    }
    CommandLine one;
    char buf[64];
    format(buf, sizeof(buf), "x=%.*s", static_cast<int>(text.size()), text.data());
    uint64_t id = 0;
    if (one.parse(buf) && one.get_u64("x", id) == CommandLine::Status::Ok) g_stall_apic = uint32_t(id);
    else log_warn("cmdline: smp.inject_stall needs an APIC id, e.g. smp.inject_stall=2@tables");
    struct Name {
        const char* name;
        BootStage stage;
    };
    static constexpr Name kStages[] = {{"longmode", BootStage::LongMode},
                                       {"tables", BootStage::Tables},
                                       {"features", BootStage::Features},
                                       {"lapic", BootStage::Lapic}};
    bool found = false;
    for (const Name& n : kStages)
        if (stage == n.name) g_stall_stage = n.stage, found = true;
    if (!found) log_warn("cmdline: smp.inject_stall stage must be longmode, tables, features or lapic");
}

CpuData* make_cpu(uint32_t cpu_id, const ApTarget& t) {
    // On the CPU's own NUMA node (numa_init has numbered the CPUs as we do): every switch and
    // interrupt writes here.
    const uint32_t node = numa_map().cpu_node(cpu_id);
    constexpr uint64_t kPages = (sizeof(CpuData) + 4095) / 4096;
    const uint64_t phys = pmm::alloc_pages_node(node == numa::kNoNode ? 0 : node, kPages);
    if (phys == 0) return nullptr;
    void* mem = phys_to_virt<void>(phys);
    memset(mem, 0, kPages * 4096);
    auto* cpu = new (mem) CpuData{};
    cpu->self = cpu;
    cpu->magic = kCpuDataMagic;
    cpu->stack_canary = arch::random_u64();
    cpu->cpu_id = cpu_id;
    cpu->apic_id = t.apic_id;
    cpu->acpi_uid = t.acpi_uid;
    cpu->node = node == numa::kNoNode ? 0 : node; // its stacks are allocated there
    if (!arch::ap_prepare_cpu(*cpu)) return nullptr;
    if (!percpu_setup(cpu, node == numa::kNoNode ? 0 : node)) return nullptr;
    if (!call_slots_setup(cpu_id, node == numa::kNoNode ? 0 : node)) return nullptr;
    return cpu;
}

} // namespace

void smp_ap_reached(CpuData* cpu, BootStage stage) {
    // Forward only: the boot CPU's "SIPI sent" must not overwrite an AP that already reported
    // a later stage.
    BootStage cur = cpu->boot_stage.load(std::memory_order_relaxed);
    while (static_cast<uint32_t>(cur) < static_cast<uint32_t>(stage) &&
           !cpu->boot_stage.compare_exchange_weak(cur, stage, std::memory_order_release)) {
    }
    if (cpu->apic_id != g_stall_apic || stage != g_stall_stage) return;
    // Report first, then stop for good with interrupts off: exactly what a hung CPU looks like.
    cpu->boot_stage.store(BootStage::Stalled, std::memory_order_release);
    arch::halt_forever();
}

[[noreturn]] void smp_ap_online(CpuData* cpu) {
    g_last_online_cycles.store(arch::cycles(), std::memory_order_relaxed);
    detail::mark_online(cpu);
    cpu->boot_stage.store(BootStage::Online, std::memory_order_release);
    sched_enter_ap(); // this context becomes the CPU's idle task
}

const SmpBootReport& smp_boot_report() { return g_report; }

bool smp_restart_cpu(CpuData* cpu, uint64_t timeout_ms, uint64_t* duration_us) {
    CpuData* one[1] = {cpu};
    const std::span<CpuData* const> aps{one, 1};
    cpu->boot_stage.store(BootStage::NotStarted, std::memory_order_release);
    if (const char* why = arch::ap_prepare(aps)) {
        log_error("hotplug: cpu%u cannot be started: %s", cpu->cpu_id, why);
        return false;
    }
    const uint64_t start = monotonic_ns();
    arch::ap_start(aps);
    // A task sleeps (the scheduler runs others, and the vCPU may give its host core to the
    // one starting); without one, the CPU halts until its timer.
    const bool in_task = current_task() != nullptr;
    while (!terminal(cpu->boot_stage.load(std::memory_order_acquire)) &&
           monotonic_ns() - start < timeout_ms * 1'000'000) {
        if (in_task) sleep_for(50'000);
        else timer_halt_until(monotonic_ns() + 100'000);
    }
    const BootStage s = cpu->boot_stage.load(std::memory_order_acquire);
    const bool ok = s == BootStage::Online;
    if (!ok) {
        log_error("hotplug: cpu%u (APIC id %u) did not come back: stopped at %s", cpu->cpu_id,
                  cpu->apic_id, boot_stage_name(s));
        arch::ap_recall(*cpu); // back to waiting for a SIPI, wherever it stopped
    }
    arch::ap_finish(aps, !ok);
    if (duration_us != nullptr) *duration_us = (monotonic_ns() - start) / 1000;
    return ok;
}

bool smp_prepare(std::span<const ApTarget> all_targets, std::span<const ApTarget> slots) {
    SmpBootReport& rep = g_report;
    rep = {static_cast<uint32_t>(all_targets.size() + 1), 0, 0, 1, 0, 0, false};
    parse_stall_injection();
    uint64_t max_cpus = param_u64("smp.max_cpus", UINT32_MAX);
    if (max_cpus == 0) {
        log_warn("smp: smp.max_cpus=0 makes no sense; starting only the boot CPU");
        max_cpus = 1;
    }
    // platform_acpi_init already keeps the list within kMaxCpus; this guards any other caller,
    // since a CPU id at or above it would write past every CpuMask.
    const bool capped = max_cpus >= kMaxCpus;
    if (capped) max_cpus = kMaxCpus;
    const size_t n = all_targets.size() < max_cpus - 1 ? all_targets.size() : max_cpus - 1;
    const std::span<const ApTarget> targets = all_targets.first(n);
    if (n < all_targets.size() && capped)
        log_warn("smp: %lu CPUs to start; starting the first %u (kMaxCpus)", all_targets.size() + 1,
                 kMaxCpus);
    else if (n < all_targets.size())
        log_info("smp: smp.max_cpus=%lu: starting %lu of %lu APs", max_cpus, n, all_targets.size());
    // Slots take the ids after every AP the firmware listed (numa_init numbered them so): with
    // APs left out, they would not.
    if (n < all_targets.size() && !slots.empty()) {
        log_warn("smp: %lu hot-add slots dropped: smp.max_cpus leaves APs out", slots.size());
        slots = {};
    }
    if (slots.size() > kMaxCpus - (n + 1)) slots = slots.first(kMaxCpus - (n + 1));
    const size_t m = slots.size();
    if (n + m == 0) return true;

    auto abort = [&](const char* why) {
        // Before the CPU table is published and before any AP is woken: no other code knows
        // these CPUs yet.
        log_error("smp: %s; continuing with the boot CPU only", why);
        rep.aborted = true;
        return false;
    };
    auto** table = static_cast<CpuData**>(kzalloc((n + m + 1) * sizeof(CpuData*)));
    if (table == nullptr) return abort("out of memory for the CPU table");
    table[0] = this_cpu();
    const uint64_t prep_start = monotonic_ns();
    for (size_t i = 0; i < n; ++i) {
        CpuData* cpu = make_cpu(static_cast<uint32_t>(i + 1), targets[i]);
        if (cpu == nullptr) return abort("out of memory for per-CPU data and stacks");
        table[i + 1] = cpu;
    }
    for (size_t i = 0; i < m; ++i) {
        CpuData* cpu = make_cpu(static_cast<uint32_t>(n + 1 + i), slots[i]);
        if (cpu == nullptr) return abort("out of memory for the per-CPU data of hot-add slots");
        cpu->boot_stage.store(BootStage::Absent, std::memory_order_relaxed);
        table[n + 1 + i] = cpu;
    }
    log_debug("smp: per-CPU data and stacks of %zu APs prepared in %lu us", n,
              (monotonic_ns() - prep_start) / 1000);
    if (n != 0)
        if (const char* why = arch::ap_prepare({table + 1, n})) return abort(why);

    // Published now, before any AP runs: an AP sets up its scheduler as soon as it is online,
    // and the CPU count, masks and per-CPU caches must already cover every CPU.
    detail::set_cpu_table(table, static_cast<uint32_t>(n + m + 1));
    rep.slots = static_cast<uint32_t>(m);
    if (m != 0)
        log_info("smp: cpu%lu-cpu%lu kept for CPUs plugged in later (ACPI hot-add)", n + 1, n + m);
    g_table = table;
    g_aps = n;
    return true;
}

SmpBootReport smp_start() {
    SmpBootReport& rep = g_report;
    if (rep.aborted || g_aps == 0) {
        // The same line as with many CPUs, so scripts and people find it on every machine.
        if (!rep.aborted)
            log_info("smp: %u of %u CPUs online in %lu us", rep.online, rep.present, rep.duration_us);
        return rep;
    }
    const std::span<CpuData* const> aps{g_table + 1, g_aps};
    const uint64_t timeout_ms = param_u64("smp.timeout_ms", 1000);
    const uint64_t start_cycles = arch::cycles();
    const uint64_t start_ns = monotonic_ns();
    arch::ap_start(aps);
    rep.started = static_cast<uint32_t>(aps.size());

    // One timeout for everybody.
    for (;;) {
        size_t done = 0;
        for (CpuData* cpu : aps) done += terminal(cpu->boot_stage.load(std::memory_order_acquire));
        if (done == aps.size() || monotonic_ns() - start_ns > timeout_ms * 1000000) break;
        timer_halt_until(monotonic_ns() + 200'000); // halted: emulated APs get the host CPU
    }

    boot_step("ap-start");
    uint32_t online = 1;
    for (CpuData* cpu : aps) online += cpu->online.load(std::memory_order_acquire);
    const uint64_t last = g_last_online_cycles.load(std::memory_order_relaxed);
    rep.online = online;
    rep.failed = static_cast<uint32_t>(aps.size() + 1 - online);
    rep.duration_us = last > start_cycles ? tsc_to_ns(last - start_cycles) / 1000 : 0;
    for (CpuData* cpu : aps) {
        const BootStage s = cpu->boot_stage.load(std::memory_order_acquire);
        if (s == BootStage::Online) continue;
        log_error("smp: cpu apic=%u failed at stage %s", cpu->apic_id, boot_stage_name(s));
        // A CPU that never identified itself must not wake later into what bring-up leaves.
        if (s == BootStage::SipiSent) arch::ap_recall(*cpu);
    }
    arch::ap_finish(aps, rep.failed != 0);

    // The TSC warp test (x86::tsc_sync_check_all) runs later, first thing in the main task:
    // pairing each AP with the boot CPU as it arrives would serialise the parallel start-up,
    // and the APs set up their schedulers meanwhile instead of waiting for it.
    boot_step("ap-finish");
    log_info("smp: %u of %u CPUs online in %lu us", rep.online, rep.present, rep.duration_us);
    if (log_level() >= LogLevel::Debug) {
        for (uint32_t i = 0; i < cpu_count(); ++i) {
            const CpuData* c = cpu_by_id(i);
            log_debug("smp:   cpu%-3u apic %-5u uid %-5u %-28s cr4 %#lx", c->cpu_id, c->apic_id,
                      c->acpi_uid, boot_stage_name(c->boot_stage.load()), c->cr4_seen);
        }
    }
    return rep;
}

} // namespace cohort
