#include "lock_test_util.h"
#include "sync/spinlock.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

// The tests check try_lock() results through gtest macros, which the static analysis cannot
// follow; the run-time checks here are the point.
#pragma clang diagnostic ignored "-Wthread-safety-analysis"

namespace {

using cohort::Guard;
using cohort::IrqSave;
using cohort::NoIrq;
using cohort::SpinLock;

TEST(SpinLock, TryLockFailsWhileHeld) {
    SpinLock lock;
    EXPECT_FALSE(lock.is_locked());
    // ASSERTs: a lock in a broken state would make the lock() below spin forever.
    ASSERT_TRUE(lock.try_lock());
    ASSERT_TRUE(lock.is_locked());
    ASSERT_FALSE(lock.try_lock());
    ASSERT_FALSE(lock.try_lock());
    lock.unlock();
    EXPECT_FALSE(lock.is_locked());
    EXPECT_TRUE(lock.try_lock());
    lock.unlock();

    lock.lock();
    EXPECT_TRUE(lock.is_locked());
    EXPECT_FALSE(lock.try_lock());
    lock.unlock();
    EXPECT_TRUE(lock.try_lock());
    lock.unlock();
    EXPECT_FALSE(lock.is_locked());
}

TEST(SpinLock, TryLockFromAnotherThread) {
    SpinLock lock;
    lock.lock();
    bool got = true;
    std::thread([&] { got = lock.try_lock(); }).join();
    EXPECT_FALSE(got);
    lock.unlock();
    std::thread([&] {
        got = lock.try_lock();
        if (got) lock.unlock();
    }).join();
    EXPECT_TRUE(got);
    EXPECT_FALSE(lock.is_locked());
}

TEST(SpinLock, GuardsReleaseOnScopeExit) {
    SpinLock lock;
    {
        Guard<SpinLock, NoIrq> g(lock);
        EXPECT_TRUE(lock.is_locked());
        EXPECT_FALSE(lock.try_lock());
    }
    EXPECT_FALSE(lock.is_locked());
    {
        Guard<SpinLock, IrqSave> g(lock);
        EXPECT_TRUE(lock.is_locked());
    }
    EXPECT_FALSE(lock.is_locked());
    EXPECT_TRUE(lock.try_lock());
    lock.unlock();
}

using cohort::test::join_or_abort;

// Shared state guarded by the lock: a and b are only ever unequal inside a critical section.
struct Pair {
    uint64_t a = 0;
    uint64_t b = 0;
};

// Writes the two fields with a window in between, so an unprotected observer would see them
// differ. volatile keeps the compiler from merging the stores.
void bump(volatile Pair& p) {
    p.a = p.a + 1;
    for (int i = 0; i < 8; ++i)
        cohort::cpu_relax();
    p.b = p.b + 1;
}

TEST(SpinLock, MutualExclusionUnderContention) {
    constexpr int kThreads = 4;
    constexpr int kIters = 25000;
    SpinLock lock;
    Pair shared;
    std::atomic<int> torn{0};
    std::atomic<bool> go{false};
    std::atomic<size_t> finished{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            while (!go.load())
                cohort::cpu_relax();
            for (int i = 0; i < kIters; ++i) {
                // Mix the three ways in: lock(), both guard flavours, and try_lock() spinning.
                switch ((i + t) % 4) {
                case 0: {
                    lock.lock();
                    if (shared.a != shared.b) ++torn;
                    bump(shared);
                    lock.unlock();
                    break;
                }
                case 1: {
                    Guard<SpinLock, NoIrq> g(lock);
                    if (shared.a != shared.b) ++torn;
                    bump(shared);
                    break;
                }
                case 2: {
                    Guard<SpinLock, IrqSave> g(lock);
                    if (shared.a != shared.b) ++torn;
                    bump(shared);
                    break;
                }
                default: {
                    while (!lock.try_lock())
                        cohort::cpu_relax();
                    if (shared.a != shared.b) ++torn;
                    bump(shared);
                    lock.unlock();
                    break;
                }
                }
            }
            ++finished;
        });
    }
    go = true;
    join_or_abort(threads, finished, std::chrono::seconds(120));
    EXPECT_EQ(torn.load(), 0);
    EXPECT_EQ(shared.a, uint64_t{kThreads} * kIters);
    EXPECT_EQ(shared.b, uint64_t{kThreads} * kIters);
    EXPECT_FALSE(lock.is_locked());
}

} // namespace
