// ACPI CPU hotplug as QEMU offers it: the FADT fields and the DSDT region Cohort reads, on the
// tables QEMU 7.2 built for q35 and pc with -smp 2,maxcpus=8 (tests/data/qemu-cpu-hotplug), and
// the register protocol against a model of QEMU's block (hw/acpi/cpu.c as
// docs/hotplug-qemu-notes.md describes and measured it).
#include "acpi/aml_region.h"
#include "acpi/fadt.h"
#include "acpi/madt.h"
#include "acpi/qemu_cpuhp.h"
#include "acpi/tables.h"
#include "smp/cpu_list.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

using namespace cohort::acpi;

std::vector<uint8_t> read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::string data(const char* machine, const char* file) {
    return std::string(COHORT_QEMU_CPUHP_DATA) + "/" + machine + "/" + file;
}

struct Machine {
    const char* name;
    uint16_t gpe0, gpe0_len, pm1a_cnt, block;
    uint8_t acpi_enable;
};
constexpr Machine kMachines[] = {{"q35", 0x620, 16, 0x604, 0x0cd8, 2},
                                 {"pc", 0xafe0, 4, 0x604, 0xaf00, 0xf1}};

TEST(QemuCpuHotplugTables, FadtGivesGpe0AcpiModeAndSci) {
    for (const Machine& m : kMachines) {
        SCOPED_TRACE(m.name);
        const auto bytes = read_file(data(m.name, "facp.dat"));
        ASSERT_FALSE(bytes.empty());
        const Fadt f = parse_fadt(bytes);
        const auto gpe = fadt_gpe0_io(f);
        ASSERT_TRUE(gpe);
        EXPECT_EQ(gpe->port, m.gpe0);
        EXPECT_EQ(gpe->length, m.gpe0_len);
        EXPECT_EQ(f.sci_interrupt, 9);
        EXPECT_EQ(f.smi_command, 0xb2u);
        EXPECT_EQ(f.acpi_enable, m.acpi_enable);
        EXPECT_EQ(f.pm1a_control_block, m.pm1a_cnt);
        EXPECT_NE(fadt_dsdt(f), 0u);
    }
}

TEST(QemuCpuHotplugTables, DsdtNamesTheRegisterBlock) {
    for (const Machine& m : kMachines) {
        SCOPED_TRACE(m.name);
        const auto dsdt = read_file(data(m.name, "dsdt.dat"));
        ASSERT_GT(dsdt.size(), kSdtHeaderSize);
        AmlRegion r;
        ASSERT_EQ(find_operation_region(Bytes(dsdt).subspan(kSdtHeaderSize), "PRST", r),
                  AmlRegionResult::Found);
        EXPECT_EQ(r.space, kSpaceSystemIo);
        EXPECT_EQ(r.address, m.block);
        EXPECT_EQ(r.length, 12u);
        EXPECT_EQ(find_operation_region(Bytes(dsdt).subspan(kSdtHeaderSize), "ZZZZ", r),
                  AmlRegionResult::NotFound);
    }
}

TEST(QemuCpuHotplugTables, MadtDisabledEntriesAreTheSixSlots) {
    const auto bytes = read_file(data("q35", "apic.dat"));
    MadtTopology topo;
    std::vector<CpuEntry> cpus(16);
    std::vector<IoApic> ioapics(4);
    std::vector<InterruptOverride> overrides(16);
    std::vector<Error> errors(8);
    ErrorLog log(errors);
    ASSERT_TRUE(parse_madt(bytes, 0, MadtStorage{cpus, ioapics, overrides, {}, {}, {}}, topo, log));
    std::vector<cohort::ApTarget> out(8);
    const auto r = cohort::select_hotplug_slots(topo, bytes[8], 0, false, 100, out);
    ASSERT_EQ(r.slots, 6u);
    for (uint32_t i = 0; i < 6; ++i) {
        EXPECT_EQ(out[i].apic_id, i + 2);
        EXPECT_EQ(out[i].acpi_uid, i + 2); // QEMU's CPU index, the block's selector
    }
}

TEST(AmlRegion, PathsConstantsAndAmbiguity) {
    // OperationRegion (\\_SB.PCI0.PRST, SystemIO, 0x0cd8, 0x0c), then the same again.
    const std::vector<uint8_t> one = {0x5b, 0x80, '\\', 0x2f, 3, '_', 'S', 'B', '_', 'P', 'C',
                                      'I', '0', 'P', 'R', 'S', 'T', 0x01, 0x0b, 0xd8, 0x0c,
                                      0x0a, 0x0c};
    AmlRegion r;
    EXPECT_EQ(find_operation_region(one, "PRST", r), AmlRegionResult::Found);
    EXPECT_EQ(r.address, 0x0cd8u);
    EXPECT_EQ(r.length, 12u);
    std::vector<uint8_t> twice = one;
    twice.insert(twice.end(), one.begin(), one.end());
    EXPECT_EQ(find_operation_region(twice, "PRST", r), AmlRegionResult::Found);
    std::vector<uint8_t> other = one;
    other[19] = 0xd9; // 0x0cd9 the second time
    twice = one;
    twice.insert(twice.end(), other.begin(), other.end());
    EXPECT_EQ(find_operation_region(twice, "PRST", r), AmlRegionResult::Ambiguous);
    // An address computed at run time (a name where the constant would be).
    std::vector<uint8_t> computed = {0x5b, 0x80, 'P', 'R', 'S', 'T', 0x01, 'B', 'A', 'S', 'E', 0x0a, 0x0c};
    EXPECT_EQ(find_operation_region(computed, "PRST", r), AmlRegionResult::NotConstant);
    // Cut anywhere: never read past the end, never a match from half a declaration.
    for (size_t n = 0; n < one.size(); ++n)
        EXPECT_NE(find_operation_region(Bytes(one).first(n), "PRST", r), AmlRegionResult::Found) << n;
}

// QEMU's block (hw/acpi/cpu.c, docs/hotplug-qemu-notes.md section 4), legacy until switched.
class QemuBlock final : public CpuHotplugRegs {
  public:
    struct Slot {
        bool present = false, inserting = false, removing = false;
        uint32_t apic = 0;
    };
    std::vector<Slot> slots;
    bool legacy = true, switch_works = true;
    uint32_t selector = 0;
    uint8_t command = 0;
    std::vector<std::pair<uint32_t, uint32_t>> ost; // (event, status) reported
    uint32_t ost_event = 0;
    int ejected = -1;

    explicit QemuBlock(uint32_t n) : slots(n) {
        for (uint32_t i = 0; i < n; ++i) slots[i].apic = 2 * i; // not the index: on purpose
    }
    uint8_t bitmap_byte(uint32_t i) const {
        uint8_t b = 0;
        for (uint32_t c = 0; c < slots.size(); ++c)
            if (slots[c].present && slots[c].apic / 8 == i) b |= uint8_t(1u << (slots[c].apic % 8));
        return b;
    }
    bool valid() const { return selector < slots.size(); }
    void write_selector(uint32_t s) override {
        if (legacy) return; // a dword write to the legacy bitmap is dropped
        selector = s;
    }
    uint32_t read_data2() override {
        if (legacy)
            return bitmap_byte(0) | bitmap_byte(1) << 8 | bitmap_byte(2) << 16 | bitmap_byte(3) << 24;
        return 0; // no arch id above 32 bits here
    }
    uint8_t read_flags() override {
        if (legacy) return bitmap_byte(4);
        if (!valid()) return 0;
        const Slot& s = slots[selector];
        return uint8_t(s.present | s.inserting << 1 | s.removing << 2);
    }
    void write_control(uint8_t bits) override {
        if (legacy || !valid()) return;
        Slot& s = slots[selector];
        if (bits & 2) s.inserting = false;
        else if (bits & 4) s.removing = false;
        else if ((bits & 8) && s.present && selector != 0) s.present = false, ejected = int(selector);
    }
    void write_command(uint8_t c) override {
        if (legacy) return;
        command = c;
        if (c != 0) return;
        for (uint32_t k = 0; k < slots.size(); ++k) {
            const uint32_t i = (selector + k) % uint32_t(slots.size());
            if (slots[i].inserting || slots[i].removing) {
                selector = i;
                return;
            }
        }
    }
    uint32_t read_data() override {
        if (legacy) return bitmap_byte(8);
        if (command == 0) return selector;
        if (command == 3 && valid()) return slots[selector].apic;
        return 0;
    }
    void write_data(uint32_t v) override {
        if (legacy || !valid()) return;
        if (command == 1) ost_event = v;
        if (command == 2) ost.emplace_back(ost_event, v);
    }
    void write_byte0(uint8_t v) override {
        if (legacy && v == 0 && switch_works) legacy = false;
        else if (!legacy) selector = (selector & ~0xffu) | v;
    }
};

TEST(QemuCpuHotplugRegs, SwitchToModernIsVerified) {
    QemuBlock b(8);
    b.slots[0].present = b.slots[1].present = true;
    EXPECT_TRUE(cpuhp_switch_to_modern(b));
    EXPECT_FALSE(b.legacy);
    QemuBlock stuck(8);
    stuck.slots[0].present = true;
    stuck.switch_works = false; // an old QEMU, or no block at all answering like one
    EXPECT_FALSE(cpuhp_switch_to_modern(stuck));
}

TEST(QemuCpuHotplugRegs, SlotsReadPresenceAndApicId) {
    QemuBlock b(8);
    b.slots[0].present = b.slots[5].present = true;
    ASSERT_TRUE(cpuhp_switch_to_modern(b));
    for (uint32_t i = 0; i < 8; ++i) {
        const CpuHotplugSlot s = cpuhp_read_slot(b, i);
        EXPECT_EQ(s.present, i == 0 || i == 5) << i;
        EXPECT_EQ(s.arch_id, 2u * i);
    }
}

TEST(QemuCpuHotplugRegs, EventsComeInSlotOrderOnceEachWhenCleared) {
    QemuBlock b(8);
    b.slots[0].present = true;
    ASSERT_TRUE(cpuhp_switch_to_modern(b));
    for (uint32_t i : {6u, 2u, 4u}) b.slots[i].present = b.slots[i].inserting = true;
    b.slots[4].removing = true; // added, then removed before the guest looked
    b.slots[7].removing = true;
    b.selector = 5; // wherever the last access left it
    std::vector<std::pair<uint32_t, CpuHotplugEvent::Kind>> seen;
    uint32_t cursor = 0;
    for (int guard = 0; guard < 20; ++guard) {
        const CpuHotplugEvent ev = cpuhp_next_event(b, cursor, 8);
        if (ev.kind == CpuHotplugEvent::Kind::None) break;
        EXPECT_EQ(ev.arch_id, 2u * ev.slot);
        seen.emplace_back(ev.slot, ev.kind);
        cpuhp_clear(b, ev);
    }
    using K = CpuHotplugEvent::Kind;
    const std::vector<std::pair<uint32_t, K>> want = {
        {2, K::Insert}, {4, K::Insert}, {4, K::Remove}, {6, K::Insert}, {7, K::Remove}};
    EXPECT_EQ(seen, want);
    for (const auto& s : b.slots) EXPECT_FALSE(s.inserting || s.removing);
    // Nothing left: the first call says so, whatever the cursor.
    for (uint32_t c : {0u, 3u, 7u}) {
        uint32_t cur = c;
        EXPECT_EQ(cpuhp_next_event(b, cur, 8).kind, K::None);
    }
}

TEST(QemuCpuHotplugRegs, AnEventBeforeTheCursorWaitsForTheNextPass) {
    QemuBlock b(8);
    b.slots[0].present = true;
    ASSERT_TRUE(cpuhp_switch_to_modern(b));
    b.slots[1].present = b.slots[1].inserting = true;
    uint32_t cursor = 3; // the search wraps around to 1: not this pass
    EXPECT_EQ(cpuhp_next_event(b, cursor, 8).kind, CpuHotplugEvent::Kind::None);
    cursor = 0;
    EXPECT_EQ(cpuhp_next_event(b, cursor, 8).slot, 1u);
}

TEST(QemuCpuHotplugRegs, EjectAndOstReachTheSelectedSlot) {
    QemuBlock b(8);
    b.slots[0].present = b.slots[3].present = true;
    ASSERT_TRUE(cpuhp_switch_to_modern(b));
    cpuhp_report(b, 3, cpuhp::kOstEjectRequest, cpuhp::kOstInProgress);
    cpuhp_eject(b, 3);
    EXPECT_EQ(b.ejected, 3);
    EXPECT_FALSE(b.slots[3].present);
    ASSERT_EQ(b.ost.size(), 1u);
    EXPECT_EQ(b.ost[0], std::make_pair(cpuhp::kOstEjectRequest, cpuhp::kOstInProgress));
}

} // namespace
