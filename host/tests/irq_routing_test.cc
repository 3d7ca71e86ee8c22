// The portable part of device interrupt routing (kernel/irq/routing.h).
#include <gtest/gtest.h>

#include <array>

#include "irq/routing.h"

using namespace cohort;
using namespace cohort::irq;

namespace {

acpi::InterruptOverride ovr(uint8_t irq, uint32_t gsi, uint16_t flags) {
    return acpi::InterruptOverride{0, 0, irq, gsi, flags};
}

// What QEMU's q35 and pc machines put in their MADT: the PIT moved to GSI 2, and the PCI link
// interrupts 5, 9, 10 and 11 level-triggered, active high (flags 0x000d).
const std::array<acpi::InterruptOverride, 5> kQemu = {ovr(0, 2, 0), ovr(5, 5, 0xd),
                                                      ovr(9, 9, 0xd), ovr(10, 10, 0xd),
                                                      ovr(11, 11, 0xd)};

} // namespace

TEST(IrqRouting, IsaIrqWithoutOverrideIsItsOwnGsiEdgeActiveHigh) {
    const IsaRoute r = isa_route(4, kQemu);
    EXPECT_EQ(r.gsi, 4u);
    EXPECT_FALSE(r.overridden);
    EXPECT_EQ(r.signal, (Signal{false, false}));
}

TEST(IrqRouting, OverrideMovesThePitAndConformingFlagsMeanIsaSignalling) {
    const IsaRoute r = isa_route(0, kQemu);
    EXPECT_EQ(r.gsi, 2u);
    EXPECT_TRUE(r.overridden);
    EXPECT_EQ(r.signal, (Signal{false, false}));
    const IsaRoute sci = isa_route(9, kQemu);
    EXPECT_EQ(sci.gsi, 9u);
    EXPECT_EQ(sci.signal, (Signal{false, true}));
}

TEST(IrqRouting, ActiveLowLevelOverride) {
    const std::array<acpi::InterruptOverride, 1> o = {ovr(9, 20, 0xf)};
    const IsaRoute r = isa_route(9, o);
    EXPECT_EQ(r.gsi, 20u);
    EXPECT_EQ(r.signal, (Signal{true, true}));
}

TEST(IrqRouting, OverridesOnOtherBusesAreIgnored) {
    std::array<acpi::InterruptOverride, 1> o = {ovr(3, 17, 0xf)};
    o[0].bus = 1;
    EXPECT_EQ(isa_route(3, o).gsi, 3u);
}

TEST(IrqRouting, NonIsaConformingFlagsAreLevelActiveLow) {
    EXPECT_EQ(signal_from_flags(0, false), (Signal{true, true}));
    EXPECT_EQ(signal_from_flags(0, true), (Signal{false, false}));
    EXPECT_EQ(signal_from_flags(0x5, false), (Signal{false, false}));
}

TEST(IrqRouting, GsiBackToIsaIrq) {
    EXPECT_EQ(isa_irq_of_gsi(2, kQemu), std::optional<uint8_t>(0));
    // GSI 0 would be IRQ 0, but IRQ 0 was moved to GSI 2: nothing arrives on GSI 0 as ISA.
    EXPECT_EQ(isa_irq_of_gsi(0, kQemu), std::nullopt);
    EXPECT_EQ(isa_irq_of_gsi(4, kQemu), std::optional<uint8_t>(4));
    EXPECT_EQ(isa_irq_of_gsi(16, kQemu), std::nullopt);
}

TEST(IrqRouting, PinOfGsiAcrossChips) {
    const std::array<Chip, 2> chips = {Chip{0, 24}, Chip{24, 32}};
    EXPECT_EQ(pin_of_gsi(0, chips), (Pin{0, 0}));
    EXPECT_EQ(pin_of_gsi(23, chips), (Pin{0, 23}));
    EXPECT_EQ(pin_of_gsi(24, chips), (Pin{1, 0}));
    EXPECT_EQ(pin_of_gsi(55, chips), (Pin{1, 31}));
    EXPECT_EQ(pin_of_gsi(56, chips), std::nullopt);
    EXPECT_EQ(find_overlap(chips), std::nullopt);
    const std::array<Chip, 3> bad = {Chip{0, 24}, Chip{48, 8}, Chip{20, 8}};
    EXPECT_EQ(find_overlap(bad), std::optional<uint32_t>(2));
}

TEST(IrqRouting, RedirectionEntryLayout) {
    const uint64_t e = redirection_entry(0x31, Delivery::Fixed, Signal{true, true}, true, 0xfe);
    // vector 0x31, fixed, physical, active low (bit 13), level (bit 15), masked (bit 16), dest.
    EXPECT_EQ(e, 0xfe00'0000'0001'a031ull);
    const EntryFields f = decode_entry(e);
    EXPECT_EQ(f.vector, 0x31);
    EXPECT_EQ(f.delivery, Delivery::Fixed);
    EXPECT_EQ(f.signal, (Signal{true, true}));
    EXPECT_TRUE(f.masked);
    EXPECT_EQ(f.dest, 0xfe);
    EXPECT_EQ(redirection_entry(0, Delivery::Nmi, Signal{}, false, 0), 0x400ull);
}

TEST(IrqRouting, ReachableApicIds) {
    EXPECT_TRUE(reachable_apic_id(0));
    EXPECT_TRUE(reachable_apic_id(254));
    EXPECT_FALSE(reachable_apic_id(255)); // the broadcast id
    EXPECT_FALSE(reachable_apic_id(300));
}

TEST(IrqRouting, SpreadPicksTheLeastLoadedAndSparesCpu0OnTies) {
    const std::array<bool, 4> all = {true, true, true, true};
    std::array<uint32_t, 4> routed = {0, 0, 0, 0};
    // Four interrupts in a row land on 1, 2, 3, then 0.
    std::array<uint32_t, 4> order{};
    for (uint32_t k = 0; k < 4; ++k) {
        auto t = spread_target(routed, all);
        ASSERT_TRUE(t);
        order[k] = *t;
        ++routed[*t];
    }
    EXPECT_EQ(order, (std::array<uint32_t, 4>{1, 2, 3, 0}));
    // CPU 0 still wins when it has strictly fewer.
    routed = {0, 1, 1, 1};
    EXPECT_EQ(spread_target(routed, all), std::optional<uint32_t>(0));
    // Ineligible CPUs (offline, unreachable) are skipped.
    const std::array<bool, 4> some = {true, false, true, false};
    routed = {0, 0, 5, 0};
    EXPECT_EQ(spread_target(routed, some), std::optional<uint32_t>(0));
    const std::array<bool, 4> none = {false, false, false, false};
    EXPECT_EQ(spread_target(routed, none), std::nullopt);
    // One CPU: it takes everything.
    const std::array<bool, 1> one = {true};
    const std::array<uint32_t, 1> r1 = {7};
    EXPECT_EQ(spread_target(r1, one), std::optional<uint32_t>(0));
}
