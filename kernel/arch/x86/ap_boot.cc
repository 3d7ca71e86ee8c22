// AP bring-up, the x86 mechanics (arch/arch.h: ap_prepare_cpu ... ap_finish): the real-mode
// trampoline and its page tables, INIT/SIPI with the SDM's delays, and each AP's first steps
// in ap_entry. Which CPUs start, the timeout and the report are smp/bringup.cc's.
#include <atomic>
#include <cstring>

#include "arch/arch.h"
#include "arch/x86/cpu.h"
#include "arch/x86/cpu_compat.h"
#include "arch/x86/cpu_features.h"
#include "arch/x86/cpu_private.h"
#include "arch/x86/cpu_stacks.h"
#include "arch/x86/fpu.h"
#include "arch/x86/gdt.h"
#include "arch/x86/interrupts.h"
#include "arch/x86/lapic.h"
#include "arch/x86/trampoline.h"
#include "arch/x86/tsc_sync.h"
#include "boot/bootinfo.h"
#include "boot/params.h"
#include "debug/log.h"
#include "mm/address_space.h"
#include "mm/heap.h"
#include "mm/layout.h"
#include "mm/phys.h"
#include "mm/vmm.h"
#include "smp/cpu.h"
#include "smp/ipi.h"
#include "smp/percpu.h"
#include "smp/smp.h"
#include "time/clock.h"

namespace cohort {

namespace {

constexpr uint64_t kPage = layout::kPageSize;

uint64_t g_trampoline_phys = 0;
uint32_t g_mismatch_apic = UINT32_MAX; // smp.inject_feature_mismatch, for tests

// What ap_prepare made for ap_start and ap_finish.
x86::ApBootEntry* g_entries = nullptr; // the trampoline's APIC id -> CpuData table
uint64_t g_root = 0;                   // the page tables it runs on (vmm::trampoline_root_create)

/// What an AP must offer: what the boot CPU turned on or chose from its own CPUID.
x86::CpuRequirements boot_cpu_requirements() {
    x86::CpuRequirements need{x86::boot_cpu_features(), x86::fpu_xcr0()};
    need.features.x2apic = x86::lapic_mode() == x86::ApicMode::X2Apic;
    need.features.pcid = x86::pcid_enabled();
    need.features.tsc_deadline = x86::lapic_timer_has_deadline();
    return need;
}
x86::CpuRequirements g_requirements{};

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

x86::TrampolineData* trampoline_data() { return phys_to_virt<x86::TrampolineData>(g_trampoline_phys + kPage); }

} // namespace

/// First C++ code on an AP, on its own stack; `cpu` was found by the trampoline by APIC id.
// No stack protector: the canary is read through GSBASE, which INIT left at zero.
extern "C" [[noreturn]] COHORT_NO_STACK_PROTECTOR void ap_entry(CpuData* cpu) {
    // Off the trampoline's page tables first, onto the CPU's own: their kernel half is the
    // kernel's, so nothing moves, the CPU-private slot appears (IST stacks, private variables)
    // and from here on this CPU caches nothing of the identity map the BSP will free.
    x86::write_cr3(cpu->page_root);
    install_cpu_data(cpu);
    // Self-check recorded for the smp tests: per-CPU access through %gs works on this CPU.
    per_cpu(g_cpu_probe) = cpu->cpu_id;
    cpu->self_check = this_cpu() == cpu &&
                      x86::rdmsr(x86::msr::kGsBase) == reinterpret_cast<uint64_t>(cpu) &&
                      per_cpu_on(cpu, g_cpu_probe) == cpu->cpu_id;
    smp_ap_reached(cpu, BootStage::LongMode);

    x86::load_cpu_tables(cpu->tables, cpu->ist_tops);
    x86::idt_load();
    smp_ap_reached(cpu, BootStage::Tables);

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
    smp_ap_reached(cpu, BootStage::Features);

    x86::lapic_init_ap();
    ipi_note_logical_id(cpu);
    smp_ap_reached(cpu, BootStage::Lapic);
    kernel_address_space().active.set(cpu->cpu_id);
    smp_ap_online(cpu);
}

uint64_t smp_trampoline_page() { return g_trampoline_phys; }

namespace arch {

bool ap_prepare_cpu(CpuData& cpu) {
    return x86::cpu_private_setup(cpu) && x86::alloc_cpu_stacks(cpu);
}

const char* ap_prepare(std::span<CpuData* const> aps) {
    uint64_t id;
    if (params().get_u64("smp.inject_feature_mismatch", id) == CommandLine::Status::Ok)
        g_mismatch_apic = static_cast<uint32_t>(id);
    g_requirements = boot_cpu_requirements();
    x86::tsc_sync_prepare();
    const size_t n = aps.size();
    auto* entries = static_cast<x86::ApBootEntry*>(kzalloc(n * sizeof(x86::ApBootEntry)));
    if (entries == nullptr) return "out of memory for the APIC-id table";
    for (size_t i = 0; i < n; ++i)
        entries[i] = {aps[i]->apic_id, 0, reinterpret_cast<uint64_t>(aps[i]), aps[i]->kernel_stack_top};

    // The trampoline: code page (RX when mapped) then data page (RW, NX).
    const uint64_t page = find_trampoline_pages();
    if (page == 0) {
        kfree(entries);
        return "no free memory below 1 MiB for the AP trampoline";
    }
    const uint64_t root = vmm::trampoline_root_create(page, page + kPage);
    if (root == 0) {
        kfree(entries);
        return "no memory below 4 GiB for the trampoline's page tables";
    }
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
        kfree(entries);
        return "the trampoline copy differs from the kernel image (memory corruption?); no AP "
               "started";
    }
    g_trampoline_phys = page;
    g_entries = entries;
    g_root = root;
    return nullptr;
}

void ap_start(std::span<CpuData* const> aps) {
    // INIT to every target, one wait, SIPI to every target back to back.
    const x86::CpuFeatures& f = x86::boot_cpu_features();
    // Like Linux: CPUs since the Pentium 4 (Intel family 6 model >= 0xf or family 0xf; AMD
    // family >= 0xf) and any virtual CPU do not need the SDM's 10 ms INIT delay nor 200 us
    // between SIPIs; everything older gets the SDM timings.
    const bool modern = f.hypervisor || f.family > 6 || (f.family == 6 && f.model >= 0xf);
    const uint64_t init_delay_us = modern ? 0 : 10000;
    const uint64_t sipi_delay_us = modern ? 10 : 200;
    for (CpuData* cpu : aps) {
        x86::lapic_send_init(cpu->apic_id);
        smp_ap_reached(cpu, BootStage::InitSent);
    }
    if (init_delay_us != 0) delay_ns(init_delay_us * 1000);
    const uint8_t vector = static_cast<uint8_t>(g_trampoline_phys >> 12);
    for (CpuData* cpu : aps) {
        x86::lapic_send_sipi(cpu->apic_id, vector);
        smp_ap_reached(cpu, BootStage::SipiSent);
    }
    delay_ns(sipi_delay_us * 1000);
    // A second SIPI only for CPUs that have not checked in (one that is already running
    // ignores it anyway, but there is no need to send it).
    for (CpuData* cpu : aps)
        if (cpu->boot_stage.load(std::memory_order_acquire) == BootStage::SipiSent)
            x86::lapic_send_sipi(cpu->apic_id, vector);
}

void ap_recall(CpuData& cpu) { x86::lapic_send_init(cpu.apic_id); }

void ap_finish(std::span<CpuData* const>, bool failed) {
    const x86::TrampolineData* shared = trampoline_data();
    if (failed)
        log_info("smp: trampoline progress: %u APs reached 16-bit, %u 32-bit, %u 64-bit code",
                 shared->reached16, shared->reached32, shared->reached64);
    if (shared->unknown_apic_id != 0xffffffff)
        log_warn("smp: a CPU with APIC id %u ran the trampoline but is not in the table",
                 shared->unknown_apic_id);

    // The trampoline is done: wipe it and free the page tables it ran on. No shootdown: the
    // kernel's own tables never mapped it, every AP that reached ap_entry loaded them there
    // (a CR3 write drops every non-global translation and paging-structure cache entry), and
    // the rest were just sent INIT (ap_recall), which does the same. (Two shootdowns of 254
    // CPUs did this before, 30-50 ms under an emulator.) drop_low_half only catches anything
    // else that mapped the lower half, normally nothing.
    memset(phys_to_virt<uint8_t>(g_trampoline_phys), 0, 2 * kPage);
    vmm::trampoline_root_destroy(g_root);
    g_root = 0;
    vmm::drop_low_half();
    // Only trampoline code reads the APIC-id table, and no AP can still be in it: those that
    // reached ap_entry (BootStage::LongMode or later) finished the lookup and the rest were sent
    // back to wait-for-SIPI.
    kfree(g_entries);
    g_entries = nullptr;
}

} // namespace arch

} // namespace cohort
