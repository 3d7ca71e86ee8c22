// Bookkeeping shared by the lock types: owner, class statistics and debug hook calls. Kept out
// of the algorithms so each lock's fast path reads as the algorithm plus a few one-line calls.
#pragma once

#include <atomic>
#include <cstdint>

#include "sync/lock_class.h"
#include "sync/lock_debug.h"
#include "sync/owner.h"

namespace cohort {

/// Per-lock metadata: the exclusive owner (for is_held_by_this_cpu and debugging), the class,
/// and the start of the current exclusive hold when statistics are on.
class LockMeta {
  public:
    constexpr LockMeta() = default;
    constexpr explicit LockMeta(LockClass* cls) : cls_(cls) {}

    LockClass* lock_class() const { return cls_; }
    /// Only while the lock is unused: classes are read without synchronisation.
    void set_lock_class(LockClass* cls) { cls_ = cls; }

    /// Start of a wait: a timestamp when statistics are on, else 0 (no clock read).
    uint64_t wait_start() const { return lock_stats_on(cls_) ? lock_clock_now() : 0; }

    /// The caller now holds the lock exclusively.
    void acquired_exclusive(uint64_t start, bool contended) {
        owner_.store(current_owner_id(), std::memory_order_relaxed);
        if (start != 0) {
            const uint64_t now = lock_clock_now();
            cls_->record_acquire(contended, now - start);
            hold_start_ = now;
        }
    }
    /// The caller holds the lock shared (no owner, no hold time: holds overlap).
    void acquired_shared(uint64_t start, bool contended) {
        if (start != 0) cls_->record_acquire(contended, lock_clock_now() - start);
    }
    /// The owner is about to release its exclusive hold.
    void releasing_exclusive() {
        owner_.store(kNoOwner, std::memory_order_relaxed);
        if (hold_start_ != 0) {
            if (cls_ != nullptr) cls_->record_hold(lock_clock_now() - hold_start_);
            hold_start_ = 0;
        }
    }
    /// A shared holder is about to release.
    void releasing_shared() {}

    /// The owner id recorded at acquisition, or kNoOwner (a hint when read by others).
    uint32_t owner() const { return owner_.load(std::memory_order_relaxed); }
    /// Exact for the caller: only the caller can have stored its own id here.
    bool held_by_caller() const { return owner() == current_owner_id(); }

    /// The interrupt-usage record the debug hooks take (nullptr without lock debugging).
    LockIrqUsage* irq_usage() {
#if COHORT_LOCK_DEBUG
        return &irq_usage_;
#else
        return nullptr;
#endif
    }

  private:
    LockClass* cls_ = nullptr;
    std::atomic<uint32_t> owner_{kNoOwner};
    uint64_t hold_start_ = 0; // written and read only by the holder
#if COHORT_LOCK_DEBUG
    LockIrqUsage irq_usage_;
#endif
};

} // namespace cohort
