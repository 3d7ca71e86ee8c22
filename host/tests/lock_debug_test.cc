// Lock debugging in report mode: taking a lock twice and taking locks against their rank order
// produce reports naming both sites, and the program keeps running. Also in cohort_tsan_tests.
#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../support/host_irq.h"
#include "sync/lock_debug.h"
#include "sync/mcs_lock.h"
#include "sync/rwlock.h"
#include "sync/spinlock.h"

#if COHORT_LOCK_DEBUG

// This file breaks the locking rules on purpose; the static analysis would (rightly) refuse it.
#pragma clang diagnostic ignored "-Wthread-safety-analysis"

namespace {

using namespace cohort;

std::mutex g_reports_mutex;
std::vector<LockReport> g_reports;

void capture(const LockReport& r) {
    std::lock_guard<std::mutex> g(g_reports_mutex);
    g_reports.push_back(r);
}

class LockDebug : public ::testing::Test {
  protected:
    void SetUp() override {
        g_reports.clear();
        previous_ = set_lock_reporter(capture);
    }
    void TearDown() override {
        set_lock_reporter(previous_);
        // Every test must leave its thread's held-lock stack as it found it.
        EXPECT_EQ(current_held_locks()->depth, 0u);
    }
    static std::vector<LockReport> reports() {
        std::lock_guard<std::mutex> g(g_reports_mutex);
        return g_reports;
    }
    LockReporter previous_ = nullptr;
};

bool ends_with(const char* s, const char* suffix) {
    const std::string a(s == nullptr ? "" : s), b(suffix);
    return a.size() >= b.size() && a.compare(a.size() - b.size(), b.size(), b) == 0;
}

TEST_F(LockDebug, SpinLockTakenTwiceIsReportedWithBothSites) {
    SpinLock lock;
    lock.lock();
    const uint32_t first_line = __LINE__ - 1;
    lock.lock(); // in report mode: reported, then skipped instead of deadlocking
    const uint32_t second_line = __LINE__ - 1;
    const auto r = reports();
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].kind, LockReportKind::Recursion);
    EXPECT_EQ(r[0].lock, &lock);
    EXPECT_EQ(r[0].held_lock, &lock);
    EXPECT_EQ(r[0].owner, current_owner_id());
    EXPECT_EQ(r[0].held_site.line, first_line);
    EXPECT_EQ(r[0].site.line, second_line);
    EXPECT_TRUE(ends_with(r[0].site.file, "lock_debug_test.cc")) << r[0].site.file;
    EXPECT_TRUE(ends_with(r[0].held_site.file, "lock_debug_test.cc"));
    // The inner unlock pairs with the skipped acquisition; the outer one releases.
    lock.unlock();
    EXPECT_TRUE(lock.is_held_by_this_cpu());
    lock.unlock();
    EXPECT_FALSE(lock.is_locked());
    EXPECT_EQ(reports().size(), 1u);
}

TEST_F(LockDebug, NestedGuardsAndOtherLockTypesReportRecursion) {
    SpinLock s;
    MCSLock m;
    RwLock rw;
    {
        Guard<SpinLock, IrqSave> a(s);
        Guard<SpinLock, IrqSave> b(s);
    }
    {
        Guard<MCSLock, IrqSave> a(m);
        Guard<MCSLock, IrqSave> b(m);
    }
    {
        // Read recursion deadlocks a writer-preferring lock once a writer queues in between.
        ReadGuard<RwLock, NoIrq> a(rw);
        ReadGuard<RwLock, NoIrq> b(rw);
    }
    {
        ReadGuard<RwLock, NoIrq> a(rw);
        WriteGuard<RwLock, NoIrq> b(rw);
    }
    const auto r = reports();
    ASSERT_EQ(r.size(), 4u);
    const void* locks[] = {&s, &m, &rw, &rw};
    for (size_t i = 0; i < r.size(); ++i) {
        EXPECT_EQ(r[i].kind, LockReportKind::Recursion);
        EXPECT_EQ(r[i].lock, locks[i]);
        EXPECT_EQ(r[i].site.line, r[i].held_site.line + 1);
    }
    EXPECT_FALSE(s.is_locked());
    EXPECT_FALSE(m.is_locked());
    EXPECT_EQ(rw.readers(), 0u);
    EXPECT_FALSE(rw.is_write_locked());
}

TEST_F(LockDebug, TryLockOfAHeldLockJustFails) {
    SpinLock lock;
    lock.lock();
    EXPECT_FALSE(lock.try_lock()); // cannot deadlock: a probe, not a bug
    lock.unlock();
    EXPECT_TRUE(reports().empty());
    EXPECT_FALSE(lock.is_locked());
    RwLock rw;
    rw.read_lock();
    ASSERT_TRUE(rw.try_read()); // shared: nests, tracked twice
    rw.read_unlock();
    rw.read_unlock();
    EXPECT_EQ(rw.readers(), 0u);
    EXPECT_TRUE(reports().empty());
}

TEST_F(LockDebug, WrongOrderIsReportedWithBothSites) {
    static LockClass low("test.low", 10);
    static LockClass high("test.high", 20);
    SpinLock a(&low);
    MCSLock b(&high);
    {
        Guard<SpinLock, NoIrq> ga(a);
        Guard<MCSLock, NoIrq> gb(b); // increasing rank: fine
    }
    EXPECT_TRUE(reports().empty());
    {
        Guard<MCSLock, NoIrq> gb(b);
        const uint32_t held_line = __LINE__ - 1;
        Guard<SpinLock, NoIrq> ga(a); // rank 10 while holding rank 20: reported
        const uint32_t new_line = __LINE__ - 1;
        const auto r = reports();
        ASSERT_EQ(r.size(), 1u);
        EXPECT_EQ(r[0].kind, LockReportKind::OrderViolation);
        EXPECT_EQ(r[0].lock, &a);
        EXPECT_EQ(r[0].cls, &low);
        EXPECT_EQ(r[0].held_lock, &b);
        EXPECT_EQ(r[0].held_cls, &high);
        EXPECT_EQ(r[0].held_site.line, held_line);
        EXPECT_EQ(r[0].site.line, new_line);
    }
    // The order report does not stop the acquisition: both were taken and released.
    EXPECT_FALSE(a.is_locked());
    EXPECT_FALSE(b.is_locked());
}

TEST_F(LockDebug, EqualRankIsAnOrderViolationAndUnrankedIsNotChecked) {
    static LockClass cache("test.cache", 30);
    static LockClass unranked("test.unranked");
    SpinLock c1(&cache), c2(&cache), u1(&unranked), u2;
    {
        Guard<SpinLock, NoIrq> g1(c1);
        Guard<SpinLock, NoIrq> g2(c2); // two locks of one class: no order between them
        Guard<SpinLock, NoIrq> g3(u1);
        Guard<SpinLock, NoIrq> g4(u2);
    }
    const auto r = reports();
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].kind, LockReportKind::OrderViolation);
    EXPECT_EQ(r[0].lock, &c2);
    EXPECT_EQ(r[0].held_lock, &c1);
}

TEST_F(LockDebug, TryLockIsNotOrderChecked) {
    static LockClass low("test.try_low", 10);
    static LockClass high("test.try_high", 20);
    SpinLock a(&low), b(&high);
    b.lock();
    ASSERT_TRUE(a.try_lock()); // cannot deadlock: no report
    a.unlock();
    b.unlock();
    EXPECT_TRUE(reports().empty());
}

TEST_F(LockDebug, OutOfOrderReleaseKeepsTheStackConsistent) {
    SpinLock a, b, c;
    a.lock();
    b.lock();
    c.lock();
    b.unlock();
    a.unlock();
    c.unlock();
    EXPECT_TRUE(reports().empty());
}

TEST_F(LockDebug, ReleaseOfALockNotHeldIsReported) {
    int not_a_lock = 0;
    EXPECT_TRUE(lock_debug::before_release(&not_a_lock));
    const auto r = reports();
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].kind, LockReportKind::ReleaseNotHeld);
    EXPECT_EQ(r[0].lock, &not_a_lock);
}

TEST_F(LockDebug, HeldStacksArePerOwner) {
    SpinLock lock;
    // Held (and waited for) by two threads in turn: never recursion.
    std::thread t1([&] {
        for (int i = 0; i < 1000; ++i) {
            Guard<SpinLock, NoIrq> g(lock);
        }
    });
    std::thread t2([&] {
        for (int i = 0; i < 1000; ++i) {
            Guard<SpinLock, NoIrq> g(lock);
        }
    });
    t1.join();
    t2.join();
    EXPECT_TRUE(reports().empty());
}

// --- interrupt safety ------------------------------------------------------------------------
// Host threads start "with interrupts enabled, not in a handler"; HostIrqScope simulates a handler.

TEST_F(LockDebug, LockTakenWithIrqsOnThenInAHandlerIsReported) {
    SpinLock lock;
    { Guard<SpinLock, NoIrq> g(lock); } // interrupts stay on: a handler could interrupt us here
    const uint32_t on_line = __LINE__ - 1;
    {
        HostIrqScope irq;
        Guard<SpinLock, NoIrq> g(lock);
    }
    const uint32_t irq_line = __LINE__ - 2;
    const auto r = reports();
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].kind, LockReportKind::IrqUnsafe);
    EXPECT_EQ(r[0].lock, &lock);
    EXPECT_EQ(r[0].site.line, irq_line);
    EXPECT_EQ(r[0].held_site.line, on_line);
    EXPECT_TRUE(ends_with(r[0].held_site.file, "lock_debug_test.cc"));
}

TEST_F(LockDebug, LockTakenInAHandlerThenWithIrqsOnIsReportedOnce) {
    MCSLock lock;
    {
        HostIrqScope irq;
        Guard<MCSLock, NoIrq> g(lock);
    }
    const uint32_t irq_line = __LINE__ - 2;
    for (int i = 0; i < 3; ++i) {
        Guard<MCSLock, NoIrq> g(lock);
    }
    const auto r = reports();
    ASSERT_EQ(r.size(), 1u); // the pattern is reported once per lock, not per acquisition
    EXPECT_EQ(r[0].kind, LockReportKind::IrqUnsafe);
    EXPECT_EQ(r[0].held_site.line, irq_line);
}

TEST_F(LockDebug, IrqSaveGuardsAndTryLocksInHandlersAreFine) {
    SpinLock lock;
    RwLock rw;
    for (int i = 0; i < 3; ++i) {
        Guard<SpinLock, IrqSave> g(lock); // interrupts off while held: the handler cannot nest
        ReadGuard<RwLock, IrqSave> rg(rw);
    }
    {
        HostIrqScope irq;
        Guard<SpinLock, NoIrq> g(lock);
        ReadGuard<RwLock, NoIrq> rg(rw);
    }
    SpinLock polled; // a handler that only tries cannot spin on its own CPU's holder
    {
        HostIrqScope irq;
        if (polled.try_lock()) polled.unlock();
    }
    { Guard<SpinLock, NoIrq> g(polled); }
    EXPECT_TRUE(reports().empty());
}

TEST_F(LockDebug, SharedAcquisitionsCountToo) {
    // With writer preference a handler's read_lock waits behind a waiting writer, which waits
    // for the interrupted reader: shared holds with interrupts on are just as unsafe.
    RwLock rw;
    { ReadGuard<RwLock, NoIrq> g(rw); }
    {
        HostIrqScope irq;
        ReadGuard<RwLock, NoIrq> g(rw);
    }
    const auto r = reports();
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].kind, LockReportKind::IrqUnsafe);
}

TEST(LockDebugNames, KindsHaveNames) {
    EXPECT_STREQ(lock_report_kind_name(LockReportKind::Recursion), "lock recursion");
    EXPECT_STREQ(lock_report_kind_name(LockReportKind::OrderViolation), "lock order violation");
}

} // namespace

#endif // COHORT_LOCK_DEBUG
