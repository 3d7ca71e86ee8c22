// Physical page-frame allocator over a bitmap (one bit per 4 KiB frame, set = in use).
// Portable: the kernel wraps it with a lock and the memory map; host tests drive it directly.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lib/bitmap.h"

namespace cohort {

class FrameAllocator {
  public:
    static constexpr uint64_t kNone = UINT64_MAX;

    /// `storage` must hold BitmapView::words_for(frame_count) words. All frames start in use;
    /// add_free_range() donates the ones that are real, usable RAM.
    void init(uint64_t* storage, uint64_t frame_count);
    void add_free_range(uint64_t first_frame, uint64_t count);
    /// Marks frames in use that were free (e.g. the bitmap's own storage). Returns how many
    /// were actually free before.
    uint64_t reserve_range(uint64_t first_frame, uint64_t count);

    /// Allocates `count` contiguous frames, the first a multiple of `align` (in frames), all
    /// below `limit_frame`. Returns the first frame number or kNone.
    uint64_t alloc(uint64_t count = 1, uint64_t align = 1, uint64_t limit_frame = kNone);
    /// Frees frames allocated earlier. Freeing a frame that is not allocated is refused (returns
    /// false, nothing changes): a double free must not corrupt the accounting.
    [[nodiscard]] bool free(uint64_t first_frame, uint64_t count = 1);

    bool is_free(uint64_t frame) const { return frame < frames_ && !bits_.test(frame); }
    uint64_t free_frames() const { return free_; }
    uint64_t managed_frames() const { return managed_; }
    uint64_t frame_count() const { return frames_; }

  private:
    BitmapView bits_{nullptr, 0};
    uint64_t frames_ = 0;
    uint64_t free_ = 0;
    uint64_t managed_ = 0; // frames ever donated: the allocator's total
    uint64_t hint_ = 0;    // where the last single-frame search ended: keeps allocation O(1)-ish
};

} // namespace cohort
