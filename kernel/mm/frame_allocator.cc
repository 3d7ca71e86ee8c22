#include "mm/frame_allocator.h"

#include <cstring>

namespace cohort {

void FrameAllocator::init(uint64_t* storage, uint64_t frame_count) {
    const size_t words = BitmapView::words_for(frame_count);
    memset(storage, 0xff, words * sizeof(uint64_t));
    bits_ = BitmapView(storage, frame_count);
    frames_ = frame_count;
    free_ = managed_ = hint_ = 0;
}

void FrameAllocator::add_free_range(uint64_t first, uint64_t count) {
    if (first >= frames_) return;
    if (count > frames_ - first) count = frames_ - first;
    for (uint64_t f = first; f < first + count; ++f) {
        if (bits_.test(f)) {
            bits_.clear(f);
            ++free_;
            ++managed_;
        }
    }
}

uint64_t FrameAllocator::reserve_range(uint64_t first, uint64_t count) {
    if (first >= frames_) return 0;
    if (count > frames_ - first) count = frames_ - first;
    uint64_t taken = 0;
    for (uint64_t f = first; f < first + count; ++f) {
        if (!bits_.test(f)) {
            bits_.set(f);
            ++taken;
        }
    }
    free_ -= taken;
    managed_ -= taken;
    return taken;
}

uint64_t FrameAllocator::alloc(uint64_t count, uint64_t align, uint64_t limit) {
    if (count == 0 || count > free_ || align == 0) return kNone;
    if (limit > frames_) limit = frames_;
    uint64_t found = BitmapView::npos;
    if (count == 1 && align == 1) {
        // Next-fit from the hint, wrapping once: avoids rescanning the allocated prefix.
        found = bits_.find_first_clear(hint_ < limit ? hint_ : 0);
        if (found == BitmapView::npos || found >= limit) found = bits_.find_first_clear(0);
    } else {
        found = bits_.find_clear_run(count, 0, align);
    }
    if (found == BitmapView::npos || found >= limit || count > limit - found) return kNone;
    bits_.set_range(found, count);
    free_ -= count;
    hint_ = found + count;
    return found;
}

bool FrameAllocator::free(uint64_t first, uint64_t count) {
    if (first >= frames_ || count > frames_ - first) return false;
    // Frames that were never donated (holes, reserved ranges) also have their bit set; this
    // catches freeing them whenever it would push the free count past what was donated.
    if (free_ + count > managed_) return false;
    for (uint64_t f = first; f < first + count; ++f)
        if (!bits_.test(f)) return false;
    bits_.clear_range(first, count);
    free_ += count;
    if (first < hint_) hint_ = first;
    return true;
}

} // namespace cohort
