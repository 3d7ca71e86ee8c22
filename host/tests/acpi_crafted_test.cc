// Crafted tables for what the real corpus lacks: online-capable CPUs, x2APIC ids above 255,
// types 3 and 5, malformed subtables, bad checksums, duplicate ids, root-table fallbacks.
#include "acpi/madt.h"
#include "acpi/srat.h"
#include "acpi/tables.h"
#include "smp/cpu_list.h"
#include "smp/cpumask.h"
#include "phys_image.h"
#include "table_builder.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace cohort::acpi;
using cohort::host::PhysImage;

using Builder = cohort::host::TableBuilder;

// SDT header with length and checksum fixed up by finish().
Builder sdt(const char* sig, uint8_t revision) {
    return cohort::host::sdt_header(sig, revision, "COHORT", "TESTTBL", "CHRT");
}

std::vector<uint8_t> finish(Builder t, int checksum_delta = 0) {
    return cohort::host::finish_table(std::move(t), checksum_delta);
}

Builder madt(uint8_t revision = 5, uint32_t lapic = 0xFEE00000, uint32_t flags = 1) {
    Builder t = sdt("APIC", revision);
    t.u32(lapic).u32(flags);
    return t;
}
void lapic(Builder& t, uint8_t uid, uint8_t id, uint32_t flags) {
    t.u8(0).u8(8).u8(uid).u8(id).u32(flags);
}
void x2apic(Builder& t, uint32_t id, uint32_t uid, uint32_t flags) {
    t.u8(9).u8(16).u16(0).u32(id).u32(flags).u32(uid);
}

struct Parsed {
    std::vector<CpuEntry> cpus = std::vector<CpuEntry>(8192);
    std::vector<IoApic> io = std::vector<IoApic>(16);
    std::vector<InterruptOverride> ovr = std::vector<InterruptOverride>(16);
    std::vector<NmiSource> nmi = std::vector<NmiSource>(16);
    std::vector<LocalApicNmi> lnmi = std::vector<LocalApicNmi>(16);
    std::vector<LocalX2apicNmi> xnmi = std::vector<LocalX2apicNmi>(16);
    Error errs[32];
    ErrorLog log{errs};
    MadtTopology topo;
    bool ok = false;

    explicit Parsed(const std::vector<uint8_t>& bytes, uint32_t bsp = kNoBsp,
                    size_t cpu_capacity = 8192) {
        const auto table = validate_table(bytes, "APIC", log);
        if (!table) return;
        ok = parse_madt(*table, bsp,
                        MadtStorage{std::span(cpus).first(cpu_capacity), io, ovr, nmi, lnmi, xnmi},
                        topo, log);
    }
    bool has(ErrorCode code, uint32_t offset) const {
        for (const Error& e : log.errors())
            if (e.code == code && e.offset == offset) return true;
        return false;
    }
};

TEST(AcpiMadt, OnlineCapableHonouredFromRevision5) {
    Builder t = madt(5);
    lapic(t, 0, 0, 1);
    lapic(t, 1, 1, 2); // online capable
    lapic(t, 2, 2, 0); // disabled
    Parsed p(finish(t), 0);
    ASSERT_TRUE(p.ok);
    ASSERT_EQ(p.topo.cpus.size(), 3u);
    EXPECT_EQ(p.topo.cpus.items()[0].state, CpuState::Enabled);
    EXPECT_EQ(p.topo.cpus.items()[1].state, CpuState::OnlineCapable);
    EXPECT_EQ(p.topo.cpus.items()[2].state, CpuState::Disabled);
    EXPECT_EQ(p.topo.online_capable, 1u);
    EXPECT_EQ(p.topo.enabled, 1u);
    EXPECT_EQ(p.topo.disabled, 1u);

    // Before ACPI 6.3 the bit was reserved: treat the CPU as disabled.
    Builder old = madt(3);
    lapic(old, 1, 1, 2);
    Parsed q(finish(old));
    ASSERT_EQ(q.topo.cpus.size(), 1u);
    EXPECT_EQ(q.topo.cpus.items()[0].state, CpuState::Disabled);
}

TEST(AcpiMadt, ThreeHundredX2apicCpus) {
    Builder t = madt(5);
    lapic(t, 0, 0xFF, 0); // placeholder
    for (uint32_t i = 0; i < 300; ++i)
        x2apic(t, i * 2 + 1, 1000 + i, 1); // odd ids up to 599
    x2apic(t, 0xFFFFFFFF, 77, 0);          // placeholder
    Parsed p(finish(t), 257);
    ASSERT_TRUE(p.ok);
    EXPECT_TRUE(p.topo.complete);
    ASSERT_EQ(p.topo.cpus.size(), 300u);
    EXPECT_EQ(p.topo.enabled, 300u);
    EXPECT_EQ(p.topo.placeholders, 2u);
    EXPECT_EQ(p.topo.cpus.items()[299].apic_id, 599u);
    EXPECT_EQ(p.topo.cpus.items()[299].uid, 1299u);
    EXPECT_EQ(p.topo.cpus.items()[299].source, MadtType::LocalX2apic);
    ASSERT_TRUE(p.topo.bsp);
    EXPECT_EQ(*p.topo.bsp, 128u); // id 257 = 2 * 128 + 1
    EXPECT_EQ(p.log.total(), 0u);
}

TEST(AcpiMadt, CpuCapacityReportsTruncation) {
    Builder t = madt(5);
    for (uint32_t i = 0; i < 10; ++i)
        x2apic(t, i, i, 1);
    Parsed p(finish(t), kNoBsp, 4);
    EXPECT_EQ(p.topo.cpus.size(), 4u);
    EXPECT_TRUE(p.topo.cpus.truncated());
    EXPECT_EQ(p.topo.cpus.dropped(), 6u);
    EXPECT_EQ(p.topo.enabled, 10u);
    EXPECT_EQ(p.log.count(ErrorCode::OutputTruncated), 1u);
}

TEST(AcpiMadt, MoreCpusThanKMaxCpusKeepsTheFirstAndTheBsp) {
    // 10 more enabled CPUs than CpuMask can hold, the boot CPU listed last (past the cut).
    constexpr uint32_t kListed = cohort::kMaxCpus + 10;
    constexpr uint32_t kBsp = 2 * (kListed - 1);
    Builder t = madt(5);
    for (uint32_t i = 0; i < kListed; ++i)
        x2apic(t, 2 * i, i, 1);
    Parsed p(finish(t), kBsp);
    ASSERT_TRUE(p.ok);
    ASSERT_EQ(p.topo.cpus.size(), kListed);
    ASSERT_TRUE(p.topo.bsp);

    std::vector<cohort::ApTarget> out(cohort::kMaxCpus);
    const cohort::CpuListResult r =
        cohort::select_cpus_to_start(p.topo, kBsp, false, cohort::kMaxCpus, out);
    EXPECT_EQ(r.aps + 1, cohort::kMaxCpus); // the APs plus the boot CPU
    EXPECT_EQ(r.startable, kListed);
    EXPECT_EQ(r.over_limit, 10u);
    EXPECT_EQ(r.left_alone, 0u);
    EXPECT_EQ(r.no_room, 0u);
    for (size_t i = 0; i < r.aps; ++i) {
        EXPECT_NE(out[i].apic_id, kBsp);
        EXPECT_EQ(out[i].apic_id, 2 * i); // table order: the first ones are kept
    }
}

TEST(AcpiMadt, HotplugSlotsAreDisabledCpusOfOldMadtsAndOnlineCapableOnes) {
    for (uint8_t rev : {uint8_t{1}, uint8_t{5}}) {
        SCOPED_TRACE(rev);
        Builder t = madt(rev);
        lapic(t, 0, 0, 1);    // the boot CPU
        lapic(t, 1, 1, 1);    // started
        lapic(t, 2, 2, 0);    // disabled: a slot only before revision 5
        lapic(t, 3, 3, 2);    // online capable (revision 5): a slot
        lapic(t, 4, 0xff, 0); // a placeholder id: never (the parser drops it already)
        lapic(t, 5, 5, 0);
        Parsed p(finish(t), 0);
        ASSERT_TRUE(p.ok);
        std::vector<cohort::ApTarget> out(8);
        cohort::HotplugSlotsResult r =
            cohort::select_hotplug_slots(p.topo, rev, 0, false, 100, out);
        if (rev == 1) {
            // Revision 1 has no online-capable bit: 3 is disabled like 2 and 5.
            ASSERT_EQ(r.slots, 3u);
            EXPECT_EQ(out[0].apic_id, 2u);
            EXPECT_EQ(out[1].apic_id, 3u);
            EXPECT_EQ(out[2].apic_id, 5u);
            EXPECT_EQ(out[2].acpi_uid, 5u);
        } else {
            ASSERT_EQ(r.slots, 1u);
            EXPECT_EQ(out[0].apic_id, 3u);
        }
        // Started online-capable CPUs are not slots; a cap keeps the first ones.
        r = cohort::select_hotplug_slots(p.topo, rev, 0, true, 100, out);
        EXPECT_EQ(r.slots, rev == 1 ? 3u : 0u);
        r = cohort::select_hotplug_slots(p.topo, rev, 0, false, 1, out);
        EXPECT_EQ(r.slots, 1u);
        EXPECT_EQ(r.dropped, rev == 1 ? 2u : 0u);
        EXPECT_EQ(out[0].apic_id, rev == 1 ? 2u : 3u);
    }
}

TEST(AcpiMadt, CpuLimitCountsOnlyStartableCpus) {
    Builder t = madt(5);
    lapic(t, 0, 0, 1);
    lapic(t, 1, 1, 2); // online capable: left alone by default
    lapic(t, 2, 2, 0); // disabled
    for (uint8_t i = 3; i < 8; ++i)
        lapic(t, i, i, 1);
    Parsed p(finish(t), 5);
    ASSERT_TRUE(p.ok);
    std::vector<cohort::ApTarget> out(8);
    cohort::CpuListResult r = cohort::select_cpus_to_start(p.topo, 5, false, 4, out);
    EXPECT_EQ(r.aps, 3u);
    EXPECT_EQ(out[0].apic_id, 0u);
    EXPECT_EQ(out[1].apic_id, 3u);
    EXPECT_EQ(out[2].apic_id, 4u);
    EXPECT_EQ(r.startable, 6u); // 0, 3..7 with the boot CPU (5)
    EXPECT_EQ(r.over_limit, 2u);
    EXPECT_EQ(r.left_alone, 2u);

    r = cohort::select_cpus_to_start(p.topo, 5, true, 100, out);
    EXPECT_EQ(r.aps, 6u);
    EXPECT_EQ(out[1].apic_id, 1u);
    EXPECT_EQ(r.over_limit, 0u);
    EXPECT_EQ(r.left_alone, 1u);

    // A boot CPU the MADT does not list still takes one of the slots.
    r = cohort::select_cpus_to_start(p.topo, 99, false, 2, out);
    EXPECT_EQ(r.aps, 1u);
    EXPECT_EQ(r.startable, 7u);
    EXPECT_EQ(r.over_limit, 5u);

    // Too little room is told apart from the limit.
    r = cohort::select_cpus_to_start(p.topo, 5, false, 100, std::span(out).first(2));
    EXPECT_EQ(r.aps, 2u);
    EXPECT_EQ(r.no_room, 3u);
    EXPECT_EQ(r.over_limit, 0u);
}

TEST(AcpiMadt, NmiSourceAndAddressOverride) {
    Builder t = madt(3, 0xFEE00000);
    lapic(t, 0, 0, 1);
    t.u8(3).u8(8).u16(0xD).u32(9);               // NMI source, GSI 9, active low, level
    t.u8(5).u8(12).u16(0).u64(0x1'2345'6000ull); // LAPIC address override
    t.u8(5).u8(12).u16(0).u64(0xDEAD'0000ull);   // a second one is ignored
    t.u8(2).u8(10).u8(0).u8(0).u32(2).u16(0);    // IRQ0 -> GSI2
    t.u8(2).u8(10).u8(0).u8(9).u32(9).u16(0xF);  // SCI, level, active low
    t.u8(4).u8(6).u8(0xFF).u16(5).u8(1);         // all CPUs, LINT1
    t.u8(10).u8(12).u16(5).u32(0xFFFFFFFF).u8(1).u8(0).u8(0).u8(0);
    t.u8(1).u8(12).u8(4).u8(0).u32(0xFEC00000).u32(0);
    Parsed p(finish(t), 0);
    ASSERT_TRUE(p.ok);
    EXPECT_EQ(p.topo.local_apic_address, 0x1'2345'6000ull);
    EXPECT_TRUE(p.topo.local_apic_address_overridden);
    ASSERT_EQ(p.topo.nmi_sources.size(), 1u);
    EXPECT_EQ(p.topo.nmi_sources.items()[0].gsi, 9u);
    EXPECT_EQ(p.topo.nmi_sources.items()[0].polarity(), Polarity::ActiveHigh);
    EXPECT_EQ(p.topo.nmi_sources.items()[0].trigger(), Trigger::Level);
    ASSERT_EQ(p.topo.overrides.size(), 2u);
    EXPECT_EQ(p.topo.overrides.items()[0].gsi, 2u);
    EXPECT_EQ(p.topo.overrides.items()[0].polarity(), Polarity::Conforms);
    EXPECT_EQ(p.topo.overrides.items()[1].source_irq, 9u);
    EXPECT_EQ(p.topo.overrides.items()[1].polarity(), Polarity::ActiveLow);
    EXPECT_EQ(p.topo.overrides.items()[1].trigger(), Trigger::Level);
    ASSERT_EQ(p.topo.local_apic_nmis.size(), 1u);
    EXPECT_EQ(p.topo.local_apic_nmis.items()[0].processor_id, 0xFF);
    EXPECT_EQ(p.topo.local_apic_nmis.items()[0].lint, 1);
    ASSERT_EQ(p.topo.local_x2apic_nmis.size(), 1u);
    EXPECT_EQ(p.topo.local_x2apic_nmis.items()[0].uid, 0xFFFFFFFFu);
    ASSERT_EQ(p.topo.io_apics.size(), 1u);
    EXPECT_EQ(p.topo.io_apics.items()[0].address, 0xFEC00000u);
    EXPECT_EQ(p.log.total(), 0u);
}

TEST(AcpiMadt, HiddenAndForeignSubtablesSkippedNotCounted) {
    Builder t = madt(4);
    lapic(t, 0, 0, 1);
    t.u8(0x7F).u8(12).u8(9).u8(0).u32(0xFEC01000).u32(24); // hidden IOAPIC
    t.u8(11).u8(4).u16(0);                                 // GIC stub
    t.u8(0xFF).u8(3).u8(0);
    lapic(t, 1, 1, 1);
    Parsed p(finish(t));
    EXPECT_TRUE(p.topo.complete);
    EXPECT_EQ(p.topo.skipped, 3u);
    EXPECT_EQ(p.topo.io_apics.size(), 0u);
    EXPECT_EQ(p.topo.cpus.size(), 2u);
}

TEST(AcpiMadt, ZeroLengthSubtableStopsSafely) {
    Builder t = madt(5);
    lapic(t, 0, 0, 1);
    const uint32_t bad = static_cast<uint32_t>(t.b.size());
    t.u8(0).u8(0).u8(0).u8(0).u32(1);
    lapic(t, 1, 1, 1);
    Parsed p(finish(t));
    ASSERT_TRUE(p.ok);
    EXPECT_FALSE(p.topo.complete);
    EXPECT_EQ(p.topo.cpus.size(), 1u);
    EXPECT_TRUE(p.has(ErrorCode::SubtableZeroLength, bad));
}

TEST(AcpiMadt, LengthOneSubtableStopsSafely) {
    Builder t = madt(5);
    t.u8(0x7F).u8(1).u8(0).u8(0);
    Parsed p(finish(t));
    EXPECT_FALSE(p.topo.complete);
    EXPECT_TRUE(p.has(ErrorCode::SubtableZeroLength, 44));
}

TEST(AcpiMadt, OverrunningSubtableStopsSafely) {
    Builder t = madt(5);
    lapic(t, 0, 0, 1);
    const uint32_t bad = static_cast<uint32_t>(t.b.size());
    t.u8(9).u8(40).u16(0).u32(5).u32(1).u32(5); // claims 40 bytes, 16 remain
    Parsed p(finish(t));
    EXPECT_FALSE(p.topo.complete);
    EXPECT_EQ(p.topo.cpus.size(), 1u);
    EXPECT_TRUE(p.has(ErrorCode::SubtablePastEnd, bad));
}

TEST(AcpiMadt, ShortKnownSubtableSkipped) {
    Builder t = madt(5);
    const uint32_t bad = static_cast<uint32_t>(t.b.size());
    t.u8(9).u8(8).u16(0).u32(5); // x2APIC needs 16 bytes
    lapic(t, 0, 0, 1);
    Parsed p(finish(t));
    EXPECT_TRUE(p.topo.complete);
    EXPECT_EQ(p.topo.cpus.size(), 1u);
    EXPECT_TRUE(p.has(ErrorCode::SubtableTooShort, bad));
}

TEST(AcpiMadt, DuplicateApicIdsCountedOnce) {
    Builder t = madt(5);
    lapic(t, 0, 0, 1);
    lapic(t, 1, 3, 1);
    x2apic(t, 3, 1, 1); // same CPU as the type 0 entry: counted once
    lapic(t, 2, 0, 1);  // firmware bug: repeated id
    Parsed p(finish(t), 3);
    ASSERT_EQ(p.topo.cpus.size(), 2u);
    EXPECT_EQ(p.topo.enabled, 2u);
    EXPECT_EQ(p.topo.duplicates, 2u);
    EXPECT_EQ(p.log.count(ErrorCode::DuplicateApicId), 2u);
    EXPECT_EQ(p.topo.cpus.items()[1].source, MadtType::LocalApic);
    ASSERT_TRUE(p.topo.bsp);
    EXPECT_EQ(*p.topo.bsp, 1u);
}

TEST(AcpiMadt, BspNotInTableIsReported) {
    Builder t = madt(5);
    lapic(t, 0, 0, 1);
    Parsed p(finish(t), 42);
    EXPECT_FALSE(p.topo.bsp);
    EXPECT_EQ(p.log.count(ErrorCode::BspNotFound), 1u);
}

TEST(AcpiTables, BadChecksumRejected) {
    Builder t = madt(5);
    lapic(t, 0, 0, 1);
    Parsed p(finish(t, 1));
    EXPECT_FALSE(p.ok);
    EXPECT_TRUE(p.has(ErrorCode::BadChecksum, 9));
}

TEST(AcpiTables, LengthBeyondBufferAndTruncated) {
    Builder t = madt(5);
    lapic(t, 0, 0, 1);
    auto bytes = finish(t);
    Error errs[4];
    ErrorLog log(errs);
    EXPECT_FALSE(validate_table(std::span(bytes).first(bytes.size() - 1), "APIC", log));
    EXPECT_EQ(log.count(ErrorCode::LengthBeyondMapping), 1u);
    bytes[4] = 20; // length below the header size
    bytes[5] = 0;
    EXPECT_FALSE(validate_table(bytes, "APIC", log));
    EXPECT_EQ(log.count(ErrorCode::Truncated), 1u);
    MadtTopology topo;
    EXPECT_FALSE(parse_madt(std::span(bytes).first(40), kNoBsp, {}, topo, log));
}

// --- RSDP and root tables through the PhysReader ---

std::vector<uint8_t> rsdp(uint8_t revision, uint32_t rsdt, uint64_t xsdt, int bad_ext = 0) {
    Builder r;
    r.str("RSD PTR ", 8).u8(0).str("COHORT", 6).u8(revision).u32(rsdt);
    if (revision >= 2) r.u32(36).u64(xsdt).u8(0).u8(0).u8(0).u8(0);
    uint8_t s = 0;
    for (size_t i = 0; i < 20; ++i)
        s = static_cast<uint8_t>(s + r.b[i]);
    r.b[8] = static_cast<uint8_t>(-s);
    if (revision >= 2) {
        s = 0;
        for (uint8_t x : r.b)
            s = static_cast<uint8_t>(s + x);
        r.b[32] = static_cast<uint8_t>(-s + bad_ext);
    }
    return r.b;
}

std::vector<uint8_t> root(const char* sig, std::initializer_list<uint64_t> entries,
                          int checksum_delta = 0) {
    Builder t = sdt(sig, 1);
    for (uint64_t e : entries)
        t.put(e, sig[0] == 'X' ? 8 : 4);
    return finish(t, checksum_delta);
}

std::vector<uint8_t> simple_madt(uint8_t cpus) {
    Builder t = madt(3);
    for (uint8_t i = 0; i < cpus; ++i)
        lapic(t, i, i, 1);
    return finish(t);
}

constexpr uint64_t kRsdp = 0xF0000, kRsdt = 0x7000'0000, kXsdt = 0x7000'1000;
constexpr uint64_t kMadt1 = 0x7000'2000, kMadt2 = 0x7000'3000, kMadt3 = 0x7000'4000;

TEST(AcpiDirectory, PrefersXsdt) {
    PhysImage img;
    img.add(kRsdp, rsdp(2, kRsdt, kXsdt));
    img.add(kRsdt, root("RSDT", {kMadt2}));
    img.add(kXsdt, root("XSDT", {kMadt1}));
    img.add(kMadt1, simple_madt(4));
    img.add(kMadt2, simple_madt(2));
    Error errs[8];
    ErrorLog log(errs);
    auto dir = TableDirectory::open(img, kRsdp, log);
    ASSERT_TRUE(dir);
    EXPECT_EQ(dir->kind(), RootKind::Xsdt);
    EXPECT_EQ(dir->find("APIC"), std::optional<uint64_t>(kMadt1));
    EXPECT_EQ(log.total(), 0u);
}

TEST(AcpiDirectory, InvalidXsdtFallsBackToRsdtWithWarning) {
    PhysImage img;
    img.add(kRsdp, rsdp(2, kRsdt, kXsdt));
    img.add(kRsdt, root("RSDT", {kMadt2}));
    img.add(kXsdt, root("XSDT", {kMadt1}, 3)); // bad checksum
    img.add(kMadt2, simple_madt(2));
    Error errs[8];
    ErrorLog log(errs);
    auto dir = TableDirectory::open(img, kRsdp, log);
    ASSERT_TRUE(dir);
    EXPECT_EQ(dir->kind(), RootKind::Rsdt);
    EXPECT_EQ(dir->find("APIC"), std::optional<uint64_t>(kMadt2));
    EXPECT_EQ(log.count(ErrorCode::BadChecksum), 1u);
    EXPECT_EQ(log.count(ErrorCode::RootFallback), 1u);
    EXPECT_EQ(log.count(Severity::Warning), 1u);

    // Missing XSDT (address not readable): same fallback.
    PhysImage img2;
    img2.add(kRsdp, rsdp(2, kRsdt, 0x1234'0000'0000ull));
    img2.add(kRsdt, root("RSDT", {kMadt2}));
    img2.add(kMadt2, simple_madt(2));
    ErrorLog log2(errs);
    auto dir2 = TableDirectory::open(img2, kRsdp, log2);
    ASSERT_TRUE(dir2);
    EXPECT_EQ(dir2->kind(), RootKind::Rsdt);
    EXPECT_EQ(log2.count(ErrorCode::Unreadable), 1u);
    EXPECT_EQ(log2.count(ErrorCode::RootFallback), 1u);
}

TEST(AcpiDirectory, BadExtendedChecksumUsesRsdt) {
    PhysImage img;
    img.add(kRsdp, rsdp(2, kRsdt, kXsdt, 1));
    img.add(kRsdt, root("RSDT", {}));
    img.add(kXsdt, root("XSDT", {}));
    Error errs[8];
    ErrorLog log(errs);
    auto dir = TableDirectory::open(img, kRsdp, log);
    ASSERT_TRUE(dir);
    EXPECT_EQ(dir->kind(), RootKind::Rsdt);
    EXPECT_EQ(log.count(ErrorCode::BadExtendedChecksum), 1u);
}

TEST(AcpiDirectory, Revision0UsesRsdtAndIgnoresFollowingBytes) {
    PhysImage img;
    auto r = rsdp(0, kRsdt, 0);
    r.resize(36, 0xAB); // garbage after a 20-byte RSDP must not be read as an XSDT pointer
    img.add(kRsdp, r);
    img.add(kRsdt, root("RSDT", {kMadt1}));
    img.add(kMadt1, simple_madt(1));
    Error errs[8];
    ErrorLog log(errs);
    auto dir = TableDirectory::open(img, kRsdp, log);
    ASSERT_TRUE(dir);
    EXPECT_EQ(dir->kind(), RootKind::Rsdt);
    EXPECT_EQ(log.total(), 0u);
}

TEST(AcpiDirectory, EntryPointingNowhereIsReportedOnceAndSkipped) {
    PhysImage img;
    img.add(kRsdp, rsdp(0, kRsdt, 0));
    img.add(kRsdt, root("RSDT", {0xDEAD'0000, 0, kMadt1}));
    img.add(kMadt1, simple_madt(3));
    Error errs[8];
    ErrorLog log(errs);
    auto dir = TableDirectory::open(img, kRsdp, log);
    ASSERT_TRUE(dir);
    ASSERT_EQ(log.total(), 2u);
    EXPECT_EQ(log.errors()[0].code, ErrorCode::Unreadable);
    EXPECT_EQ(log.errors()[0].offset, 36u);
    EXPECT_EQ(log.errors()[0].detail, 0xDEAD'0000u);
    EXPECT_EQ(std::string(log.errors()[0].table), "RSDT");
    EXPECT_EQ(log.errors()[1].code, ErrorCode::NullEntry);
    EXPECT_EQ(log.errors()[1].offset, 40u);
    EXPECT_EQ(dir->find("APIC"), std::optional<uint64_t>(kMadt1));
    EXPECT_EQ(log.total(), 2u);
}

TEST(AcpiDirectory, FirstValidMadtWins) {
    PhysImage img;
    img.add(kRsdp, rsdp(2, kRsdt, kXsdt));
    img.add(kRsdt, root("RSDT", {}));
    img.add(kXsdt, root("XSDT", {kMadt1, kMadt2, kMadt3}));
    auto broken = simple_madt(8);
    broken[9] ^= 1;
    img.add(kMadt1, broken);
    img.add(kMadt2, simple_madt(2));
    img.add(kMadt3, simple_madt(4));
    Error errs[8];
    ErrorLog log(errs);
    auto dir = TableDirectory::open(img, kRsdp, log);
    ASSERT_TRUE(dir);
    EXPECT_EQ(dir->count("APIC"), 3u);
    std::vector<uint8_t> buf(4096);
    uint64_t at = 0;
    auto t = dir->load_first_valid("APIC", buf, log, &at);
    ASSERT_TRUE(t);
    EXPECT_EQ(at, kMadt2);
    EXPECT_EQ(log.count(ErrorCode::BadChecksum), 1u);

    std::vector<uint8_t> tiny(40);
    EXPECT_FALSE(load_table(img, kMadt3, tiny, "APIC", log));
    EXPECT_EQ(log.count(ErrorCode::BufferTooSmall), 1u);
}

TEST(AcpiDirectory, TableLengthBeyondMapping) {
    PhysImage img;
    auto m = simple_madt(2);
    m[4] = 200; // claims 200 bytes; only 60 are mapped
    img.add(kMadt1, m);
    std::vector<uint8_t> buf(4096);
    Error errs[8];
    ErrorLog log(errs);
    EXPECT_FALSE(load_table(img, kMadt1, buf, "APIC", log));
    EXPECT_EQ(log.count(ErrorCode::LengthBeyondMapping), 1u);
}

TEST(AcpiDirectory, BadRsdpChecksumRejected) {
    PhysImage img;
    auto r = rsdp(0, kRsdt, 0);
    r[8] ^= 0x40;
    img.add(kRsdp, r);
    Error errs[8];
    ErrorLog log(errs);
    EXPECT_FALSE(TableDirectory::open(img, kRsdp, log));
    EXPECT_EQ(log.count(ErrorCode::BadChecksum), 1u);
    ErrorLog log2(errs);
    EXPECT_FALSE(TableDirectory::open(img, 0x5000, log2));
    EXPECT_EQ(log2.count(ErrorCode::Unreadable), 1u);
}

// --- SRAT / SLIT (QEMU -numa node,... produces this shape) ---

TEST(AcpiSrat, TwoNodesWithCpusMemoryAndDistances) {
    Builder t = sdt("SRAT", 3);
    t.u32(1).u64(0);
    t.u8(0).u8(16).u8(0).u8(0).u32(1).u8(0).u8(0).u8(0).u8(0).u32(0); // APIC 0 -> node 0
    t.u8(0).u8(16).u8(1).u8(1).u32(1).u8(0).u8(0).u8(0).u8(0).u32(0); // APIC 1 -> node 1
    t.u8(0).u8(16).u8(1).u8(2).u32(0).u8(0).u8(0).u8(0).u8(0).u32(0); // disabled
    t.u8(0).u8(16).u8(2).u8(3).u32(1).u8(0).u8(1).u8(0).u8(0).u32(0); // APIC 3 -> 0x102
    t.u8(2).u8(24).u16(0).u32(1).u32(300).u32(1).u32(0).u32(0);       // x2APIC 300 -> 1
    t.u8(1).u8(40).u32(0).u16(0).u64(0).u64(0x8000'0000).u32(0).u32(1).u64(0);
    t.u8(1).u8(40).u32(1).u16(0).u64(0x1'0000'0000).u64(0x8000'0000).u32(0).u32(3).u64(0);
    t.u8(3).u8(16).u64(0).u32(0).u16(0); // GICC-ish: skipped
    auto srat = finish(t);
    Error errs[8];
    ErrorLog log(errs);
    auto table = validate_table(srat, "SRAT", log);
    ASSERT_TRUE(table);
    std::vector<SratCpu> cpus(16);
    std::vector<SratMemory> mem(16);
    std::vector<NumaNode> nodes(16);
    SratInfo info;
    ASSERT_TRUE(parse_srat(*table, SratStorage{cpus, mem, nodes}, info, log));
    EXPECT_TRUE(info.complete);
    EXPECT_EQ(info.cpus.size(), 4u);
    EXPECT_EQ(info.disabled, 1u);
    EXPECT_EQ(info.skipped, 1u);
    EXPECT_EQ(info.cpus.items()[2].domain, 0x102u); // domain bits 8-31 live at offset 9
    EXPECT_EQ(info.cpus.items()[3].apic_id, 300u);
    EXPECT_TRUE(info.cpus.items()[3].x2apic);
    ASSERT_EQ(info.nodes.size(), 3u);
    EXPECT_EQ(info.nodes.items()[0].cpus, 1u);
    EXPECT_EQ(info.nodes.items()[1].cpus, 2u);
    EXPECT_EQ(info.nodes.items()[1].memory_bytes, 0x8000'0000u);
    EXPECT_TRUE(info.memory.items()[1].hot_pluggable());
    EXPECT_EQ(log.total(), 0u);

    Builder s = sdt("SLIT", 1);
    s.u64(2).u8(10).u8(21).u8(21).u8(10);
    auto slit_bytes = finish(s);
    auto slit = Slit::parse(*validate_table(slit_bytes, "SLIT", log), log);
    ASSERT_TRUE(slit);
    EXPECT_EQ(slit->localities(), 2u);
    EXPECT_EQ(slit->distance(0, 1), std::optional<uint8_t>(21));
    EXPECT_EQ(slit->distance(1, 1), std::optional<uint8_t>(10));
    EXPECT_FALSE(slit->distance(2, 0));
}

TEST(AcpiSrat, MalformedSratAndSlit) {
    Builder t = sdt("SRAT", 3);
    t.u32(1).u64(0);
    t.u8(1).u8(0);
    auto srat = finish(t);
    Error errs[8];
    ErrorLog log(errs);
    std::vector<SratCpu> cpus(4);
    std::vector<SratMemory> mem(4);
    std::vector<NumaNode> nodes(4);
    SratInfo info;
    ASSERT_TRUE(
        parse_srat(*validate_table(srat, "SRAT", log), SratStorage{cpus, mem, nodes}, info, log));
    EXPECT_FALSE(info.complete);
    EXPECT_EQ(log.count(ErrorCode::SubtableZeroLength), 1u);

    Builder s = sdt("SLIT", 1);
    s.u64(0x1'0000'0001ull).u8(10); // n*n would overflow 32 bits and far exceeds the table
    auto slit_bytes = finish(s);
    EXPECT_FALSE(Slit::parse(*validate_table(slit_bytes, "SLIT", log), log));
    EXPECT_EQ(log.count(ErrorCode::BadSlitSize), 1u);
}

} // namespace
