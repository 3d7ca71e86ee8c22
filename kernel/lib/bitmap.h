// Fixed-size bitmaps with word-at-a-time search, for frame and ID allocators.
#pragma once

#include "lib/assert.h"

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace cohort {

/// Non-owning view over an array of 64-bit words holding `size()` bits. Bit i lives in word i/64
/// at position i%64. Bits in the last word beyond size() may hold anything: they are never read
/// as part of the bitmap, but set_range/clear_range never touch them either.
class BitmapView {
  public:
    static constexpr size_t npos = SIZE_MAX;
    static constexpr size_t kWordBits = 64;

    /// Number of words needed to hold `bits` bits.
    static constexpr size_t words_for(size_t bits) {
        return bits / kWordBits + (bits % kWordBits != 0);
    }

    /// `words` must have room for words_for(bits) words and outlive the view.
    constexpr BitmapView(uint64_t* words, size_t bits) : words_(words), bits_(bits) {}

    constexpr size_t size() const { return bits_; }
    constexpr uint64_t* words() const { return words_; }

    bool test(size_t i) const {
        COHORT_ASSERT(i < bits_);
        return (words_[i / kWordBits] >> (i % kWordBits)) & 1;
    }
    void set(size_t i) {
        COHORT_ASSERT(i < bits_);
        words_[i / kWordBits] |= bit(i);
    }
    void clear(size_t i) {
        COHORT_ASSERT(i < bits_);
        words_[i / kWordBits] &= ~bit(i);
    }

    /// Sets bits [begin, begin+count).
    void set_range(size_t begin, size_t count) { apply_range(begin, count, true); }
    /// Clears bits [begin, begin+count).
    void clear_range(size_t begin, size_t count) { apply_range(begin, count, false); }

    /// Index of the first set bit at or after `from`, or npos.
    size_t find_first_set(size_t from = 0) const { return find(from, bits_, false); }
    /// Index of the first clear bit at or after `from`, or npos.
    size_t find_first_clear(size_t from = 0) const { return find(from, bits_, true); }

    /// First index >= from that is a multiple of `align` (non-zero) and starts `count` (non-zero)
    /// consecutive clear bits, or npos.
    size_t find_clear_run(size_t count, size_t from = 0, size_t align = 1) const {
        COHORT_ASSERT(count > 0 && align > 0);
        // round_up() yields npos on overflow, which also ends the loop.
        size_t start = round_up(from, align);
        while (start < bits_ && count <= bits_ - start) {
            const size_t clear = find_first_clear(start);
            if (clear == npos) return npos;
            if (clear != start) {
                start = round_up(clear, align);
                continue;
            }
            // A set bit in the window rules out every start up to and including it.
            const size_t set_at = find(start, start + count, false);
            if (set_at == npos) return start;
            start = round_up(set_at + 1, align);
        }
        return npos;
    }

    /// Number of set bits.
    size_t count_set() const {
        size_t n = 0;
        const size_t full = bits_ / kWordBits;
        for (size_t w = 0; w < full; ++w)
            n += static_cast<size_t>(std::popcount(words_[w]));
        if (bits_ % kWordBits != 0)
            n += static_cast<size_t>(std::popcount(words_[full] & tail_mask()));
        return n;
    }

  private:
    static constexpr uint64_t bit(size_t i) { return uint64_t{1} << (i % kWordBits); }

    // Rounds up to a multiple of align; npos on overflow so callers see "not found".
    static constexpr size_t round_up(size_t v, size_t align) {
        const size_t rem = v % align;
        if (rem == 0) return v;
        const size_t add = align - rem;
        return v > npos - add ? npos : v + add;
    }

    // Mask of the valid bits in the last, partial word.
    constexpr uint64_t tail_mask() const {
        const size_t r = bits_ % kWordBits;
        return r == 0 ? ~uint64_t{0} : (uint64_t{1} << r) - 1;
    }

    // Word `w` with clear bits turned to ones when looking for clear bits, and bits past the end
    // masked off, so one countr_zero finds the candidate.
    uint64_t search_word(size_t w, bool want_clear) const {
        uint64_t v = want_clear ? ~words_[w] : words_[w];
        if (w == (bits_ - 1) / kWordBits) v &= tail_mask();
        return v;
    }

    // First bit in [from, to) (to <= size()) that is clear (want_clear) or set, or npos.
    size_t find(size_t from, size_t to, bool want_clear) const {
        if (from >= to) return npos;
        size_t w = from / kWordBits;
        uint64_t v = search_word(w, want_clear) & (~uint64_t{0} << (from % kWordBits));
        const size_t last = (to - 1) / kWordBits;
        for (;;) {
            if (v != 0) {
                const size_t i = w * kWordBits + static_cast<size_t>(std::countr_zero(v));
                return i < to ? i : npos;
            }
            if (++w > last) return npos;
            v = search_word(w, want_clear);
        }
    }

    void apply_range(size_t begin, size_t count, bool value) {
        COHORT_ASSERT(begin <= bits_ && count <= bits_ - begin);
        size_t i = begin;
        const size_t end = begin + count;
        while (i < end) {
            const size_t off = i % kWordBits;
            const size_t n = (end - i < kWordBits - off) ? end - i : kWordBits - off;
            const uint64_t mask = (n == kWordBits ? ~uint64_t{0} : (uint64_t{1} << n) - 1) << off;
            if (value)
                words_[i / kWordBits] |= mask;
            else
                words_[i / kWordBits] &= ~mask;
            i += n;
        }
    }

    uint64_t* words_;
    size_t bits_;
};

/// Bitmap owning storage for `Bits` bits, all initially clear.
template <size_t Bits>
class Bitmap {
  public:
    static constexpr size_t npos = BitmapView::npos;
    static constexpr size_t kWords = BitmapView::words_for(Bits);

    constexpr Bitmap() = default;

    BitmapView view() { return BitmapView(words_.data(), Bits); }
    // The view never writes through a const Bitmap: only const members are reachable.
    const BitmapView view() const { return BitmapView(const_cast<uint64_t*>(words_.data()), Bits); }

    static constexpr size_t size() { return Bits; }
    bool test(size_t i) const { return view().test(i); }
    void set(size_t i) { view().set(i); }
    void clear(size_t i) { view().clear(i); }
    void set_range(size_t begin, size_t count) { view().set_range(begin, count); }
    void clear_range(size_t begin, size_t count) { view().clear_range(begin, count); }
    size_t find_first_set(size_t from = 0) const { return view().find_first_set(from); }
    size_t find_first_clear(size_t from = 0) const { return view().find_first_clear(from); }
    size_t find_clear_run(size_t count, size_t from = 0, size_t align = 1) const {
        return view().find_clear_run(count, from, align);
    }
    size_t count_set() const { return view().count_set(); }

  private:
    std::array<uint64_t, kWords> words_{};
};

} // namespace cohort
