#include "mm/buddy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <random>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

namespace {

using cohort::BuddyAllocator;

constexpr uint64_t kNone = BuddyAllocator::kNone;
constexpr uint32_t kMaxOrder = BuddyAllocator::kMaxOrder;
constexpr uint64_t kMaxBlock = uint64_t{1} << kMaxOrder;

// An allocator together with the metadata buffer it runs on.
struct Frames {
    explicit Frames(uint64_t count)
        : bytes(BuddyAllocator::metadata_bytes(count)), storage(bytes / 8 + 2) {
        // Junk, not zeros, so the allocator must initialise what it relies on. Every byte past
        // metadata_bytes() is a guard: the allocator must never write past its metadata.
        memset(storage.data(), kGuardByte, storage.size() * sizeof(uint64_t));
        fa.init(storage.data(), count);
    }
    bool guard_intact() const {
        const auto* p = reinterpret_cast<const unsigned char*>(storage.data());
        for (size_t i = bytes; i < storage.size() * sizeof(uint64_t); ++i)
            if (p[i] != kGuardByte) return false;
        return true;
    }

    static constexpr unsigned char kGuardByte = 0xa5;
    size_t bytes;
    std::vector<uint64_t> storage;
    BuddyAllocator fa;
};

// Everything observable from outside: a refused call must leave all of it as it was.
struct State {
    uint64_t free, managed;
    std::array<uint64_t, kMaxOrder + 1> blocks;
    std::vector<bool> is_free;
    bool operator==(const State&) const = default;
};

State state_of(const BuddyAllocator& ba) {
    State s{ba.free_frames(), ba.managed_frames(), {}, {}};
    for (uint32_t k = 0; k <= kMaxOrder; ++k)
        s.blocks[k] = ba.free_blocks(k);
    for (uint64_t i = 0; i < ba.frame_count(); ++i)
        s.is_free.push_back(ba.is_free(i));
    return s;
}

// The free blocks a fully coalesced buddy system must have for this set of free frames: it is
// unique, each block being the largest aligned, wholly free one at its start (at most kMaxOrder,
// and inside the frame count).
std::array<uint64_t, kMaxOrder + 1> coalesced_blocks(const std::vector<bool>& free) {
    std::array<uint64_t, kMaxOrder + 1> counts{};
    const uint64_t n = free.size();
    uint64_t f = 0;
    while (f < n) {
        if (!free[f]) {
            ++f;
            continue;
        }
        uint32_t k = 0;
        while (k < kMaxOrder) {
            const uint64_t size = uint64_t{2} << k;
            if (f % size != 0 || f + size > n) break;
            if (!std::all_of(free.begin() + static_cast<ptrdiff_t>(f),
                             free.begin() + static_cast<ptrdiff_t>(f + size),
                             [](bool b) { return b; }))
                break;
            ++k;
        }
        ++counts[k];
        f += uint64_t{1} << k;
    }
    return counts;
}

std::array<uint64_t, kMaxOrder + 1> blocks_of(const BuddyAllocator& ba) {
    std::array<uint64_t, kMaxOrder + 1> counts{};
    for (uint32_t k = 0; k <= kMaxOrder; ++k)
        counts[k] = ba.free_blocks(k);
    return counts;
}

// Longest run of free frames, from is_free() alone.
uint64_t longest_free_run(const BuddyAllocator& ba) {
    uint64_t best = 0, run = 0;
    for (uint64_t i = 0; i < ba.frame_count(); ++i) {
        run = ba.is_free(i) ? run + 1 : 0;
        best = std::max(best, run);
    }
    return best;
}

// ---- The tests of the bitmap allocator this one replaced, ported ----

TEST(BuddyAllocator, InitStartsAllInUse) {
    Frames f(200);
    EXPECT_EQ(f.fa.frame_count(), 200u);
    EXPECT_EQ(f.fa.free_frames(), 0u);
    EXPECT_EQ(f.fa.managed_frames(), 0u);
    for (uint64_t i = 0; i < 200; ++i)
        EXPECT_FALSE(f.fa.is_free(i)) << i;
    EXPECT_FALSE(f.fa.is_free(200));
    EXPECT_EQ(f.fa.alloc(), kNone);
    for (uint32_t k = 0; k <= kMaxOrder; ++k) {
        EXPECT_EQ(f.fa.free_blocks(k), 0u);
        EXPECT_EQ(f.fa.alloc_block(k), kNone);
    }
    EXPECT_TRUE(f.fa.check());
    EXPECT_TRUE(f.guard_intact());
}

TEST(BuddyAllocator, InitResetsPreviousState) {
    Frames f(128);
    f.fa.add_free_range(0, 128);
    ASSERT_NE(f.fa.alloc(), kNone);
    f.fa.init(f.storage.data(), 100);
    EXPECT_EQ(f.fa.frame_count(), 100u);
    EXPECT_EQ(f.fa.free_frames(), 0u);
    EXPECT_EQ(f.fa.managed_frames(), 0u);
    EXPECT_FALSE(f.fa.is_free(5));
    for (uint32_t k = 0; k <= kMaxOrder; ++k)
        EXPECT_EQ(f.fa.free_blocks(k), 0u);
    EXPECT_TRUE(f.fa.check());
    // The old free lists are gone: nothing is handed out until donated again.
    EXPECT_EQ(f.fa.alloc(), kNone);
    f.fa.add_free_range(0, 100);
    EXPECT_EQ(f.fa.free_frames(), 100u);
    EXPECT_TRUE(f.fa.check());
}

TEST(BuddyAllocator, AddFreeRangeAndReserveAccounting) {
    Frames f(300);
    f.fa.add_free_range(10, 50); // [10, 60)
    EXPECT_EQ(f.fa.free_frames(), 50u);
    EXPECT_EQ(f.fa.managed_frames(), 50u);
    EXPECT_FALSE(f.fa.is_free(9));
    EXPECT_TRUE(f.fa.is_free(10));
    EXPECT_TRUE(f.fa.is_free(59));
    EXPECT_FALSE(f.fa.is_free(60));
    EXPECT_TRUE(f.fa.check());

    // Overlapping donations count each frame once.
    f.fa.add_free_range(40, 40); // [40, 80): 20 new
    EXPECT_EQ(f.fa.free_frames(), 70u);
    EXPECT_EQ(f.fa.managed_frames(), 70u);
    EXPECT_TRUE(f.fa.check());

    // Ranges past the end are clamped or ignored.
    f.fa.add_free_range(290, 1000); // [290, 300)
    EXPECT_EQ(f.fa.free_frames(), 80u);
    f.fa.add_free_range(300, 5);
    f.fa.add_free_range(5000, 5);
    f.fa.add_free_range(295, UINT64_MAX);
    EXPECT_EQ(f.fa.free_frames(), 80u);
    EXPECT_EQ(f.fa.managed_frames(), 80u);
    EXPECT_TRUE(f.fa.check());

    // reserve_range reports only the frames that were actually free.
    EXPECT_EQ(f.fa.reserve_range(0, 20), 10u); // [10, 20) were free
    EXPECT_EQ(f.fa.free_frames(), 70u);
    EXPECT_EQ(f.fa.managed_frames(), 70u);
    EXPECT_FALSE(f.fa.is_free(15));
    EXPECT_EQ(f.fa.reserve_range(0, 20), 0u);
    EXPECT_EQ(f.fa.reserve_range(298, UINT64_MAX), 2u);
    EXPECT_EQ(f.fa.reserve_range(300, 1), 0u);
    EXPECT_EQ(f.fa.free_frames(), 68u);
    EXPECT_EQ(f.fa.managed_frames(), 68u);
    EXPECT_TRUE(f.fa.check());

    // Reserved frames are never handed out.
    std::set<uint64_t> got;
    for (uint64_t fr; (fr = f.fa.alloc()) != kNone;)
        got.insert(fr);
    EXPECT_EQ(got.size(), 68u);
    for (uint64_t fr : got) {
        EXPECT_TRUE((fr >= 20 && fr < 80) || (fr >= 290 && fr < 298)) << fr;
    }
    EXPECT_TRUE(f.fa.check());
    EXPECT_TRUE(f.guard_intact());
}

TEST(BuddyAllocator, SingleFramesUntilExhaustion) {
    constexpr uint64_t kFrames = 1000; // not a multiple of 64, nor of a block
    Frames f(kFrames);
    f.fa.add_free_range(0, kFrames);
    f.fa.reserve_range(100, 50);
    const uint64_t baseline = f.fa.free_frames();
    ASSERT_EQ(baseline, kFrames - 50);
    const auto initial_blocks = blocks_of(f.fa);

    std::set<uint64_t> got;
    for (uint64_t i = 0; i < baseline; ++i) {
        const uint64_t fr = f.fa.alloc();
        ASSERT_NE(fr, kNone) << "after " << i << " allocations";
        ASSERT_LT(fr, kFrames);
        ASSERT_FALSE(fr >= 100 && fr < 150) << "reserved frame " << fr << " handed out";
        ASSERT_TRUE(got.insert(fr).second) << "frame " << fr << " handed out twice";
        ASSERT_FALSE(f.fa.is_free(fr));
        ASSERT_EQ(f.fa.free_frames(), baseline - i - 1);
    }
    EXPECT_EQ(f.fa.free_frames(), 0u);
    EXPECT_EQ(f.fa.alloc(), kNone);
    EXPECT_EQ(f.fa.alloc(2), kNone);
    EXPECT_EQ(f.fa.alloc_block(0), kNone);
    EXPECT_EQ(f.fa.free_frames(), 0u);
    EXPECT_TRUE(f.fa.check());

    // One freed frame is found again.
    ASSERT_TRUE(f.fa.free(777));
    EXPECT_EQ(f.fa.alloc(), 777u);
    ASSERT_TRUE(f.fa.free(3));
    EXPECT_EQ(f.fa.alloc(), 3u);
    EXPECT_EQ(f.fa.alloc(), kNone);

    for (uint64_t fr : got)
        ASSERT_TRUE(f.fa.free(fr)) << fr;
    EXPECT_EQ(f.fa.free_frames(), baseline);
    EXPECT_EQ(f.fa.managed_frames(), baseline);
    // Freed one by one in ascending order, the frames still end up in the original blocks.
    EXPECT_EQ(blocks_of(f.fa), initial_blocks);
    EXPECT_TRUE(f.fa.check());
    EXPECT_TRUE(f.guard_intact());
}

TEST(BuddyAllocator, InvalidRequests) {
    Frames f(256);
    f.fa.add_free_range(0, 256);
    EXPECT_EQ(f.fa.alloc(0), kNone);
    EXPECT_EQ(f.fa.alloc(1, 0), kNone);
    EXPECT_EQ(f.fa.alloc(257), kNone);
    EXPECT_EQ(f.fa.alloc(UINT64_MAX), kNone);
    EXPECT_EQ(f.fa.alloc(1, 512), 0u); // frame 0 is aligned to anything
    ASSERT_TRUE(f.fa.free(0));
    EXPECT_EQ(f.fa.alloc(2, 256), 0u);
    EXPECT_EQ(f.fa.alloc(1, 256), kNone); // only frame 0 qualifies, and it is taken
    EXPECT_EQ(f.fa.alloc(1, 1, 0), kNone);
    EXPECT_EQ(f.fa.alloc(1, 1, 2), kNone); // frames 0 and 1 are taken
    EXPECT_EQ(f.fa.alloc(1, UINT64_MAX), kNone);
    EXPECT_EQ(f.fa.alloc_block(kMaxOrder + 1), kNone);
    EXPECT_EQ(f.fa.alloc_block(UINT32_MAX), kNone);
    EXPECT_EQ(f.fa.free_frames(), 254u);
    EXPECT_TRUE(f.fa.check());
}

TEST(BuddyAllocator, ContiguousWithAlignment) {
    Frames f(1024);
    f.fa.add_free_range(0, 1024);
    // Fragment the low frames so an aligned run has to skip ahead.
    EXPECT_EQ(f.fa.reserve_range(5, 1), 1u);
    EXPECT_EQ(f.fa.reserve_range(70, 1), 1u);
    EXPECT_TRUE(f.fa.check());

    // Which run the allocator picks is its own policy (first fit is not
    // promised); what is promised is checked for every run.
    const std::vector<std::pair<uint64_t, uint64_t>> requests = {
        {8, 8}, {64, 64}, {3, 16}, {100, 1}, {5, 1}};
    std::vector<std::pair<uint64_t, uint64_t>> runs;
    std::set<uint64_t> used = {5, 70};
    for (auto [n, align] : requests) {
        const uint64_t start = f.fa.alloc(n, align);
        ASSERT_NE(start, kNone) << n << " frames aligned to " << align;
        EXPECT_EQ(start % align, 0u);
        ASSERT_LE(start + n, 1024u);
        for (uint64_t i = start; i < start + n; ++i) {
            EXPECT_TRUE(used.insert(i).second) << "frame " << i << " overlaps";
            EXPECT_FALSE(f.fa.is_free(i));
        }
        runs.emplace_back(start, n);
        EXPECT_TRUE(f.fa.check());
    }
    EXPECT_EQ(f.fa.free_frames(), 1024u - 2 - 8 - 64 - 3 - 100 - 5);

    // A run larger than anything left fails without changing anything.
    const State before = state_of(f.fa);
    const uint64_t longest = longest_free_run(f.fa);
    EXPECT_EQ(f.fa.alloc(longest + 1), kNone);
    EXPECT_EQ(f.fa.alloc(600, 512), kNone); // [0,600) holds frame 5; 512 + 600 is past the end
    EXPECT_EQ(state_of(f.fa), before);
    // ...while the longest run itself is found, even though it is no single block.
    const uint64_t whole = f.fa.alloc(longest);
    ASSERT_NE(whole, kNone);
    ASSERT_TRUE(f.fa.free(whole, longest));
    EXPECT_EQ(state_of(f.fa), before);

    for (auto [start, n] : runs)
        EXPECT_TRUE(f.fa.free(start, n));
    EXPECT_EQ(f.fa.free_frames(), 1022u);
    EXPECT_EQ(f.fa.alloc(512, 512), 512u);
    EXPECT_TRUE(f.fa.check());
    EXPECT_TRUE(f.guard_intact());
}

TEST(BuddyAllocator, LimitFrame) {
    Frames f(512);
    f.fa.add_free_range(100, 412); // [100, 512)
    EXPECT_EQ(f.fa.alloc(1, 1, 100), kNone);
    EXPECT_EQ(f.fa.alloc(1, 1, 101), 100u);
    EXPECT_EQ(f.fa.alloc(4, 1, 104), kNone); // [101, 105) would cross the limit
    EXPECT_EQ(f.fa.alloc(4, 1, 105), 101u);
    EXPECT_EQ(f.fa.alloc(8, 8, 120), 112u); // [112, 120) ends exactly at the limit
    EXPECT_EQ(f.fa.alloc(8, 8, 127), kNone);
    EXPECT_TRUE(f.fa.check());

    // Single frames below a limit after an unlimited allocation took some other frame.
    const uint64_t high = f.fa.alloc(1, 1);
    EXPECT_GE(high, 105u);
    std::set<uint64_t> low;
    for (uint64_t fr; (fr = f.fa.alloc(1, 1, 112)) != kNone;) {
        EXPECT_LT(fr, 112u);
        EXPECT_TRUE(low.insert(fr).second);
    }
    // [105, 112) minus whatever `high` took.
    EXPECT_EQ(low.size() + (high < 112 ? 1 : 0), 7u);

    // A limit past the end behaves like no limit.
    EXPECT_NE(f.fa.alloc(1, 1, 100000), kNone);
    EXPECT_TRUE(f.fa.check());
    EXPECT_TRUE(f.guard_intact());
}

TEST(BuddyAllocator, FreeRestoresCounts) {
    Frames f(640);
    f.fa.add_free_range(0, 640);
    const uint64_t baseline = f.fa.free_frames();
    const auto initial_blocks = blocks_of(f.fa);
    std::vector<std::pair<uint64_t, uint64_t>> held;
    for (uint64_t n : {1, 2, 3, 7, 64, 65, 100}) {
        const uint64_t fr = f.fa.alloc(n, n == 64 ? 64 : 1);
        ASSERT_NE(fr, kNone) << n;
        held.emplace_back(fr, n);
    }
    EXPECT_EQ(f.fa.free_frames(), baseline - 242);
    EXPECT_EQ(f.fa.managed_frames(), baseline);
    EXPECT_TRUE(f.fa.check());
    // Freeing part of a run is allowed and frees exactly that part.
    ASSERT_TRUE(f.fa.free(held[6].first + 10, 20));
    EXPECT_EQ(f.fa.free_frames(), baseline - 222);
    EXPECT_TRUE(f.fa.check());
    ASSERT_TRUE(f.fa.free(held[6].first, 10));
    ASSERT_TRUE(f.fa.free(held[6].first + 30, 70));
    held.pop_back();
    for (auto [fr, n] : held)
        ASSERT_TRUE(f.fa.free(fr, n));
    EXPECT_EQ(f.fa.free_frames(), baseline);
    EXPECT_EQ(f.fa.managed_frames(), baseline);
    for (uint64_t i = 0; i < 640; ++i)
        EXPECT_TRUE(f.fa.is_free(i)) << i;
    EXPECT_EQ(blocks_of(f.fa), initial_blocks);
    EXPECT_TRUE(f.fa.check());
    // Everything is allocatable again as one run, although it spans two blocks.
    EXPECT_EQ(f.fa.alloc(640), 0u);
    EXPECT_EQ(f.fa.free_frames(), 0u);
    EXPECT_TRUE(f.fa.check());
}

TEST(BuddyAllocator, DoubleFreeIsRefused) {
    Frames f(256);
    f.fa.add_free_range(0, 256);
    const uint64_t a = f.fa.alloc(10);
    const uint64_t b = f.fa.alloc();
    ASSERT_NE(a, kNone);
    ASSERT_NE(b, kNone);
    ASSERT_TRUE(f.fa.free(b));
    const State after_free = state_of(f.fa);
    EXPECT_FALSE(f.fa.free(b));
    EXPECT_EQ(state_of(f.fa), after_free);

    ASSERT_TRUE(f.fa.free(a + 5, 5));
    const State mid = state_of(f.fa);
    // The whole run is refused, also its still-allocated head: nothing may change.
    EXPECT_FALSE(f.fa.free(a, 10));
    EXPECT_EQ(state_of(f.fa), mid);
    for (uint64_t i = 0; i < 5; ++i)
        EXPECT_FALSE(f.fa.is_free(a + i));
    EXPECT_FALSE(f.fa.free(a + 4, 2)); // straddles allocated and free
    EXPECT_FALSE(f.fa.is_free(a + 4));
    EXPECT_EQ(state_of(f.fa), mid);
    EXPECT_TRUE(f.fa.check());
    EXPECT_TRUE(f.fa.free(a, 5));
    EXPECT_FALSE(f.fa.free(a, 5));
    EXPECT_EQ(f.fa.free_frames(), 256u);
    EXPECT_EQ(f.fa.managed_frames(), 256u);
    EXPECT_EQ(f.fa.free_blocks(8), 1u);
    EXPECT_TRUE(f.fa.check());
}

TEST(BuddyAllocator, FreeOfNeverAllocatedFramesIsRefused) {
    Frames f(200);
    f.fa.add_free_range(0, 200);
    const uint64_t held = f.fa.alloc(4);
    ASSERT_NE(held, kNone);
    const uint64_t before = f.fa.free_frames();
    ASSERT_TRUE(held >= 150 || held + 4 <= 100) << held; // not where the next lines free
    const State state = state_of(f.fa);
    EXPECT_FALSE(f.fa.free(150));         // free, never allocated
    EXPECT_FALSE(f.fa.free(100, 50));     // all free
    EXPECT_FALSE(f.fa.free(held, 5));     // runs one past the allocation
    EXPECT_FALSE(f.fa.free(held - 1, 5)); // starts one before it (or wraps, at 0)
    EXPECT_FALSE(f.fa.free(200));         // out of range
    EXPECT_FALSE(f.fa.free(199, 2));      // straddles the end
    EXPECT_FALSE(f.fa.free(UINT64_MAX));
    EXPECT_FALSE(f.fa.free(1, UINT64_MAX));
    EXPECT_EQ(state_of(f.fa), state);
    EXPECT_EQ(f.fa.free_frames(), before);
    EXPECT_EQ(f.fa.managed_frames(), 200u);
    for (uint64_t i = 0; i < 4; ++i)
        EXPECT_FALSE(f.fa.is_free(held + i));
    EXPECT_TRUE(f.fa.check());
    // The failed frees did not disturb allocation.
    std::set<uint64_t> got;
    for (uint64_t fr; (fr = f.fa.alloc()) != kNone;)
        EXPECT_TRUE(got.insert(fr).second);
    EXPECT_EQ(got.size(), before);
    for (uint64_t i = 0; i < 4; ++i)
        EXPECT_EQ(got.count(held + i), 0u);
    EXPECT_TRUE(f.fa.check());
    EXPECT_TRUE(f.guard_intact());
}

// Reference model: the set of free frames. Is there a run of `count` free frames starting at a
// multiple of `align` and ending at or below `limit`? Walks the maximal free runs in order.
bool model_has_run(const std::set<uint64_t>& free, uint64_t frames, uint64_t count, uint64_t align,
                   uint64_t limit) {
    const uint64_t end = std::min(limit, frames);
    auto it = free.begin();
    while (it != free.end()) {
        const uint64_t run_start = *it;
        uint64_t run_end = run_start + 1;
        for (++it; it != free.end() && *it == run_end; ++it)
            ++run_end;
        const uint64_t first = (run_start + align - 1) / align * align;
        if (first + count <= std::min(run_end, end)) return true;
    }
    return false;
}

TEST(BuddyAllocator, FreePastTheEndIsRefusedWhole) {
    Frames f(200);
    f.fa.add_free_range(0, 200);
    // Take the last frame: with only it free, alloc() must return it.
    EXPECT_EQ(f.fa.reserve_range(0, 199), 199u);
    ASSERT_EQ(f.fa.alloc(), 199u);
    f.fa.add_free_range(0, 199);
    const State before = state_of(f.fa);
    EXPECT_FALSE(f.fa.free(199, 2));
    EXPECT_FALSE(f.fa.free(199, UINT64_MAX));
    EXPECT_FALSE(f.fa.is_free(199));
    EXPECT_EQ(state_of(f.fa), before);
    EXPECT_TRUE(f.fa.free(199, 1));
    EXPECT_EQ(f.fa.free_frames(), 200u);
    EXPECT_EQ(blocks_of(f.fa), coalesced_blocks(std::vector<bool>(200, true)));
    EXPECT_TRUE(f.fa.check());
}

TEST(BuddyAllocator, RandomizedAgainstModel) {
    constexpr uint64_t kFrames = 2000 + 37;
    for (uint32_t seed : {1u, 2u, 3u, 42u}) {
        SCOPED_TRACE(seed);
        std::mt19937_64 rng(seed);
        Frames f(kFrames);
        std::set<uint64_t> model_free;

        // Usable RAM with holes, plus a reserved stretch, as a memory map would give.
        for (uint64_t base = 0; base < kFrames; base += 300) {
            const uint64_t len = 200 + rng() % 100;
            f.fa.add_free_range(base, len);
            for (uint64_t i = base; i < std::min(base + len, kFrames); ++i)
                model_free.insert(i);
        }
        uint64_t reserved = 0;
        for (uint64_t i = 500; i < 520; ++i)
            reserved += model_free.erase(i);
        ASSERT_EQ(f.fa.reserve_range(500, 20), reserved);
        ASSERT_EQ(f.fa.free_frames(), model_free.size());
        ASSERT_TRUE(f.fa.check());
        const uint64_t managed = model_free.size();

        struct Alloc {
            uint64_t first, count;
            bool live;
        };
        std::vector<Alloc> allocs;
        std::vector<size_t> live; // indices into allocs
        std::vector<int> owner(kFrames, -1);

        for (int op = 0; op < 6000; ++op) {
            const uint64_t r = rng() % 100;
            if (r < 55 || live.empty()) {
                const uint64_t count = (rng() % 4 == 0) ? 1 + rng() % 40 : 1 + rng() % 3;
                const uint64_t align = uint64_t{1} << (rng() % 4 == 0 ? rng() % 7 : 0);
                const uint64_t limit = rng() % 3 == 0 ? rng() % (kFrames + 100) : kNone;
                const uint64_t fr = f.fa.alloc(count, align, limit);
                const bool possible = model_has_run(model_free, kFrames, count, align, limit);
                if (fr == kNone) {
                    ASSERT_FALSE(possible) << "alloc(" << count << ", " << align << ", " << limit
                                           << ") failed although a run was free";
                    continue;
                }
                ASSERT_EQ(fr % align, 0u);
                ASSERT_LE(fr + count, std::min(limit, kFrames));
                for (uint64_t i = fr; i < fr + count; ++i) {
                    ASSERT_EQ(owner[i], -1) << "frame " << i << " overlaps allocation " << owner[i];
                    ASSERT_EQ(model_free.erase(i), 1u) << "frame " << i << " was not free";
                    owner[i] = static_cast<int>(allocs.size());
                }
                live.push_back(allocs.size());
                allocs.push_back({fr, count, true});
            } else if (r < 95) {
                const size_t pick = rng() % live.size();
                Alloc& a = allocs[live[pick]];
                ASSERT_TRUE(f.fa.free(a.first, a.count));
                for (uint64_t i = a.first; i < a.first + a.count; ++i) {
                    owner[i] = -1;
                    model_free.insert(i);
                }
                a.live = false;
                live[pick] = live.back();
                live.pop_back();
            } else {
                // Double free of an earlier allocation whose frames are not all reused.
                const Alloc& a = allocs[rng() % allocs.size()];
                if (a.live) continue;
                bool any_free = false;
                for (uint64_t i = a.first; i < a.first + a.count; ++i)
                    any_free |= model_free.count(i) != 0;
                if (!any_free) continue;
                const uint64_t before = f.fa.free_frames();
                ASSERT_FALSE(f.fa.free(a.first, a.count));
                ASSERT_EQ(f.fa.free_frames(), before);
            }
            ASSERT_EQ(f.fa.free_frames(), model_free.size()) << "op " << op;
            ASSERT_EQ(f.fa.managed_frames(), managed);
            if (op % 10 == 0) ASSERT_TRUE(f.fa.check()) << "op " << op;
            if (op % 500 == 0) {
                std::vector<bool> free(kFrames);
                for (uint64_t i = 0; i < kFrames; ++i) {
                    free[i] = model_free.count(i) != 0;
                    ASSERT_EQ(f.fa.is_free(i), free[i]) << "frame " << i;
                }
                ASSERT_EQ(blocks_of(f.fa), coalesced_blocks(free)) << "op " << op;
            }
        }
        for (size_t idx : live)
            ASSERT_TRUE(f.fa.free(allocs[idx].first, allocs[idx].count));
        EXPECT_EQ(f.fa.free_frames(), managed);
        EXPECT_TRUE(f.fa.check());
        EXPECT_TRUE(f.guard_intact());
    }
}

// ---- Buddy-specific behaviour ----

TEST(BuddyAllocator, MetadataBytes) {
    EXPECT_EQ(BuddyAllocator::metadata_bytes(0), 0u);
    // Clamped like init(): a count past the limit costs no more than the limit.
    EXPECT_EQ(BuddyAllocator::metadata_bytes(UINT64_MAX),
              BuddyAllocator::metadata_bytes(BuddyAllocator::kMaxFrames));
    EXPECT_EQ(BuddyAllocator::metadata_bytes(BuddyAllocator::kMaxFrames + 1),
              BuddyAllocator::metadata_bytes(BuddyAllocator::kMaxFrames));
    // About 9.25 bytes a frame, plus rounding of the bitmaps to words.
    for (uint64_t n : {1ull, 63ull, 64ull, 65ull, 1000ull, 1ull << 20, 1ull << 32}) {
        const size_t bytes = BuddyAllocator::metadata_bytes(n);
        EXPECT_GE(bytes, n * 9) << n;
        EXPECT_LE(bytes, n * 9 + n / 4 + 16) << n;
    }
    // Every odd size runs inside its own buffer, across init, donation, churn and check().
    for (uint64_t n : {1ull, 2ull, 3ull, 7ull, 63ull, 64ull, 65ull, 1023ull, 1025ull, 3001ull}) {
        SCOPED_TRACE(n);
        Frames f(n);
        f.fa.add_free_range(0, n);
        EXPECT_EQ(f.fa.free_frames(), n);
        EXPECT_TRUE(f.fa.check());
        std::vector<uint64_t> got;
        for (uint64_t fr; (fr = f.fa.alloc()) != kNone;)
            got.push_back(fr);
        EXPECT_EQ(got.size(), n);
        for (uint64_t fr : got)
            ASSERT_TRUE(f.fa.free(fr));
        EXPECT_EQ(f.fa.alloc(n), 0u);
        EXPECT_TRUE(f.fa.check());
        EXPECT_TRUE(f.guard_intact());
    }
}

TEST(BuddyAllocator, AddFreeRangeBuildsMaximalBlocks) {
    Frames f(4096);
    // [1, 2047): one block of each order 0..9 climbing up to 1024, and again coming down.
    f.fa.add_free_range(1, 2046);
    for (uint32_t k = 0; k < kMaxOrder; ++k)
        EXPECT_EQ(f.fa.free_blocks(k), 2u) << k;
    EXPECT_EQ(f.fa.free_blocks(kMaxOrder), 0u);
    EXPECT_TRUE(f.fa.check());

    // Frame 0 completes [0, 1024): the whole climbing chain coalesces into one block.
    f.fa.add_free_range(0, 1);
    EXPECT_EQ(f.fa.free_blocks(kMaxOrder), 1u);
    for (uint32_t k = 0; k < kMaxOrder; ++k)
        EXPECT_EQ(f.fa.free_blocks(k), 1u) << k;
    EXPECT_TRUE(f.fa.check());

    // Frame 2047 completes [1024, 2048). Two adjacent maximal blocks do not merge further.
    f.fa.add_free_range(2047, 1);
    EXPECT_EQ(f.fa.free_blocks(kMaxOrder), 2u);
    for (uint32_t k = 0; k < kMaxOrder; ++k)
        EXPECT_EQ(f.fa.free_blocks(k), 0u) << k;
    EXPECT_TRUE(f.fa.check());

    // Donating what is already free changes nothing.
    const State before = state_of(f.fa);
    f.fa.add_free_range(0, 2048);
    f.fa.add_free_range(100, 5);
    EXPECT_EQ(state_of(f.fa), before);

    // Frames donated one at a time in random order still end in maximal blocks, the partial
    // state matching the unique coalesced decomposition all along.
    std::vector<uint64_t> order;
    for (uint64_t i = 2048; i < 4096; ++i)
        order.push_back(i);
    std::shuffle(order.begin(), order.end(), std::mt19937_64(7));
    std::vector<bool> free(4096, false);
    std::fill(free.begin(), free.begin() + 2048, true);
    for (size_t i = 0; i < order.size(); ++i) {
        f.fa.add_free_range(order[i], 1);
        free[order[i]] = true;
        if (i % 64 == 0) {
            ASSERT_EQ(blocks_of(f.fa), coalesced_blocks(free)) << i;
            ASSERT_TRUE(f.fa.check()) << i;
        }
    }
    EXPECT_EQ(f.fa.free_blocks(kMaxOrder), 4u);
    EXPECT_EQ(f.fa.free_frames(), 4096u);
    EXPECT_EQ(f.fa.managed_frames(), 4096u);
    EXPECT_TRUE(f.fa.check());
    EXPECT_TRUE(f.guard_intact());
}

TEST(BuddyAllocator, AddFreeRangeLeavesAllocatedFramesAlone) {
    Frames f(128);
    f.fa.add_free_range(8, 56); // [8, 64)
    const uint64_t a = f.fa.alloc(4);
    ASSERT_NE(a, kNone);
    // A donation over the allocated frames, with holes on both sides, takes only the holes: the
    // allocation must neither be freed nor counted twice.
    f.fa.add_free_range(0, 128);
    EXPECT_EQ(f.fa.free_frames(), 124u);
    EXPECT_EQ(f.fa.managed_frames(), 128u);
    for (uint64_t i = a; i < a + 4; ++i)
        EXPECT_FALSE(f.fa.is_free(i));
    EXPECT_TRUE(f.fa.check());
    // reserve_range leaves them allocated too, and they can still be freed.
    EXPECT_EQ(f.fa.reserve_range(a, 4), 0u);
    EXPECT_TRUE(f.fa.free(a, 4));
    EXPECT_EQ(f.fa.free_blocks(7), 1u);
    EXPECT_TRUE(f.fa.check());
}

TEST(BuddyAllocator, SplitAndCoalesce) {
    constexpr uint64_t kFrames = 4 * kMaxBlock + 5;
    Frames f(kFrames);
    f.fa.add_free_range(0, kFrames);
    const auto initial = blocks_of(f.fa);
    EXPECT_EQ(initial[kMaxOrder], 4u);
    EXPECT_EQ(initial[2], 1u); // [4096, 4100)
    EXPECT_EQ(initial[0], 1u); // 4100

    {
        // One single frame splits a maximal block into one free block of every smaller order.
        Frames one(kMaxBlock);
        one.fa.add_free_range(0, kMaxBlock);
        const uint64_t fr = one.fa.alloc();
        ASSERT_NE(fr, kNone);
        EXPECT_EQ(one.fa.free_blocks(kMaxOrder), 0u);
        for (uint32_t k = 0; k < kMaxOrder; ++k)
            EXPECT_EQ(one.fa.free_blocks(k), 1u) << k;
        EXPECT_TRUE(one.fa.check());
        ASSERT_TRUE(one.fa.free(fr));
        EXPECT_EQ(one.fa.free_blocks(kMaxOrder), 1u);
        EXPECT_TRUE(one.fa.check());
    }

    std::vector<uint64_t> frames;
    std::set<uint64_t> seen;
    for (uint64_t fr; (fr = f.fa.alloc()) != kNone;) {
        ASSERT_TRUE(seen.insert(fr).second) << fr;
        frames.push_back(fr);
    }
    ASSERT_EQ(frames.size(), kFrames);
    for (uint32_t k = 0; k <= kMaxOrder; ++k)
        EXPECT_EQ(f.fa.free_blocks(k), 0u) << k;
    EXPECT_TRUE(f.fa.check());

    std::shuffle(frames.begin(), frames.end(), std::mt19937_64(99));
    std::vector<bool> free(kFrames, false);
    for (size_t i = 0; i < frames.size(); ++i) {
        ASSERT_TRUE(f.fa.free(frames[i])) << frames[i];
        free[frames[i]] = true;
        if (i % 97 == 0) {
            ASSERT_TRUE(f.fa.check()) << i;
            ASSERT_EQ(blocks_of(f.fa), coalesced_blocks(free)) << i;
        }
    }
    EXPECT_EQ(blocks_of(f.fa), initial);
    EXPECT_EQ(f.fa.free_blocks(kMaxOrder), 4u);
    EXPECT_EQ(f.fa.free_frames(), kFrames);
    EXPECT_TRUE(f.fa.check());
    EXPECT_TRUE(f.guard_intact());
}

TEST(BuddyAllocator, AllocBlock) {
    constexpr uint64_t kFrames = 3 * kMaxBlock;
    Frames f(kFrames);
    f.fa.add_free_range(0, kFrames);
    std::vector<std::pair<uint64_t, uint32_t>> held;
    for (uint32_t k = 0; k <= kMaxOrder; ++k) {
        const uint64_t b = f.fa.alloc_block(k);
        ASSERT_NE(b, kNone) << k;
        EXPECT_EQ(b % (uint64_t{1} << k), 0u) << "order " << k << " block at " << b;
        for (uint64_t i = b; i < b + (uint64_t{1} << k); ++i)
            ASSERT_FALSE(f.fa.is_free(i));
        held.emplace_back(b, k);
        EXPECT_TRUE(f.fa.check());
    }
    EXPECT_EQ(f.fa.free_frames(), kFrames - 2047); // 1 + 2 + ... + 1024
    std::vector<bool> free(kFrames);
    for (uint64_t i = 0; i < kFrames; ++i)
        free[i] = f.fa.is_free(i);
    EXPECT_EQ(blocks_of(f.fa), coalesced_blocks(free));
    // Blocks are freed like any allocation, and coalesce when their buddies come back.
    for (auto [b, k] : held)
        ASSERT_TRUE(f.fa.free(b, uint64_t{1} << k));
    EXPECT_EQ(f.fa.free_blocks(kMaxOrder), 3u);
    EXPECT_TRUE(f.fa.check());

    // Half the frames free, every other one: no block above order 0 exists, and none is made up.
    std::vector<uint64_t> singles;
    for (uint64_t fr; (fr = f.fa.alloc_block(0)) != kNone;)
        singles.push_back(fr);
    ASSERT_EQ(singles.size(), kFrames);
    for (uint64_t fr : singles)
        if (fr % 2 == 0) ASSERT_TRUE(f.fa.free(fr));
    EXPECT_EQ(f.fa.free_frames(), kFrames / 2);
    EXPECT_EQ(f.fa.free_blocks(0), kFrames / 2);
    const State before = state_of(f.fa);
    for (uint32_t k = 1; k <= kMaxOrder; ++k)
        EXPECT_EQ(f.fa.alloc_block(k), kNone) << k;
    EXPECT_EQ(state_of(f.fa), before);
    const uint64_t one = f.fa.alloc_block(0);
    ASSERT_NE(one, kNone);
    EXPECT_EQ(one % 2, 0u);
    ASSERT_TRUE(f.fa.free(one));
    for (uint64_t fr : singles)
        if (fr % 2 == 1) ASSERT_TRUE(f.fa.free(fr));
    EXPECT_EQ(f.fa.free_blocks(kMaxOrder), 3u);
    EXPECT_TRUE(f.fa.check());
    EXPECT_TRUE(f.guard_intact());
}

TEST(BuddyAllocator, ExactSizeGivesTheTailBack) {
    Frames f(kMaxBlock);
    f.fa.add_free_range(0, kMaxBlock);
    const uint64_t a = f.fa.alloc(3);
    ASSERT_NE(a, kNone);
    EXPECT_EQ(f.fa.free_frames(), kMaxBlock - 3);
    // The fourth frame of the order-2 block is free again, and handed out next.
    EXPECT_TRUE(f.fa.is_free(a + 3));
    const uint64_t b = f.fa.alloc();
    EXPECT_EQ(b, a + 3);
    ASSERT_TRUE(f.fa.free(b));
    // An alignment beyond the size gives back everything past the run.
    const uint64_t c = f.fa.alloc(5, 256);
    ASSERT_NE(c, kNone);
    EXPECT_EQ(c % 256, 0u);
    EXPECT_EQ(f.fa.free_frames(), kMaxBlock - 8);
    for (uint64_t i = c + 5; i < c + 256; ++i)
        EXPECT_TRUE(f.fa.is_free(i)) << i;
    EXPECT_TRUE(f.fa.check());
    ASSERT_TRUE(f.fa.free(a, 3));
    ASSERT_TRUE(f.fa.free(c, 5));
    EXPECT_EQ(f.fa.free_blocks(kMaxOrder), 1u);
    EXPECT_TRUE(f.fa.check());
}

TEST(BuddyAllocator, LargeAndOddAlignments) {
    constexpr uint64_t kFrames = 8 * kMaxBlock;
    Frames f(kFrames);
    f.fa.add_free_range(1, kFrames - 1); // frame 0, aligned to everything, is not on offer
    std::vector<std::pair<uint64_t, uint64_t>> held;
    auto take = [&](uint64_t count, uint64_t align) {
        const uint64_t fr = f.fa.alloc(count, align);
        EXPECT_NE(fr, kNone) << count << " frames aligned to " << align;
        if (fr == kNone) return;
        EXPECT_EQ(fr % align, 0u) << count << " frames aligned to " << align;
        EXPECT_LE(fr + count, kFrames);
        for (uint64_t i = fr; i < fr + count; ++i)
            EXPECT_FALSE(f.fa.is_free(i));
        held.emplace_back(fr, count);
        EXPECT_TRUE(f.fa.check());
    };
    const uint64_t before = f.fa.free_frames();
    take(1, 2 * kMaxBlock); // beyond the largest block
    take(3, 4 * kMaxBlock);
    take(1, 3);
    take(7, 5);
    take(2, 12);
    take(1, 1000);
    take(10, kMaxBlock + 1);
    take(kMaxBlock + 1, 1); // longer than the largest block
    take(2000, 64);
    uint64_t taken = 0;
    for (auto [fr, n] : held)
        taken += n;
    EXPECT_EQ(f.fa.free_frames(), before - taken);
    // Only multiples of 8 * kMaxBlock qualify, and 0 is not free.
    EXPECT_EQ(f.fa.alloc(1, kFrames), kNone);
    EXPECT_EQ(f.fa.alloc(1, UINT64_MAX), kNone);
    for (auto [fr, n] : held)
        ASSERT_TRUE(f.fa.free(fr, n));
    EXPECT_EQ(f.fa.free_frames(), before);
    std::vector<bool> free(kFrames, true);
    free[0] = false;
    EXPECT_EQ(blocks_of(f.fa), coalesced_blocks(free));
    EXPECT_TRUE(f.fa.check());
    EXPECT_TRUE(f.guard_intact());
}

TEST(BuddyAllocator, LimitSplitsALargerBlock) {
    Frames f(4 * kMaxBlock);
    f.fa.add_free_range(kMaxBlock, kMaxBlock); // one maximal block [1024, 2048)
    ASSERT_EQ(f.fa.free_blocks(kMaxOrder), 1u);
    EXPECT_EQ(f.fa.alloc(1, 1, kMaxBlock), kNone);
    EXPECT_EQ(f.fa.alloc(1, 1, kMaxBlock + 1), kMaxBlock);
    EXPECT_EQ(f.fa.free_blocks(kMaxOrder), 0u);
    EXPECT_EQ(f.fa.alloc(4, 4, kMaxBlock + 8), kMaxBlock + 4);
    EXPECT_EQ(f.fa.alloc(16, 16, kMaxBlock + 40), kMaxBlock + 16);
    EXPECT_EQ(f.fa.alloc(100, 1, kMaxBlock + 140), kMaxBlock + 32);
    EXPECT_EQ(f.fa.alloc(9, 1, kMaxBlock + 140), kNone);
    EXPECT_EQ(f.fa.free_frames(), kMaxBlock - 121);
    EXPECT_TRUE(f.fa.check());
    ASSERT_TRUE(f.fa.free(kMaxBlock, 1));
    ASSERT_TRUE(f.fa.free(kMaxBlock + 4, 4));
    ASSERT_TRUE(f.fa.free(kMaxBlock + 16, 16));
    ASSERT_TRUE(f.fa.free(kMaxBlock + 32, 100));
    EXPECT_EQ(f.fa.free_blocks(kMaxOrder), 1u);
    EXPECT_TRUE(f.fa.check());
    EXPECT_TRUE(f.guard_intact());
}

TEST(BuddyAllocator, ExhaustionReturnsNone) {
    Frames f(3 * kMaxBlock + 77);
    f.fa.add_free_range(0, 3 * kMaxBlock + 77);
    std::mt19937_64 rng(5);
    std::vector<std::pair<uint64_t, uint64_t>> held;
    uint64_t taken = 0;
    // Mixed sizes until even a single frame cannot be had.
    for (;;) {
        const uint64_t n = 1 + rng() % 50;
        uint64_t fr = f.fa.alloc(n);
        if (fr == kNone) {
            fr = f.fa.alloc();
            if (fr == kNone) break;
            held.emplace_back(fr, 1);
            ++taken;
        } else {
            held.emplace_back(fr, n);
            taken += n;
        }
    }
    EXPECT_EQ(taken, 3 * kMaxBlock + 77);
    EXPECT_EQ(f.fa.free_frames(), 0u);
    const State before = state_of(f.fa);
    EXPECT_EQ(f.fa.alloc(), kNone);
    EXPECT_EQ(f.fa.alloc(1, 1, 10), kNone);
    EXPECT_EQ(f.fa.alloc(1, 3), kNone);
    for (uint32_t k = 0; k <= kMaxOrder; ++k)
        EXPECT_EQ(f.fa.alloc_block(k), kNone);
    EXPECT_EQ(state_of(f.fa), before);
    EXPECT_TRUE(f.fa.check());
    for (auto [fr, n] : held)
        ASSERT_TRUE(f.fa.free(fr, n));
    EXPECT_EQ(f.fa.free_blocks(kMaxOrder), 3u);
    EXPECT_TRUE(f.fa.check());
    EXPECT_TRUE(f.guard_intact());
}

TEST(BuddyAllocator, RefusedFreesChangeNothing) {
    Frames f(512);
    f.fa.add_free_range(0, 100);
    f.fa.add_free_range(101, 411); // frame 100 is a hole
    EXPECT_EQ(f.fa.reserve_range(200, 8), 8u);
    const uint64_t a = f.fa.alloc(40);
    const uint64_t b = f.fa.alloc(40);
    ASSERT_NE(a, kNone);
    ASSERT_NE(b, kNone);
    ASSERT_TRUE(f.fa.free(b, 40));
    // Plenty is allocated, so the counts alone would let a hole be freed: it must still be
    // refused, or the hole would coalesce into a free block and be handed out.
    ASSERT_LE(f.fa.free_frames() + 8, f.fa.managed_frames());
    const State before = state_of(f.fa);
    EXPECT_FALSE(f.fa.free(100));        // hole
    EXPECT_FALSE(f.fa.free(99, 2));      // free frame and hole
    EXPECT_FALSE(f.fa.free(200, 8));     // reserved
    EXPECT_FALSE(f.fa.free(204));        // reserved
    EXPECT_FALSE(f.fa.free(b, 40));      // double free
    EXPECT_FALSE(f.fa.free(b + 10, 5));  // double free of a part
    EXPECT_FALSE(f.fa.free(a + 30, 20)); // partly allocated, partly free (or foreign)
    EXPECT_FALSE(f.fa.free(a - 1, 2));   // a frame before the allocation
    EXPECT_EQ(state_of(f.fa), before);
    EXPECT_TRUE(f.fa.check());
    EXPECT_FALSE(f.fa.is_free(100));
    // The real allocation still frees, in parts too.
    EXPECT_TRUE(f.fa.free(a + 20, 20));
    EXPECT_TRUE(f.fa.free(a, 20));
    EXPECT_FALSE(f.fa.free(a, 20));
    EXPECT_EQ(f.fa.free_frames(), 503u);
    EXPECT_EQ(f.fa.managed_frames(), 503u);
    EXPECT_TRUE(f.fa.check());
    // The hole and the reserved frames are never handed out.
    for (uint64_t fr; (fr = f.fa.alloc()) != kNone;)
        EXPECT_TRUE(fr != 100 && (fr < 200 || fr >= 208)) << fr;
    EXPECT_TRUE(f.guard_intact());
}

TEST(BuddyAllocator, MemoryMapWithHoles) {
    // A PC-like map in frames: low RAM below the EBDA, the kernel image reserved, a PCI hole,
    // and RAM above it that ends off any block boundary.
    constexpr uint64_t kFrames = 0x3000;
    Frames f(kFrames);
    const std::vector<std::pair<uint64_t, uint64_t>> usable = {
        {0x1, 0x9e}, {0x100, 0xf00}, {0x1003, 0x7fd}, {0x2000, 0xf37}};
    std::vector<bool> donated(kFrames, false);
    for (auto [base, len] : usable) {
        f.fa.add_free_range(base, len);
        for (uint64_t i = base; i < base + len; ++i)
            donated[i] = true;
    }
    EXPECT_EQ(f.fa.reserve_range(0x100, 0x80), 0x80u); // kernel image
    for (uint64_t i = 0x100; i < 0x180; ++i)
        donated[i] = false;
    const uint64_t managed = std::count(donated.begin(), donated.end(), true);
    EXPECT_EQ(f.fa.managed_frames(), managed);
    EXPECT_EQ(f.fa.free_frames(), managed);
    EXPECT_EQ(blocks_of(f.fa), coalesced_blocks(donated));
    EXPECT_TRUE(f.fa.check());

    // A trampoline page below 1 MiB comes from low RAM.
    const uint64_t tramp = f.fa.alloc(1, 1, 0x100);
    ASSERT_NE(tramp, kNone);
    EXPECT_TRUE(tramp >= 0x1 && tramp < 0x9f) << tramp;
    // No run crosses a hole: the 0xe80 frames of [0x180, 0x1000) end at [0x1000, 0x1003).
    EXPECT_EQ(f.fa.alloc(0xe81, 1, 0x1800), kNone);
    const uint64_t below_hole = f.fa.alloc(0xe80, 1, 0x1800);
    EXPECT_EQ(below_hole, 0x180u);
    ASSERT_TRUE(f.fa.free(below_hole, 0xe80));
    EXPECT_EQ(f.fa.alloc(0x1000, 0x1000), kNone);

    // Everything handed out is donated RAM, each frame once.
    std::vector<bool> got(kFrames, false);
    got[tramp] = true;
    std::mt19937_64 rng(11);
    std::vector<std::pair<uint64_t, uint64_t>> held = {{tramp, 1}};
    for (;;) {
        const uint64_t n = 1 + rng() % 20;
        uint64_t fr = f.fa.alloc(n, uint64_t{1} << (rng() % 4));
        uint64_t count = n;
        if (fr == kNone) {
            fr = f.fa.alloc();
            count = 1;
            if (fr == kNone) break;
        }
        for (uint64_t i = fr; i < fr + count; ++i) {
            ASSERT_TRUE(donated[i]) << "hole frame " << i << " handed out";
            ASSERT_FALSE(got[i]) << "frame " << i << " handed out twice";
            got[i] = true;
        }
        held.emplace_back(fr, count);
    }
    EXPECT_EQ(got, donated);
    EXPECT_TRUE(f.fa.check());
    std::shuffle(held.begin(), held.end(), rng);
    for (auto [fr, n] : held)
        ASSERT_TRUE(f.fa.free(fr, n));
    EXPECT_EQ(f.fa.free_frames(), managed);
    EXPECT_EQ(blocks_of(f.fa), coalesced_blocks(donated));
    EXPECT_TRUE(f.fa.check());
    EXPECT_TRUE(f.guard_intact());
}

// Random allocations (counts 1..40, the usual alignments, some limits), blocks, frees of whole
// and partial runs, stale double frees and frees of holes, against a set of the frames in use;
// the full consistency check after every step.
TEST(BuddyAllocator, DifferentialAgainstUsedSet) {
    constexpr uint64_t kFrames = 3 * kMaxBlock + 333;
    constexpr uint64_t kAligns[] = {1, 2, 4, 8, 16, 64};
    for (uint32_t seed : {10u, 20u, 30u}) {
        SCOPED_TRACE(seed);
        std::mt19937_64 rng(seed);
        Frames f(kFrames);
        // Holes at random places, so blocks meet them at every order.
        std::vector<bool> donated(kFrames, false);
        for (uint64_t base = 0; base < kFrames;) {
            const uint64_t len = 1 + rng() % 700;
            const uint64_t gap = rng() % 3 == 0 ? 1 + rng() % 20 : 0;
            f.fa.add_free_range(base, len);
            for (uint64_t i = base; i < std::min(base + len, kFrames); ++i)
                donated[i] = true;
            base += len + gap;
        }
        const uint64_t managed = std::count(donated.begin(), donated.end(), true);
        ASSERT_EQ(f.fa.managed_frames(), managed);
        std::vector<uint64_t> holes;
        for (uint64_t i = 0; i < kFrames; ++i)
            if (!donated[i]) holes.push_back(i);

        std::set<uint64_t> used;
        std::set<uint64_t> model_free; // donated and not used, for model_has_run()
        for (uint64_t i = 0; i < kFrames; ++i)
            if (donated[i]) model_free.insert(i);
        std::vector<std::pair<uint64_t, uint64_t>> live, dead;
        auto take = [&](uint64_t fr, uint64_t count) {
            for (uint64_t i = fr; i < fr + count; ++i) {
                ASSERT_TRUE(donated[i]) << "hole " << i << " handed out";
                ASSERT_TRUE(used.insert(i).second) << "frame " << i << " handed out twice";
                model_free.erase(i);
            }
            live.emplace_back(fr, count);
        };

        for (int op = 0; op < 4000; ++op) {
            const uint64_t r = rng() % 100;
            if (r < 45 || live.empty()) {
                const uint64_t count = 1 + rng() % 40;
                const uint64_t align = kAligns[rng() % std::size(kAligns)];
                const uint64_t limit = rng() % 8 == 0 ? rng() % kFrames : kNone;
                const uint64_t fr = f.fa.alloc(count, align, limit);
                if (fr == kNone) {
                    ASSERT_FALSE(model_has_run(model_free, kFrames, count, align, limit))
                        << "alloc(" << count << ", " << align << ", " << limit << ") failed";
                } else {
                    ASSERT_EQ(fr % align, 0u);
                    ASSERT_LE(fr + count, std::min(limit, kFrames));
                    take(fr, count);
                }
            } else if (r < 55) {
                const auto order = static_cast<uint32_t>(rng() % 7);
                const uint64_t fr = f.fa.alloc_block(order);
                if (fr != kNone) {
                    ASSERT_EQ(fr % (uint64_t{1} << order), 0u);
                    take(fr, uint64_t{1} << order);
                }
            } else if (r < 90) {
                // Free a whole run, or a random part of it, keeping the rest.
                const size_t pick = rng() % live.size();
                auto [fr, count] = live[pick];
                live[pick] = live.back();
                live.pop_back();
                uint64_t from = fr, n = count;
                if (count > 1 && rng() % 3 == 0) {
                    from = fr + rng() % count;
                    n = 1 + rng() % (fr + count - from);
                    if (from > fr) live.emplace_back(fr, from - fr);
                    if (from + n < fr + count) live.emplace_back(from + n, fr + count - from - n);
                }
                ASSERT_TRUE(f.fa.free(from, n)) << from << "+" << n;
                for (uint64_t i = from; i < from + n; ++i) {
                    used.erase(i);
                    model_free.insert(i);
                }
                dead.emplace_back(from, n);
            } else {
                // Stale double frees, and frees of holes or of spans crossing one.
                uint64_t fr, n;
                if (rng() % 2 == 0 && !dead.empty()) {
                    std::tie(fr, n) = dead[rng() % dead.size()];
                } else if (!holes.empty()) {
                    fr = holes[rng() % holes.size()];
                    n = 1 + rng() % 4;
                    if (fr >= n / 2) fr -= n / 2;
                } else {
                    continue;
                }
                bool all_used = fr + n <= kFrames;
                for (uint64_t i = fr; all_used && i < fr + n; ++i)
                    all_used = donated[i] && used.count(i) != 0;
                if (all_used) continue; // reallocated since: a legitimate free
                const State before = state_of(f.fa);
                ASSERT_FALSE(f.fa.free(fr, n)) << fr << "+" << n;
                ASSERT_EQ(state_of(f.fa), before);
            }
            ASSERT_EQ(f.fa.free_frames(), managed - used.size()) << "op " << op;
            ASSERT_EQ(f.fa.managed_frames(), managed);
            ASSERT_TRUE(f.fa.check()) << "op " << op;
            if (op % 100 == 0) {
                std::vector<bool> free(kFrames);
                for (uint64_t i = 0; i < kFrames; ++i) {
                    free[i] = donated[i] && !used.count(i);
                    ASSERT_EQ(f.fa.is_free(i), free[i]) << "frame " << i;
                }
                ASSERT_EQ(blocks_of(f.fa), coalesced_blocks(free)) << "op " << op;
            }
        }
        for (auto [fr, n] : live)
            ASSERT_TRUE(f.fa.free(fr, n));
        EXPECT_EQ(f.fa.free_frames(), managed);
        EXPECT_EQ(blocks_of(f.fa), coalesced_blocks(donated));
        EXPECT_TRUE(f.fa.check());
        EXPECT_TRUE(f.guard_intact());
    }
}

} // namespace

// The page allocator moves memory between allocators (one per NUMA node): frames callers hold
// are adopted as allocated, so their owners can free them into the new allocator.
TEST(BuddyAllocator, AdoptedFramesAreAllocatedAndCanBeFreed) {
    Frames f(256);
    f.fa.add_free_range(0, 64); // [0, 64) free
    EXPECT_EQ(f.fa.adopt_allocated(32, 64), 32u); // [64, 96) adopted; [32, 64) already managed
    EXPECT_EQ(f.fa.managed_frames(), 96u);
    EXPECT_EQ(f.fa.free_frames(), 64u);
    EXPECT_TRUE(f.fa.is_managed(70));
    EXPECT_FALSE(f.fa.is_free(70));
    EXPECT_FALSE(f.fa.is_managed(100));
    EXPECT_TRUE(f.fa.check());
    // Never handed out by alloc, but freeable: they merge with their free buddies.
    EXPECT_TRUE(f.fa.free(64, 32));
    EXPECT_EQ(f.fa.free_frames(), 96u);
    EXPECT_FALSE(f.fa.free(64, 1)); // a double free is still refused
    EXPECT_FALSE(f.fa.free(100, 1)); // and so is a frame nobody adopted
    EXPECT_TRUE(f.fa.check());
    // Adopting what is managed does nothing.
    EXPECT_EQ(f.fa.adopt_allocated(0, 96), 0u);
    EXPECT_EQ(f.fa.managed_frames(), 96u);
    // Reserved frames leave the managed set and can be adopted back.
    EXPECT_EQ(f.fa.reserve_range(0, 16), 16u);
    EXPECT_EQ(f.fa.adopt_allocated(0, 16), 16u);
    EXPECT_TRUE(f.fa.free(0, 16));
    EXPECT_EQ(f.fa.free_frames(), 96u);
    EXPECT_TRUE(f.fa.check());
    EXPECT_TRUE(f.guard_intact());
}
