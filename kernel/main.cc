// Boot sequence of the boot CPU: from the loader's hand-off to tests or the idle loop.
#include <cstring>

#include "arch/x86/cpu.h"
#include "arch/x86/cpu_features.h"
#include "arch/x86/cpu_private.h"
#include "arch/x86/cpu_stacks.h"
#include "arch/x86/gdt.h"
#include "arch/x86/interrupts.h"
#include "arch/x86/lapic.h"
#include "arch/x86/machine.h"
#include "arch/x86/tsc_sync.h"
#include "arch/x86/tsc.h"
#include "boot/boot_defs.h"
#include "boot/boot_trace.h"
#include "boot/bootinfo.h"
#include "bench/bench.h"
#include "boot/params.h"
#include "console/console.h"
#include "debug/log.h"
#include "debug/panic.h"
#include "debug/ubsan.h"
#include "irq/irq.h"
#include "mm/heap.h"
#include "numa/numa.h"
#include "mm/kstack.h"
#include "mm/layout.h"
#include "mm/phys.h"
#include "mm/pmm.h"
#include "mm/vmm.h"
#include "mm/address_space.h"
#include "arch/x86/cr_pin.h"
#include "platform/acpi.h"
#include "platform/cpu_hotplug_acpi.h"
#include "sched/sched.h"
#include "smp/call.h"
#include "smp/cpu.h"
#include "smp/ipi.h"
#include "smp/percpu.h"
#include "smp/hotplug.h"
#include "smp/smp.h"
#include "sync/lock_debug.h"
#include "test/ktest.h"
#include "time/clock.h"

extern "C" char __kernel_start[], __kernel_end[];
extern "C" char bsp_boot_stack_bottom[], bsp_boot_stack_top[];
extern "C" void (*__init_array_start[])();
extern "C" void (*__init_array_end[])();

namespace cohort {

namespace {

// Until guarded stacks exist, the boot CPU's IST stacks are plain static arrays.
constexpr size_t kEarlyIstSize = 8192;
alignas(16) char g_early_ist[x86::kIstCount][kEarlyIstSize];

void log_memory_map(const MemoryMap& map) {
    for (const MemRegion& r : map.regions())
        log_debug("  mem [%#014lx-%#014lx) %8lu KiB %s", r.base, r.end(), r.length >> 10,
                  mem_type_name(r.type));
}

void apply_params() {
    if (auto lvl = params().get("loglevel")) {
        LogLevel level;
        if (log_parse_level(lvl->data(), lvl->size(), level)) log_set_level(level);
        else log_warn("cmdline: loglevel must be error, warn, info or debug");
    }
    if (auto p = params().get("panic")) panic_set_halt_only(*p == "halt");
    if (auto u = params().get("ubsan")) ubsan_set_panic(*u == "panic");
}

void setup_memory() {
    g_memory_map = g_boot_info.memmap;
    g_memory_map.normalize();
    // The low 1 MiB stays out of the general allocator: the AP trampoline needs a page there,
    // and firmware keeps data in it that some machines do not mark as reserved.
    g_memory_map.reserve(0, 1ull << 20, MemType::Trampoline);
    const uint64_t image_start = kernel_image_virt_to_phys(__kernel_start);
    g_memory_map.reserve(layout::kKernelLoadPhys,
                     kernel_image_virt_to_phys(__kernel_end) - layout::kKernelLoadPhys,
                     MemType::Kernel);
    (void)image_start;
    if (g_memory_map.overflowed()) log_warn("mem: memory map too fragmented; small usable pieces dropped");
    log_memory_map(g_memory_map);
    pmm::init(g_memory_map);
    boot_step("pages");
    vmm::init(g_memory_map);
    boot_step("paging");
    heap_init(param_bool("heap.poison", true));
    percpu_init_boot_cpu();
    boot_step("heap");
}

[[noreturn]] void kernel_main_on_guarded_stack();
void main_task(void*);

/// Moves the boot CPU off its static boot stack onto a guarded one, so that a stack overflow
/// hits a guard page instead of silently corrupting .bss.
[[noreturn]] void switch_to_guarded_stacks() {
    CpuData* cpu = this_cpu();
    // Onto the boot CPU's own top-level table first: its IST stacks are in its private region.
    if (!x86::cpu_private_setup(*cpu)) panic("boot: cannot build the boot CPU's own page tables");
    x86::write_cr3(cpu->page_root);
    if (!x86::alloc_cpu_stacks(*cpu)) panic("boot: cannot allocate the boot CPU's stacks");
    // The TSS is live: patch in the new IST stacks (the early ones are static and stay valid
    // until each slot is replaced).
    for (int i = 0; i < x86::kIstCount; ++i)
        x86::set_ist(cpu->tables, static_cast<x86::IstSlot>(i + 1), cpu->ist_tops[i]);
    asm volatile("movq %0, %%rsp\n\t"
                 "xorl %%ebp, %%ebp\n\t"
                 "call *%1"
                 :
                 : "r"(cpu->kernel_stack_top), "r"(&kernel_main_on_guarded_stack)
                 : "memory");
    __builtin_unreachable();
}

[[noreturn]] void kernel_main_on_guarded_stack() {
    x86::disable_legacy_pic();
    x86::lapic_init_boot_cpu(params().get("apic") != std::optional<std::string_view>("xapic"));
    CpuData* bsp = this_cpu();
    bsp->apic_id = x86::lapic_id();
    bsp->cr0_seen = x86::read_cr0();
    bsp->cr4_seen = x86::read_cr4();
    bsp->efer_seen = x86::rdmsr(x86::msr::kEfer);
    bsp->boot_stage.store(BootStage::Online);
    bsp->online.store(true);
    per_cpu(g_cpu_probe) = bsp->cpu_id;
    bsp->self_check = this_cpu() == bsp && per_cpu_on(bsp, g_cpu_probe) == 0;
    boot_step("lapic");
    x86::lapic_timer_calibrate();
    boot_step("lapic-timer");
    x86::sti();

    ipi_init();
    ipi_note_logical_id(bsp);
    call_limits_init();
    if (!call_slots_setup(bsp->cpu_id, 0)) panic("boot: no memory for the boot CPU's call slots");
    boot_step("ipi");
    kernel_address_space().active.set(bsp->cpu_id);
    const PlatformTopology& topo = platform_acpi_init(bsp->apic_id);
    irq_init(); // every I/O APIC pin masked before anything is routed
    boot_step("acpi");
    // NUMA first, so each CPU's data and per-CPU area come from its own node.
    {
        static uint32_t apic_ids[kMaxCpus];
        uint32_t n = 0;
        apic_ids[n++] = bsp->apic_id;
        for (const ApTarget& t : topo.aps)
            if (n < kMaxCpus) apic_ids[n++] = t.apic_id;
        for (const ApTarget& t : topo.hotplug_slots) // numbered as smp_prepare numbers them
            if (n < kMaxCpus) apic_ids[n++] = t.apic_id;
        numa_init({apic_ids, n});
    }
    pmm::split_by_node(); // one allocator per node, before any CPU cache holds a block
    smp_prepare(topo.aps, topo.hotplug_slots);
    numa_bind_cpus(); // the CPU table is final: every CPU learns its node before it runs
    // The CPU table is final: per-CPU caches and the scheduler cover every CPU before the APs
    // start, since each sets up its own scheduler the moment it is online.
    pmm::enable_cpu_caches();
    heap_enable_cpu_caches();
    kstack_enable_cpu_caches();
    sched_init();
    boot_step("ap-prep");
    const SmpBootReport rep = smp_start();
    // The "all but self" shorthand reaches every processor on the bus: exact only when every
    // processor the firmware lists is one of ours and online.
    const bool exact = topo.valid && topo.not_started == 0 && rep.online == rep.present &&
                       cpus_online() == cpu_count() && param_bool("ipi.broadcast", true);
    ipi_set_broadcast_exact(exact);
    if (cpu_count() > 1)
        log_info("ipi: IPIs to every other CPU %s", exact ? "use the all-but-self shorthand"
                                                          : "go one by one (not every listed CPU runs)");

    // From here on this context is the boot CPU's idle task; the rest runs as the main task,
    // once every CPU has set up its own scheduler.
    sched_start(main_task, nullptr);
}

/// The first task: runs the test or bench mode, or finishes a normal boot.
void main_task(void*) {
    const auto heap = heap_stats();
    boot_step("schedulers");
    log_info("boot: up in %lu ms: %u CPUs running tasks, %lu MiB free, heap %lu pages",
             boot_elapsed_ms(), sched_cpus_ready(), pmm::free_bytes() >> 20, heap.pages);
    boot_trace_log();
    // Before anything compares TSC readings across CPUs (its own line reports what it found).
    if (cpus_online() > 1) x86::tsc_sync_check_all();
    hotplug_apply_boot_param(); // cpu.offline=LIST
    acpi_cpu_hotplug_init();    // QEMU's device_add / device_del of CPUs

    // test= and bench= end the run with a status the host runner reads.
    struct Mode {
        const char* key;
        bool (*run)(const char* selection);
    };
    static constexpr Mode kModes[] = {{"test", ktest::run}, {"bench", kbench::run}};
    for (const Mode& m : kModes) {
        if (auto sel = params().get(m.key)) {
            char selection[256];
            const size_t n = sel->size() < sizeof(selection) - 1 ? sel->size() : sizeof(selection) - 1;
            memcpy(selection, sel->data(), n);
            selection[n] = 0;
            const bool ok = m.run(selection);
            if (param_bool("sched.stats", false)) sched_log_stats();
            log_call_health();
            sched_log_health();
            x86::machine_exit(ok ? x86::ExitStatus::Success : x86::ExitStatus::TestsFailed);
        }
    }
    log_info("cohort: boot complete");
    if (param_bool("exit", false)) x86::machine_exit(x86::ExitStatus::Success);
    console_run(); // returns only if there can be no console (logged): then idle
}

} // namespace

// The compiler-generated constructors carry no KCFI type id (clang gives one only to functions
// the source declares), so this one loop is left unchecked; the array is in read-only data.
static COHORT_NO_KCFI void run_static_constructors() {
    for (auto* f = __init_array_start; f != __init_array_end; ++f) (*f)();
}

extern "C" [[noreturn]] COHORT_NO_STACK_PROTECTOR void kernel_main(uint32_t protocol,
                                                                  uint32_t info_phys) {
    CpuData* bsp = &g_bsp_cpu_data;
    bsp->stack_canary = arch::random_u64(); // before GSBASE points here: nothing reads it yet
    bsp->cpu_id = 0;
    boot_trace_start();
    bsp->kernel_stack_bottom = reinterpret_cast<uint64_t>(bsp_boot_stack_bottom);
    bsp->kernel_stack_top = reinterpret_cast<uint64_t>(bsp_boot_stack_top);
    install_cpu_data(bsp);
    lock_debug_init();
    run_static_constructors();

    log_init_console();
    x86::cpu_features_init();
    x86::tsc_init();
    boot_step("tsc");
    lock_debug_start_wait_limit();
    const x86::CpuFeatures& cpu = x86::boot_cpu_features();
    log_info("Cohort kernel booting on %s (%s family %u model %u)", cpu.brand[0] ? cpu.brand : "?",
             cpu.vendor, cpu.family, cpu.model);

    uint64_t ist_tops[x86::kIstCount];
    for (int i = 0; i < x86::kIstCount; ++i)
        ist_tops[i] = reinterpret_cast<uint64_t>(g_early_ist[i]) + kEarlyIstSize;
    x86::load_cpu_tables(bsp->tables, ist_tops);
    x86::idt_init();
    x86::idt_load();

    if (!parse_boot_info(static_cast<BootProtocol>(protocol), info_phys, g_boot_info))
        panic("boot: the loader's information (protocol %u at %#x) is unusable", protocol,
              info_phys);
    log_info("boot: loader '%s', command line '%s'%s", g_boot_info.loader_name, g_boot_info.cmdline,
             g_boot_info.cmdline_truncated ? " (truncated)" : "");
    params_init(g_boot_info.cmdline);
    apply_params();
    boot_step("loader");
    log_info("cpu: TSC %lu.%03lu MHz (%s); enabled %s", tsc_hz() / 1000000,
             (tsc_hz() / 1000) % 1000, x86::tsc_source_name(x86::tsc_source()),
             x86::enable_security_features());
    x86::cr_pin_enable(); // every CPU from here on, those started later included

    setup_memory();
    switch_to_guarded_stacks();
}

} // namespace cohort
