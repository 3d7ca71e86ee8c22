// Attributing a remote-call request to its sender by its address (smp/call_slots.h).
#include "smp/call_slots.h"

#include <gtest/gtest.h>

namespace cohort {
namespace {

// The kernel's shape: 8 KiB per CPU, a 64-byte header, 96 slots of 64 bytes.
constexpr CallSlotLayout kLayout{0xffffc10000000000, 8192, 64, 64, 96};

uint64_t slot_addr(uint32_t cpu, uint32_t index) {
    return kLayout.base + cpu * kLayout.stride + kLayout.first + index * kLayout.slot_size;
}

TEST(CallSlots, EverySlotOfEveryCpuIsItsOwn) {
    for (uint32_t cpu = 0; cpu < 255; ++cpu) {
        for (uint32_t i = 0; i < kLayout.count; ++i) {
            CallSlotRef at{};
            ASSERT_TRUE(call_slot_at(kLayout, slot_addr(cpu, i), 255, &at));
            EXPECT_EQ(at.cpu, cpu);
            EXPECT_EQ(at.index, i);
        }
    }
}

TEST(CallSlots, AnythingElseIsNoSlot) {
    CallSlotRef at{};
    // Inside a slot, the header, past the last slot, past the last CPU, below the area.
    EXPECT_FALSE(call_slot_at(kLayout, slot_addr(3, 5) + 8, 255, &at));
    EXPECT_FALSE(call_slot_at(kLayout, kLayout.base + 3 * kLayout.stride, 255, &at));
    EXPECT_FALSE(call_slot_at(kLayout, kLayout.base + 3 * kLayout.stride + 32, 255, &at));
    EXPECT_FALSE(call_slot_at(kLayout, slot_addr(3, 96), 255, &at));
    EXPECT_FALSE(call_slot_at(kLayout, slot_addr(255, 0), 255, &at));
    EXPECT_FALSE(call_slot_at(kLayout, kLayout.base - 64, 255, &at));
    EXPECT_FALSE(call_slot_at(kLayout, 0, 255, &at));
    EXPECT_FALSE(call_slot_at(kLayout, UINT64_MAX, 255, &at));
    // A CPU id the machine does not have (hot-add slots count as CPUs: they are in `cpus`).
    EXPECT_TRUE(call_slot_at(kLayout, slot_addr(7, 0), 8, &at));
    EXPECT_FALSE(call_slot_at(kLayout, slot_addr(8, 0), 8, &at));
}

TEST(CallSlots, AddressesNearTheTopDoNotWrap) {
    constexpr CallSlotLayout top{UINT64_MAX - 8191, 8192, 64, 64, 96};
    CallSlotRef at{};
    EXPECT_TRUE(call_slot_at(top, top.base + 64, 1, &at));
    EXPECT_FALSE(call_slot_at(top, top.base + 64, 0, &at));
}

} // namespace
} // namespace cohort
