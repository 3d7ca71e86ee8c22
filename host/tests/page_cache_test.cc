// Per-CPU page caches over one buddy allocator: batches, watermarks, drain, and conservation
// (every frame is in the allocator, in a cache, or held) under random traffic.
#include "mm/buddy.h"
#include "mm/page_cache.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <set>
#include <vector>

namespace {

using cohort::BuddyAllocator;
using cohort::PageCache;

struct Machine {
    explicit Machine(uint64_t frames) : meta(BuddyAllocator::metadata_bytes(frames) / 8 + 1) {
        buddy.init(meta.data(), frames);
        buddy.add_free_range(0, frames);
    }
    static uint32_t take(void* ctx, uint32_t order, uint64_t* out, uint32_t n) {
        auto* m = static_cast<Machine*>(ctx);
        ++m->takes;
        uint32_t got = 0;
        while (got < n) {
            const uint64_t f = m->buddy.alloc_block(order);
            if (f == BuddyAllocator::kNone) break;
            out[got++] = f;
        }
        return got;
    }
    static void give(void* ctx, uint32_t order, const uint64_t* blocks, uint32_t n) {
        auto* m = static_cast<Machine*>(ctx);
        ++m->gives;
        for (uint32_t i = 0; i < n; ++i)
            if (!m->buddy.free(blocks[i], uint64_t{1} << order)) ++m->bad_gives;
    }
    PageCache::Pool pool() { return {take, give, this}; }

    std::vector<uint64_t> meta;
    BuddyAllocator buddy;
    uint64_t takes = 0, gives = 0, bad_gives = 0;
};

TEST(PageCache, ConfigureSpreadsTheBudgetOverOrders) {
    PageCache c;
    c.configure(160); // 32 frames per order
    EXPECT_EQ(c.high(0), 32u);
    EXPECT_EQ(c.high(1), 16u);
    EXPECT_EQ(c.high(4), 2u);
    EXPECT_EQ(c.batch(0), 16u);
    EXPECT_EQ(c.batch(4), 1u);
    c.configure(0); // tiny machines still cache one block per order
    for (uint32_t o = 0; o < PageCache::kOrders; ++o) {
        EXPECT_EQ(c.high(o), 1u);
        EXPECT_EQ(c.batch(o), 1u);
    }
    c.configure(1u << 30); // never above the fixed capacity
    EXPECT_EQ(c.high(0), PageCache::kCapacity);
}

TEST(PageCache, AllocFreeLoopTouchesThePoolOnce) {
    Machine m(4096);
    PageCache c;
    c.configure(160);
    for (uint32_t order = 0; order < PageCache::kOrders; ++order) {
        const uint64_t takes = m.takes;
        for (int i = 0; i < 1000; ++i) {
            const uint64_t f = c.alloc(order, m.pool());
            ASSERT_NE(f, PageCache::kNone);
            EXPECT_EQ(f % (uint64_t{1} << order), 0u) << "blocks are naturally aligned";
            c.free(f, order, m.pool());
        }
        EXPECT_EQ(m.takes - takes, 1u) << order;
    }
    EXPECT_EQ(m.gives, 0u);
    const uint64_t cached = c.cached_frames();
    EXPECT_EQ(cached, m.buddy.managed_frames() - m.buddy.free_frames());
    EXPECT_EQ(c.drain(m.pool()), cached);
    EXPECT_EQ(m.buddy.free_frames(), m.buddy.managed_frames());
}

TEST(PageCache, WatermarkBoundsWhatACacheHolds) {
    Machine m(4096);
    PageCache c;
    c.configure(160);
    std::vector<uint64_t> held;
    for (int i = 0; i < 200; ++i) held.push_back(c.alloc(0, m.pool()));
    for (uint64_t f : held) {
        c.free(f, 0, m.pool());
        EXPECT_LE(c.cached_blocks(0), c.high(0));
    }
    EXPECT_GT(m.gives, 0u);
    EXPECT_EQ(m.bad_gives, 0u);
    EXPECT_EQ(m.buddy.free_frames() + c.cached_frames(), m.buddy.managed_frames());
    c.drain(m.pool());
    EXPECT_EQ(c.cached_frames(), 0u);
    EXPECT_EQ(m.buddy.free_frames(), m.buddy.managed_frames());
    EXPECT_TRUE(m.buddy.check());
}

TEST(PageCache, ExhaustionReturnsNoneAndDrainRecoversFramesOtherCachesHold) {
    Machine m(64);
    PageCache a, b;
    a.configure(160);
    b.configure(160);
    std::vector<uint64_t> held;
    for (;;) {
        const uint64_t f = a.alloc(0, m.pool());
        if (f == PageCache::kNone) break;
        held.push_back(f);
    }
    EXPECT_EQ(held.size(), 64u);
    // Give half back through cache b: they stay cached there, so the allocator has none...
    for (size_t i = 0; i < 32; ++i) b.free(held[i], 0, m.pool());
    EXPECT_EQ(a.alloc(2, m.pool()), PageCache::kNone);
    // ...until b is drained and they coalesce again.
    b.drain(m.pool());
    EXPECT_NE(a.alloc(2, m.pool()), PageCache::kNone);
    EXPECT_EQ(m.bad_gives, 0u);
}

// Eight caches, random orders, frames often freed through another cache than the one that
// allocated them. After every step: no frame handed out twice, and allocator + caches + held
// = total. At the end everything drains back to the fully coalesced allocator.
TEST(PageCache, RandomTrafficConservesEveryFrame) {
    constexpr uint64_t kFrames = 8192;
    Machine m(kFrames);
    const uint64_t max_order_blocks = m.buddy.free_blocks(BuddyAllocator::kMaxOrder);
    constexpr int kCaches = 8;
    PageCache caches[kCaches];
    for (auto& c : caches) c.configure(100);
    std::mt19937_64 rng(42);
    struct Held {
        uint64_t frame;
        uint32_t order;
    };
    std::vector<Held> held;
    std::set<uint64_t> frames_held;
    uint64_t held_frames = 0;
    for (int step = 0; step < 50000; ++step) {
        PageCache& c = caches[rng() % kCaches];
        if (held.empty() || rng() % 100 < 52) {
            const uint32_t order = static_cast<uint32_t>(rng() % PageCache::kOrders);
            const uint64_t f = c.alloc(order, m.pool());
            if (f == PageCache::kNone) continue;
            for (uint64_t i = 0; i < (uint64_t{1} << order); ++i)
                ASSERT_TRUE(frames_held.insert(f + i).second) << "frame " << f + i << " handed out twice";
            held.push_back({f, order});
            held_frames += uint64_t{1} << order;
        } else {
            const size_t k = rng() % held.size();
            const Held h = held[k];
            held[k] = held.back();
            held.pop_back();
            for (uint64_t i = 0; i < (uint64_t{1} << h.order); ++i) frames_held.erase(h.frame + i);
            held_frames -= uint64_t{1} << h.order;
            c.free(h.frame, h.order, m.pool());
        }
        if (step % 97 == 0) {
            uint64_t cached = 0;
            for (auto& cc : caches) cached += cc.cached_frames();
            ASSERT_EQ(m.buddy.free_frames() + cached + held_frames, kFrames) << "step " << step;
        }
    }
    ASSERT_EQ(m.bad_gives, 0u);
    for (const Held& h : held) caches[0].free(h.frame, h.order, m.pool());
    for (auto& c : caches) c.drain(m.pool());
    EXPECT_EQ(m.buddy.free_frames(), kFrames);
    EXPECT_EQ(m.buddy.free_blocks(BuddyAllocator::kMaxOrder), max_order_blocks);
    EXPECT_TRUE(m.buddy.check());
}

} // namespace
