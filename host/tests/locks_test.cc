// Ticket, MCS, reader-writer and sequence locks and the barrier under real threads: invariants
// under contention (2..16 threads), FIFO order and writer preference checked by arrival order
// (not timing), and the per-class statistics. Also built into cohort_tsan_tests.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "lock_test_util.h"
#include "sync/barrier.h"
#include "sync/mcs_lock.h"
#include "sync/rwlock.h"
#include "sync/seqlock.h"
#include "sync/spinlock.h"

namespace {

using namespace cohort;
using cohort::test::run_threads;
using cohort::test::wait_until;

constexpr int kThreadCounts[] = {2, 4, 8, 16};
// Total critical sections per configuration: enough to interleave, small enough under ASan.
constexpr int kTotalOps = 24000;

// Three fields that only agree outside a critical section: b == 2a and c == 3a.
struct Triple {
    uint64_t a = 0, b = 0, c = 0;
};

bool consistent(const volatile Triple& t) {
    return t.b == 2 * t.a && t.c == 3 * t.a;
}

// Updates the fields one at a time with pauses between, so an unprotected observer would see
// them disagree. volatile keeps the compiler from merging the stores.
void bump(volatile Triple& t) {
    t.a = t.a + 1;
    cpu_relax();
    t.b = t.b + 2;
    cpu_relax();
    t.c = t.c + 3;
}

// One critical section through whichever way of locking `Lock` offers, chosen by `i`.
template <typename Lock>
struct Exclusive;

template <>
struct Exclusive<SpinLock> {
    template <typename F>
    static void run(SpinLock& l, int i, F&& f) {
        switch (i % 4) {
        case 0:
            l.lock();
            f();
            l.unlock();
            break;
        case 1: {
            Guard<SpinLock, NoIrq> g(l);
            f();
            break;
        }
        case 2: {
            Guard<SpinLock, IrqSave> g(l);
            f();
            break;
        }
        default:
            while (!l.try_lock())
                cpu_relax();
            f();
            l.unlock();
        }
    }
};

template <>
struct Exclusive<MCSLock> {
    template <typename F>
    static void run(MCSLock& l, int i, F&& f) {
        switch (i % 3) {
        case 0: {
            MCSLock::Node n;
            l.lock(n);
            f();
            l.unlock(n);
            break;
        }
        case 1: {
            Guard<MCSLock, IrqSave> g(l);
            f();
            break;
        }
        default: {
            MCSLock::Node n;
            while (!l.try_lock(n))
                cpu_relax();
            f();
            l.unlock(n);
        }
        }
    }
};

template <>
struct Exclusive<RwLock> {
    template <typename F>
    static void run(RwLock& l, int i, F&& f) {
        switch (i % 3) {
        case 0:
            l.write_lock();
            f();
            l.write_unlock();
            break;
        case 1: {
            WriteGuard<RwLock, IrqSave> g(l);
            f();
            break;
        }
        default:
            while (!l.try_write())
                cpu_relax();
            f();
            l.write_unlock();
        }
    }
};

template <typename Lock>
void exclusive_invariant(int threads) {
    Lock lock;
    Triple shared;
    std::atomic<int> torn{0}, inside{0}, overlap{0};
    const int iters = kTotalOps / threads;
    run_threads(threads, [&](int t) {
        for (int i = 0; i < iters; ++i) {
            Exclusive<Lock>::run(lock, i + t, [&] {
                if (inside.fetch_add(1) != 0) ++overlap;
                if (!consistent(shared)) ++torn;
                bump(shared);
                inside.fetch_sub(1);
            });
        }
    });
    EXPECT_EQ(torn.load(), 0) << threads << " threads";
    EXPECT_EQ(overlap.load(), 0) << threads << " threads";
    EXPECT_EQ(shared.a, uint64_t(iters) * threads);
    EXPECT_TRUE(consistent(shared));
}

TEST(Locks, TicketInvariantUnderContention) {
    for (int n : kThreadCounts)
        exclusive_invariant<SpinLock>(n);
}

TEST(Locks, McsInvariantUnderContention) {
    for (int n : kThreadCounts)
        exclusive_invariant<MCSLock>(n);
}

TEST(Locks, RwLockWritersInvariantUnderContention) {
    for (int n : kThreadCounts)
        exclusive_invariant<RwLock>(n);
}

// Readers and writers mixed: readers never see a writer inside or a half-updated Triple.
TEST(Locks, RwLockReadersAndWriters) {
    for (int n : kThreadCounts) {
        RwLock lock;
        Triple shared;
        std::atomic<int> torn{0}, writer_inside{0}, readers_inside{0}, bad{0};
        std::atomic<int> max_readers{0};
        const int iters = kTotalOps / n;
        run_threads(n, [&](int t) {
            for (int i = 0; i < iters; ++i) {
                if ((i + t) % 4 == 0) { // one in four operations writes
                    WriteGuard<RwLock, NoIrq> g(lock);
                    if (writer_inside.fetch_add(1) != 0 || readers_inside.load() != 0) ++bad;
                    bump(shared);
                    writer_inside.fetch_sub(1);
                } else {
                    const bool tried = (i % 2) == 0 && lock.try_read();
                    if (!tried) lock.read_lock();
                    const int r = readers_inside.fetch_add(1) + 1;
                    int m = max_readers.load();
                    while (r > m && !max_readers.compare_exchange_weak(m, r)) {
                    }
                    if (writer_inside.load() != 0) ++bad;
                    if (!consistent(shared)) ++torn;
                    cpu_relax();
                    readers_inside.fetch_sub(1);
                    lock.read_unlock();
                }
            }
        });
        EXPECT_EQ(torn.load(), 0);
        EXPECT_EQ(bad.load(), 0);
        EXPECT_TRUE(consistent(shared));
        EXPECT_EQ(lock.readers(), 0u);
        EXPECT_FALSE(lock.is_write_locked());
    }
}

// FIFO: threads queue one at a time behind a held lock (each queued before the next starts), so
// their ticket order is known; they must get the lock in exactly that order.
TEST(Locks, TicketIsFifo) {
    constexpr int kWaiters = 8;
    for (int round = 0; round < 5; ++round) {
        SpinLock lock;
        std::vector<int> order; // guarded by lock
        std::vector<std::thread> threads;
        lock.lock();
        for (int k = 0; k < kWaiters; ++k) {
            threads.emplace_back([&, k] {
                lock.lock();
                order.push_back(k);
                lock.unlock();
            });
            wait_until([&] { return lock.waiters() == uint32_t(k + 1); });
        }
        lock.unlock();
        for (auto& t : threads)
            t.join();
        ASSERT_EQ(order.size(), size_t{kWaiters});
        for (int k = 0; k < kWaiters; ++k)
            EXPECT_EQ(order[k], k) << "round " << round;
    }
}

TEST(Locks, McsIsFifo) {
    constexpr int kWaiters = 8;
    for (int round = 0; round < 5; ++round) {
        MCSLock lock;
        std::vector<int> order; // guarded by lock
        std::array<std::atomic<MCSLock::Node*>, kWaiters> nodes{};
        std::vector<std::thread> threads;
        MCSLock::Node mine;
        lock.lock(mine);
        for (int k = 0; k < kWaiters; ++k) {
            threads.emplace_back([&, k] {
                MCSLock::Node n;
                nodes[k] = &n;
                lock.lock(n);
                order.push_back(k);
                lock.unlock(n);
            });
            // Queued once its node is the tail (it stays so until the next thread queues).
            wait_until([&] {
                MCSLock::Node* n = nodes[k].load();
                return n != nullptr && lock.is_tail(*n);
            });
        }
        lock.unlock(mine);
        for (auto& t : threads)
            t.join();
        ASSERT_EQ(order.size(), size_t{kWaiters});
        for (int k = 0; k < kWaiters; ++k)
            EXPECT_EQ(order[k], k) << "round " << round;
    }
}

// Writer preference, deterministic: with a reader inside and a writer queued, readers that
// arrive later (and try_read) are held back until the writer has been in.
TEST(Locks, RwLockQueuedWriterGoesBeforeLaterReaders) {
    constexpr int kLateReaders = 6;
    RwLock lock;
    std::atomic<int> seq{0}, writer_seq{-1};
    std::array<std::atomic<int>, kLateReaders> reader_seq{};
    lock.read_lock();
    std::thread writer([&] {
        lock.write_lock();
        writer_seq = seq++;
        lock.write_unlock();
    });
    wait_until([&] { return lock.waiting_writers() == 1; });
    bool try_read_ok = true;
    std::thread([&] {
        try_read_ok = false;
        if (lock.try_read()) {
            try_read_ok = true;
            lock.read_unlock();
        }
    }).join();
    EXPECT_FALSE(try_read_ok) << "try_read overtook a queued writer";
    std::vector<std::thread> readers;
    for (int r = 0; r < kLateReaders; ++r) {
        readers.emplace_back([&, r] {
            lock.read_lock();
            reader_seq[r] = seq++;
            lock.read_unlock();
        });
    }
    // The late readers cannot get in while the writer waits: seq stays 0 however long we wait.
    for (int i = 0; i < 100; ++i)
        std::this_thread::yield();
    EXPECT_EQ(seq.load(), 0);
    lock.read_unlock();
    writer.join();
    for (auto& t : readers)
        t.join();
    EXPECT_EQ(writer_seq.load(), 0);
    for (int r = 0; r < kLateReaders; ++r)
        EXPECT_GT(reader_seq[r].load(), 0);
}

// Writer preference under a steady stream of overlapping readers: every writer gets in, and no
// reader that saw a writer queued enters before that writer's critical section has run.
TEST(Locks, RwLockWritersNotStarvedByReaderStream) {
    for (int readers : {2, 4, 8, 14}) {
        constexpr int kWriters = 2;
        constexpr int kWritesEach = 200;
        RwLock lock;
        std::atomic<uint64_t> writes{0};
        std::atomic<int> writers_done{0}, overtakes{0};
        std::atomic<uint64_t> reads{0};
        run_threads(readers + kWriters, [&](int t) {
            if (t < kWriters) {
                // Join only once the reader stream is flowing.
                wait_until([&] { return reads.load() >= 100; });
                for (int i = 0; i < kWritesEach; ++i) {
                    lock.write_lock();
                    writes.fetch_add(1);
                    lock.write_unlock();
                }
                ++writers_done;
                return;
            }
            while (writers_done.load() < kWriters) {
                // Order matters: the count first, then the queue check (see the comment in
                // RwLock: a writer queued now completes after this count was read).
                const uint64_t before = writes.load();
                const bool writer_queued = lock.waiting_writers() != 0;
                lock.read_lock();
                if (writer_queued && writes.load() == before) ++overtakes;
                for (int i = 0; i < 4; ++i)
                    cpu_relax(); // overlap with other readers: the stream never pauses
                lock.read_unlock();
                reads.fetch_add(1);
            }
        });
        EXPECT_EQ(writes.load(), uint64_t{kWriters} * kWritesEach);
        EXPECT_EQ(overtakes.load(), 0) << readers << " readers";
        EXPECT_GE(reads.load(), 100u);
    }
}

// Every participant sees every other's write for the round, exactly one is serial per round.
TEST(Barrier, ThousandsOfRounds) {
    for (int n : {1, 2, 4, 8, 16}) {
        const int rounds = n >= 8 ? 1000 : 3000;
        Barrier barrier(n);
        std::vector<int> slot(n, -1); // plain data: only the barrier orders the accesses
        std::vector<std::atomic<int>> serial(rounds);
        std::atomic<int> bad{0};
        run_threads(n, [&](int t) {
            for (int r = 0; r < rounds; ++r) {
                slot[t] = r;
                if (barrier.wait()) serial[r].fetch_add(1);
                for (int u = 0; u < n; ++u)
                    if (slot[u] != r) ++bad;
                barrier.wait(); // nobody overwrites a slot before all have checked it
            }
        });
        EXPECT_EQ(bad.load(), 0) << n << " participants";
        int wrong_serial = 0;
        for (auto& s : serial)
            wrong_serial += s.load() != 1;
        EXPECT_EQ(wrong_serial, 0) << n << " participants";
        EXPECT_EQ(barrier.generation(), uint32_t(2 * rounds));
    }
}

struct Wide {
    uint64_t v[6];
    uint32_t tag;
};

// Readers of a SeqLocked value never see a mixture of two writes, and never go backwards.
TEST(SeqLock, ReadersNeverSeeTornData) {
    for (int readers : {1, 3, 7, 15}) {
        SeqLocked<Wide> value(Wide{{0, 0, 0, 0, 0, 0}, 0});
        std::atomic<bool> stop{false};
        std::atomic<int> torn{0}, backwards{0};
        constexpr uint64_t kWrites = 5000;
        run_threads(readers + 1, [&](int t) {
            if (t == 0) {
                for (uint64_t k = 1; k <= kWrites; ++k) {
                    if (k % 2) {
                        value.store(Wide{{k, k, k, k, k, k}, uint32_t(k)});
                    } else {
                        value.update([](Wide& w) {
                            for (auto& x : w.v)
                                ++x;
                            ++w.tag;
                        });
                    }
                }
                stop = true;
                return;
            }
            uint64_t last = 0;
            while (!stop.load()) {
                const Wide w = value.load();
                for (uint64_t x : w.v)
                    if (x != w.v[0] || uint32_t(x) != w.tag) ++torn;
                if (w.v[0] < last) ++backwards;
                last = w.v[0];
            }
        });
        EXPECT_EQ(torn.load(), 0);
        EXPECT_EQ(backwards.load(), 0);
        EXPECT_EQ(value.load().v[5], kWrites);
        EXPECT_EQ(value.sequence(), 2 * kWrites);
    }
}

// The raw SeqLock with fields read through relaxed atomics by the caller.
TEST(SeqLock, RawReadHelperRetriesUntilConsistent) {
    SeqLock seq;
    std::atomic<uint64_t> x{0}, y{0}; // y == ~x outside writes
    y = ~uint64_t{0};
    std::atomic<bool> stop{false};
    std::atomic<int> torn{0};
    run_threads(4, [&](int t) {
        if (t == 0) {
            for (uint64_t k = 1; k <= 20000; ++k) {
                seq.write([&] {
                    x.store(k, std::memory_order_relaxed);
                    y.store(~k, std::memory_order_relaxed);
                });
            }
            stop = true;
            return;
        }
        while (!stop.load()) {
            const bool ok = seq.read([&] {
                return x.load(std::memory_order_relaxed) == ~y.load(std::memory_order_relaxed);
            });
            if (!ok) ++torn;
        }
    });
    EXPECT_EQ(torn.load(), 0);
}

TEST(Locks, IsHeldByThisCpu) {
    SpinLock s;
    MCSLock m;
    RwLock rw;
    EXPECT_FALSE(s.is_held_by_this_cpu());
    Guard<SpinLock, IrqSave> gs(s);
    Guard<MCSLock, IrqSave> gm(m);
    WriteGuard<RwLock, IrqSave> gw(rw);
    EXPECT_TRUE(s.is_held_by_this_cpu());
    EXPECT_TRUE(m.is_held_by_this_cpu());
    EXPECT_TRUE(rw.is_write_held_by_this_cpu());
    EXPECT_EQ(s.owner(), current_owner_id());
    bool other_s = true, other_m = true, other_rw = true;
    uint32_t other_id = current_owner_id();
    std::thread([&] {
        other_s = s.is_held_by_this_cpu();
        other_m = m.is_held_by_this_cpu();
        other_rw = rw.is_write_held_by_this_cpu();
        other_id = current_owner_id();
    }).join();
    EXPECT_FALSE(other_s);
    EXPECT_FALSE(other_m);
    EXPECT_FALSE(other_rw);
    EXPECT_NE(other_id, current_owner_id());
}

TEST(Locks, TryLocksFailWhileHeldElsewhere) {
    SpinLock s;
    MCSLock m;
    RwLock rw;
    MCSLock::Node n;
    s.lock();
    m.lock(n);
    rw.read_lock();
    std::thread([&] {
        MCSLock::Node mine;
        EXPECT_FALSE(s.try_lock());
        EXPECT_FALSE(m.try_lock(mine));
        EXPECT_FALSE(rw.try_write());
        const bool shared = rw.try_read(); // readers share
        EXPECT_TRUE(shared);
        if (shared) rw.read_unlock();
    }).join();
    rw.read_unlock();
    m.unlock(n);
    s.unlock();
    std::thread([&] {
        MCSLock::Node mine;
        const bool got_s = s.try_lock();
        EXPECT_TRUE(got_s);
        if (got_s) s.unlock();
        const bool got_m = m.try_lock(mine);
        EXPECT_TRUE(got_m);
        if (got_m) m.unlock(mine);
    }).join();
    rw.write_lock();
    std::thread([&] {
        EXPECT_FALSE(rw.try_read());
        EXPECT_FALSE(rw.try_write());
    }).join();
    rw.write_unlock();
    EXPECT_FALSE(s.is_locked());
    EXPECT_FALSE(m.is_locked());
    EXPECT_EQ(rw.readers(), 0u);
}

// Statistics: a deliberately contended acquisition and a measurable hold are counted.
TEST(LockStats, CountsAcquisitionsContentionAndTimes) {
    static LockClass cls("test.stats");
    SpinLock lock(&cls);
    MCSLock mcs(&cls);
    RwLock rw(&cls);
    cls.reset_stats();
    lock.lock();
    std::thread waiter([&] {
        lock.lock(); // contended: the main thread holds it until we are queued
        lock.unlock();
    });
    wait_until([&] { return lock.waiters() == 1; });
    for (int i = 0; i < 1000; ++i)
        cpu_relax();
    lock.unlock();
    waiter.join();
    { Guard<MCSLock, NoIrq> g(mcs); }
    { ReadGuard<RwLock, NoIrq> g(rw); }
    const LockStats s = cls.stats();
    EXPECT_EQ(s.acquisitions, 4u);
    EXPECT_EQ(s.contended, 1u);
    EXPECT_GT(s.max_wait, 0u);
    EXPECT_GT(s.max_hold, 0u);
    EXPECT_GE(s.total_hold, s.max_hold);
    bool listed = false;
    for (LockClass* c = LockClass::first_registered(); c != nullptr; c = c->next_registered())
        listed |= c == &cls;
    EXPECT_TRUE(listed);

    cls.set_stats_enabled(false);
    { Guard<SpinLock, NoIrq> g(lock); }
    EXPECT_EQ(cls.stats().acquisitions, 4u);
    cls.set_stats_enabled(true);
}

// Statistics under contention from many threads add up exactly.
TEST(LockStats, ExactUnderContention) {
    static LockClass cls("test.stats_contended");
    cls.reset_stats();
    SpinLock lock(&cls);
    MCSLock mcs(&cls);
    uint64_t counter = 0; // guarded by lock; the MCS half only generates acquisitions
    run_threads(8, [&](int t) {
        for (int i = 0; i < 500; ++i) {
            if (t % 2) {
                Guard<SpinLock, NoIrq> g(lock);
                ++counter;
            } else {
                Guard<MCSLock, NoIrq> g(mcs);
            }
        }
    });
    EXPECT_EQ(counter, 4u * 500);
    EXPECT_EQ(cls.stats().acquisitions, 8u * 500);
    EXPECT_LE(cls.stats().contended, 8u * 500);
}

} // namespace
