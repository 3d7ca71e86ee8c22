#include "lib/muldiv.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>

namespace {

using cohort::mul_div;
using u128 = unsigned __int128;

constexpr uint64_t kMax = UINT64_MAX;

uint64_t reference(uint64_t a, uint64_t b, uint64_t c) {
    const u128 q = static_cast<u128>(a) * b / c;
    return q > kMax ? kMax : static_cast<uint64_t>(q);
}

TEST(MulDiv, SmallValues) {
    EXPECT_EQ(mul_div(0, 0, 1), 0u);
    EXPECT_EQ(mul_div(0, kMax, 1), 0u);
    EXPECT_EQ(mul_div(kMax, 0, 7), 0u);
    EXPECT_EQ(mul_div(6, 7, 1), 42u);
    EXPECT_EQ(mul_div(6, 7, 42), 1u);
    EXPECT_EQ(mul_div(6, 7, 43), 0u); // floors
    EXPECT_EQ(mul_div(10, 10, 3), 33u);
    EXPECT_EQ(mul_div(1, 1, kMax), 0u);
}

TEST(MulDiv, WideIntermediate) {
    // a * b overflows 64 bits but the quotient fits.
    EXPECT_EQ(mul_div(kMax, kMax, kMax), kMax);
    EXPECT_EQ(mul_div(kMax, 2, 2), kMax);
    EXPECT_EQ(mul_div(kMax, 3, 4), reference(kMax, 3, 4));
    EXPECT_EQ(mul_div(uint64_t{1} << 63, 4, 8), uint64_t{1} << 62);
    EXPECT_EQ(mul_div(uint64_t{1} << 40, uint64_t{1} << 40, uint64_t{1} << 30), uint64_t{1} << 50);
    // TSC-style conversion: 10^12 ticks at 3 GHz is 333.33 s in ns.
    EXPECT_EQ(mul_div(1'000'000'000'000ull, 1'000'000'000ull, 3'000'000'000ull),
              333'333'333'333ull);
    EXPECT_EQ(mul_div(kMax, 1'000'000'000ull, 1'000'000'007ull),
              reference(kMax, 1'000'000'000ull, 1'000'000'007ull));
}

TEST(MulDiv, SaturationBoundary) {
    // Quotient exactly UINT64_MAX (the high half of the product is c - 1), and one step over.
    for (uint64_t c : {uint64_t{2}, uint64_t{3}, uint64_t{1000}, uint64_t{1} << 40, kMax - 1}) {
        SCOPED_TRACE(c);
        EXPECT_EQ(mul_div(kMax, c, c), kMax);
        EXPECT_EQ(mul_div(c, kMax, c), kMax);
        EXPECT_EQ(mul_div(kMax, c + 1, c), kMax); // saturated: the quotient is > 2^64 - 1
        EXPECT_EQ(mul_div(kMax, c - 1, c), reference(kMax, c - 1, c));
        EXPECT_EQ(mul_div(kMax - 1, c, c), kMax - 1);
    }
    // Quotient 2^64 and beyond: saturates.
    EXPECT_EQ(mul_div(uint64_t{1} << 63, 2, 1), kMax);
    EXPECT_EQ(mul_div(uint64_t{1} << 32, uint64_t{1} << 32, 1), kMax);
    EXPECT_EQ(mul_div(kMax, kMax, 1), kMax);
    EXPECT_EQ(mul_div(kMax, kMax, kMax - 1), kMax);
    EXPECT_EQ(mul_div(kMax, 2, 1), kMax);
    // Just below the boundary: 2^63 * 2 / 2 and (2^64 - 2) / 1 fit.
    EXPECT_EQ(mul_div(uint64_t{1} << 63, 2, 2), uint64_t{1} << 63);
    EXPECT_EQ(mul_div(kMax / 2, 2, 1), kMax - 1);
    EXPECT_EQ(mul_div(uint64_t{1} << 32, uint64_t{1} << 32, 2), uint64_t{1} << 63);
    EXPECT_EQ(mul_div(uint64_t{1} << 32, uint64_t{1} << 32, (uint64_t{1} << 32) + 1),
              reference(uint64_t{1} << 32, uint64_t{1} << 32, (uint64_t{1} << 32) + 1));
}

TEST(MulDiv, EdgeGrid) {
    const uint64_t edges[] = {0,
                              1,
                              2,
                              3,
                              7,
                              1000,
                              (uint64_t{1} << 31) - 1,
                              uint64_t{1} << 32,
                              (uint64_t{1} << 32) + 1,
                              (uint64_t{1} << 63) - 1,
                              uint64_t{1} << 63,
                              (uint64_t{1} << 63) + 1,
                              kMax - 1,
                              kMax};
    for (uint64_t a : edges) {
        for (uint64_t b : edges) {
            for (uint64_t c : edges) {
                if (c == 0) continue;
                ASSERT_EQ(mul_div(a, b, c), reference(a, b, c))
                    << "a=" << a << " b=" << b << " c=" << c;
            }
        }
    }
}

TEST(MulDiv, RandomAgainstInt128) {
    std::mt19937_64 rng(12345);
    // Random bit widths, so both fitting and saturating quotients are common.
    auto value = [&] {
        const unsigned bits = 1 + rng() % 64;
        const uint64_t v = rng();
        return bits == 64 ? v : v & ((uint64_t{1} << bits) - 1);
    };
    int saturated = 0, fitted = 0;
    for (int i = 0; i < 200000; ++i) {
        const uint64_t a = value(), b = value();
        uint64_t c = value();
        if (c == 0) c = 1;
        const uint64_t want = reference(a, b, c);
        ASSERT_EQ(mul_div(a, b, c), want) << "a=" << a << " b=" << b << " c=" << c;
        (static_cast<u128>(a) * b / c > kMax ? saturated : fitted)++;
    }
    EXPECT_GT(saturated, 1000);
    EXPECT_GT(fitted, 1000);
}

} // namespace
