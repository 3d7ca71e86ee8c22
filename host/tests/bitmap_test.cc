#include "lib/bitmap.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace {

using cohort::Bitmap;
using cohort::BitmapView;

constexpr size_t npos = BitmapView::npos;

TEST(Bitmap, WordsFor) {
    EXPECT_EQ(BitmapView::words_for(0), 0u);
    EXPECT_EQ(BitmapView::words_for(1), 1u);
    EXPECT_EQ(BitmapView::words_for(64), 1u);
    EXPECT_EQ(BitmapView::words_for(65), 2u);
    EXPECT_EQ(BitmapView::words_for(128), 2u);
    static_assert(BitmapView::words_for(129) == 3);
}

TEST(Bitmap, SetClearTest) {
    Bitmap<130> b;
    EXPECT_EQ(b.size(), 130u);
    EXPECT_EQ(b.count_set(), 0u);
    for (size_t i : {0, 1, 63, 64, 65, 127, 128, 129}) {
        EXPECT_FALSE(b.test(i));
        b.set(i);
        EXPECT_TRUE(b.test(i));
    }
    EXPECT_EQ(b.count_set(), 8u);
    b.clear(64);
    EXPECT_FALSE(b.test(64));
    EXPECT_TRUE(b.test(63));
    EXPECT_TRUE(b.test(65));
    EXPECT_EQ(b.count_set(), 7u);
}

TEST(Bitmap, RangesAcrossWords) {
    Bitmap<300> b;
    b.set_range(60, 150);
    EXPECT_EQ(b.count_set(), 150u);
    EXPECT_FALSE(b.test(59));
    EXPECT_TRUE(b.test(60));
    EXPECT_TRUE(b.test(209));
    EXPECT_FALSE(b.test(210));
    b.clear_range(64, 128);
    EXPECT_EQ(b.count_set(), 22u);
    EXPECT_TRUE(b.test(63));
    EXPECT_FALSE(b.test(64));
    EXPECT_FALSE(b.test(191));
    EXPECT_TRUE(b.test(192));
    b.set_range(0, 0);
    b.set_range(300, 0);
    EXPECT_EQ(b.count_set(), 22u);
    b.set_range(0, 300);
    EXPECT_EQ(b.count_set(), 300u);
    EXPECT_EQ(b.find_first_clear(), npos);
}

TEST(Bitmap, FindFirst) {
    Bitmap<200> b;
    EXPECT_EQ(b.find_first_set(), npos);
    EXPECT_EQ(b.find_first_clear(), 0u);
    EXPECT_EQ(b.find_first_clear(199), 199u);
    EXPECT_EQ(b.find_first_clear(200), npos);
    EXPECT_EQ(b.find_first_clear(npos), npos);
    b.set(5);
    b.set(70);
    b.set(199);
    EXPECT_EQ(b.find_first_set(), 5u);
    EXPECT_EQ(b.find_first_set(5), 5u);
    EXPECT_EQ(b.find_first_set(6), 70u);
    EXPECT_EQ(b.find_first_set(71), 199u);
    EXPECT_EQ(b.find_first_set(200), npos);
    b.set_range(0, 150);
    EXPECT_EQ(b.find_first_clear(), 150u);
    EXPECT_EQ(b.find_first_clear(160), 160u);
}

// Garbage in the unused tail of the last word must never be reported or counted.
TEST(Bitmap, TailBitsIgnored) {
    uint64_t words[2] = {~uint64_t{0}, ~uint64_t{0}};
    BitmapView v(words, 70);
    EXPECT_EQ(v.count_set(), 70u);
    EXPECT_EQ(v.find_first_clear(), npos);
    v.clear_range(0, 70);
    EXPECT_EQ(words[1], ~uint64_t{0} << 6) << "clear_range touched bits past size()";
    EXPECT_EQ(v.count_set(), 0u);
    EXPECT_EQ(v.find_first_set(), npos);
    EXPECT_EQ(v.find_first_set(65), npos);
    EXPECT_EQ(v.find_clear_run(70), 0u);
    EXPECT_EQ(v.find_clear_run(71), npos);
    EXPECT_EQ(v.find_clear_run(7, 64), npos);
    EXPECT_EQ(v.find_clear_run(6, 64), 64u);
}

TEST(Bitmap, ClearRun) {
    Bitmap<256> b;
    EXPECT_EQ(b.find_clear_run(256), 0u);
    EXPECT_EQ(b.find_clear_run(257), npos);
    b.set(3);
    b.set(10);
    EXPECT_EQ(b.find_clear_run(3), 0u);
    EXPECT_EQ(b.find_clear_run(4), 4u);
    EXPECT_EQ(b.find_clear_run(6), 4u);
    EXPECT_EQ(b.find_clear_run(7), 11u);
    EXPECT_EQ(b.find_clear_run(1, 3), 4u);
    EXPECT_EQ(b.find_clear_run(4, 0, 4), 4u);
    EXPECT_EQ(b.find_clear_run(4, 0, 8), 16u);
    EXPECT_EQ(b.find_clear_run(2, 5, 4), 8u);
    EXPECT_EQ(b.find_clear_run(3, 5, 4), 12u);
    // Runs spanning a word boundary.
    b.set_range(0, 60);
    b.set_range(70, 10);
    EXPECT_EQ(b.find_clear_run(10), 60u);
    EXPECT_EQ(b.find_clear_run(11), 80u);
    EXPECT_EQ(b.find_clear_run(6, 0, 64), 64u);
    EXPECT_EQ(b.find_clear_run(7, 0, 64), 128u);
    EXPECT_EQ(b.find_clear_run(100, 0, 64), 128u);
    EXPECT_EQ(b.find_clear_run(129, 0, 64), npos);
    EXPECT_EQ(b.find_clear_run(1, 250, 64), npos);
    EXPECT_EQ(b.find_clear_run(1, npos - 1, 4), npos);
}

TEST(Bitmap, ViewSharesStorage) {
    Bitmap<100> b;
    BitmapView v = b.view();
    v.set(42);
    EXPECT_TRUE(b.test(42));
    const Bitmap<100>& cb = b;
    EXPECT_EQ(cb.view().find_first_set(), 42u);
}

TEST(Bitmap, ZeroSize) {
    BitmapView v(nullptr, 0);
    EXPECT_EQ(v.find_first_set(), npos);
    EXPECT_EQ(v.find_first_clear(), npos);
    EXPECT_EQ(v.find_clear_run(1), npos);
    EXPECT_EQ(v.count_set(), 0u);
}

TEST(BitmapDeathTest, OutOfRange) {
    Bitmap<10> b;
    EXPECT_DEATH(b.set(10), "assertion failed");
    EXPECT_DEATH(b.set_range(5, 6), "assertion failed");
}

// Reference answers computed bit by bit.
size_t ref_find(const std::vector<bool>& r, size_t from, bool value) {
    for (size_t i = from; i < r.size(); ++i)
        if (r[i] == value) return i;
    return npos;
}

size_t ref_run(const std::vector<bool>& r, size_t count, size_t from, size_t align) {
    for (size_t s = (from + align - 1) / align * align; s + count <= r.size(); s += align) {
        size_t k = 0;
        while (k < count && !r[s + k])
            ++k;
        if (k == count) return s;
    }
    return npos;
}

TEST(Bitmap, RandomizedAgainstReference) {
    std::mt19937_64 rng(12345);
    for (size_t bits : {1, 2, 63, 64, 65, 127, 200, 513}) {
        SCOPED_TRACE(testing::Message() << "bits=" << bits);
        // Poison the tail so any read past size() shows up as a mismatch.
        std::vector<uint64_t> words(BitmapView::words_for(bits), ~uint64_t{0});
        BitmapView v(words.data(), bits);
        v.clear_range(0, bits);
        std::vector<bool> ref(bits, false);
        auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
        for (int step = 0; step < 3000; ++step) {
            const size_t a = pick(bits);
            const size_t len = pick(std::min<size_t>(bits - a, 80) + 1);
            switch (pick(4)) {
            case 0:
                v.set(a);
                ref[a] = true;
                break;
            case 1:
                v.clear(a);
                ref[a] = false;
                break;
            case 2:
                v.set_range(a, len);
                for (size_t i = a; i < a + len; ++i)
                    ref[i] = true;
                break;
            default:
                v.clear_range(a, len);
                for (size_t i = a; i < a + len; ++i)
                    ref[i] = false;
                break;
            }
            const size_t from = pick(bits + 2);
            ASSERT_EQ(v.find_first_set(from), ref_find(ref, from, true)) << "step " << step;
            ASSERT_EQ(v.find_first_clear(from), ref_find(ref, from, false)) << "step " << step;
            const size_t count = 1 + pick(12);
            const size_t align = size_t{1} << pick(4);
            ASSERT_EQ(v.find_clear_run(count, from, align), ref_run(ref, count, from, align))
                << "step " << step << " count " << count << " align " << align;
            if (step % 50 == 0) {
                size_t n = 0;
                for (size_t i = 0; i < bits; ++i) {
                    ASSERT_EQ(v.test(i), ref[i]);
                    n += ref[i];
                }
                ASSERT_EQ(v.count_set(), n);
            }
        }
    }
}

} // namespace
