// MCS queue lock: FIFO like the ticket lock, but each waiter spins on its own cache line, so a
// release touches only the next waiter's line instead of every waiter's.
//
// Mirrored by models/mcs.pml.
#pragma once

#include <atomic>
#include <cstdint>

#include "sync/cpu_relax.h"
#include "sync/guard.h"
#include "sync/lock_meta.h"
#include "sync/thread_annotations.h"

namespace cohort {

/// MCS lock. Each acquisition brings a queue node that must stay alive and unmoved until the
/// matching unlock; Guard<MCSLock, Policy> keeps it inside the guard.
class COHORT_CAPABILITY("mcs lock") MCSLock {
  public:
    /// A waiter's queue entry, alone on its cache line: the line it spins on.
    struct alignas(64) Node {
        std::atomic<Node*> next{nullptr};
        std::atomic<bool> waiting{false};
    };

    constexpr MCSLock() = default;
    constexpr explicit MCSLock(LockClass* cls) : meta_(cls) {}
    MCSLock(const MCSLock&) = delete;
    MCSLock& operator=(const MCSLock&) = delete;

    /// Queues `node` and waits until its predecessor hands the lock over.
    void lock(Node& node, LockSite site = COHORT_LOCK_SITE) COHORT_ACQUIRE() {
        lock_hold_enter(); // no preemption while waiting or holding
#if COHORT_LOCK_DEBUG
        if (!lock_debug::before_acquire(this, meta_.lock_class(), site, meta_.irq_usage())) {
            lock_hold_exit();
            return;
        }
#endif
        (void)site;
        const uint64_t start = meta_.wait_start();
        node.next.store(nullptr, std::memory_order_relaxed);
        node.waiting.store(true, std::memory_order_relaxed);
        // acq_rel: acquire the previous holder's critical section when the queue was empty;
        // release our node's initialisation to the predecessor that will link and wake it.
        Node* prev = tail_.exchange(&node, std::memory_order_acq_rel);
        const bool contended = prev != nullptr;
        if (contended) {
            prev->next.store(&node, std::memory_order_release);
            LockWaitWatch watch;
            while (node.waiting.load(std::memory_order_acquire)) {
                watch.tick(this, meta_.lock_class(), site, meta_.owner());
                cpu_relax();
            }
        }
        meta_.acquired_exclusive(start, contended);
    }

    /// Takes the lock only if nobody holds or waits for it.
    [[nodiscard]] bool try_lock(Node& node, LockSite site = COHORT_LOCK_SITE)
        COHORT_TRY_ACQUIRE(true) {
        lock_hold_enter();
#if COHORT_LOCK_DEBUG
        if (!lock_debug::before_try(this, meta_.lock_class(), site)) return lock_hold_abandon();
#endif
        const uint64_t start = meta_.wait_start();
        node.next.store(nullptr, std::memory_order_relaxed);
        node.waiting.store(false, std::memory_order_relaxed);
        Node* expected = nullptr;
        if (!tail_.compare_exchange_strong(expected, &node, std::memory_order_acq_rel,
                                           std::memory_order_relaxed))
            return lock_hold_abandon();
        meta_.acquired_exclusive(start, false);
#if COHORT_LOCK_DEBUG
        lock_debug::after_try_acquired(this, meta_.lock_class(), site, meta_.irq_usage());
#endif
        (void)site;
        return true;
    }

    /// Hands the lock to the next queued node, or empties the queue. `node` is the one passed
    /// to the matching lock()/try_lock().
    void unlock(Node& node) COHORT_RELEASE() {
#if COHORT_LOCK_DEBUG
        if (!lock_debug::before_release(this)) return;
#endif
        meta_.releasing_exclusive();
        Node* next = node.next.load(std::memory_order_acquire);
        if (next == nullptr) {
            Node* expected = &node;
            if (tail_.compare_exchange_strong(expected, nullptr, std::memory_order_release,
                                              std::memory_order_relaxed)) {
                lock_hold_exit();
                return;
            }
            // A successor swapped itself into tail_ but has not linked to us yet: wait for it.
            while ((next = node.next.load(std::memory_order_acquire)) == nullptr)
                cpu_relax();
        }
        next->waiting.store(false, std::memory_order_release);
        lock_hold_exit(); // after the release: the section ends with the lock free
    }

    [[nodiscard]] bool is_locked() const {
        return tail_.load(std::memory_order_relaxed) != nullptr;
    }
    [[nodiscard]] bool is_held_by_this_cpu() const {
        return meta_.held_by_caller();
    }
    void assert_held() const COHORT_ASSERT_CAPABILITY(this) {
        COHORT_ASSERT(is_held_by_this_cpu());
    }
    [[nodiscard]] uint32_t owner() const {
        return meta_.owner();
    }
    /// `node` is the last in the queue (a snapshot; tests use it to order arrivals).
    [[nodiscard]] bool is_tail(const Node& node) const {
        return tail_.load(std::memory_order_relaxed) == &node;
    }

    LockClass* lock_class() const {
        return meta_.lock_class();
    }
    void set_lock_class(LockClass* cls) {
        meta_.set_lock_class(cls);
    }

  private:
    std::atomic<Node*> tail_{nullptr}; // last queued node; nullptr when free
    LockMeta meta_;
};

/// Guard for MCSLock: the queue node lives in the guard, so it outlives the hold.
template <typename Policy>
class COHORT_SCOPED_CAPABILITY Guard<MCSLock, Policy> {
  public:
    explicit Guard(MCSLock& lock, LockSite site = COHORT_LOCK_SITE) COHORT_ACQUIRE(lock)
        : lock_(lock), state_(Policy::save()) {
        lock_.lock(node_, site);
    }
    ~Guard() COHORT_RELEASE() {
        lock_.unlock(node_);
        Policy::restore(state_);
    }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

  private:
    MCSLock& lock_;
    typename Policy::State state_;
    MCSLock::Node node_;
};

} // namespace cohort
