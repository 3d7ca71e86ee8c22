// A spinlock that stays fast when the CPUs waiting for it are not all running: virtual CPUs
// that outnumber host cores, as in an overcommitted VM or under an emulator.
//
// A FIFO lock (SpinLock, MCSLock) hands the lock to the next waiter even when that vCPU is not
// running, and every spinning waiter burns a host core the holder needs. ParkLock instead:
// - a CPU that finds the lock free takes it, queue or no queue (running CPUs "steal" it, as a
//   test-and-set lock lets them);
// - while nobody queues, one more CPU (the "pending" one, as in Linux's queued spinlock) spins
//   on the lock word for a bounded time instead of queueing; the queue's head may pass it at
//   most kMaxPendingBypass times, then leaves it the next turn (for a bounded time): two CPUs
//   taking turns cost about what a ticket lock costs;
// - waiters queue in FIFO order (an MCS queue: each spins on its own line); only the head of
//   the queue competes for the lock word;
// - an unlocker hands the lock straight to the head, as a FIFO lock would, only when the head
//   spun very recently (it is running, so the handover costs nothing); a head that went quiet
//   may be a vCPU the host is not running, and gets no handover;
// - a waiter spins a bounded number of rounds, then parks: it halts, giving its host core back
//   (sync/park.h), and is woken only when it matters: the head when the lock is released, the
//   next waiter when it becomes head;
// - stealing is bounded: an acquisition that bypasses a non-empty queue is a steal, counted by
//   the thief itself (so the bound holds even while the head is not running to notice), and
//   the kMaxSteals-th forbids stealing until the head has had the lock. No waiter starves: it
//   waits at most (waiters ahead + 1) x kMaxSteals + waiters ahead acquisitions (the worst
//   measured is kept: max_wait_acquisitions()).
// This is Linux's paravirtual queued spinlock reduced to its idea, with HLT and a kick in
// place of hypercalls. The scheduler's run-queue locks use it; ticket and MCS locks stay for
// what needs strict FIFO.
//
// Portable (host-tested with the host's park hooks); mirrored by models/parklock.pml.
#pragma once

#include <atomic>
#include <cstdint>

#include "sync/cpu_relax.h"
#include "sync/guard.h"
#include "sync/lock_meta.h"
#include "sync/park.h"
#include "sync/thread_annotations.h"

namespace cohort {

class COHORT_CAPABILITY("spinlock") ParkLock {
  public:
    /// Spin rounds before a waiter parks: long enough for a short critical section of a running
    /// holder, short against a host time slice.
    static constexpr uint32_t kSpins = 256;
    /// Acquisitions that may bypass the queue's head before stealing is forbidden.
    static constexpr uint32_t kMaxSteals = 64;
    /// A head that spun within this many lock_clock_now() ticks (TSC cycles: about 15 us at
    /// 3 GHz) counts as running and is handed the lock directly.
    static constexpr uint64_t kFreshTicks = 50'000;
    /// The head stamps `seen` every this many spin rounds.
    static constexpr uint32_t kStampEvery = 16;
    /// Acquisitions by the queue's head that may pass a running pending CPU.
    static constexpr uint32_t kMaxPendingBypass = 8;

    constexpr ParkLock() = default;
    constexpr explicit ParkLock(LockClass* cls) : meta_(cls) {}
    ParkLock(const ParkLock&) = delete;
    ParkLock& operator=(const ParkLock&) = delete;

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
        uint32_t free = 0;
        // A look first: a failing compare-and-swap would still take the line from the holder.
        if (word_.load(std::memory_order_relaxed) == 0 &&
            word_.compare_exchange_strong(free, kLocked, std::memory_order_acquire,
                                          std::memory_order_relaxed)) {
            count_steal();
            count_acquisition(acquisitions_.load(std::memory_order_relaxed));
            meta_.acquired_exclusive(start, false);
            return;
        }
        if (lock_pending()) {
            meta_.acquired_exclusive(start, true);
            return;
        }
        lock_slow(site);
        meta_.acquired_exclusive(start, true);
    }

    /// Takes the lock if it is free (and nobody forbade stealing); never waits.
    [[nodiscard]] bool try_lock(LockSite site = COHORT_LOCK_SITE) COHORT_TRY_ACQUIRE(true) {
        lock_hold_enter();
#if COHORT_LOCK_DEBUG
        if (!lock_debug::before_try(this, meta_.lock_class(), site)) return lock_hold_abandon();
#endif
        const uint64_t start = meta_.wait_start();
        uint32_t free = 0;
        if (word_.load(std::memory_order_relaxed) != 0 ||
            !word_.compare_exchange_strong(free, kLocked, std::memory_order_acquire,
                                           std::memory_order_relaxed))
            return lock_hold_abandon();
        count_steal();
        count_acquisition(acquisitions_.load(std::memory_order_relaxed));
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
        // A running head gets the lock directly (the word stays locked: nobody can slip in).
        // Not once it marked itself parked: then it is woken below and the lock is free to
        // running CPUs meanwhile.
        if (park::Waiter* head = head_.load(std::memory_order_acquire);
            head != nullptr && (word_.load(std::memory_order_relaxed) & kHeadParked) == 0 &&
            may_pass_pending(word_.load(std::memory_order_relaxed)) &&
            lock_clock_now() - head->seen.load(std::memory_order_relaxed) < kFreshTicks) {
            handovers_.store(handovers_.load(std::memory_order_relaxed) + 1,
                             std::memory_order_relaxed); // the holder's count
            head->granted.store(true, std::memory_order_seq_cst);
            park::wake(*head, head->kicked); // if it parked after all, in between
            lock_hold_exit();
            return;
        }
        // Releases the critical section; keeps kNoSteal (the head's claim) and takes the head's
        // parked mark, so exactly one unlocker wakes it.
        const uint32_t old =
            word_.fetch_and(~(kLocked | kHeadParked), std::memory_order_acq_rel);
        if ((old & kHeadParked) != 0) {
            park::Waiter* head = head_.load(std::memory_order_acquire);
            park::wake(*head, head->kicked);
        }
        lock_hold_exit(); // after the release: the section ends with the lock free
    }

    [[nodiscard]] bool is_locked() const {
        return (word_.load(std::memory_order_relaxed) & kLocked) != 0;
    }
    [[nodiscard]] bool is_held_by_this_cpu() const { return meta_.held_by_caller(); }
    void assert_held() const COHORT_ASSERT_CAPABILITY(this) { COHORT_ASSERT(is_held_by_this_cpu()); }
    [[nodiscard]] uint32_t owner() const { return meta_.owner(); }
    /// CPUs waiting for it (a snapshot).
    [[nodiscard]] uint32_t waiters() const { return waiting_.load(std::memory_order_relaxed); }
    LockClass* lock_class() const { return meta_.lock_class(); }
    void set_lock_class(LockClass* cls) { meta_.set_lock_class(cls); }

    /// The most acquisitions by others any queued waiter saw between queueing and getting the
    /// lock (the bound of the header comment applies to it).
    [[nodiscard]] uint32_t max_wait_acquisitions() const {
        return max_wait_.load(std::memory_order_relaxed);
    }
    /// The same for the pending CPU, from setting its bit to taking the lock.
    [[nodiscard]] uint32_t max_pending_wait() const {
        return max_pending_wait_.load(std::memory_order_relaxed);
    }
    /// Times a waiter parked (halted) rather than spun.
    [[nodiscard]] uint64_t parks() const { return parks_.load(std::memory_order_relaxed); }
    /// Releases that handed the lock straight to a running head.
    [[nodiscard]] uint64_t handovers() const { return handovers_.load(std::memory_order_relaxed); }
    /// Acquisitions by the one CPU that spun for the word outside the queue (the pending bit).
    [[nodiscard]] uint64_t pending_takes() const {
        return pending_takes_.load(std::memory_order_relaxed);
    }
    /// Forgets the statistics above (only while nobody uses the lock).
    void reset_stats() {
        pending_takes_.store(0, std::memory_order_relaxed);
        max_pending_wait_.store(0, std::memory_order_relaxed);
        max_wait_.store(0, std::memory_order_relaxed);
        parks_.store(0, std::memory_order_relaxed);
        handovers_.store(0, std::memory_order_relaxed);
    }

  private:
    static constexpr uint32_t kLocked = 1;     // held
    static constexpr uint32_t kNoSteal = 2;    // kMaxSteals steals: only the queue's head may take it
    static constexpr uint32_t kHeadParked = 4; // the head halted: the unlocker must wake it
    static constexpr uint32_t kPending = 8;    // one CPU spins for the lock outside the queue

    // The second CPU to want the lock while nobody queues spins on the word instead of queueing
    // (Linux's pending bit): with two contenders, the common case, an acquisition then costs two
    // atomic operations on one line, as a ticket lock's does, not a trip through the queue.
    // Only one CPU at a time does it, for at most kSpins rounds; then it queues (and may park).
    // Its acquisition past a queue that formed meanwhile is a steal like any other.
    // While it spins, the queue's head may pass it kMaxPendingBypass times (with two CPUs,
    // runs of acquisitions on one CPU keep the line there, which is what makes a lock fast);
    // then the head and the unlocker leave it the next turn, the head for up to kSpins rounds
    // of its own (the pending vCPU may not be running). So a running pending CPU waits at most
    // kMaxPendingBypass acquisitions, and nothing here reads a clock.
    bool lock_pending() {
        uint32_t v = word_.load(std::memory_order_relaxed);
        if ((v & (kPending | kNoSteal)) != 0 || tail_.load(std::memory_order_relaxed) != nullptr)
            return false;
        if (!word_.compare_exchange_strong(v, v | kPending, std::memory_order_acquire,
                                           std::memory_order_relaxed))
            return false;
        const uint32_t arrived = acquisitions_.load(std::memory_order_relaxed);
        for (uint32_t i = 0; i < kSpins; ++i) {
            v = word_.load(std::memory_order_relaxed);
            if ((v & kNoSteal) != 0) break; // the queue's head has the next turn
            if ((v & kLocked) == 0) {
                if (word_.compare_exchange_weak(v, (v & ~kPending) | kLocked,
                                                std::memory_order_acquire,
                                                std::memory_order_relaxed)) {
                    count_steal();
                    count_pending_acquisition(arrived);
                    pending_bypass_.store(0, std::memory_order_relaxed);
                    pending_takes_.store(pending_takes_.load(std::memory_order_relaxed) + 1,
                                         std::memory_order_relaxed); // the holder's count
                    return true;
                }
                continue;
            }
            cpu_relax();
        }
        word_.fetch_and(~kPending, std::memory_order_relaxed);
        return false;
    }

    // The queue's head may take the lock though a CPU is pending (the holder counts passes).
    bool may_pass_pending(uint32_t word) const {
        return (word & kPending) == 0 ||
               pending_bypass_.load(std::memory_order_relaxed) < kMaxPendingBypass;
    }

    // Holder, after taking the lock without queueing: if anyone is queued this was a steal, and
    // the kMaxSteals-th since the head last had the lock closes the door (the word keeps
    // kNoSteal through our release; the head's acquisition clears it and the count).
    void count_steal() {
        if (tail_.load(std::memory_order_acquire) == nullptr) return;
        const uint32_t n = steals_.load(std::memory_order_relaxed) + 1;
        steals_.store(n, std::memory_order_relaxed);
        if (n >= kMaxSteals) word_.fetch_or(kNoSteal, std::memory_order_relaxed);
    }

    // Holder only: counts the acquisition and the longest wait, in acquisitions by others.
    void count_acquisition(uint32_t arrived) {
        const uint32_t now = acquisitions_.load(std::memory_order_relaxed);
        if (now - arrived > max_wait_.load(std::memory_order_relaxed))
            max_wait_.store(now - arrived, std::memory_order_relaxed);
        acquisitions_.store(now + 1, std::memory_order_relaxed);
    }

    // Holder, after a pending acquisition: its wait is kept apart from the queue's. A pending
    // CPU the host stops running is passed by others without limit, as it should be (it
    // blocks nobody); it is bounded instead by its own kSpins rounds, after which it queues.
    void count_pending_acquisition(uint32_t arrived) {
        const uint32_t now = acquisitions_.load(std::memory_order_relaxed);
        if (now - arrived > max_pending_wait_.load(std::memory_order_relaxed))
            max_pending_wait_.store(now - arrived, std::memory_order_relaxed);
        acquisitions_.store(now + 1, std::memory_order_relaxed);
    }

    // Spins on `flag` (a field of `w`), then parks until it is set.
    void wait_for(park::Waiter& w, const std::atomic<bool>& flag, LockWaitWatch& watch,
                  LockSite site) {
        for (;;) {
            for (uint32_t i = 0; i < kSpins; ++i) {
                if (flag.load(std::memory_order_acquire)) return;
                watch.tick(this, meta_.lock_class(), site, meta_.owner());
                cpu_relax();
            }
            parks_.fetch_add(1, std::memory_order_relaxed);
            park::wait(w, flag);
            if (flag.load(std::memory_order_acquire)) return;
        }
    }

    void lock_slow(LockSite site) {
        waiting_.fetch_add(1, std::memory_order_relaxed);
        LockWaitWatch watch;
        park::Waiter& w = park::waiter_enter();
        w.next.store(nullptr, std::memory_order_relaxed);
        w.head.store(false, std::memory_order_relaxed);
        // acq_rel: our node's initialisation is released to the predecessor that links it.
        park::Waiter* prev = tail_.exchange(&w, std::memory_order_acq_rel);
        // The wait the bound speaks of starts here, in the queue: before it, an interrupt or a
        // host that does not run this vCPU can delay us by any number of acquisitions.
        const uint32_t arrived = acquisitions_.load(std::memory_order_relaxed);
        if (prev != nullptr) {
            prev->next.store(&w, std::memory_order_release);
            wait_for(w, w.head, watch, site);
        }
        // Head of the queue: compete for the word with whoever arrives (within the bound on
        // steals, which the thieves enforce), or be handed the lock.
        w.granted.store(false, std::memory_order_relaxed);
        w.seen.store(lock_clock_now(), std::memory_order_relaxed);
        head_.store(&w, std::memory_order_release);
        bool granted = false;
        uint32_t deferred = 0; // rounds that saw the lock free but left it to the pending CPU
        for (;;) {
            bool got = false;
            for (uint32_t i = 0; i < kSpins && !got; ++i) {
                if (w.granted.load(std::memory_order_acquire)) {
                    got = granted = true;
                    break;
                }
                if (i % kStampEvery == 0) w.seen.store(lock_clock_now(), std::memory_order_relaxed);
                uint32_t v = word_.load(std::memory_order_relaxed);
                if ((v & kLocked) == 0 && (may_pass_pending(v) || ++deferred > kSpins)) {
                    // Clears kNoSteal with it: the queue has had its turn.
                    got = word_.compare_exchange_weak(v, (v & kPending) | kLocked,
                                                      std::memory_order_acquire,
                                                      std::memory_order_relaxed);
                    continue;
                }
                watch.tick(this, meta_.lock_class(), site, meta_.owner());
                cpu_relax();
            }
            if (got) break;
            // Park, marked in the word so that the unlocker wakes us; only while it is held
            // (a release between our look and the mark makes the CAS fail: we try again).
            // seq_cst, with the grant's stores: a handover that raced with our last look is
            // seen here, before we mark ourselves parked in a word that stays locked for us.
            w.kicked.store(false, std::memory_order_seq_cst);
            if (w.granted.load(std::memory_order_seq_cst)) {
                granted = true;
                break;
            }
            uint32_t v = word_.load(std::memory_order_relaxed);
            if ((v & kLocked) == 0 ||
                !word_.compare_exchange_strong(v, v | kHeadParked, std::memory_order_acq_rel,
                                               std::memory_order_relaxed))
                continue;
            parks_.fetch_add(1, std::memory_order_relaxed);
            while (!w.kicked.load(std::memory_order_acquire) &&
                   !w.granted.load(std::memory_order_acquire))
                park::wait(w, w.kicked);
            w.seen.store(lock_clock_now(), std::memory_order_relaxed);
        }
        // Ours. No head until our successor takes over (before we wake it: the next unlocker
        // must not hand the lock to us). Handed over, the word still carries the marks the
        // unlocker left for us. The steals are counted afresh for the next head.
        head_.store(nullptr, std::memory_order_relaxed);
        if (granted) word_.fetch_and(~(kHeadParked | kNoSteal), std::memory_order_relaxed);
        if ((word_.load(std::memory_order_relaxed) & kPending) != 0)
            pending_bypass_.store(pending_bypass_.load(std::memory_order_relaxed) + 1,
                                  std::memory_order_relaxed); // passed the pending CPU
        steals_.store(0, std::memory_order_relaxed);
        park::Waiter* expected = &w;
        if (!tail_.compare_exchange_strong(expected, nullptr, std::memory_order_acq_rel,
                                           std::memory_order_relaxed)) {
            park::Waiter* next;
            while ((next = w.next.load(std::memory_order_acquire)) == nullptr) cpu_relax();
            park::wake(*next, next->head);
        }
        park::waiter_exit(w);
        waiting_.fetch_sub(1, std::memory_order_relaxed);
        count_acquisition(arrived);
    }

    // The lock word and the queue: what every acquisition touches, on one line.
    std::atomic<uint32_t> word_{0};
    std::atomic<uint32_t> steals_{0};       // holder only: steals since the head last had it
    std::atomic<uint32_t> acquisitions_{0}; // holder only writes (for max_wait_acquisitions)
    std::atomic<park::Waiter*> tail_{nullptr};
    std::atomic<park::Waiter*> head_{nullptr}; // the queue's head, for the unlocker's wake
    std::atomic<uint32_t> waiting_{0};
    std::atomic<uint32_t> pending_bypass_{0}; // holder only: head acquisitions past kPending
    std::atomic<uint32_t> max_wait_{0};
    std::atomic<uint64_t> parks_{0};
    std::atomic<uint64_t> handovers_{0};
    std::atomic<uint64_t> pending_takes_{0};
    std::atomic<uint32_t> max_pending_wait_{0};
    LockMeta meta_;
};

} // namespace cohort
