#include "mm/frame_allocator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <utility>
#include <vector>

namespace {

using cohort::BitmapView;
using cohort::FrameAllocator;

constexpr uint64_t kNone = FrameAllocator::kNone;

// An allocator together with the bitmap storage it runs on.
struct Frames {
    explicit Frames(uint64_t count) : storage(BitmapView::words_for(count) + 1, 0) {
        // The extra trailing word is a guard: the allocator must never write past its bitmap.
        storage.back() = kGuard;
        fa.init(storage.data(), count);
    }
    bool guard_intact() const { return storage.back() == kGuard; }

    static constexpr uint64_t kGuard = 0x0123456789abcdefull;
    std::vector<uint64_t> storage;
    FrameAllocator fa;
};

TEST(FrameAllocator, InitStartsAllInUse) {
    Frames f(200);
    EXPECT_EQ(f.fa.frame_count(), 200u);
    EXPECT_EQ(f.fa.free_frames(), 0u);
    EXPECT_EQ(f.fa.managed_frames(), 0u);
    for (uint64_t i = 0; i < 200; ++i)
        EXPECT_FALSE(f.fa.is_free(i)) << i;
    EXPECT_FALSE(f.fa.is_free(200));
    EXPECT_EQ(f.fa.alloc(), kNone);
    EXPECT_TRUE(f.guard_intact());
}

TEST(FrameAllocator, InitResetsPreviousState) {
    Frames f(128);
    f.fa.add_free_range(0, 128);
    ASSERT_NE(f.fa.alloc(), kNone);
    f.fa.init(f.storage.data(), 100);
    EXPECT_EQ(f.fa.frame_count(), 100u);
    EXPECT_EQ(f.fa.free_frames(), 0u);
    EXPECT_EQ(f.fa.managed_frames(), 0u);
    EXPECT_FALSE(f.fa.is_free(5));
}

TEST(FrameAllocator, AddFreeRangeAndReserveAccounting) {
    Frames f(300);
    f.fa.add_free_range(10, 50); // [10, 60)
    EXPECT_EQ(f.fa.free_frames(), 50u);
    EXPECT_EQ(f.fa.managed_frames(), 50u);
    EXPECT_FALSE(f.fa.is_free(9));
    EXPECT_TRUE(f.fa.is_free(10));
    EXPECT_TRUE(f.fa.is_free(59));
    EXPECT_FALSE(f.fa.is_free(60));

    // Overlapping donations count each frame once.
    f.fa.add_free_range(40, 40); // [40, 80): 20 new
    EXPECT_EQ(f.fa.free_frames(), 70u);
    EXPECT_EQ(f.fa.managed_frames(), 70u);

    // Ranges past the end are clamped or ignored.
    f.fa.add_free_range(290, 1000); // [290, 300)
    EXPECT_EQ(f.fa.free_frames(), 80u);
    f.fa.add_free_range(300, 5);
    f.fa.add_free_range(5000, 5);
    f.fa.add_free_range(295, UINT64_MAX);
    EXPECT_EQ(f.fa.free_frames(), 80u);
    EXPECT_EQ(f.fa.managed_frames(), 80u);

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

    // Reserved frames are never handed out.
    std::set<uint64_t> got;
    for (uint64_t fr; (fr = f.fa.alloc()) != kNone;)
        got.insert(fr);
    EXPECT_EQ(got.size(), 68u);
    for (uint64_t fr : got) {
        EXPECT_TRUE((fr >= 20 && fr < 80) || (fr >= 290 && fr < 298)) << fr;
    }
    EXPECT_TRUE(f.guard_intact());
}

TEST(FrameAllocator, SingleFramesUntilExhaustion) {
    constexpr uint64_t kFrames = 1000; // not a multiple of 64
    Frames f(kFrames);
    f.fa.add_free_range(0, kFrames);
    f.fa.reserve_range(100, 50);
    const uint64_t baseline = f.fa.free_frames();
    ASSERT_EQ(baseline, kFrames - 50);

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
    EXPECT_EQ(f.fa.free_frames(), 0u);

    // One freed frame is found again, wherever the next-fit hint points.
    ASSERT_TRUE(f.fa.free(777));
    EXPECT_EQ(f.fa.alloc(), 777u);
    ASSERT_TRUE(f.fa.free(3));
    EXPECT_EQ(f.fa.alloc(), 3u);
    EXPECT_EQ(f.fa.alloc(), kNone);

    for (uint64_t fr : got)
        ASSERT_TRUE(f.fa.free(fr)) << fr;
    EXPECT_EQ(f.fa.free_frames(), baseline);
    EXPECT_EQ(f.fa.managed_frames(), baseline);
    EXPECT_TRUE(f.guard_intact());
}

TEST(FrameAllocator, InvalidRequests) {
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
    EXPECT_EQ(f.fa.free_frames(), 254u);
}

TEST(FrameAllocator, ContiguousWithAlignment) {
    Frames f(1024);
    f.fa.add_free_range(0, 1024);
    // Fragment the low frames so an aligned run has to skip ahead.
    EXPECT_EQ(f.fa.reserve_range(5, 1), 1u);
    EXPECT_EQ(f.fa.reserve_range(70, 1), 1u);

    const uint64_t a = f.fa.alloc(8, 8);
    EXPECT_EQ(a, 8u); // [0,8) contains 5
    const uint64_t b = f.fa.alloc(64, 64);
    EXPECT_EQ(b, 128u); // [64,128) contains 70
    const uint64_t c = f.fa.alloc(3, 16);
    EXPECT_EQ(c, 0u);
    const uint64_t d = f.fa.alloc(100, 1);
    EXPECT_EQ(d, 192u); // first 100 free frames in a row
    const uint64_t e = f.fa.alloc(5);
    EXPECT_EQ(e, 16u); // [3,5) and [6,8) are too short

    const std::vector<std::pair<uint64_t, uint64_t>> runs = {
        {a, 8}, {b, 64}, {c, 3}, {d, 100}, {e, 5}};
    for (auto [start, n] : runs) {
        for (uint64_t i = 0; i < n; ++i)
            EXPECT_FALSE(f.fa.is_free(start + i));
    }
    EXPECT_EQ(f.fa.free_frames(), 1024u - 2 - 8 - 64 - 3 - 100 - 5);

    // A run larger than anything left fails without changing anything.
    const uint64_t before = f.fa.free_frames();
    EXPECT_EQ(f.fa.alloc(733), kNone);      // the longest free run is [292, 1024)
    EXPECT_EQ(f.fa.alloc(600, 512), kNone); // 0 is taken, 512 + 600 is past the end
    EXPECT_EQ(f.fa.free_frames(), before);

    for (auto [start, n] : runs)
        EXPECT_TRUE(f.fa.free(start, n));
    EXPECT_EQ(f.fa.free_frames(), 1022u);
    EXPECT_EQ(f.fa.alloc(512, 512), 512u);
    EXPECT_TRUE(f.guard_intact());
}

TEST(FrameAllocator, LimitFrame) {
    Frames f(512);
    f.fa.add_free_range(100, 412); // [100, 512)
    EXPECT_EQ(f.fa.alloc(1, 1, 100), kNone);
    EXPECT_EQ(f.fa.alloc(1, 1, 101), 100u);
    EXPECT_EQ(f.fa.alloc(4, 1, 104), kNone); // [101, 105) would cross the limit
    EXPECT_EQ(f.fa.alloc(4, 1, 105), 101u);
    EXPECT_EQ(f.fa.alloc(8, 8, 120), 112u); // [112, 120) ends exactly at the limit
    EXPECT_EQ(f.fa.alloc(8, 8, 127), kNone);

    // Single frames below a limit while the next-fit hint points above it.
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
    EXPECT_TRUE(f.guard_intact());
}

TEST(FrameAllocator, FreeRestoresCounts) {
    Frames f(640);
    f.fa.add_free_range(0, 640);
    const uint64_t baseline = f.fa.free_frames();
    std::vector<std::pair<uint64_t, uint64_t>> held;
    for (uint64_t n : {1, 2, 3, 7, 64, 65, 100}) {
        const uint64_t fr = f.fa.alloc(n, n == 64 ? 64 : 1);
        ASSERT_NE(fr, kNone) << n;
        held.emplace_back(fr, n);
    }
    EXPECT_EQ(f.fa.free_frames(), baseline - 242);
    EXPECT_EQ(f.fa.managed_frames(), baseline);
    // Freeing part of a run is allowed and frees exactly that part.
    ASSERT_TRUE(f.fa.free(held[6].first + 10, 20));
    EXPECT_EQ(f.fa.free_frames(), baseline - 222);
    ASSERT_TRUE(f.fa.free(held[6].first, 10));
    ASSERT_TRUE(f.fa.free(held[6].first + 30, 70));
    held.pop_back();
    for (auto [fr, n] : held)
        ASSERT_TRUE(f.fa.free(fr, n));
    EXPECT_EQ(f.fa.free_frames(), baseline);
    EXPECT_EQ(f.fa.managed_frames(), baseline);
    for (uint64_t i = 0; i < 640; ++i)
        EXPECT_TRUE(f.fa.is_free(i)) << i;
    // Everything is allocatable again as one run.
    EXPECT_EQ(f.fa.alloc(640), 0u);
    EXPECT_EQ(f.fa.free_frames(), 0u);
}

TEST(FrameAllocator, DoubleFreeIsRefused) {
    Frames f(256);
    f.fa.add_free_range(0, 256);
    const uint64_t a = f.fa.alloc(10);
    const uint64_t b = f.fa.alloc();
    ASSERT_NE(a, kNone);
    ASSERT_NE(b, kNone);
    ASSERT_TRUE(f.fa.free(b));
    const uint64_t free_before = f.fa.free_frames();
    EXPECT_FALSE(f.fa.free(b));
    EXPECT_EQ(f.fa.free_frames(), free_before);

    ASSERT_TRUE(f.fa.free(a + 5, 5));
    const uint64_t free_mid = f.fa.free_frames();
    // The whole run is refused, also its still-allocated head: nothing may change.
    EXPECT_FALSE(f.fa.free(a, 10));
    EXPECT_EQ(f.fa.free_frames(), free_mid);
    for (uint64_t i = 0; i < 5; ++i)
        EXPECT_FALSE(f.fa.is_free(a + i));
    EXPECT_FALSE(f.fa.free(a + 4, 2)); // straddles allocated and free
    EXPECT_FALSE(f.fa.is_free(a + 4));
    EXPECT_TRUE(f.fa.free(a, 5));
    EXPECT_FALSE(f.fa.free(a, 5));
    EXPECT_EQ(f.fa.free_frames(), 256u);
    EXPECT_EQ(f.fa.managed_frames(), 256u);
}

TEST(FrameAllocator, FreeOfNeverAllocatedFramesIsRefused) {
    Frames f(200);
    f.fa.add_free_range(0, 200);
    const uint64_t held = f.fa.alloc(4);
    ASSERT_NE(held, kNone);
    const uint64_t before = f.fa.free_frames();
    EXPECT_FALSE(f.fa.free(150));     // free, never allocated
    EXPECT_FALSE(f.fa.free(100, 50)); // all free
    EXPECT_FALSE(f.fa.free(held, 5)); // runs one past the allocation
    EXPECT_FALSE(f.fa.free(200));     // out of range
    EXPECT_FALSE(f.fa.free(199, 2));  // straddles the end
    EXPECT_FALSE(f.fa.free(UINT64_MAX));
    EXPECT_FALSE(f.fa.free(1, UINT64_MAX));
    EXPECT_EQ(f.fa.free_frames(), before);
    EXPECT_EQ(f.fa.managed_frames(), 200u);
    for (uint64_t i = 0; i < 4; ++i)
        EXPECT_FALSE(f.fa.is_free(held + i));
    // The failed frees did not disturb allocation.
    std::set<uint64_t> got;
    for (uint64_t fr; (fr = f.fa.alloc()) != kNone;)
        EXPECT_TRUE(got.insert(fr).second);
    EXPECT_EQ(got.size(), before);
    for (uint64_t i = 0; i < 4; ++i)
        EXPECT_EQ(got.count(held + i), 0u);
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

TEST(FrameAllocator, FreePastTheEndIsRefusedWhole) {
    Frames f(200);
    f.fa.add_free_range(0, 200);
    // Take the last frame: with only it free, alloc() must return it.
    EXPECT_EQ(f.fa.reserve_range(0, 199), 199u);
    ASSERT_EQ(f.fa.alloc(), 199u);
    f.fa.add_free_range(0, 199);
    const uint64_t before = f.fa.free_frames();
    EXPECT_FALSE(f.fa.free(199, 2));
    EXPECT_FALSE(f.fa.free(199, UINT64_MAX));
    EXPECT_FALSE(f.fa.is_free(199));
    EXPECT_EQ(f.fa.free_frames(), before);
    EXPECT_TRUE(f.fa.free(199, 1));
    EXPECT_EQ(f.fa.free_frames(), 200u);
}

TEST(FrameAllocator, RandomizedAgainstModel) {
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
            if (op % 500 == 0) {
                for (uint64_t i = 0; i < kFrames; ++i)
                    ASSERT_EQ(f.fa.is_free(i), model_free.count(i) != 0) << "frame " << i;
            }
        }
        for (size_t idx : live)
            ASSERT_TRUE(f.fa.free(allocs[idx].first, allocs[idx].count));
        EXPECT_EQ(f.fa.free_frames(), managed);
        EXPECT_TRUE(f.guard_intact());
    }
}

} // namespace
