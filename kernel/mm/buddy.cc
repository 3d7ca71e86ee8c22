#include "mm/buddy.h"

#include <bit>
#include <cstring>

#include "lib/assert.h"

namespace cohort {

namespace {

static_assert(sizeof(size_t) >= sizeof(uint64_t), "metadata_bytes() must not overflow");

// First bit in [from, to) equal to `value`, or `to` if none. BitmapView's own searches run on to
// the end of the map, which would make freeing one frame cost O(frames) when the frames above it
// are all in use.
uint64_t find_in(const BitmapView& bits, uint64_t from, uint64_t to, bool value) {
    constexpr uint64_t kBits = BitmapView::kWordBits;
    const uint64_t* words = bits.words();
    while (from < to) {
        const uint64_t w = from / kBits;
        const uint64_t v = (value ? words[w] : ~words[w]) & (~uint64_t{0} << (from % kBits));
        if (v != 0) {
            const uint64_t i = w * kBits + static_cast<uint64_t>(std::countr_zero(v));
            return i < to ? i : to;
        }
        from = (w + 1) * kBits;
    }
    return to;
}

constexpr uint64_t block_size(uint32_t order) {
    return uint64_t{1} << order;
}

} // namespace

size_t BuddyAllocator::metadata_bytes(uint64_t frame_count) {
    const uint64_t n = frame_count < kMaxFrames ? frame_count : kMaxFrames;
    return 2 * BitmapView::words_for(n) * sizeof(uint64_t) +
           n * (2 * sizeof(uint32_t) + sizeof(uint8_t));
}

void BuddyAllocator::init(void* metadata, uint64_t frame_count) {
    COHORT_CHECK(reinterpret_cast<uintptr_t>(metadata) % alignof(uint64_t) == 0);
    frames_ = frame_count < kMaxFrames ? frame_count : kMaxFrames;
    const size_t words = BitmapView::words_for(frames_);
    // Largest alignment first, so every array is naturally aligned without padding.
    auto* in_use = static_cast<uint64_t*>(metadata);
    auto* donated = in_use + words;
    next_ = reinterpret_cast<uint32_t*>(donated + words);
    prev_ = next_ + frames_;
    order_ = reinterpret_cast<uint8_t*>(prev_ + frames_);
    memset(in_use, 0xff, words * sizeof(uint64_t));
    memset(donated, 0, words * sizeof(uint64_t));
    // The links are left as they are: they are read only at free-block heads, which push() sets.
    memset(order_, kNotHead, frames_);
    in_use_ = BitmapView(in_use, frames_);
    donated_ = BitmapView(donated, frames_);
    free_ = managed_ = 0;
    for (uint32_t k = 0; k <= kMaxOrder; ++k) {
        heads_[k] = kNil;
        blocks_[k] = 0;
    }
}

void BuddyAllocator::push(uint32_t head, uint32_t order) {
    next_[head] = heads_[order];
    prev_[head] = kNil;
    if (heads_[order] != kNil) prev_[heads_[order]] = head;
    heads_[order] = head;
    order_[head] = static_cast<uint8_t>(order);
    ++blocks_[order];
}

void BuddyAllocator::unlink(uint32_t head) {
    const uint32_t order = order_[head];
    COHORT_ASSERT(order <= kMaxOrder);
    if (prev_[head] != kNil)
        next_[prev_[head]] = next_[head];
    else
        heads_[order] = next_[head];
    if (next_[head] != kNil) prev_[next_[head]] = prev_[head];
    order_[head] = kNotHead;
    --blocks_[order];
}

void BuddyAllocator::insert_block(uint32_t head, uint32_t order) {
    // Holes and allocated frames are never heads, so they stop the merge.
    while (order < kMaxOrder) {
        const uint32_t buddy = head ^ static_cast<uint32_t>(block_size(order));
        if (buddy >= frames_ || order_[buddy] != order) break;
        unlink(buddy);
        head &= ~static_cast<uint32_t>(block_size(order));
        ++order;
    }
    push(head, order);
}

void BuddyAllocator::insert_run(uint64_t first, uint64_t count) {
    const uint64_t end = first + count;
    while (first < end) {
        // The largest block that starts aligned at `first` and fits before `end`.
        uint32_t order = static_cast<uint32_t>(std::bit_width(end - first)) - 1;
        if (order > kMaxOrder) order = kMaxOrder;
        if (first != 0) {
            const auto align = static_cast<uint32_t>(std::countr_zero(first));
            if (align < order) order = align;
        }
        insert_block(static_cast<uint32_t>(first), order);
        first += block_size(order);
    }
}

uint32_t BuddyAllocator::pop_block(uint32_t order) {
    uint32_t k = order;
    while (k <= kMaxOrder && heads_[k] == kNil)
        ++k;
    if (k > kMaxOrder) return kNil;
    const uint32_t head = heads_[k];
    unlink(head);
    // Keeping the lower half makes consecutive small allocations ascend through memory, and the
    // upper halves pushed last are the first reused.
    while (k > order) {
        --k;
        push(head + static_cast<uint32_t>(block_size(k)), k);
    }
    return head;
}

BuddyAllocator::Block BuddyAllocator::block_of(uint64_t frame) const {
    for (uint32_t k = 0; k <= kMaxOrder; ++k) {
        const uint64_t head = frame & ~(block_size(k) - 1);
        if (order_[head] == k) return {static_cast<uint32_t>(head), k};
    }
    // A free frame outside every free block: the metadata is corrupt, and carving on would
    // hand out frames twice.
    assert_fail("free frame in no free block", __FILE__, __LINE__, __func__);
}

uint64_t BuddyAllocator::take_free(uint64_t first, uint64_t end, bool undonate) {
    uint64_t taken = 0;
    for (uint64_t f = find_in(in_use_, first, end, false); f < end;
         f = find_in(in_use_, f, end, false)) {
        const Block b = block_of(f);
        const uint64_t block_end = b.head + block_size(b.order);
        const uint64_t stop = block_end < end ? block_end : end;
        unlink(b.head);
        in_use_.set_range(f, stop - f);
        if (undonate) donated_.clear_range(f, stop - f);
        taken += stop - f;
        // Only the first block can start before `first`; only the last can run past `end`.
        insert_run(b.head, f - b.head);
        insert_run(stop, block_end - stop);
        f = stop;
    }
    return taken;
}

uint64_t BuddyAllocator::find_run(uint64_t count, uint64_t align, uint64_t limit) const {
    uint64_t best = kNone;
    for (uint32_t k = 0; k <= kMaxOrder; ++k) {
        for (uint32_t h = heads_[k]; h != kNil; h = next_[h]) {
            // Every start in this block's run is at or above h.
            if (h >= limit || h >= best) continue;
            // Runs are walked from their first block only, so each is walked once: the whole
            // search is O(free blocks), not O(frames).
            if (h > 0 && !in_use_.test(h - 1)) continue;
            uint64_t end = h + block_size(k);
            while (end < limit && order_[end] != kNotHead)
                end += block_size(order_[end]);
            if (end > limit) end = limit;
            const uint64_t rem = h % align;
            const uint64_t gap = rem == 0 ? 0 : align - rem;
            if (gap >= end - h) continue;
            // The lowest aligned start in the run is the only one worth testing: later ones end
            // later.
            const uint64_t start = h + gap;
            if (count <= end - start && start < best) best = start;
        }
    }
    return best;
}

void BuddyAllocator::add_free_range(uint64_t first, uint64_t count) {
    if (first >= frames_) return;
    if (count > frames_ - first) count = frames_ - first;
    const uint64_t end = first + count;
    // Only the stretches not managed yet: an allocated frame donated again would be counted twice
    // and land on a free list while its owner still uses it.
    for (uint64_t f = find_in(donated_, first, end, false); f < end;
         f = find_in(donated_, f, end, false)) {
        const uint64_t stop = find_in(donated_, f, end, true);
        donated_.set_range(f, stop - f);
        in_use_.clear_range(f, stop - f);
        insert_run(f, stop - f);
        free_ += stop - f;
        managed_ += stop - f;
        f = stop;
    }
}

uint64_t BuddyAllocator::reserve_range(uint64_t first, uint64_t count) {
    if (first >= frames_) return 0;
    if (count > frames_ - first) count = frames_ - first;
    const uint64_t taken = take_free(first, first + count, true);
    free_ -= taken;
    managed_ -= taken;
    return taken;
}

uint64_t BuddyAllocator::adopt_allocated(uint64_t first, uint64_t count) {
    if (first >= frames_) return 0;
    if (count > frames_ - first) count = frames_ - first;
    const uint64_t end = first + count;
    uint64_t adopted = 0;
    // Frames not donated are in use already (holes and reserved frames are): marking them
    // donated makes them allocated frames of this allocator.
    for (uint64_t f = find_in(donated_, first, end, false); f < end;
         f = find_in(donated_, f, end, false)) {
        const uint64_t stop = find_in(donated_, f, end, true);
        donated_.set_range(f, stop - f);
        adopted += stop - f;
        f = stop;
    }
    managed_ += adopted;
    return adopted;
}

uint64_t BuddyAllocator::alloc(uint64_t count, uint64_t align, uint64_t limit) {
    if (count == 0 || align == 0 || count > free_) return kNone;
    if (limit > frames_) limit = frames_;
    if (count > limit) return kNone;

    // Fast path, when any frame will do: one block large enough to hold an aligned start with
    // `count` frames after it. Power-of-two alignments are met by the block's own alignment.
    uint32_t order = kMaxOrder + 1;
    if (std::has_single_bit(align)) {
        const auto need = static_cast<uint32_t>(std::bit_width(count - 1));
        const auto align_order = static_cast<uint32_t>(std::countr_zero(align));
        order = need > align_order ? need : align_order;
    } else if (align <= block_size(kMaxOrder)) {
        order = static_cast<uint32_t>(std::bit_width(count + align - 2));
    }
    if (limit == frames_ && order <= kMaxOrder) {
        const uint32_t head = pop_block(order);
        if (head != kNil) {
            const uint64_t rem = head % align;
            const uint64_t first = rem == 0 ? head : head + (align - rem);
            const uint64_t end = head + block_size(order);
            in_use_.set_range(first, count);
            insert_run(head, first - head);
            insert_run(first + count, end - first - count);
            free_ -= count;
            return first;
        }
    }

    // Slow path, for a limit, alignments beyond the largest block, runs longer than it, and
    // free memory too fragmented for the fast path: a run made of several adjacent free blocks
    // may still fit.
    const uint64_t first = find_run(count, align, limit);
    if (first == kNone) return kNone;
    const uint64_t taken = take_free(first, first + count, false);
    COHORT_ASSERT(taken == count);
    free_ -= taken;
    return first;
}

uint64_t BuddyAllocator::alloc_block(uint32_t order) {
    if (order > kMaxOrder) return kNone;
    const uint32_t head = pop_block(order);
    if (head == kNil) return kNone;
    in_use_.set_range(head, block_size(order));
    free_ -= block_size(order);
    return head;
}

bool BuddyAllocator::free(uint64_t first, uint64_t count) {
    if (first >= frames_ || count > frames_ - first) return false;
    // Implied by the per-frame test below, but O(1): refuses absurd counts before any scan.
    if (free_ + count > managed_) return false;
    const uint64_t end = first + count;
    // Allocated means in use and donated: holes and reserved frames are in use but not donated,
    // and must never reach a free list.
    if (find_in(in_use_, first, end, false) != end) return false;
    if (find_in(donated_, first, end, false) != end) return false;
    in_use_.clear_range(first, count);
    insert_run(first, count);
    free_ += count;
    return true;
}

bool BuddyAllocator::check() const {
    uint64_t listed_frames = 0;
    uint64_t listed_blocks = 0;
    for (uint32_t k = 0; k <= kMaxOrder; ++k) {
        const uint64_t size = block_size(k);
        uint64_t n = 0;
        uint32_t prev = kNil;
        for (uint32_t h = heads_[k]; h != kNil; prev = h, h = next_[h]) {
            // Bounded by the count, so a cycle in the links ends the walk too.
            if (++n > blocks_[k]) return false;
            if (h >= frames_ || h % size != 0 || size > frames_ - h) return false;
            if (order_[h] != k || prev_[h] != prev) return false;
            if (find_in(in_use_, h, h + size, true) != h + size) return false;
            if (find_in(donated_, h, h + size, false) != h + size) return false;
            // No head inside a block: aligned power-of-two blocks overlap only by containment.
            for (uint64_t i = h + 1; i < h + size; ++i)
                if (order_[i] != kNotHead) return false;
            if (k < kMaxOrder) {
                const uint64_t buddy = h ^ size;
                if (buddy < frames_ && order_[buddy] == k) return false;
            }
            listed_frames += size;
        }
        if (n != blocks_[k]) return false;
        listed_blocks += n;
    }
    // A head byte on no list would be taken for a free buddy by insert_block().
    uint64_t heads = 0;
    for (uint64_t f = 0; f < frames_; ++f)
        heads += order_[f] != kNotHead;
    if (heads != listed_blocks) return false;
    // The listed blocks are disjoint and wholly free, so this says they cover every free frame.
    if (listed_frames != free_ || frames_ - in_use_.count_set() != free_) return false;
    return donated_.count_set() == managed_ && free_ <= managed_;
}

} // namespace cohort
