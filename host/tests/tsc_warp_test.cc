// The TSC warp test core (time/tsc_warp.h) with two threads as the two CPUs, each with a clock
// of its own derived from one shared "true time".
#include "time/tsc_warp.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <thread>

namespace {

using cohort::TscWarpResult;
using cohort::tsc_warp_side;

// True time: every reading on either side advances it, so it is strictly increasing across
// the two threads in the order the readings happen.
struct TrueTime {
    std::atomic<uint64_t> t{1'000'000};
    uint64_t read() { return t.fetch_add(16, std::memory_order_seq_cst) + 16; }
};

struct PairRun {
    TscWarpResult a, b;
};

constexpr uint64_t kForever = 1ull << 40;

PairRun run_pair(int64_t offset_of_b, uint32_t turns = 2000) {
    TrueTime tt;
    std::atomic<uint64_t> shared{0};
    PairRun r;
    std::thread ta([&] {
        r.a = tsc_warp_side(shared, 0, {turns, 0, 0, kForever, nullptr}, [&] { return tt.read(); });
    });
    std::thread tb([&] {
        r.b = tsc_warp_side(shared, 1, {turns, 0, 0, kForever, nullptr},
                            [&] { return static_cast<uint64_t>(tt.read() + offset_of_b); });
    });
    ta.join();
    tb.join();
    return r;
}

TEST(TscWarp, SynchronisedClocksShowNoWarp) {
    const PairRun r = run_pair(0);
    EXPECT_EQ(r.a.max_warp, 0u);
    EXPECT_EQ(r.b.max_warp, 0u);
    EXPECT_EQ(r.a.turns, 2000u);
    EXPECT_EQ(r.b.turns, 1999u); // its first reading had nothing to compare with
    EXPECT_FALSE(r.a.timed_out);
    EXPECT_FALSE(r.b.timed_out);
}

TEST(TscWarp, ALaggingClockIsCaughtByItsOwnSide) {
    // B's clock is 100000 ticks behind: each of B's readings falls below A's previous one.
    const PairRun r = run_pair(-100000);
    EXPECT_GT(r.b.max_warp, 99000u);
    EXPECT_LE(r.b.max_warp, 100000u);
    EXPECT_EQ(r.a.max_warp, 0u);
}

TEST(TscWarp, ALeadingClockIsCaughtByTheOtherSide) {
    const PairRun r = run_pair(+100000);
    EXPECT_GT(r.a.max_warp, 99000u);
    EXPECT_LE(r.a.max_warp, 100000u);
    EXPECT_EQ(r.b.max_warp, 0u);
}

TEST(TscWarp, ASideAloneGivesUp) {
    std::atomic<uint64_t> shared{0};
    uint64_t clock = 0;
    // Side 0 waits for side 1, which never comes.
    const TscWarpResult r =
        tsc_warp_side(shared, 0, {10, 0, 0, 1000, nullptr}, [&] { return clock += 7; });
    EXPECT_TRUE(r.timed_out);
    EXPECT_EQ(r.turns, 0u);
}

TEST(TscWarp, ASideThatRanOutOfTimeStopsTheOther) {
    // Side 0 may only run for a short while; it then tells side 1, which stops without
    // reporting a time-out although it was promised many more turns.
    TrueTime tt;
    std::atomic<uint64_t> shared{0};
    std::atomic<bool> stop{false};
    TscWarpResult a, b;
    std::thread ta([&] {
        a = tsc_warp_side(shared, 0, {1000000, 50, 16 * 200, kForever, nullptr},
                          [&] { return tt.read(); });
        stop.store(true);
    });
    std::thread tb([&] {
        b = tsc_warp_side(shared, 1, {1000000, 0, 0, kForever, &stop}, [&] { return tt.read(); });
    });
    ta.join();
    tb.join();
    EXPECT_FALSE(a.timed_out);
    EXPECT_FALSE(b.timed_out);
    EXPECT_GE(a.turns, 50u); // the minimum holds even if the time is up
    EXPECT_LT(a.turns, 1000000u);
    EXPECT_LE(b.turns, a.turns);
    EXPECT_EQ(a.max_warp, 0u);
    EXPECT_EQ(b.max_warp, 0u);
}

} // namespace
