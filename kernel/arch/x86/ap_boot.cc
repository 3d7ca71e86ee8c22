// Parallel AP start-up: trampoline placement and checks, INIT/SIPI, and the AP's first steps.
#include <atomic>
#include <cstring>
#include <new>

#include "arch/x86/cpu.h"
#include "arch/x86/cpu_compat.h"
#include "arch/x86/cpu_features.h"
#include "arch/x86/cpu_stacks.h"
#include "arch/x86/fpu.h"
#include "arch/x86/gdt.h"
#include "arch/x86/interrupts.h"
#include "arch/x86/lapic.h"
#include "arch/x86/trampoline.h"
#include "arch/x86/tsc_sync.h"
#include "arch/x86/vectors.h"
#include "boot/boot_trace.h"
#include "boot/bootinfo.h"
#include "boot/params.h"
#include "debug/log.h"
#include "debug/panic.h"
#include "lib/format.h"
#include "mm/heap.h"
#include "mm/layout.h"
#include "mm/phys.h"
#include "mm/vmm.h"
#include "mm/address_space.h"
#include "sched/sched.h"
#include "smp/call.h"
#include "smp/cpu.h"
#include "smp/cpumask.h"
#include "smp/ipi.h"
#include "smp/percpu.h"
#include "smp/smp.h"
#include "time/clock.h"
#include "time/timer.h"

namespace cohort {

namespace {

constexpr uint64_t kPage = layout::kPageSize;

SmpBootReport g_report{1, 0, 1, 0, 0, false};
} // namespace

COHORT_PERCPU(uint32_t, g_cpu_probe);

namespace {
uint64_t g_trampoline_phys = 0;

// Stall injection (smp.inject_stall=APICID[@stage]) and feature-mismatch injection, for tests.
uint32_t g_stall_apic = UINT32_MAX;
BootStage g_stall_stage = BootStage::Lapic;
uint32_t g_mismatch_apic = UINT32_MAX;

std::atomic<uint64_t> g_last_online_tsc{0};

// What smp_prepare made for smp_start.
struct PreparedBoot {
    CpuData** table;            // every CPU, the boot CPU first
    x86::ApBootEntry* entries;  // the trampoline's APIC id -> CpuData table
    size_t count;               // APs
    uint64_t trampoline;        // physical page of its code (data in the next page)
    uint64_t root;              // the page tables it runs on (vmm::trampoline_root_create)
};
PreparedBoot g_boot{nullptr, nullptr, 0, 0, 0};

/// Moves `cpu` forward to `stage`, never backward: the BSP's "SIPI sent" must not overwrite an
/// AP that already reported a later stage.
void advance(CpuData* cpu, BootStage stage) {
    BootStage cur = cpu->boot_stage.load(std::memory_order_relaxed);
    while (static_cast<uint32_t>(cur) < static_cast<uint32_t>(stage) &&
           !cpu->boot_stage.compare_exchange_weak(cur, stage, std::memory_order_release)) {
    }
}

bool terminal(BootStage s) {
    return s == BootStage::Online || s == BootStage::FeatureMismatch || s == BootStage::Stalled;
}

void maybe_stall(CpuData* cpu, BootStage reached) {
    if (cpu->apic_id != g_stall_apic || reached != g_stall_stage) return;
    // Report first, then stop for good with interrupts off: exactly what a hung CPU looks like.
    cpu->boot_stage.store(BootStage::Stalled, std::memory_order_release);
    x86::halt_forever();
}

/// What an AP must offer: what the boot CPU turned on or chose from its own CPUID.
x86::CpuRequirements boot_cpu_requirements() {
    x86::CpuRequirements need{x86::boot_cpu_features(), x86::fpu_xcr0()};
    need.features.x2apic = x86::lapic_mode() == x86::ApicMode::X2Apic;
    need.features.pcid = x86::pcid_enabled();
    need.features.tsc_deadline = x86::lapic_timer_has_deadline();
    return need;
}
x86::CpuRequirements g_requirements{};

void parse_injections() {
    if (auto v = params().get("smp.inject_stall")) {
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
    uint64_t id;
    if (params().get_u64("smp.inject_feature_mismatch", id) == CommandLine::Status::Ok)
        g_mismatch_apic = static_cast<uint32_t>(id);
}

/// Two free pages below 1 MiB (code, then data), from what the firmware called usable there.
uint64_t find_trampoline_pages() {
    for (const MemRegion& r : g_memory_map.regions()) {
        if (r.type != MemType::Trampoline) continue;
        uint64_t base = r.base < kPage ? kPage : r.base; // page 0 holds the real-mode IVT
        base = (base + kPage - 1) & ~(kPage - 1);
        const uint64_t end = r.end() < 0x100000 ? r.end() : 0x100000;
        if (base + 2 * kPage <= end) return base;
    }
    return 0;
}

CpuData* make_cpu(uint32_t cpu_id, const ApTarget& t) {
    void* mem = kzalloc(sizeof(CpuData));
    if (mem == nullptr) return nullptr;
    auto* cpu = new (mem) CpuData{};
    cpu->self = cpu;
    cpu->magic = kCpuDataMagic;
    cpu->cpu_id = cpu_id;
    cpu->apic_id = t.apic_id;
    cpu->acpi_uid = t.acpi_uid;
    if (!x86::alloc_cpu_stacks(*cpu)) return nullptr;
    if (!percpu_setup(cpu)) return nullptr;
    return cpu;
}

} // namespace

/// First C++ code on an AP, on its own stack; `cpu` was found by the trampoline by APIC id.
extern "C" [[noreturn]] void ap_entry(CpuData* cpu) {
    // Off the trampoline's page tables first: their kernel half is the kernel's, so nothing
    // moves, and from here on this CPU caches nothing of the identity map the BSP will free.
    x86::write_cr3(vmm::kernel_root());
    install_cpu_data(cpu);
    // Self-check recorded for the smp tests: per-CPU access through %gs works on this CPU.
    per_cpu(g_cpu_probe) = cpu->cpu_id;
    cpu->self_check = this_cpu() == cpu &&
                      x86::rdmsr(x86::msr::kGsBase) == reinterpret_cast<uint64_t>(cpu) &&
                      per_cpu_on(cpu, g_cpu_probe) == cpu->cpu_id;
    advance(cpu, BootStage::LongMode);
    maybe_stall(cpu, BootStage::LongMode);

    x86::load_cpu_tables(cpu->tables, cpu->ist_tops);
    x86::idt_load();
    advance(cpu, BootStage::Tables);
    maybe_stall(cpu, BootStage::Tables);

    x86::CpuFeatures mine = x86::detect_cpu_features();
    if (cpu->apic_id == g_mismatch_apic) {
        // Lack MCE and every XSAVE component; another vendor where the boot CPU has neither.
        mine.mce = false;
        mine.xsave_components = 0;
        if (!x86::missing_features(g_requirements, mine).any()) mine.vendor[0] ^= 1;
    }
    const x86::MissingFeatures missing = x86::missing_features(g_requirements, mine);
    if (missing.any()) {
        // Refuse before enable_security_features: it would load CR4 bits and an XCR0 this CPU
        // cannot take (#GP with no handler to recover).
        char names[256];
        x86::describe_missing(missing, names, sizeof(names));
        log_error("smp: cpu%u (APIC id %u) lacks what the boot CPU uses: %s; not starting it",
                  cpu->cpu_id, cpu->apic_id, names);
        cpu->boot_stage.store(BootStage::FeatureMismatch, std::memory_order_release);
        x86::halt_forever();
    }
    x86::enable_security_features();
    x86::tsc_sync_ap_early(cpu->cpu_id, mine);
    cpu->cr0_seen = x86::read_cr0();
    cpu->cr4_seen = x86::read_cr4();
    cpu->efer_seen = x86::rdmsr(x86::msr::kEfer);
    advance(cpu, BootStage::Features);
    maybe_stall(cpu, BootStage::Features);

    x86::lapic_init_ap();
    ipi_note_logical_id(cpu);
    advance(cpu, BootStage::Lapic);
    maybe_stall(cpu, BootStage::Lapic);
    kernel_address_space().active.set(cpu->cpu_id);

    g_last_online_tsc.store(x86::rdtsc(), std::memory_order_relaxed);
    detail::mark_online(cpu);
    cpu->boot_stage.store(BootStage::Online, std::memory_order_release);
    sched_enter_ap(); // this context becomes the CPU's idle task
}

const SmpBootReport& smp_boot_report() { return g_report; }
uint64_t smp_trampoline_page() { return g_trampoline_phys; }

bool smp_prepare(std::span<const ApTarget> all_targets) {
    SmpBootReport& rep = g_report;
    rep = {static_cast<uint32_t>(all_targets.size() + 1), 0, 1, 0, 0, false};
    parse_injections();
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
    if (n == 0) return true;

    x86::ApBootEntry* entries = nullptr;
    auto abort = [&](const char* why) {
        // Every abort comes before the CPU table is published and before the first INIT: no
        // other code knows these CPUs and no AP can be reading the table.
        kfree(entries);
        log_error("smp: %s; continuing with the boot CPU only", why);
        rep.aborted = true;
        return false;
    };

    // Everything an AP needs exists before any AP is woken.
    g_requirements = boot_cpu_requirements();
    x86::tsc_sync_prepare();
    auto** table = static_cast<CpuData**>(kzalloc((n + 1) * sizeof(CpuData*)));
    entries = static_cast<x86::ApBootEntry*>(kzalloc(n * sizeof(x86::ApBootEntry)));
    if (table == nullptr || entries == nullptr) return abort("out of memory for the CPU table");
    table[0] = this_cpu();
    const uint64_t prep_start = monotonic_ns();
    for (size_t i = 0; i < n; ++i) {
        CpuData* cpu = make_cpu(static_cast<uint32_t>(i + 1), targets[i]);
        if (cpu == nullptr) return abort("out of memory for per-CPU data and stacks");
        table[i + 1] = cpu;
        entries[i] = {cpu->apic_id, 0, reinterpret_cast<uint64_t>(cpu), cpu->kernel_stack_top};
    }

    // The trampoline: code page (RX when mapped) then data page (RW, NX).
    log_debug("smp: per-CPU data and stacks of %zu APs prepared in %lu us", n,
              (monotonic_ns() - prep_start) / 1000);
    const uint64_t page = find_trampoline_pages();
    if (page == 0) return abort("no free memory below 1 MiB for the AP trampoline");
    const uint64_t root = vmm::trampoline_root_create(page, page + kPage);
    if (root == 0) return abort("no memory below 4 GiB for the trampoline's page tables");
    const size_t code_size = static_cast<size_t>(trampoline_code_end - trampoline_code_start);
    x86::TrampolineData data;
    memcpy(&data, trampoline_data_start, sizeof(data));
    data.gdt_base = static_cast<uint32_t>(page + kPage);
    data.far32_offset += static_cast<uint32_t>(page);
    data.far64_offset += static_cast<uint32_t>(page);
    data.cr3 = static_cast<uint32_t>(root);
    data.cr4 = static_cast<uint32_t>(x86::cr4::kPae | (x86::boot_cpu_features().pge ? x86::cr4::kPge : 0));
    data.efer = static_cast<uint32_t>(x86::efer::kLme | (x86::boot_cpu_features().nx ? x86::efer::kNxe : 0));
    data.flags = x86::lapic_mode() == x86::ApicMode::X2Apic ? x86::kFlagX2apicId : 0;
    data.entry64 = reinterpret_cast<uint64_t>(&ap_entry);
    data.table = reinterpret_cast<uint64_t>(entries);
    data.table_count = n;
    auto* code_page = phys_to_virt<uint8_t>(page);
    auto* data_page = phys_to_virt<x86::TrampolineData>(page + kPage);
    memset(code_page, 0, 2 * kPage);
    memcpy(code_page, trampoline_code_start, code_size);
    memcpy(data_page, &data, sizeof(data));
    if (param_bool("smp.inject_trampoline_corruption", false)) code_page[code_size / 2] ^= 0xff;
    // Never run code we did not mean to: compare the copy with the kernel's image of it.
    if (memcmp(code_page, trampoline_code_start, code_size) != 0 ||
        memcmp(data_page, &data, sizeof(data)) != 0) {
        memset(code_page, 0, 2 * kPage);
        vmm::trampoline_root_destroy(root); // no CPU has loaded it
        return abort("the trampoline copy differs from the kernel image (memory corruption?); "
                     "no AP started");
    }
    g_trampoline_phys = page;

    // Published now, before any AP runs: an AP sets up its scheduler as soon as it is online,
    // and the CPU count, masks and per-CPU caches must already cover every CPU.
    detail::set_cpu_table(table, static_cast<uint32_t>(n + 1));
    g_boot = {table, entries, n, page, root};
    return true;
}

SmpBootReport smp_start() {
    SmpBootReport& rep = g_report;
    const uint64_t timeout_ms = param_u64("smp.timeout_ms", 1000);
    if (rep.aborted || g_boot.count == 0) {
        // The same line as with many CPUs, so scripts and people find it on every machine.
        if (!rep.aborted)
            log_info("smp: %u of %u CPUs online in %lu us", rep.online, rep.present, rep.duration_us);
        return rep;
    }
    CpuData** table = g_boot.table;
    x86::ApBootEntry* entries = g_boot.entries;
    const size_t n = g_boot.count;
    const uint64_t page = g_boot.trampoline;
    auto* code_page = phys_to_virt<uint8_t>(page);
    auto* data_page = phys_to_virt<x86::TrampolineData>(page + kPage);

    // INIT to every target, one wait, SIPI to every target back to back.
    const x86::CpuFeatures& f = x86::boot_cpu_features();
    // Like Linux: CPUs since the Pentium 4 (Intel family 6 model >= 0xf or family 0xf; AMD
    // family >= 0xf) and any virtual CPU do not need the SDM's 10 ms INIT delay nor 200 us
    // between SIPIs; everything older gets the SDM timings.
    const bool modern = f.hypervisor || f.family > 6 || (f.family == 6 && f.model >= 0xf);
    const uint64_t init_delay_us = modern ? 0 : 10000;
    const uint64_t sipi_delay_us = modern ? 10 : 200;
    const uint64_t start_tsc = x86::rdtsc();
    const uint64_t start_ns = monotonic_ns();
    for (size_t i = 0; i < n; ++i) {
        x86::lapic_send_init(table[i + 1]->apic_id);
        advance(table[i + 1], BootStage::InitSent);
    }
    if (init_delay_us != 0) delay_ns(init_delay_us * 1000);
    const uint8_t vector = static_cast<uint8_t>(page >> 12);
    for (size_t i = 0; i < n; ++i) {
        x86::lapic_send_sipi(table[i + 1]->apic_id, vector);
        advance(table[i + 1], BootStage::SipiSent);
    }
    delay_ns(sipi_delay_us * 1000);
    // A second SIPI only for CPUs that have not checked in (one that is already running
    // ignores it anyway, but there is no need to send it).
    for (size_t i = 0; i < n; ++i)
        if (table[i + 1]->boot_stage.load(std::memory_order_acquire) == BootStage::SipiSent)
            x86::lapic_send_sipi(table[i + 1]->apic_id, vector);
    rep.started = static_cast<uint32_t>(n);

    // One timeout for everybody.
    for (;;) {
        size_t done = 0;
        for (size_t i = 0; i < n; ++i) done += terminal(table[i + 1]->boot_stage.load(std::memory_order_acquire));
        if (done == n || monotonic_ns() - start_ns > timeout_ms * 1000000) break;
        timer_halt_until(monotonic_ns() + 200'000); // halted: emulated APs get the host CPU
    }

    boot_step("ap-start");
    uint32_t online = 1;
    for (size_t i = 0; i < n; ++i) online += table[i + 1]->online.load(std::memory_order_acquire);
    const uint64_t last = g_last_online_tsc.load(std::memory_order_relaxed);
    rep.online = online;
    rep.failed = static_cast<uint32_t>(n + 1 - online);
    rep.duration_us = last > start_tsc ? tsc_to_ns(last - start_tsc) / 1000 : 0;

    const x86::TrampolineData* shared = data_page;
    for (size_t i = 0; i < n; ++i) {
        CpuData* cpu = table[i + 1];
        const BootStage s = cpu->boot_stage.load(std::memory_order_acquire);
        if (s == BootStage::Online) continue;
        log_error("smp: cpu apic=%u failed at stage %s", cpu->apic_id, boot_stage_name(s));
        // Put a CPU that never identified itself back into wait-for-SIPI before the trampoline
        // disappears from under it.
        if (s == BootStage::SipiSent) x86::lapic_send_init(cpu->apic_id);
    }
    if (rep.failed != 0)
        log_info("smp: trampoline progress: %u APs reached 16-bit, %u 32-bit, %u 64-bit code",
                 shared->reached16, shared->reached32, shared->reached64);
    if (shared->unknown_apic_id != 0xffffffff)
        log_warn("smp: a CPU with APIC id %u ran the trampoline but is not in the table",
                 shared->unknown_apic_id);

    // The trampoline is done: wipe it and free the page tables it ran on. No shootdown: the
    // kernel's own tables never mapped it, every AP that reached ap_entry loaded them there
    // (a CR3 write drops every non-global translation and paging-structure cache entry), and
    // the rest were just sent INIT, which does the same. (Two shootdowns of 254 CPUs did this
    // before, 30-50 ms under an emulator.) drop_low_half only catches anything else that
    // mapped the lower half, normally nothing.
    memset(code_page, 0, 2 * kPage);
    vmm::trampoline_root_destroy(g_boot.root);
    g_boot.root = 0;
    vmm::drop_low_half();
    // Only trampoline code reads the APIC-id table, and no AP can still be in it: those that
    // reached ap_entry (BootStage::LongMode or later) finished the lookup and the rest were sent
    // back to wait-for-SIPI above.
    kfree(entries);
    g_boot.entries = nullptr;

    // The TSC warp test (x86::tsc_sync_check_all) runs later, first thing in the main task:
    // pairing each AP with the boot CPU as it arrives would serialise the parallel start-up,
    // and the APs set up their schedulers meanwhile instead of waiting for it.

    boot_step("ap-finish");
    log_info("smp: %u of %u CPUs online in %lu us", rep.online, rep.present, rep.duration_us);
    if (log_level() >= LogLevel::Debug) {
        for (uint32_t i = 0; i < cpu_count(); ++i) {
            const CpuData* c = cpu_by_id(i);
            log_debug("smp:   cpu%-3u apic %-5u uid %-5u %-28s cr4 %#lx", c->cpu_id, c->apic_id,
                      c->acpi_uid, boot_stage_name(c->boot_stage.load()), i == 0 ? x86::read_cr4() : c->cr4_seen);
        }
    }
    return rep;
}

} // namespace cohort
