#include "lock_test_util.h"
#include "sync/tas_lock.h"

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
using cohort::NoIrq;
using cohort::TasLock;
using cohort::test::join_or_abort;

TEST(TasLock, TryLockFailsWhileHeldAndSucceedsAfter) {
    TasLock lock;
    EXPECT_FALSE(lock.is_locked());
    ASSERT_TRUE(lock.try_lock());
    EXPECT_TRUE(lock.is_locked());
    EXPECT_TRUE(lock.is_held_by_this_cpu());
    bool other = true;
    std::thread t([&] { other = lock.try_lock(); });
    t.join();
    EXPECT_FALSE(other);
    lock.unlock();
    EXPECT_FALSE(lock.is_locked());
    std::thread t2([&] {
        other = lock.try_lock();
        if (other) lock.unlock();
    });
    t2.join();
    EXPECT_TRUE(other);
}

TEST(TasLock, WaiterIsCountedAndGetsTheLock) {
    TasLock lock;
    lock.lock();
    std::atomic<bool> got{false};
    std::thread t([&] {
        Guard<TasLock, IrqSave> g(lock);
        got = true;
    });
    while (lock.waiters() != 1) cohort::cpu_relax();
    EXPECT_FALSE(got.load());
    lock.unlock();
    t.join();
    EXPECT_TRUE(got.load());
    EXPECT_EQ(lock.waiters(), 0u);
}

TEST(TasLock, MutualExclusionUnderContention) {
    constexpr int kThreads = 6;
    constexpr int kIters = 20000;
    TasLock lock;
    uint64_t a = 0, b = 0;
    std::atomic<int> torn{0};
    std::atomic<bool> go{false};
    std::atomic<size_t> finished{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            while (!go.load()) cohort::cpu_relax();
            for (int i = 0; i < kIters; ++i) {
                if ((i + t) % 3 == 0) {
                    while (!lock.try_lock()) cohort::cpu_relax();
                } else {
                    lock.lock();
                }
                if (a != b) ++torn;
                ++a;
                // A window between the two writes: an intruder would see a != b.
                for (int k = 0; k < 8; ++k) cohort::cpu_relax();
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
}

} // namespace
