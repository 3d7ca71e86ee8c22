// The remote-call rate limit (smp/call_limit.h) with simulated time.
#include "smp/call_limit.h"

#include <gtest/gtest.h>

namespace cohort {
namespace {

constexpr uint64_t kMs = 1'000'000, kUs = 1'000;

CallLimiter make() {
    CallLimiter::Params p;
    p.window_ns = 1 * kMs;
    p.budget_ns = 500 * kUs;
    p.per_source_ns = 250 * kUs;
    static CallLimiter::Account accounts[64];
    for (auto& a : accounts) a = {};
    CallLimiter l;
    l.set_params(p, accounts, 64);
    return l;
}

// Runs requests of `cost` from `source` at `now` while admitted; returns how many ran.
int run_while_admitted(CallLimiter& l, uint32_t source, uint64_t now, uint64_t cost) {
    int n = 0;
    while (l.admit(source, now) && n < 1000) {
        l.charge(source, cost);
        ++n;
    }
    return n;
}

TEST(CallLimit, OneSenderGetsItsShareOfAWindowThenWaits) {
    CallLimiter l = make();
    const uint64_t t = 10 * kMs;
    EXPECT_EQ(run_while_admitted(l, 3, t, 50 * kUs), 5); // 5 x 50 us = its 250 us
    EXPECT_FALSE(l.admit(3, t + 900 * kUs));             // same window: still held back
    EXPECT_TRUE(l.admit(3, t + 1 * kMs));                // the next window pays it back
}

TEST(CallLimit, ASecondSenderStillFindsRoomButTheCpuKeepsHalf) {
    CallLimiter l = make();
    const uint64_t t = 10 * kMs;
    EXPECT_EQ(run_while_admitted(l, 1, t, 50 * kUs), 5);
    EXPECT_EQ(run_while_admitted(l, 2, t, 50 * kUs), 5); // not crowded out by sender 1
    // 500 us used: the budget is spent for everyone, a third sender included.
    EXPECT_TRUE(l.exhausted(t));
    EXPECT_FALSE(l.admit(7, t));
}

TEST(CallLimit, QuickCallsAreNotSlowedDown) {
    CallLimiter l = make();
    // 1 us calls: hundreds fit in a sender's share, so a ping-pong of tiny calls runs freely.
    EXPECT_EQ(run_while_admitted(l, 4, 10 * kMs, 1 * kUs), 250);
}

TEST(CallLimit, OverrunsAreDebtPaidFromLaterWindows) {
    CallLimiter l = make();
    const uint64_t t = 10 * kMs;
    ASSERT_TRUE(l.admit(5, t));
    l.charge(5, 1 * kMs); // one call four times a sender's share
    EXPECT_FALSE(l.admit(5, t + 1 * kMs)); // 750 us owed
    EXPECT_FALSE(l.admit(5, t + 2 * kMs)); // 500
    EXPECT_FALSE(l.admit(5, t + 3 * kMs)); // 250: still a full share owed
    EXPECT_TRUE(l.admit(5, t + 4 * kMs));  // paid: on average it got its 25 %
}

TEST(CallLimit, OverheadCountsAgainstTheCpuButNoSender) {
    CallLimiter l = make();
    const uint64_t t = 10 * kMs;
    l.exhausted(t); // start the window
    l.charge_overhead(450 * kUs);
    EXPECT_TRUE(l.admit(9, t)); // 450 < 500: one more may start
    l.charge(9, 60 * kUs);
    EXPECT_TRUE(l.exhausted(t));
}

TEST(CallLimit, DebtIsCappedSoOneHugeCallCannotLockASenderOut) {
    CallLimiter l = make();
    const uint64_t t = 10 * kMs;
    ASSERT_TRUE(l.admit(1, t));
    l.charge(1, 1'000'000 * kMs); // a call that ran for 1000 s
    const uint64_t windows = CallLimiter::kMaxDebtWindows;
    EXPECT_FALSE(l.admit(1, t + (windows - 1) * kMs));
    EXPECT_TRUE(l.admit(1, t + windows * kMs));
}

TEST(CallLimit, ALongQuietSpellClearsEverything) {
    CallLimiter l = make();
    ASSERT_TRUE(l.admit(1, 10 * kMs));
    l.charge(1, 5 * kMs);
    EXPECT_TRUE(l.admit(1, 10 * kMs + 1'000'000 * kMs));
    EXPECT_EQ(l.used_ns(), 0u);
}

TEST(CallLimit, EverySenderHasItsOwnAllowance) {
    // Senders 32 apart shared one bucket once: a noisy CPU throttled an innocent one.
    CallLimiter l = make();
    const uint64_t t = 10 * kMs;
    EXPECT_EQ(run_while_admitted(l, 2, t, 50 * kUs), 5);
    EXPECT_TRUE(l.admit(2 + 32, t));
    EXPECT_FALSE(l.admit(2, t));
}

TEST(CallLimit, DebtIsSettledLazilyAcrossManyWindows) {
    CallLimiter l = make();
    ASSERT_TRUE(l.admit(40, 10 * kMs));
    l.charge(40, 2 * kMs); // 8 shares owed
    // Another sender rolls the windows on (once the CPU's own budget is paid back too); sender
    // 40's account is looked at again only later.
    EXPECT_TRUE(l.admit(41, 15 * kMs));
    EXPECT_FALSE(l.admit(40, 16 * kMs)); // 6 windows paid 1.5 ms: 500 us still owed
    EXPECT_TRUE(l.admit(40, 18 * kMs));
}

TEST(CallLimit, RetryTimeIsNeverInThePast) {
    CallLimiter l = make();
    EXPECT_EQ(l.next_window(10 * kMs), 11 * kMs);
    EXPECT_EQ(l.next_window(10 * kMs + 999 * kUs), 11 * kMs);
}

TEST(CallLimit, DisabledAdmitsEverything) {
    CallLimiter::Params p;
    p.enabled = false;
    CallLimiter l(p);
    EXPECT_EQ(run_while_admitted(l, 1, 10 * kMs, 1 * kMs), 1000);
    EXPECT_FALSE(l.exhausted(10 * kMs));
}

} // namespace
} // namespace cohort
