// RwLock readers in interrupt handlers (sync/rwlock.h), with the host's simulated context.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "host_irq.h"
#include "sync/lock_debug.h"
#include "sync/rwlock.h"

namespace cohort {
namespace {

// A reader in an interrupt handler may have interrupted a holder of the same lock (shared):
// it must not queue behind a waiting writer, which waits for that holder, which waits for the
// handler. Outside handlers, writer preference stands.
std::atomic<int> g_irq_unsafe_reports{0};

TEST(RwLockIrq, ReaderInInterruptPassesAWaitingWriter) {
    // Holding the lock shared with interrupts on while a handler reads it is what debug builds
    // report (IrqUnsafe); the lock itself must still not deadlock in a release kernel.
    const LockReporter previous = set_lock_reporter([](const LockReport& r) {
        if (r.kind == LockReportKind::IrqUnsafe) g_irq_unsafe_reports.fetch_add(1);
    });
    RwLock l;
    [&]() COHORT_NO_THREAD_SAFETY_ANALYSIS { l.read_lock(); }(); // the interrupted context's hold
    std::atomic<bool> writer_in{false};
    std::thread writer([&] {
        l.lock();
        writer_in = true;
        l.unlock();
    });
    while (l.waiting_writers() == 0) std::this_thread::yield();
    std::thread plain([&] {
        EXPECT_FALSE(l.try_read()); // an ordinary reader stays out
    });
    plain.join();
    std::thread handler([&]() COHORT_NO_THREAD_SAFETY_ANALYSIS {
        HostIrqScope in_irq;
        EXPECT_TRUE(l.try_read());
        l.read_unlock();
        l.read_lock(); // and the blocking form returns too
        l.read_unlock();
    });
    handler.join();
    EXPECT_FALSE(writer_in.load());
    [&]() COHORT_NO_THREAD_SAFETY_ANALYSIS { l.read_unlock(); }();
    writer.join();
    EXPECT_TRUE(writer_in.load());
    set_lock_reporter(previous);
#if COHORT_LOCK_DEBUG
    EXPECT_GE(g_irq_unsafe_reports.load(), 1);
#endif
}

} // namespace
} // namespace cohort
