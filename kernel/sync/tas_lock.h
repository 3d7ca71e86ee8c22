// Test-and-test-and-set spinlock: the lock for machine-wide structures that per-CPU caches
// shield (the buddy lists, the heap's size classes). It hands nothing over: when the holder
// releases it, whichever waiter runs next takes it. A FIFO lock (SpinLock, MCSLock) must wait
// for the next CPU in line, and in a virtual machine with more vCPUs than host cores that CPU
// is often not running: at 64 vCPUs on 2 host cores, with a ticket lock on the page allocator
// every waiter stalled about 2 s per acquisition and a page-cache test ran for minutes. The
// price is fairness: a
// CPU may lose the race repeatedly; the per-CPU caches keep these locks rare enough for that
// not to matter, and the long-wait reports (sync/lock_debug.h) would show it if it did.
#pragma once

#include <atomic>
#include <cstdint>

#include "sync/cpu_relax.h"
#include "sync/guard.h"
#include "sync/lock_meta.h"
#include "sync/thread_annotations.h"

namespace cohort {

class COHORT_CAPABILITY("spinlock") TasLock {
  public:
    constexpr TasLock() = default;
    constexpr explicit TasLock(LockClass* cls) : meta_(cls) {}
    TasLock(const TasLock&) = delete;
    TasLock& operator=(const TasLock&) = delete;

    void lock(LockSite site = COHORT_LOCK_SITE) COHORT_ACQUIRE() {
        lock_hold_enter();
#if COHORT_LOCK_DEBUG
        if (!lock_debug::before_acquire(this, meta_.lock_class(), site, meta_.irq_usage())) {
            lock_hold_exit();
            return;
        }
#endif
        (void)site;
        const uint64_t start = meta_.wait_start();
        bool contended = false;
        if (locked_.exchange(true, std::memory_order_acquire)) {
            contended = true;
            waiting_.fetch_add(1, std::memory_order_relaxed);
            LockWaitWatch watch;
            uint32_t backoff = 1;
            do {
                // Read-only while it is held: the line stays shared among the waiters until
                // the release, and only then do they race with one locked instruction each.
                while (locked_.load(std::memory_order_relaxed)) {
                    watch.tick(this, meta_.lock_class(), site, meta_.owner());
                    for (uint32_t i = 0; i < backoff; ++i) cpu_relax();
                    if (backoff < 64) backoff <<= 1;
                }
            } while (locked_.exchange(true, std::memory_order_acquire));
            waiting_.fetch_sub(1, std::memory_order_relaxed);
        }
        meta_.acquired_exclusive(start, contended);
    }

    [[nodiscard]] bool try_lock(LockSite site = COHORT_LOCK_SITE) COHORT_TRY_ACQUIRE(true) {
        lock_hold_enter();
#if COHORT_LOCK_DEBUG
        if (!lock_debug::before_try(this, meta_.lock_class(), site)) return lock_hold_abandon();
#endif
        const uint64_t start = meta_.wait_start();
        if (locked_.load(std::memory_order_relaxed) ||
            locked_.exchange(true, std::memory_order_acquire))
            return lock_hold_abandon();
        meta_.acquired_exclusive(start, false);
#if COHORT_LOCK_DEBUG
        lock_debug::after_try_acquired(this, meta_.lock_class(), site, meta_.irq_usage());
#endif
        (void)site;
        return true;
    }

    void unlock() COHORT_RELEASE() {
#if COHORT_LOCK_DEBUG
        if (!lock_debug::before_release(this)) return;
#endif
        meta_.releasing_exclusive();
        locked_.store(false, std::memory_order_release);
        lock_hold_exit();
    }

    [[nodiscard]] bool is_locked() const { return locked_.load(std::memory_order_relaxed); }
    [[nodiscard]] bool is_held_by_this_cpu() const { return meta_.held_by_caller(); }
    void assert_held() const COHORT_ASSERT_CAPABILITY(this) { COHORT_ASSERT(is_held_by_this_cpu()); }
    [[nodiscard]] uint32_t owner() const { return meta_.owner(); }
    /// CPUs spinning for it (a snapshot).
    [[nodiscard]] uint32_t waiters() const { return waiting_.load(std::memory_order_relaxed); }
    LockClass* lock_class() const { return meta_.lock_class(); }

  private:
    std::atomic<bool> locked_{false};
    std::atomic<uint32_t> waiting_{0};
    LockMeta meta_;
};

} // namespace cohort
