// SMP bring-up: every CPU the firmware describes comes online, each one's per-CPU data is its
// own, and all of them run with the same security state. Configurations pass what QEMU was
// told (test.expect_cpus, test.expect_disabled) so the tests compare against the machine, not
// against what the kernel itself believes.
#include <cstring>

#include "arch/x86/cpu.h"
#include "arch/x86/cpu_features.h"
#include "arch/x86/cpu_private.h"
#include "arch/x86/cpu_stacks.h"
#include "arch/x86/gdt.h"
#include "arch/x86/lapic.h"
#include "arch/x86/tsc.h"
#include "arch/x86/tsc_sync.h"
#include "boot/params.h"
#include "debug/log.h"
#include "mm/kstack.h"
#include "mm/phys.h"
#include "mm/vmm.h"
#include "platform/acpi.h"
#include "smp/call.h"
#include "smp/cpu.h"
#include "smp/percpu.h"
#include "sched/sched.h"
#include "smp/smp.h"
#include "test/ktest.h"

namespace cohort {
namespace {

bool injected_failure() {
    return params().has("smp.inject_stall") || params().has("smp.inject_feature_mismatch") ||
           params().has("smp.inject_trampoline_corruption");
}

KTEST(smp, all_enabled_cpus_online) {
    const PlatformTopology& topo = platform_topology();
    const SmpBootReport& rep = smp_boot_report();
    KASSERT(topo.valid);
    uint64_t expected = 0;
    if (params().get_u64("test.expect_cpus", expected) == CommandLine::Status::Ok) {
        KEXPECT_EQ(topo.madt.enabled, expected);
    } else {
        expected = topo.madt.enabled;
    }
    const uint64_t max_cpus = param_u64("smp.max_cpus", UINT32_MAX);
    if (expected > max_cpus) expected = max_cpus;
    ktest::note("%u of %u CPUs online in %lu us", rep.online, rep.present, rep.duration_us);
    if (injected_failure()) return ktest::skip("a failure was injected (see smp.injected_*)");
    KEXPECT_EQ(uint64_t{rep.online}, expected);
    KEXPECT_EQ(uint64_t{cpus_online()}, expected);
    KEXPECT_EQ(rep.failed, 0u);
    // Every CPU id is a running CPU, or one kept for a CPU plugged in later (at the end).
    KEXPECT_EQ(cpu_count(), rep.online + rep.slots);
    for (uint32_t i = 0; i < cpu_count(); ++i) {
        const bool slot = i >= rep.online;
        KEXPECT_EQ(cpu_by_id(i)->online.load(), !slot);
        KEXPECT(cpu_by_id(i)->boot_stage.load() == (slot ? BootStage::Absent : BootStage::Online));
    }
}

// Checked live on each CPU by the CPU itself: what its GSBASE MSR holds, what %gs:0 reads, and
// a per-CPU variable written and read back through %gs now (not the fields the boot CPU wrote
// when it made the structure, which would prove nothing).
struct SelfView {
    uint64_t gs_base;
    const CpuData* gs0;
    uint32_t id_seen;
    uint64_t probe_back;
    uint64_t magic;
};
SelfView g_self[kMaxCpus];
COHORT_PERCPU(uint64_t, g_live_probe);

void look_at_myself(void*) {
    CpuData* me = this_cpu();
    SelfView& v = g_self[me->cpu_id];
    v.gs_base = x86::rdmsr(x86::msr::kGsBase);
    v.gs0 = me;
    v.id_seen = me->cpu_id;
    per_cpu(g_live_probe) = 0x5e1f'0000ull + me->cpu_id;
    v.probe_back = per_cpu(g_live_probe);
    v.magic = me->magic;
}

KTEST(smp, this_cpu_is_itself_on_every_cpu) {
    for (auto& v : g_self) v = {};
    KASSERT(call_on_all(look_at_myself, nullptr, true, true) == CallStatus::Ok);
    for (uint32_t i = 0; i < cpu_count(); ++i) {
        const CpuData* c = cpu_by_id(i);
        if (!c->online.load()) continue;
        const SelfView& v = g_self[i];
        KEXPECT_EQ(v.gs_base, reinterpret_cast<uint64_t>(c)); // the MSR, as the CPU reads it
        KEXPECT_EQ(v.gs0, c);                                   // %gs:0 agrees
        KEXPECT_EQ(v.id_seen, i);
        KEXPECT_EQ(v.magic, kCpuDataMagic);
        KEXPECT_EQ(v.probe_back, 0x5e1f'0000ull + i);
        // Written through %gs on that CPU, seen in that CPU's area from here: no two CPUs
        // share a per-CPU area.
        KEXPECT_EQ(per_cpu_on(c, g_live_probe), 0x5e1f'0000ull + i);
        KEXPECT(c->self_check);
        KEXPECT_EQ(per_cpu_on(c, g_cpu_probe), i);
    }
}

KTEST(smp, apic_ids_match_the_madt) {
    const PlatformTopology& topo = platform_topology();
    KASSERT(topo.valid);
    KEXPECT_EQ(this_cpu()->apic_id, x86::lapic_id());
    KASSERT(topo.madt.bsp.has_value());
    KEXPECT_EQ(topo.madt.cpus.items()[*topo.madt.bsp].apic_id, x86::lapic_id());
    for (uint32_t i = 0; i < cpu_count(); ++i) {
        const CpuData* c = cpu_by_id(i);
        bool found = false;
        for (const acpi::CpuEntry& e : topo.madt.cpus.items())
            found = found || (e.apic_id == c->apic_id && e.uid == c->acpi_uid);
        KEXPECT(found);
        for (uint32_t j = 0; j < i; ++j) KEXPECT(cpu_by_id(j)->apic_id != c->apic_id);
    }
}

KTEST(smp, security_state_identical_on_all_cpus) {
    // What each CPU set up at bring-up and what it has now, read live by each CPU.
    struct Live {
        uint64_t cr0, cr4, efer;
    };
    static Live live[kMaxCpus];
    for (auto& l : live) l = {};
    KASSERT(call_on_all([](void*) {
        live[this_cpu()->cpu_id] = {x86::read_cr0(), x86::read_cr4(), x86::rdmsr(x86::msr::kEfer)};
    }, nullptr, true, true) == CallStatus::Ok);
    const CpuData* bsp = cpu_by_id(0);
    for (uint32_t i = 0; i < cpu_count(); ++i) {
        const CpuData* c = cpu_by_id(i);
        if (!c->online.load()) continue;
        KEXPECT_EQ(live[i].cr0, live[0].cr0);
        KEXPECT_EQ(live[i].cr4, live[0].cr4);
        KEXPECT_EQ(live[i].efer, live[0].efer);
        if (i == 0) continue;
        KEXPECT_EQ(c->cr0_seen, bsp->cr0_seen);
        KEXPECT_EQ(c->cr4_seen, bsp->cr4_seen);
        KEXPECT_EQ(c->efer_seen, bsp->efer_seen);
        KEXPECT_EQ(live[i].cr4, c->cr4_seen); // nothing changed it since
    }
}

KTEST(smp, ist_stacks_only_for_slots_in_use) {
    // The gates use slots 1..kIstDebug (interrupts.cc): a guarded stack of kIstStackSize
    // each, in the CPU's private region. The TSS's other slots: no stack, nothing allocated.
    constexpr int kUsed = x86::kIstDebug;
    for (uint32_t i = 0; i < cpu_count(); ++i) {
        const CpuData* c = cpu_by_id(i);
        if (!c->online.load()) continue;
        for (int slot = 0; slot < 7; ++slot) {
            const uint64_t top = c->tables.tss.ist[slot]; // a copy: the TSS is packed
            if (slot >= kUsed) {
                KEXPECT_EQ(top, uint64_t{0});
                continue;
            }
            KEXPECT_EQ(top, c->ist_tops[slot]);
            KEXPECT_EQ(top, x86::cpu_private_ist_top(slot));
            char where[160];
            KEXPECT(x86::cpu_private_describe(top - x86::kIstStackSize - 1, where, sizeof(where)));
            KEXPECT(strstr(where, "guard page below IST stack") != nullptr);
        }
    }
}

KTEST(smp, trampoline_wiped_and_unmapped) {
    const uint64_t page = smp_trampoline_page();
    if (page == 0) return ktest::skip("no AP was started");
    const uint8_t* p = phys_to_virt<uint8_t>(page);
    size_t nonzero = 0;
    for (size_t i = 0; i < 8192; ++i) nonzero += p[i] != 0;
    KEXPECT_EQ(nonzero, size_t{0});
    KEXPECT_EQ(vmm::translate(page), UINT64_MAX);
    KEXPECT_EQ(vmm::translate(0x1000), UINT64_MAX);
}

KTEST(smp, cpus_not_enabled_are_left_alone) {
    uint64_t expected = 0;
    if (params().get_u64("test.expect_disabled", expected) != CommandLine::Status::Ok)
        return ktest::skip("needs test.expect_disabled=N");
    const PlatformTopology& topo = platform_topology();
    KEXPECT_EQ(uint64_t{topo.madt.disabled + topo.madt.online_capable}, expected);
    KEXPECT_EQ(uint64_t{topo.not_started}, expected);
    KEXPECT_EQ(smp_boot_report().failed, 0u);
    // QEMU's MADT (revision 1) lists the CPUs -smp ...,maxcpus= may add later as disabled: each
    // is a hot-add slot with its per-CPU data, not running.
    if (topo.madt_revision < 5) {
        KEXPECT_EQ(uint64_t{smp_boot_report().slots}, expected);
        KEXPECT_EQ(uint64_t{topo.hotplug_slots.size()}, expected);
        for (uint32_t i = cpus_online(); i < cpu_count(); ++i) {
            KEXPECT(!cpu_by_id(i)->online.load());
            KEXPECT(!sched_cpu_started(i));
        }
    }
}

KTEST(smp, injected_stall_is_reported) {
    auto v = params().get("smp.inject_stall");
    if (!v) return ktest::skip("needs smp.inject_stall=APICID[@stage]");
    const SmpBootReport& rep = smp_boot_report();
    KEXPECT_EQ(rep.failed, 1u);
    KEXPECT_EQ(rep.online + 1, rep.present);
    KEXPECT(log_contains_since(0, "failed at stage stalled on request"));
    uint32_t stalled = 0;
    for (uint32_t i = 0; i < cpu_count(); ++i)
        stalled += cpu_by_id(i)->boot_stage.load() == BootStage::Stalled;
    KEXPECT_EQ(stalled, 1u);
}

KTEST(smp, injected_feature_mismatch_is_refused) {
    if (!params().has("smp.inject_feature_mismatch"))
        return ktest::skip("needs smp.inject_feature_mismatch=APICID");
    KEXPECT_EQ(smp_boot_report().failed, 1u);
    KEXPECT(log_contains_since(0, "refused: CPU features differ"));
    // The refusal names what is missing: the injection takes MCE away.
    KEXPECT(log_contains_since(0, "lacks what the boot CPU uses: "));
    if (x86::boot_cpu_features().mce) KEXPECT(log_contains_since(0, "uses: MCE"));
}

KTEST(smp, tsc_warp_test_passed_on_every_cpu) {
    if (params().has("smp.inject_tsc_warp"))
        return ktest::skip("a warp was injected (smp.injected_tsc_warp_is_reported)");
    uint32_t aps = 0, tested = 0;
    uint64_t turns = 0;
    for (uint32_t i = 1; i < cpu_count(); ++i) {
        if (!cpu_by_id(i)->online.load()) continue;
        ++aps;
        const x86::TscSyncStatus st = x86::tsc_sync_status(i);
        if (st.sampled_out) continue;
        KEXPECT(st.tested);
        KEXPECT_EQ(st.warp, uint64_t{0});
        tested += st.tested;
        turns += st.turns;
    }
    // Every AP up to 32, then a sample of 32.
    KEXPECT_EQ(tested, aps < 32 ? aps : 32u);
    KEXPECT(x86::tsc_synchronized());
    ktest::note("%u APs tested, %lu readings compared", tested, turns);
}

KTEST(smp, injected_tsc_warp_is_reported) {
    uint64_t victim = 0;
    if (params().get_u64("smp.inject_tsc_warp", victim) != CommandLine::Status::Ok)
        return ktest::skip("needs smp.inject_tsc_warp=CPU");
    KASSERT(victim > 0 && victim < cpu_count());
    const x86::TscSyncStatus st = x86::tsc_sync_status(static_cast<uint32_t>(victim));
    KASSERT(st.injected);
    if (st.injected_in_readings)
        ktest::note("the CPU ignored the TSC writes (QEMU's TCG does): the offset was added to "
                    "its readings in the warp test instead");
    KEXPECT(st.tested);
    KEXPECT(st.warp >= x86::kInjectedTscWarp / 2);
    KEXPECT(st.warp <= x86::kInjectedTscWarp * 2);
    KEXPECT(!x86::tsc_synchronized());
    KEXPECT(log_contains_since(0, "TSC is not synchronised with cpu0's"));
    KEXPECT(log_contains_since(0, "may be skewed"));
    ktest::note("cpu%lu: warp of %lu cycles found in %u readings", victim, st.warp, st.turns);
}

KTEST(smp, corrupted_trampoline_aborts_bring_up) {
    if (!param_bool("smp.inject_trampoline_corruption", false))
        return ktest::skip("needs smp.inject_trampoline_corruption=1");
    KEXPECT(smp_boot_report().aborted);
    KEXPECT_EQ(cpus_online(), 1u);
    KEXPECT(log_contains_since(0, "trampoline copy differs"));
}

} // namespace
} // namespace cohort

namespace cohort {
namespace {

KTEST(smp, runtime_per_cpu_allocation_is_private_and_zeroed) {
    PerCpu<uint64_t> a = percpu_alloc<uint64_t>();
    PerCpu<uint64_t> b = percpu_alloc<uint64_t>();
    KASSERT(a.valid() && b.valid());
    KEXPECT(&a.get() != &b.get());
    for (uint32_t i = 0; i < cpu_count(); ++i) {
        KEXPECT_EQ(a.on(cpu_by_id(i)), uint64_t{0});
        a.on(cpu_by_id(i)) = 1000 + i;
    }
    for (uint32_t i = 0; i < cpu_count(); ++i) {
        KEXPECT_EQ(a.on(cpu_by_id(i)), uint64_t{1000 + i});
        KEXPECT_EQ(b.on(cpu_by_id(i)), uint64_t{0});
        for (uint32_t j = 0; j < i; ++j) KEXPECT(&a.on(cpu_by_id(j)) != &a.on(cpu_by_id(i)));
    }
    KEXPECT_EQ(a.get(), uint64_t{1000 + this_cpu()->cpu_id});
}

} // namespace
} // namespace cohort
