// A CPU's cache of free page blocks in front of the shared page allocator. Allocation and free
// of blocks up to 16 pages stay on the CPU; the shared allocator (and its machine-wide lock) is
// only reached to refill or drain a batch. Portable: the pool is a pair of callbacks, so host
// tests run many caches over one allocator and check that no frame is lost or duplicated.
// Not synchronised: the owner wraps each cache in its own lock (see mm/pmm.cc).
#pragma once

#include <cstdint>

namespace cohort {

class PageCache {
  public:
    static constexpr uint32_t kOrders = 5;    // blocks of 1, 2, 4, 8 and 16 pages
    static constexpr uint32_t kCapacity = 32; // blocks per order, the hard upper bound
    static constexpr uint64_t kNone = UINT64_MAX;

    /// Where batches come from and go to. take() fills `out` with up to `n` blocks of `order`
    /// and returns how many; give() takes `n` blocks back (they are free and were cached).
    struct Pool {
        uint32_t (*take)(void* ctx, uint32_t order, uint64_t* out, uint32_t n);
        void (*give)(void* ctx, uint32_t order, const uint64_t* blocks, uint32_t n);
        void* ctx;
    };

    /// Sizes the cache for `frames_budget` frames at most (spread over the orders; every order
    /// keeps at least one block). A cache that holds more than the new limits keeps it until
    /// its next free or drain.
    void configure(uint64_t frames_budget) {
        for (uint32_t o = 0; o < kOrders; ++o) {
            uint64_t blocks = frames_budget / kOrders >> o;
            if (blocks < 1) blocks = 1;
            if (blocks > kCapacity) blocks = kCapacity;
            high_[o] = static_cast<uint32_t>(blocks);
            batch_[o] = high_[o] / 2 ? high_[o] / 2 : 1;
        }
    }

    /// A block of 2^order frames (its first frame), or kNone when the pool has none either.
    uint64_t alloc(uint32_t order, const Pool& pool) {
        if (count_[order] == 0) {
            count_[order] = pool.take(pool.ctx, order, blocks_[order], batch_[order]);
            if (count_[order] == 0) return kNone;
        }
        return blocks_[order][--count_[order]];
    }

    /// Keeps a freed block; above the high watermark, a batch goes back to the pool first
    /// (the oldest blocks: the newest are the likeliest to be still in this CPU's caches).
    void free(uint64_t block, uint32_t order, const Pool& pool) {
        if (count_[order] >= high_[order]) {
            const uint32_t n = count_[order] < batch_[order] ? count_[order] : batch_[order];
            pool.give(pool.ctx, order, blocks_[order], n);
            for (uint32_t i = n; i < count_[order]; ++i) blocks_[order][i - n] = blocks_[order][i];
            count_[order] -= n;
        }
        blocks_[order][count_[order]++] = block;
    }

    /// Gives every cached block back; returns the frames that went.
    uint64_t drain(const Pool& pool) {
        uint64_t frames = 0;
        for (uint32_t o = 0; o < kOrders; ++o) {
            if (count_[o] == 0) continue;
            pool.give(pool.ctx, o, blocks_[o], count_[o]);
            frames += uint64_t{count_[o]} << o;
            count_[o] = 0;
        }
        return frames;
    }

    uint64_t cached_frames() const {
        uint64_t frames = 0;
        for (uint32_t o = 0; o < kOrders; ++o) frames += uint64_t{count_[o]} << o;
        return frames;
    }
    uint32_t cached_blocks(uint32_t order) const { return count_[order]; }
    /// The i-th cached block of `order` (i < cached_blocks(order)), for consistency checks.
    uint64_t cached_block(uint32_t order, uint32_t i) const { return blocks_[order][i]; }
    uint32_t high(uint32_t order) const { return high_[order]; }
    uint32_t batch(uint32_t order) const { return batch_[order]; }

  private:
    uint32_t count_[kOrders] = {};
    uint32_t high_[kOrders] = {1, 1, 1, 1, 1};
    uint32_t batch_[kOrders] = {1, 1, 1, 1, 1};
    uint64_t blocks_[kOrders][kCapacity] = {};
};

} // namespace cohort
