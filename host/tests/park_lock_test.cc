// ParkLock (sync/park_lock.h): exclusion, parking and waking, and the bound on stealing.
#include "lock_test_util.h"
#include "sync/park_lock.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

// try_lock() results are checked through gtest macros, which the analysis cannot follow.
#pragma clang diagnostic ignored "-Wthread-safety-analysis"

namespace {

using cohort::Guard;
using cohort::IrqSave;
using cohort::ParkLock;
using cohort::test::join_or_abort;
using cohort::test::wait_until;

TEST(ParkLock, TryLockFailsWhileHeldAndSucceedsAfter) {
    ParkLock lock;
    ASSERT_TRUE(lock.try_lock());
    EXPECT_TRUE(lock.is_locked());
    EXPECT_TRUE(lock.is_held_by_this_cpu());
    bool other = true;
    std::thread t([&] { other = lock.try_lock(); });
    t.join();
    EXPECT_FALSE(other);
    lock.unlock();
    EXPECT_FALSE(lock.is_locked());
}

TEST(ParkLock, MutualExclusionUnderContention) {
    constexpr int kThreads = 8;
    constexpr int kIters = 20000;
    ParkLock lock;
    uint64_t a = 0, b = 0;
    std::atomic<int> torn{0};
    std::atomic<bool> go{false};
    std::atomic<size_t> finished{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            while (!go.load()) cohort::cpu_relax();
            for (int i = 0; i < kIters; ++i) {
                if ((i + t) % 5 == 0) {
                    while (!lock.try_lock()) cohort::cpu_relax();
                } else {
                    lock.lock();
                }
                if (a != b) ++torn;
                ++a;
                for (int k = 0; k < 4; ++k) cohort::cpu_relax(); // an intruder would see a != b
                ++b;
                lock.unlock();
            }
            ++finished;
        });
    }
    go = true;
    join_or_abort(threads, finished, std::chrono::seconds(120));
    EXPECT_EQ(torn.load(), 0);
    EXPECT_EQ(a, uint64_t{kThreads} * kIters);
    EXPECT_EQ(b, a);
    EXPECT_FALSE(lock.is_locked());
    EXPECT_EQ(lock.waiters(), 0u);
}

TEST(ParkLock, WaitersParkWhileItIsHeldAndAreWokenOneByOne) {
    // Held until every waiter has queued and parked: nothing depends on how fast they get
    // there. Then each must be woken in turn and get the lock.
    constexpr int kWaiters = 4;
    ParkLock lock;
    lock.lock();
    std::atomic<int> got{0};
    std::atomic<size_t> finished{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kWaiters; ++t) {
        threads.emplace_back([&] {
            {
                Guard<ParkLock, IrqSave> g(lock);
                ++got;
            }
            ++finished;
        });
    }
    wait_until([&] { return lock.waiters() == kWaiters && lock.parks() >= kWaiters; });
    EXPECT_EQ(got.load(), 0);
    const uint64_t kicks = cohort::park::kicks_sent();
    lock.unlock();
    join_or_abort(threads, finished, std::chrono::seconds(60));
    EXPECT_EQ(got.load(), kWaiters);
    // The head was parked, and each later waiter parked until it became head: every one of
    // them needed a wake-up that interrupted its halt.
    EXPECT_GE(cohort::park::kicks_sent() - kicks, uint64_t{kWaiters});
    EXPECT_EQ(lock.waiters(), 0u);
}

TEST(ParkLock, StealingIsBoundedSoNoWaiterStarves) {
    // Greedy threads retake the lock the moment they release it (a running CPU stealing it
    // from a parked queue); the others queue. However it interleaves, no waiter may watch more
    // acquisitions go by than its place in the queue times the steal bound allows.
    constexpr int kGreedy = 2, kQueued = 4;
    constexpr int kThreads = kGreedy + kQueued;
    ParkLock lock;
    std::atomic<bool> stop{false};
    std::atomic<size_t> finished{0};
    std::atomic<uint64_t> queued_rounds{0};
    uint64_t counter = 0;
    std::vector<std::thread> threads;
    for (int t = 0; t < kGreedy; ++t) {
        threads.emplace_back([&] {
            while (!stop.load(std::memory_order_relaxed)) {
                lock.lock();
                ++counter;
                lock.unlock();
            }
            ++finished;
        });
    }
    for (int t = 0; t < kQueued; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 300; ++i) {
                lock.lock();
                ++counter;
                lock.unlock();
                ++queued_rounds;
            }
            ++finished;
        });
    }
    wait_until([&] { return queued_rounds.load() == uint64_t{kQueued} * 300; },
               std::chrono::seconds(120));
    stop = true;
    join_or_abort(threads, finished, std::chrono::seconds(60));
    // Each waiter ahead (at most kThreads - 1) leads the queue once: kMaxSteals steals, then its
    // own acquisition; then kMaxSteals steals before ours.
    const uint32_t bound = (kThreads - 1) * (ParkLock::kMaxSteals + 1) + ParkLock::kMaxSteals;
    EXPECT_LE(lock.max_wait_acquisitions(), bound);
    EXPECT_GT(counter, uint64_t{kQueued} * 300);
}

} // namespace
