// ACPI discovery in the running kernel, checked against what QEMU was configured with
// (test.expect_* words from the ctest configuration).
#include "boot/bootinfo.h"
#include "boot/params.h"
#include "arch/x86/lapic.h"
#include "debug/log.h"
#include "platform/acpi.h"
#include "smp/cpu.h"
#include "test/ktest.h"

namespace cohort {
namespace {

KTEST(acpi, madt_describes_this_machine) {
    const PlatformTopology& t = platform_topology();
    KASSERT(t.valid);
    uint64_t cpus = 0, disabled = 0;
    if (params().get_u64("test.expect_cpus", cpus) == CommandLine::Status::Ok)
        KEXPECT_EQ(uint64_t{t.madt.enabled}, cpus);
    if (params().get_u64("test.expect_disabled", disabled) == CommandLine::Status::Ok)
        KEXPECT_EQ(uint64_t{t.madt.disabled + t.madt.online_capable}, disabled);
    KEXPECT(t.madt.complete);
    KEXPECT_EQ(t.madt.skipped, size_t{0});
    // What every PC-compatible QEMU machine has: the LAPIC at its architectural address, one
    // IOAPIC, the legacy PICs (PCAT_COMPAT), and the timer rerouted from IRQ 0 to GSI 2.
    KEXPECT_EQ(t.lapic_address, uint64_t{0xfee00000});
    KEXPECT_EQ(t.madt.io_apics.size(), size_t{1});
    KEXPECT(t.madt.header.pcat_compat());
    bool timer_override = false;
    for (const acpi::InterruptOverride& o : t.madt.overrides.items())
        timer_override = timer_override || (o.source_irq == 0 && o.gsi == 2);
    KEXPECT(timer_override);
    KASSERT(t.madt.bsp.has_value());
    KEXPECT_EQ(t.madt.cpus.items()[*t.madt.bsp].apic_id, x86::lapic_id());
}

KTEST(acpi, root_table_as_the_firmware_gives_it) {
    const PlatformTopology& t = platform_topology();
    KASSERT(t.valid);
    const auto want = params().get("test.expect_acpi_root");
    if (!want) return ktest::skip("needs test.expect_acpi_root=rsdt|xsdt");
    KEXPECT(*want == (t.root_kind == acpi::RootKind::Xsdt ? "xsdt" : "rsdt"));
    // SeaBIOS hands out a revision 0 RSDP (RSDT only); OVMF revision 2 with an XSDT.
    KEXPECT_EQ(t.rsdp_revision >= 2, t.root_kind == acpi::RootKind::Xsdt);
    ktest::note("RSDP revision %u from the %s", t.rsdp_revision, t.rsdp_source);
}

KTEST(acpi, numa_layout_matches_the_machine) {
    const PlatformTopology& t = platform_topology();
    uint64_t nodes = 0;
    if (params().get_u64("test.expect_numa_nodes", nodes) != CommandLine::Status::Ok)
        return ktest::skip("needs test.expect_numa_nodes=N");
    KASSERT(t.has_srat);
    KEXPECT_EQ(uint64_t{t.srat.nodes.size()}, nodes);
    uint64_t cpus = 0, bytes = 0;
    // A node may lack CPUs or memory (legal firmware; numa.* checks each node's share).
    for (const acpi::NumaNode& n : t.srat.nodes.items()) {
        cpus += n.cpus;
        bytes += n.memory_bytes;
    }
    KEXPECT_EQ(cpus, uint64_t{t.madt.enabled});
    // Every usable byte the firmware reported lies in some node's ranges.
    KEXPECT(bytes >= g_memory_map.total(MemType::Usable));
    uint64_t distance = 0;
    if (params().get_u64("test.expect_numa_distance", distance) == CommandLine::Status::Ok) {
        KASSERT(t.has_slit);
        KEXPECT_EQ(t.slit.localities(), nodes);
        for (uint64_t i = 0; i < nodes; ++i)
            for (uint64_t j = 0; j < nodes; ++j)
                KEXPECT_EQ(uint64_t{*t.slit.distance(i, j)}, i == j ? uint64_t{10} : distance);
    }
}

} // namespace
} // namespace cohort

namespace cohort {
namespace {

// Run with acpi.rsdp pointing at memory that holds no RSDP: the kernel must say why and carry
// on with the boot CPU alone instead of crashing.
KTEST(acpi, unusable_tables_fall_back_to_one_cpu) {
    if (!param_bool("test.expect_acpi_fallback", false))
        return ktest::skip("needs acpi.rsdp=<bad address> test.expect_acpi_fallback=1");
    KEXPECT(!platform_topology().valid);
    KEXPECT_EQ(cpus_online(), 1u);
    KEXPECT(log_contains_since(0, "booting with one CPU"));
}

} // namespace
} // namespace cohort
