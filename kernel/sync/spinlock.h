// Ticket spinlock (FIFO-fair) and, through sync/guard.h, the RAII guards whose type states the
// interrupt policy.
//
// The lock algorithm is portable (host-tested, model-checked in models/ticket.pml); the
// interrupt policies, owner id and debug stack are supplied by the kernel or by the host test
// support, so the same code runs in both worlds.
#pragma once

#include <atomic>
#include <cstdint>

#include "sync/cpu_relax.h"
#include "sync/guard.h"
#include "sync/lock_meta.h"
#include "sync/thread_annotations.h"

namespace cohort {

/// FIFO ticket lock: waiters are served in arrival order, so no CPU starves. Every waiter spins
/// on the same word; under heavy contention prefer MCSLock.
class COHORT_CAPABILITY("spinlock") SpinLock {
  public:
    constexpr SpinLock() = default;
    /// A lock whose statistics and lock-order rank come from `cls` (nullptr: none).
    constexpr explicit SpinLock(LockClass* cls) : meta_(cls) {}
    SpinLock(const SpinLock&) = delete;
    SpinLock& operator=(const SpinLock&) = delete;

    /// Waits for the lock. `site` (the caller's file:line) is used by debug reports.
    void lock(LockSite site = COHORT_LOCK_SITE) COHORT_ACQUIRE() {
        lock_hold_enter(); // no preemption while waiting or holding
#if COHORT_LOCK_DEBUG
        if (!lock_debug::before_acquire(this, meta_.lock_class(), site, meta_.irq_usage())) {
            lock_hold_exit();
            return;
        }
#endif
        (void)site;
        const uint64_t start = meta_.wait_start();
        const uint32_t ticket = next_.fetch_add(1, std::memory_order_relaxed);
        bool contended = false;
        LockWaitWatch watch;
        while (serving_.load(std::memory_order_acquire) != ticket) {
            contended = true;
            watch.tick(this, meta_.lock_class(), site, meta_.owner());
            cpu_relax();
        }
        meta_.acquired_exclusive(start, contended);
    }

    /// Takes the lock if it is free and nobody is queued; never waits.
    [[nodiscard]] bool try_lock(LockSite site = COHORT_LOCK_SITE) COHORT_TRY_ACQUIRE(true) {
        lock_hold_enter();
#if COHORT_LOCK_DEBUG
        if (!lock_debug::before_try(this, meta_.lock_class(), site)) return lock_hold_abandon();
#endif
        const uint64_t start = meta_.wait_start();
        // acquire: the previous holder published its critical section through serving_, not
        // next_, so the CAS below alone would not order us after it. (The CAS could succeed
        // wrongly only if next_ wrapped all 2^32 tickets between the load and the CAS.)
        const uint32_t serving = serving_.load(std::memory_order_acquire);
        uint32_t expected = serving;
        if (!next_.compare_exchange_strong(expected, serving + 1, std::memory_order_acquire,
                                           std::memory_order_relaxed))
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
        // Only the holder writes serving_, so a plain increment published with release is enough.
        serving_.store(serving_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
        lock_hold_exit(); // after the release: the section ends with the lock free
    }

    /// Somebody holds the lock (a snapshot; for assertions and tests).
    [[nodiscard]] bool is_locked() const {
        return next_.load(std::memory_order_relaxed) != serving_.load(std::memory_order_relaxed);
    }
    /// The caller (this CPU; this thread on the host) holds the lock. Exact for the caller.
    [[nodiscard]] bool is_held_by_this_cpu() const {
        return meta_.held_by_caller();
    }
    /// Tells the thread-safety analysis the lock is held, after checking it in debug builds.
    void assert_held() const COHORT_ASSERT_CAPABILITY(this) {
        COHORT_ASSERT(is_held_by_this_cpu());
    }
    /// Owner id of the holder or kNoOwner (racy hint, for reports).
    [[nodiscard]] uint32_t owner() const {
        return meta_.owner();
    }
    /// Waiters queued behind the holder (a snapshot; tests use it to order arrivals).
    [[nodiscard]] uint32_t waiters() const {
        const uint32_t queued =
            next_.load(std::memory_order_relaxed) - serving_.load(std::memory_order_relaxed);
        return queued == 0 ? 0 : queued - 1;
    }

    LockClass* lock_class() const {
        return meta_.lock_class();
    }
    void set_lock_class(LockClass* cls) {
        meta_.set_lock_class(cls);
    }

  private:
    std::atomic<uint32_t> next_{0};    // next ticket to hand out
    std::atomic<uint32_t> serving_{0}; // ticket allowed in
    LockMeta meta_;
};

} // namespace cohort
