// Physical page-frame allocator: a binary buddy system over per-order free lists, so taking and
// returning a block costs O(kMaxOrder) whatever the amount of RAM. (It replaced a bitmap
// allocator whose multi-frame allocations scanned from frame 0.) Freeing a frame that was never
// donated (a hole, a reserved frame) is refused, and add_free_range() skips allocated frames
// instead of freeing them. Portable: the kernel wraps it with a lock, per-CPU caches and the
// memory map (mm/pmm.cc); host tests drive it directly.
//
// Metadata, all in the caller's buffer (metadata_bytes(), about 9.25 bytes per frame):
//   in_use   1 bit   set = not free: allocated, reserved or a hole
//   donated  1 bit   set = managed (donated and not reserved); tells allocated frames from holes,
//                    so freeing a hole is refused even when the counts would allow it
//   next     uint32  free-list links, meaningful only at the head of a free block; doubly
//   prev     uint32  linked so a buddy can leave its list in O(1) when it coalesces
//   order    uint8   order of the free block this frame heads, or kNotHead
// The uint32 links limit the allocator to kMaxFrames frames (16 TiB); init() clamps larger counts
// and the frames past the clamp stay outside, as if they did not exist.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lib/bitmap.h"

namespace cohort {

class BuddyAllocator {
  public:
    static constexpr uint64_t kNone = UINT64_MAX;
    /// Largest block: 2^kMaxOrder frames (4 MiB).
    static constexpr uint32_t kMaxOrder = 10;
    /// Most frames one allocator manages: the links need one index value as "none".
    static constexpr uint64_t kMaxFrames = UINT32_MAX;

    /// Bytes of metadata init() needs for `frame_count` frames (counts above kMaxFrames are
    /// clamped, as init() does).
    static size_t metadata_bytes(uint64_t frame_count);

    /// `metadata` must be 8-byte aligned and hold metadata_bytes(frame_count) bytes; its contents
    /// need not be initialised. All frames start in use; add_free_range() donates usable RAM.
    void init(void* metadata, uint64_t frame_count);
    /// Donates frames that are not managed yet (holes and reserved frames); frames already
    /// managed, free or allocated, are left alone. The range is clamped to frame_count().
    void add_free_range(uint64_t first_frame, uint64_t count);
    /// Marks free frames in use; returns how many were free before (they leave the managed
    /// total). Allocated frames in the range are untouched and may still be freed.
    uint64_t reserve_range(uint64_t first_frame, uint64_t count);
    /// Makes frames that are not managed yet managed and allocated, as if this allocator had
    /// handed them out, so a later free() takes them: for frames a caller got from another
    /// allocator whose memory moves here (the page allocator splitting itself by NUMA node).
    /// Frames already managed are left alone. Returns how many were adopted.
    uint64_t adopt_allocated(uint64_t first_frame, uint64_t count);
    /// Whether `frame` is managed: donated, not reserved, free or allocated (false past the end).
    bool is_managed(uint64_t frame) const { return frame < frames_ && donated_.test(frame); }

    /// Allocates `count` contiguous frames, the first a multiple of `align` (in frames, any
    /// non-zero value), all below `limit_frame`. Returns the first frame number or kNone, and
    /// kNone only when no such run of free frames exists. Exactly `count` frames are taken: the
    /// rest of the block they came from returns to the free lists. O(kMaxOrder) when a large
    /// enough block is free; a limit below frame_count(), an alignment or count beyond the
    /// largest block, or memory too fragmented for one block walk the free lists instead
    /// (O(free blocks), still never O(frames)).
    uint64_t alloc(uint64_t count = 1, uint64_t align = 1, uint64_t limit_frame = kNone);
    /// Fast path: one naturally aligned block of 2^order frames, or kNone.
    uint64_t alloc_block(uint32_t order);
    /// Frees [first_frame, first_frame+count), any part of any allocation. A range not entirely
    /// allocated (free, a hole, reserved, out of range) is refused: returns false and nothing
    /// changes, so a double free cannot corrupt the accounting.
    [[nodiscard]] bool free(uint64_t first_frame, uint64_t count = 1);

    /// Whether `frame` is free (false past the end).
    bool is_free(uint64_t frame) const { return frame < frames_ && !in_use_.test(frame); }
    /// Frames free now.
    uint64_t free_frames() const { return free_; }
    /// Frames donated and not reserved: free plus allocated.
    uint64_t managed_frames() const { return managed_; }
    /// Frames covered, after clamping to kMaxFrames.
    uint64_t frame_count() const { return frames_; }
    /// Free blocks of exactly `order` (0 for orders above kMaxOrder).
    uint64_t free_blocks(uint32_t order) const { return order <= kMaxOrder ? blocks_[order] : 0; }
    /// Full consistency check, for tests: O(frame_count()). False on any inconsistency.
    bool check() const;
    /// Calls f(first_frame, order) for every free block (O(free blocks)).
    template <typename F>
    void for_each_free_block(F&& f) const {
        for (uint32_t k = 0; k <= kMaxOrder; ++k)
            for (uint32_t h = heads_[k]; h != kNil; h = next_[h]) f(uint64_t{h}, k);
    }

  private:
    static constexpr uint32_t kNil = UINT32_MAX;
    static constexpr uint8_t kNotHead = 0xff;

    // Free-list primitives: they touch links and order bytes only, never in_use_ or the counts.
    void push(uint32_t head, uint32_t order);
    void unlink(uint32_t head);
    // Adds a block of free frames, first merging it with its free buddies.
    void insert_block(uint32_t head, uint32_t order);
    // Adds frames whose in_use_ bits are already clear, as maximal aligned blocks.
    void insert_run(uint64_t first, uint64_t count);
    // Takes a whole block of 2^order frames off the lists, splitting a larger one if needed;
    // its frames stay marked free. kNil if none.
    uint32_t pop_block(uint32_t order);
    // Marks the free frames in [first, end) in use, and no longer donated if `undonate`;
    // returns how many there were.
    uint64_t take_free(uint64_t first, uint64_t end, bool undonate);
    struct Block {
        uint32_t head;
        uint32_t order;
    };
    // The free block holding the free frame `frame`.
    Block block_of(uint64_t frame) const;
    // Lowest first frame of a fitting run, found by walking the free lists; kNone if none.
    uint64_t find_run(uint64_t count, uint64_t align, uint64_t limit) const;

    BitmapView in_use_{nullptr, 0};
    BitmapView donated_{nullptr, 0};
    uint32_t* next_ = nullptr;
    uint32_t* prev_ = nullptr;
    uint8_t* order_ = nullptr;
    uint64_t frames_ = 0;
    uint64_t free_ = 0;
    uint64_t managed_ = 0;
    uint32_t heads_[kMaxOrder + 1] = {};
    uint64_t blocks_[kMaxOrder + 1] = {};
};

} // namespace cohort
