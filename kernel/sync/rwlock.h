// Reader-writer spinlock with writer preference: once a writer is waiting, no new reader gets
// in, so a steady stream of overlapping readers cannot starve it. (The price: a steady stream
// of writers can starve readers. Writers among themselves are not FIFO.)
//
// Except for readers in interrupt handlers: they wait only for a writer inside, not for one
// waiting. The context they interrupted may hold the lock shared, and the writer waits for
// that context, which waits for the handler: with writer preference it would never end.
//
// Mirrored by models/rwlock.pml.
#pragma once

#include <atomic>
#include <cstdint>

#include "sync/cpu_relax.h"
#include "sync/guard.h"
#include "sync/lock_meta.h"
#include "sync/thread_annotations.h"

namespace cohort {

/// Many readers or one writer. The write side is also spelled lock()/try_lock()/unlock(), so
/// `Guard<RwLock, Policy>` (alias WriteGuard) works; ReadGuard<RwLock, Policy> takes it shared.
class COHORT_CAPABILITY("rwlock") RwLock {
  public:
    constexpr RwLock() = default;
    constexpr explicit RwLock(LockClass* cls) : meta_(cls) {}
    RwLock(const RwLock&) = delete;
    RwLock& operator=(const RwLock&) = delete;

    void read_lock(LockSite site = COHORT_LOCK_SITE) COHORT_ACQUIRE_SHARED() {
        lock_hold_enter(); // no preemption while waiting or holding
#if COHORT_LOCK_DEBUG
        if (!lock_debug::before_acquire(this, meta_.lock_class(), site, meta_.irq_usage())) {
            lock_hold_exit();
            return;
        }
#endif
        (void)site;
        const uint64_t start = meta_.wait_start();
        bool contended = false;
        LockWaitWatch watch;
        const uint32_t blocks = reader_blocked_by();
        uint32_t s = state_.load(std::memory_order_relaxed);
        for (;;) {
            if ((s & blocks) == 0) {
                if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire,
                                                 std::memory_order_relaxed))
                    break;
                continue; // s was reloaded; another reader or a writer got there first
            }
            contended = true;
            // The holder is the writer inside, if any (kNoOwner while one only waits).
            watch.tick(this, meta_.lock_class(), site, meta_.owner());
            cpu_relax();
            s = state_.load(std::memory_order_relaxed);
        }
        meta_.acquired_shared(start, contended);
    }

    /// Takes the lock shared unless a writer holds it or waits for it.
    [[nodiscard]] bool try_read(LockSite site = COHORT_LOCK_SITE) COHORT_TRY_ACQUIRE_SHARED(true) {
        lock_hold_enter();
#if COHORT_LOCK_DEBUG
        if (!lock_debug::before_try(this, meta_.lock_class(), site)) return lock_hold_abandon();
#endif
        const uint64_t start = meta_.wait_start();
        const uint32_t blocks = reader_blocked_by();
        uint32_t s = state_.load(std::memory_order_relaxed);
        do {
            if ((s & blocks) != 0) return lock_hold_abandon();
        } while (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire,
                                               std::memory_order_relaxed));
        meta_.acquired_shared(start, false);
#if COHORT_LOCK_DEBUG
        lock_debug::after_try_acquired(this, meta_.lock_class(), site, meta_.irq_usage());
#endif
        (void)site;
        return true;
    }

    void read_unlock() COHORT_RELEASE_SHARED() {
#if COHORT_LOCK_DEBUG
        if (!lock_debug::before_release(this)) return;
#endif
        meta_.releasing_shared();
        state_.fetch_sub(1, std::memory_order_release);
        lock_hold_exit(); // after the release: the section ends with the lock free
    }

    void write_lock(LockSite site = COHORT_LOCK_SITE) COHORT_ACQUIRE() {
        lock_hold_enter(); // no preemption while waiting or holding
#if COHORT_LOCK_DEBUG
        if (!lock_debug::before_acquire(this, meta_.lock_class(), site, meta_.irq_usage())) {
            lock_hold_exit();
            return;
        }
#endif
        (void)site;
        const uint64_t start = meta_.wait_start();
        // Announce first: from here on readers stay out, and the ones inside drain.
        uint32_t s = state_.fetch_add(kWaitingWriter, std::memory_order_relaxed) + kWaitingWriter;
        bool contended = false;
        LockWaitWatch watch;
        for (;;) {
            if ((s & (kWriter | kReaderMask)) == 0) {
                if (state_.compare_exchange_weak(s, (s - kWaitingWriter) | kWriter,
                                                 std::memory_order_acquire,
                                                 std::memory_order_relaxed))
                    break;
                continue;
            }
            contended = true;
            // kNoOwner while readers hold it: readers are not tracked individually.
            watch.tick(this, meta_.lock_class(), site, meta_.owner());
            cpu_relax();
            s = state_.load(std::memory_order_relaxed);
        }
        meta_.acquired_exclusive(start, contended);
    }

    /// Takes the lock exclusively if nobody holds it (it may overtake waiting writers).
    [[nodiscard]] bool try_write(LockSite site = COHORT_LOCK_SITE) COHORT_TRY_ACQUIRE(true) {
        lock_hold_enter();
#if COHORT_LOCK_DEBUG
        if (!lock_debug::before_try(this, meta_.lock_class(), site)) return lock_hold_abandon();
#endif
        const uint64_t start = meta_.wait_start();
        uint32_t s = state_.load(std::memory_order_relaxed);
        do {
            if ((s & (kWriter | kReaderMask)) != 0) return lock_hold_abandon();
        } while (!state_.compare_exchange_weak(s, s | kWriter, std::memory_order_acquire,
                                               std::memory_order_relaxed));
        meta_.acquired_exclusive(start, false);
#if COHORT_LOCK_DEBUG
        lock_debug::after_try_acquired(this, meta_.lock_class(), site, meta_.irq_usage());
#endif
        (void)site;
        return true;
    }

    void write_unlock() COHORT_RELEASE() {
#if COHORT_LOCK_DEBUG
        if (!lock_debug::before_release(this)) return;
#endif
        meta_.releasing_exclusive();
        state_.fetch_and(~kWriter, std::memory_order_release);
        lock_hold_exit(); // after the release: the section ends with the lock free
    }

    /// The write side under the generic lock names, for Guard.
    void lock(LockSite site = COHORT_LOCK_SITE) COHORT_ACQUIRE() {
        write_lock(site);
    }
    [[nodiscard]] bool try_lock(LockSite site = COHORT_LOCK_SITE) COHORT_TRY_ACQUIRE(true) {
        return try_write(site);
    }
    void unlock() COHORT_RELEASE() {
        write_unlock();
    }

    /// Readers inside (a snapshot).
    [[nodiscard]] uint32_t readers() const {
        return state_.load(std::memory_order_relaxed) & kReaderMask;
    }
    /// Writers announced but not yet inside (a snapshot; tests use it).
    [[nodiscard]] uint32_t waiting_writers() const {
        return (state_.load(std::memory_order_relaxed) & kWaitingMask) / kWaitingWriter;
    }
    [[nodiscard]] bool is_write_locked() const {
        return (state_.load(std::memory_order_relaxed) & kWriter) != 0;
    }
    /// The caller holds the write side. (Readers are not tracked individually.)
    [[nodiscard]] bool is_write_held_by_this_cpu() const {
        return meta_.held_by_caller();
    }
    [[nodiscard]] uint32_t owner() const {
        return meta_.owner();
    }

    LockClass* lock_class() const {
        return meta_.lock_class();
    }
    void set_lock_class(LockClass* cls) {
        meta_.set_lock_class(cls);
    }

  private:
    // state_: bit 31 writer inside | bits 16..30 writers waiting | bits 0..15 readers inside.
    static constexpr uint32_t kReaderMask = 0xffff;
    static constexpr uint32_t kWaitingWriter = 1u << 16;
    static constexpr uint32_t kWaitingMask = 0x7fffu << 16;
    static constexpr uint32_t kWriter = 1u << 31;
    static constexpr uint32_t kBlocksReaders = kWriter | kWaitingMask;
    static uint32_t reader_blocked_by() {
        return current_lock_context().in_irq ? kWriter : kBlocksReaders;
    }

    std::atomic<uint32_t> state_{0};
    LockMeta meta_;
};

/// Scoped shared holder: `ReadGuard<RwLock, IrqSave> g(lock);`.
template <typename Lock, typename Policy>
class COHORT_SCOPED_CAPABILITY ReadGuard {
  public:
    explicit ReadGuard(Lock& lock, LockSite site = COHORT_LOCK_SITE) COHORT_ACQUIRE_SHARED(lock)
        : lock_(lock), state_(Policy::save()) {
        lock_.read_lock(site);
    }
    ~ReadGuard() COHORT_RELEASE_GENERIC() {
        lock_.read_unlock();
        Policy::restore(state_);
    }
    ReadGuard(const ReadGuard&) = delete;
    ReadGuard& operator=(const ReadGuard&) = delete;

  private:
    Lock& lock_;
    typename Policy::State state_;
};

/// Scoped exclusive holder of a reader-writer lock: `WriteGuard<RwLock, IrqSave> g(lock);`.
template <typename Lock, typename Policy>
using WriteGuard = Guard<Lock, Policy>;

} // namespace cohort
