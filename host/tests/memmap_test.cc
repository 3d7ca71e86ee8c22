#include "lib/memmap.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace {

using cohort::MemoryMap;
using cohort::MemRegion;
using cohort::MemType;

struct E820 {
    uint64_t base, length;
    uint32_t type;
};

struct Expected {
    uint64_t base, end;
    MemType type;
};

void add_e820(MemoryMap& map, std::initializer_list<E820> entries) {
    for (const E820& e : entries)
        ASSERT_TRUE(map.add(e.base, e.length, cohort::mem_type_from_e820(e.type)));
}

// Invariants every normalised map must satisfy, whatever the input.
void expect_normalized(const MemoryMap& map) {
    const auto regions = map.regions();
    for (size_t i = 0; i < regions.size(); ++i) {
        const MemRegion& r = regions[i];
        EXPECT_GT(r.length, 0u) << "region " << i;
        if (r.type == MemType::Usable) {
            EXPECT_EQ(r.base % 4096, 0u) << "region " << i;
            EXPECT_EQ(r.end() % 4096, 0u) << "region " << i;
        }
        if (i > 0) {
            const MemRegion& p = regions[i - 1];
            EXPECT_LE(p.end(), r.base) << "regions " << i - 1 << " and " << i << " overlap";
            EXPECT_FALSE(p.end() == r.base && p.type == r.type)
                << "regions " << i - 1 << " and " << i << " should have been merged";
        }
    }
}

void expect_regions(const MemoryMap& map, const std::vector<Expected>& want) {
    const auto got = map.regions();
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
        SCOPED_TRACE(testing::Message() << "region " << i);
        EXPECT_EQ(got[i].base, want[i].base);
        EXPECT_EQ(got[i].end(), want[i].end);
        EXPECT_EQ(got[i].type, want[i].type)
            << cohort::mem_type_name(got[i].type) << " vs " << cohort::mem_type_name(want[i].type);
    }
}

TEST(MemMap, TypeNames) {
    EXPECT_STREQ(cohort::mem_type_name(MemType::Usable), "usable");
    EXPECT_STREQ(cohort::mem_type_name(MemType::AcpiNvs), "acpi-nvs");
    EXPECT_STREQ(cohort::mem_type_name(MemType::Trampoline), "trampoline");
    EXPECT_STREQ(cohort::mem_type_name(static_cast<MemType>(20)), "unknown");
    EXPECT_EQ(cohort::mem_type_from_e820(3), MemType::AcpiReclaimable);
    EXPECT_EQ(cohort::mem_type_from_e820(5), MemType::Bad);
    EXPECT_EQ(cohort::mem_type_from_e820(0), MemType::Reserved);
    EXPECT_EQ(cohort::mem_type_from_e820(7), MemType::Reserved);
    EXPECT_EQ(cohort::mem_type_from_e820(20), MemType::Reserved);
}

TEST(MemMap, AddIgnoresEmptyAndClamps) {
    MemoryMap map;
    EXPECT_TRUE(map.add(0x1000, 0, MemType::Usable));
    EXPECT_TRUE(map.regions().empty());
    EXPECT_TRUE(map.add(UINT64_MAX - 0xfff, 0x10000, MemType::Reserved));
    ASSERT_EQ(map.regions().size(), 1u);
    EXPECT_EQ(map.regions()[0].end(), UINT64_MAX);
    EXPECT_TRUE(map.add(UINT64_MAX, 5, MemType::Reserved));
    EXPECT_EQ(map.regions().size(), 1u);
    EXPECT_FALSE(map.overflowed());
}

TEST(MemMap, AddWhenFull) {
    MemoryMap map;
    for (size_t i = 0; i < MemoryMap::kCapacity; ++i)
        ASSERT_TRUE(map.add(i * 0x10000, 0x1000, MemType::Reserved));
    EXPECT_FALSE(map.overflowed());
    EXPECT_FALSE(map.add(0x100000000, 0x1000, MemType::Usable));
    EXPECT_TRUE(map.overflowed());
    EXPECT_EQ(map.regions().size(), MemoryMap::kCapacity);
}

// QEMU q35 with 128 MiB under SeaBIOS, as printed by Linux at boot.
TEST(MemMap, QemuSeaBios) {
    MemoryMap map;
    add_e820(map, {
                      {0x0000000000000000, 0x9fc00, 1},
                      {0x000000000009fc00, 0x400, 2},
                      {0x00000000000f0000, 0x10000, 2},
                      {0x0000000000100000, 0x7ee0000, 1},
                      {0x0000000007fe0000, 0x20000, 2},
                      {0x00000000b0000000, 0x10000000, 2},
                      {0x00000000fed1c000, 0x4000, 2},
                      {0x00000000feffc000, 0x4000, 2},
                      {0x00000000fffc0000, 0x40000, 2},
                  });
    map.normalize();
    expect_normalized(map);
    expect_regions(map, {
                            {0x0, 0x9f000, MemType::Usable}, // trimmed to a page boundary
                            {0x9fc00, 0xa0000, MemType::Reserved},
                            {0xf0000, 0x100000, MemType::Reserved},
                            {0x100000, 0x7fe0000, MemType::Usable},
                            {0x7fe0000, 0x8000000, MemType::Reserved},
                            {0xb0000000, 0xc0000000, MemType::Reserved},
                            {0xfed1c000, 0xfed20000, MemType::Reserved},
                            {0xfeffc000, 0xff000000, MemType::Reserved},
                            {0xfffc0000, 0x100000000, MemType::Reserved},
                        });
    EXPECT_EQ(map.total(MemType::Usable), 0x9f000u + 0x7ee0000u);
    EXPECT_EQ(map.highest_usable_end(), 0x7fe0000u);
    EXPECT_FALSE(map.overflowed());

    // Carving out the kernel and a trampoline page.
    map.reserve(0x100000, 0x234567, MemType::Kernel);
    map.reserve(0x8000, 0x1000, MemType::Trampoline);
    map.reserve(0x9f800, 0x1000, MemType::Kernel); // straddles the hole and a reserved region
    expect_normalized(map);
    expect_regions(map, {
                            {0x0, 0x8000, MemType::Usable},
                            {0x8000, 0x9000, MemType::Trampoline},
                            {0x9000, 0x9f000, MemType::Usable},
                            {0x9f800, 0x9fc00, MemType::Kernel},
                            {0x9fc00, 0xa0000, MemType::Reserved},
                            {0xa0000, 0xa0800, MemType::Kernel}, // a hole becomes Kernel too
                            {0xf0000, 0x100000, MemType::Reserved},
                            {0x100000, 0x334567, MemType::Kernel},
                            {0x335000, 0x7fe0000, MemType::Usable},
                            {0x7fe0000, 0x8000000, MemType::Reserved},
                            {0xb0000000, 0xc0000000, MemType::Reserved},
                            {0xfed1c000, 0xfed20000, MemType::Reserved},
                            {0xfeffc000, 0xff000000, MemType::Reserved},
                            {0xfffc0000, 0x100000000, MemType::Reserved},
                        });
}

// An OVMF-style map, listed in a scrambled order, with a type-20 entry the caller maps to
// Reserved; it then merges with the adjacent Reserved region.
TEST(MemMap, OvmfLike) {
    MemoryMap map;
    add_e820(map, {
                      {0x7ff78000, 0x88000, 4},
                      {0x0, 0xa0000, 1},
                      {0x808000, 0x3000, 1},
                      {0x100000, 0x700000, 1},
                      {0x800000, 0x8000, 4},
                      {0x80b000, 0x1000, 4},
                      {0x80c000, 0x4000, 1},
                      {0x810000, 0xf0000, 4},
                      {0x7e8ef000, 0x280000, 2},
                      {0x900000, 0x7ddef000, 1},
                      {0x7e6ef000, 0x200000, 20},
                      {0x7eb6f000, 0x10000, 3},
                      {0x7eb7f000, 0x80000, 4},
                      {0x7ebff000, 0x12f1000, 1},
                      {0x7fef0000, 0x4000, 2},
                      {0xb0000000, 0x10000000, 2},
                      {0x7fef4000, 0x2000, 4},
                      {0x7fef6000, 0x82000, 1},
                  });
    EXPECT_EQ(map.regions().size(), 18u);
    map.normalize();
    expect_normalized(map);
    expect_regions(map, {
                            {0x0, 0xa0000, MemType::Usable},
                            {0x100000, 0x800000, MemType::Usable},
                            {0x800000, 0x808000, MemType::AcpiNvs},
                            {0x808000, 0x80b000, MemType::Usable},
                            {0x80b000, 0x80c000, MemType::AcpiNvs},
                            {0x80c000, 0x810000, MemType::Usable},
                            {0x810000, 0x900000, MemType::AcpiNvs},
                            {0x900000, 0x7e6ef000, MemType::Usable},
                            {0x7e6ef000, 0x7eb6f000, MemType::Reserved},
                            {0x7eb6f000, 0x7eb7f000, MemType::AcpiReclaimable},
                            {0x7eb7f000, 0x7ebff000, MemType::AcpiNvs},
                            {0x7ebff000, 0x7fef0000, MemType::Usable},
                            {0x7fef0000, 0x7fef4000, MemType::Reserved},
                            {0x7fef4000, 0x7fef6000, MemType::AcpiNvs},
                            {0x7fef6000, 0x7ff78000, MemType::Usable},
                            {0x7ff78000, 0x80000000, MemType::AcpiNvs},
                            {0xb0000000, 0xc0000000, MemType::Reserved},
                        });
    EXPECT_EQ(map.total(MemType::AcpiReclaimable), 0x10000u);
    EXPECT_EQ(map.highest_usable_end(), 0x7ff78000u);
}

TEST(MemMap, NestedHoleSplitsUsable) {
    MemoryMap map;
    map.add(0x0, 0x100000, MemType::Usable);
    map.add(0x40000, 0x1000, MemType::Reserved);
    map.add(0x80800, 0x100, MemType::Bad); // not page aligned: usable around it shrinks
    map.normalize();
    expect_normalized(map);
    expect_regions(map, {
                            {0x0, 0x40000, MemType::Usable},
                            {0x40000, 0x41000, MemType::Reserved},
                            {0x41000, 0x80000, MemType::Usable},
                            {0x80800, 0x80900, MemType::Bad},
                            {0x81000, 0x100000, MemType::Usable},
                        });
}

TEST(MemMap, OverlapsResolvedByPrecedence) {
    MemoryMap map;
    map.add(0x0000, 0x10000, MemType::Usable);
    map.add(0x2000, 0x4000, MemType::AcpiReclaimable);
    map.add(0x3000, 0x1000, MemType::AcpiNvs);
    map.add(0x5000, 0x4000, MemType::Kernel);
    map.add(0x8000, 0x4000, MemType::Trampoline);
    map.add(0xb000, 0x2000, MemType::Bad);
    map.add(0xc000, 0x2000, MemType::Reserved);
    map.normalize();
    expect_normalized(map);
    expect_regions(map, {
                            {0x0000, 0x2000, MemType::Usable},
                            {0x2000, 0x3000, MemType::AcpiReclaimable},
                            {0x3000, 0x4000, MemType::AcpiNvs},
                            {0x4000, 0x6000, MemType::AcpiReclaimable},
                            {0x6000, 0x9000, MemType::Kernel},
                            {0x9000, 0xb000, MemType::Trampoline},
                            {0xb000, 0xd000, MemType::Bad},
                            {0xd000, 0xe000, MemType::Reserved},
                            {0xe000, 0x10000, MemType::Usable},
                        });
}

TEST(MemMap, UnknownTypesRankWithReserved) {
    MemoryMap map;
    const auto t20 = static_cast<MemType>(20), t7 = static_cast<MemType>(7);
    map.add(0x0, 0x4000, t20);
    map.add(0x1000, 0x1000, MemType::Reserved);
    map.add(0x3000, 0x2000, t7);
    map.add(0x3000, 0x3000, MemType::AcpiNvs);
    map.add(0x4000, 0x1000, MemType::Bad);
    map.normalize();
    expect_normalized(map);
    expect_regions(map, {
                            {0x0, 0x1000, t20},
                            {0x1000, 0x2000, MemType::Reserved},
                            {0x2000, 0x3000, t20},
                            {0x3000, 0x4000, t7},
                            {0x4000, 0x5000, MemType::Bad},
                            {0x5000, 0x6000, MemType::AcpiNvs},
                        });
}

TEST(MemMap, DuplicatesAndAdjacentMerge) {
    MemoryMap map;
    for (int i = 0; i < 3; ++i)
        map.add(0x100000, 0x100000, MemType::Usable);
    map.add(0x200000, 0x100000, MemType::Usable);
    map.add(0x300000, 0x800, MemType::Reserved);
    map.add(0x300800, 0x800, MemType::Reserved);
    map.add(0x0, 0x1000, MemType::Usable);
    map.add(0x1000, 0x1000, MemType::Usable);
    map.normalize();
    expect_normalized(map);
    expect_regions(map, {
                            {0x0, 0x2000, MemType::Usable},
                            {0x100000, 0x300000, MemType::Usable},
                            {0x300000, 0x301000, MemType::Reserved},
                        });
    EXPECT_EQ(map.total(MemType::Usable), 0x202000u);
}

TEST(MemMap, TinyUsableDropped) {
    MemoryMap map;
    map.add(0x1800, 0x1000, MemType::Usable); // covers no whole page
    map.add(0x5000, 0xfff, MemType::Usable);
    map.add(UINT64_MAX - 0x800, 0x800, MemType::Usable);
    map.normalize();
    EXPECT_TRUE(map.regions().empty());
    EXPECT_EQ(map.highest_usable_end(), 0u);
}

TEST(MemMap, TopOfAddressSpace) {
    MemoryMap map;
    map.add(0xffffffff00000000, UINT64_MAX, MemType::Usable); // clamped
    map.add(0xfffffffff0000000, 0x1000, MemType::Reserved);
    map.normalize();
    expect_normalized(map);
    expect_regions(map, {
                            {0xffffffff00000000, 0xfffffffff0000000, MemType::Usable},
                            {0xfffffffff0000000, 0xfffffffff0001000, MemType::Reserved},
                            {0xfffffffff0001000, 0xfffffffffffff000, MemType::Usable},
                        });
}

TEST(MemMap, NormalizeIsIdempotent) {
    MemoryMap map;
    map.add(0x5000, 0x20000, MemType::Usable);
    map.add(0x0, 0x8000, MemType::Reserved);
    map.add(0x10000, 0x123, MemType::AcpiNvs);
    map.normalize();
    const std::vector<MemRegion> first(map.regions().begin(), map.regions().end());
    map.normalize();
    ASSERT_EQ(map.regions().size(), first.size());
    for (size_t i = 0; i < first.size(); ++i) {
        EXPECT_EQ(map.regions()[i].base, first[i].base);
        EXPECT_EQ(map.regions()[i].length, first[i].length);
        EXPECT_EQ(map.regions()[i].type, first[i].type);
    }
}

// 255 holes punched into one usable range give 511 pieces: the smallest usable ones go.
TEST(MemMap, SplittingBeyondCapacityDropsSmallestUsable) {
    MemoryMap map;
    map.add(0, uint64_t{1} << 40, MemType::Usable);
    std::vector<uint64_t> usable_sizes;
    uint64_t cursor = 0;
    for (uint64_t i = 0; i < MemoryMap::kCapacity - 1; ++i) {
        const uint64_t gap = (i + 1) * 0x1000; // distinct sizes so "smallest" is unambiguous
        usable_sizes.push_back(gap);
        cursor += gap;
        ASSERT_TRUE(map.add(cursor, 0x1000, MemType::Reserved));
        cursor += 0x1000;
    }
    usable_sizes.push_back((uint64_t{1} << 40) - cursor);
    map.normalize();
    EXPECT_TRUE(map.overflowed());
    expect_normalized(map);
    ASSERT_EQ(map.regions().size(), MemoryMap::kCapacity);
    EXPECT_EQ(map.total(MemType::Reserved), (MemoryMap::kCapacity - 1) * 0x1000u);
    // 256 slots - 255 reserved = 1 usable region survives: the largest.
    std::sort(usable_sizes.begin(), usable_sizes.end());
    EXPECT_EQ(map.total(MemType::Usable), usable_sizes.back());

    // reserve() still works on a full map, and never leaves the range usable.
    map.reserve(0, uint64_t{1} << 41, MemType::Kernel);
    expect_normalized(map);
    EXPECT_EQ(map.total(MemType::Usable), 0u);
    EXPECT_LE(map.regions().size(), MemoryMap::kCapacity);
}

TEST(MemMap, ReserveOnFullUnnormalizedMap) {
    MemoryMap map;
    for (size_t i = 0; i < MemoryMap::kCapacity; ++i)
        ASSERT_TRUE(map.add(i * 0x2000, 0x1000, MemType::Usable));
    map.reserve(0x2000, 0x1000, MemType::Kernel);
    expect_normalized(map);
    EXPECT_FALSE(map.overflowed());
    ASSERT_EQ(map.regions().size(), MemoryMap::kCapacity);
    EXPECT_EQ(map.regions()[1].type, MemType::Kernel);
}

TEST(MemMapDeathTest, ReserveAsUsableAsserts) {
    MemoryMap map;
    EXPECT_DEATH(map.reserve(0, 0x1000, MemType::Usable), "assertion failed");
}

// Property test: a small address space modelled one 1 KiB unit at a time.
constexpr uint64_t kUnit = 1024;
constexpr size_t kUnits = 256; // 64 pages
constexpr int kHole = -1;

int model_rank(int type) {
    switch (static_cast<MemType>(type)) {
    case MemType::Usable:
        return 0;
    case MemType::Trampoline:
        return 1;
    case MemType::Kernel:
        return 2;
    case MemType::AcpiReclaimable:
        return 3;
    case MemType::AcpiNvs:
        return 4;
    case MemType::Reserved:
        return 5;
    case MemType::Bad:
        return 6;
    }
    return 5;
}

// Reserved beats unknown types of the same rank; among unknown types the smaller value wins.
bool model_beats(int a, int b) {
    if (b == kHole) return true;
    if (model_rank(a) != model_rank(b)) return model_rank(a) > model_rank(b);
    if (a == 2 || b == 2) return a == 2 && b != 2;
    return a < b;
}

TEST(MemMap, RandomizedAgainstPageModel) {
    std::mt19937_64 rng(2024);
    const int types[] = {1, 1, 1, 2, 3, 4, 5, 0x100, 0x101, 7, 20};
    for (int iter = 0; iter < 3000; ++iter) {
        MemoryMap map;
        std::vector<int> model(kUnits, kHole);
        const size_t n = 1 + rng() % 24;
        for (size_t k = 0; k < n; ++k) {
            const size_t a = rng() % kUnits;
            const size_t len = 1 + rng() % std::min<size_t>(kUnits - a, rng() % 2 ? 8 : kUnits);
            const int type = types[rng() % std::size(types)];
            ASSERT_TRUE(map.add(a * kUnit, len * kUnit, static_cast<MemType>(type)));
            for (size_t u = a; u < a + len; ++u)
                if (model_beats(type, model[u])) model[u] = type;
        }
        // Usable survives only in pages that are entirely usable.
        constexpr size_t per_page = 4096 / kUnit;
        for (size_t page = 0; page < kUnits / per_page; ++page) {
            bool all = true;
            for (size_t u = page * per_page; u < (page + 1) * per_page; ++u)
                all &= model[u] == 1;
            if (!all)
                for (size_t u = page * per_page; u < (page + 1) * per_page; ++u)
                    if (model[u] == 1) model[u] = kHole;
        }
        // Sometimes carve as well, which the model applies after trimming.
        if (rng() % 3 == 0) {
            map.normalize();
            const size_t a = rng() % kUnits, len = 1 + rng() % (kUnits - a);
            const int type = types[3 + rng() % (std::size(types) - 3)]; // anything but Usable
            map.reserve(a * kUnit, len * kUnit, static_cast<MemType>(type));
            for (size_t u = a; u < a + len; ++u)
                if (model_beats(type, model[u])) model[u] = type;
            for (size_t page = 0; page < kUnits / per_page; ++page) {
                bool all = true;
                for (size_t u = page * per_page; u < (page + 1) * per_page; ++u)
                    all &= model[u] == 1;
                if (!all)
                    for (size_t u = page * per_page; u < (page + 1) * per_page; ++u)
                        if (model[u] == 1) model[u] = kHole;
            }
        } else {
            map.normalize();
        }
        expect_normalized(map);
        std::vector<int> got(kUnits, kHole);
        for (const MemRegion& r : map.regions()) {
            ASSERT_EQ(r.base % kUnit, 0u);
            ASSERT_EQ(r.length % kUnit, 0u);
            ASSERT_LE(r.end(), kUnits * kUnit);
            for (uint64_t u = r.base / kUnit; u < r.end() / kUnit; ++u)
                got[u] = static_cast<int>(r.type);
        }
        ASSERT_EQ(got, model) << "iteration " << iter;
        EXPECT_FALSE(map.overflowed());
        uint64_t usable = 0;
        for (int t : model)
            usable += t == 1 ? kUnit : 0;
        ASSERT_EQ(map.total(MemType::Usable), usable);
        if (HasFailure()) break;
    }
}

} // namespace
