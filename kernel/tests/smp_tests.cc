// SMP bring-up: every CPU the firmware describes comes online, each one's per-CPU data is its
// own, and all of them run with the same security state. Configurations pass what QEMU was
// told (test.expect_cpus, test.expect_disabled) so the tests compare against the machine, not
// against what the kernel itself believes.
#include <cstring>

#include "arch/x86/cpu.h"
#include "arch/x86/lapic.h"
#include "boot/params.h"
#include "debug/log.h"
#include "mm/phys.h"
#include "mm/vmm.h"
#include "platform/acpi.h"
#include "smp/cpu.h"
#include "smp/percpu.h"
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
    for (uint32_t i = 0; i < cpu_count(); ++i) {
        KEXPECT(cpu_by_id(i)->online.load());
        KEXPECT(cpu_by_id(i)->boot_stage.load() == BootStage::Online);
    }
}

KTEST(smp, this_cpu_is_itself_on_every_cpu) {
    for (uint32_t i = 0; i < cpu_count(); ++i) {
        const CpuData* c = cpu_by_id(i);
        if (!c->online.load()) continue;
        KEXPECT_EQ(c->cpu_id, i);
        KEXPECT_EQ(c->self, c);
        KEXPECT_EQ(c->magic, kCpuDataMagic);
        KEXPECT(c->self_check);
        // Each CPU wrote its own id into its own copy of the same per-CPU variable.
        KEXPECT_EQ(per_cpu_on(c, g_cpu_probe), i);
    }
    KEXPECT_EQ(per_cpu(g_cpu_probe), this_cpu()->cpu_id);
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
    const CpuData* bsp = cpu_by_id(0);
    for (uint32_t i = 1; i < cpu_count(); ++i) {
        const CpuData* c = cpu_by_id(i);
        if (!c->online.load()) continue;
        KEXPECT_EQ(c->cr0_seen, bsp->cr0_seen);
        KEXPECT_EQ(c->cr4_seen, bsp->cr4_seen);
        KEXPECT_EQ(c->efer_seen, bsp->efer_seen);
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
