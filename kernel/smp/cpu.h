// Per-CPU data reached through GSBASE. Every CPU's GSBASE points at its own CpuData, whose
// first field points to itself, so `this_cpu()` is one %gs-relative load (no MSR read).
//
// Layout: the first cache lines hold what is set once at bring-up and then only read (by this
// CPU and others); counters that this CPU writes constantly live on their own cache line, so
// other CPUs reading the read-mostly part do not bounce it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "arch/arch.h"
#include "debug/audit.h"
#include "smp/ipi.h"

namespace cohort {

struct FaultCatcher;
struct Task;

/// Where a CPU is in its bring-up; the last value reached is reported if it never comes online.
enum class BootStage : uint32_t {
    NotStarted = 0,
    InitSent,        // BSP sent INIT
    SipiSent,        // BSP sent the startup IPI(s)
    LongMode,        // the AP reached 64-bit code and found its CpuData by APIC id
    Tables,          // GDT, TSS and IDT loaded, GSBASE set
    Features,        // CPUID checked against the boot CPU, security features enabled
    Lapic,           // local APIC enabled in the boot CPU's mode
    Online,          // counted online: may receive IPIs
    FeatureMismatch, // refused to come online (CPUID differs from the boot CPU)
    Stalled,         // stopped on purpose (smp.inject_stall)
    Offline,         // taken offline (CPU hotplug): halted until INIT-SIPI-SIPI
    Absent,          // an empty hot-add slot, or a CPU ejected (ACPI hot-remove)
};
const char* boot_stage_name(BootStage s);

/// Counters this CPU updates (its own cache line).
struct alignas(64) CpuCounters {
    std::atomic<uint64_t> interrupts{0};
    std::atomic<uint64_t> irq_cycles{0}; // TSC cycles in (outermost) interrupt handlers
    std::atomic<uint64_t> context_switches{0};
    std::atomic<uint64_t> ipis_sent[kIpiKinds]{};     // by IpiKind, to any CPU
    std::atomic<uint64_t> self_ipis{0};               // of those, to this CPU itself
    std::atomic<uint64_t> broadcasts{0};              // "all but self" shorthand sends
    std::atomic<uint64_t> cluster_ipis{0};            // x2APIC logical (per-cluster) sends
    std::atomic<uint64_t> ipis_received[kIpiKinds]{}; // by IpiKind
    std::atomic<uint64_t> calls_sent{0};      // remote call requests this CPU queued elsewhere
    std::atomic<uint64_t> calls_run{0};       // remote call requests executed here
    std::atomic<uint64_t> calls_rejected{0};  // requests that failed validation
    std::atomic<uint64_t> calls_throttled{0}; // requests the rate limit held back (once each)
    std::atomic<uint64_t> unhandled_irqs{0};  // interrupts on a vector with no handler (EOI'd)
    std::atomic<uint64_t> calls_resent{0};    // call IPIs sent again to a target slow to answer
    std::atomic<uint64_t> calls_stranded{0};  // queue found non-empty with no call IPI pending
    std::atomic<uint64_t> calls_refused_busy{0}; // asynchronous calls refused: credit used up
    std::atomic<uint64_t> tlb_flushes{0};        // shootdown requests this CPU carried out
};

struct alignas(64) CpuData {
    // --- read by every CPU, written only at bring-up and on- or offline: one cache line that
    // no switch, interrupt or lock dirties ---
    CpuData* self;            // %gs:0
    uint64_t percpu_offset;   // %gs:8: add to a per-CPU variable's address (smp/percpu.h)
    uint64_t magic;           // kCpuDataMagic while the structure is live
    uint32_t cpu_id;          // logical id: 0 is the boot CPU, then MADT order
    uint32_t apic_id;         // 32-bit so x2APIC ids fit
    uint32_t acpi_uid;
    uint32_t x2apic_ldr;      // logical ID in x2APIC mode (cluster << 16 | bit), else 0
    uint32_t node;            // NUMA node (numa/numa.h), 0 until numa_init
    std::atomic<BootStage> boot_stage; // the BSP and this CPU write it during bring-up only
    std::atomic<bool> online;
    uint64_t ist_tops[arch::kIstCount]; // read-mostly too (bring-up), on the next line
    // This CPU's own top-level page table (physical) and its private pages (IST stacks and
    // CPU-private variables: one physical block, removed from the direct map). Not secrets:
    // the fault report names the owner of an address, and the tests aim at it.
    uint64_t page_root;
    uint64_t private_phys;
    uint32_t private_pages;

    // --- written by this CPU on every switch, interrupt or lock ---
    alignas(64) uint64_t kernel_stack_top;
    uint64_t kernel_stack_bottom; // lowest usable address of the current kernel stack
    FaultCatcher* fault_catcher; // recovery point before the scheduler runs (then: the task's)
    Task* current_task;          // filled in by the scheduler
    uint32_t exception_depth;    // nested exception reports on this CPU
    uint32_t irq_depth;
    uint32_t nmi_depth; // NMI handlers do not nest, but they interrupt everything else
    uint32_t locks_held; // spinlocks held (sync/owner.h): no preemption while non-zero
    // The running task's stack-protector canary: compiled code reads %gs:kStackCanaryOffset
    // (-mstack-protector-guard-offset in kernel/CMakeLists.txt). Set on every switch.
    uint64_t stack_canary;
    // Control state as this CPU set it up, recorded for the cross-CPU consistency tests.
    uint64_t cr0_seen, cr4_seen, efer_seen;
    bool self_check; // this_cpu(), GSBASE and per-CPU access were consistent on this CPU

    CpuCounters counters;
    alignas(64) arch::CpuTables tables; // this CPU's GDT and TSS
    AuditLog audit; // configuration writes made on this CPU (debug/audit.h)
};
static_assert(offsetof(CpuData, self) == 0, "this_cpu() loads %gs:0");
static_assert(offsetof(CpuData, percpu_offset) == 8, "per-CPU variables load %gs:8");
// What other CPUs read (identity, online, APIC ids for IPIs) shares no cache line with what
// this CPU writes all the time (issue 13: a remote IPI or placement decision must not pull a
// line the owner keeps dirty).
static_assert(offsetof(CpuData, online) < 64 && offsetof(CpuData, apic_id) < 64 &&
              offsetof(CpuData, node) < 64 &&
              offsetof(CpuData, x2apic_ldr) < 64 && offsetof(CpuData, cpu_id) < 64);
static_assert(offsetof(CpuData, kernel_stack_top) % 64 == 0 &&
              offsetof(CpuData, kernel_stack_top) >= offsetof(CpuData, ist_tops) + sizeof(uint64_t) * arch::kIstCount);
static_assert(offsetof(CpuData, counters) % 64 == 0);
/// Where the compiler's stack protector finds the canary (kernel/CMakeLists.txt passes it).
inline constexpr size_t kStackCanaryOffset = 176;
static_assert(offsetof(CpuData, stack_canary) == kStackCanaryOffset,
              "kernel/CMakeLists.txt: -mstack-protector-guard-offset must match");

constexpr uint64_t kCpuDataMagic = 0xc0407c0d'a7a5e1f0;

/// The running CPU's data. Valid from the first instruction of kernel_main on the BSP and from
/// the first C++ instruction on an AP.
inline CpuData* this_cpu() { return reinterpret_cast<CpuData*>(arch::cpu_base_load<0>()); }

/// The boot CPU's data, statically allocated so it exists before any allocator.
extern CpuData g_bsp_cpu_data;

/// Points GSBASE at `cpu` (writes IA32_GS_BASE) after filling self and magic.
void install_cpu_data(CpuData* cpu);

/// All CPUs the kernel knows (present in the MADT and chosen to start, and hot-add slots), by
/// logical id. Filled during SMP bring-up; before that only the boot CPU is listed.
uint32_t cpu_count();

// --- Reaching another CPU's data (docs/security.md, "Validated cross-CPU access") -----------
// Every access to a CPU's CpuData (and through it its per-CPU variables) starts from one of
// these. They check the id range and the structure's magic, and the last one the CPU's state;
// a bad access is a panic naming the caller, never a wild read.

/// CPU `cpu_id`'s data. An id past the end or data that is not live (magic) panics.
CpuData* cpu_by_id(uint32_t cpu_id);
/// The same for an id from outside (the console, a lock's owner field): nullptr when there is
/// no such CPU; data that is not live still panics.
CpuData* cpu_lookup(uint32_t cpu_id);
/// A CpuData pointer kept for later (a waiter's CPU, an IPI target): panics unless live.
const CpuData* cpu_validate(const CpuData* cpu);
/// For work that needs the CPU running (a timer or interrupt moved to it, an interrupt sent to
/// it): as cpu_by_id, and panics unless it is online, coming up or going down.
CpuData* cpu_running(uint32_t cpu_id);
/// Number of CPUs online (that have completed bring-up).
uint32_t cpus_online();

namespace detail {
void set_cpu_table(CpuData** table, uint32_t count);
void mark_online(CpuData* cpu);
void mark_offline(CpuData* cpu); // CPU hotplug
} // namespace detail

} // namespace cohort
