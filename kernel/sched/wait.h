// Blocking primitives on top of the scheduler: wait queues, a sleeping mutex and a counting
// semaphore. The wake-up protocol closes the check-then-sleep race: a waiter is on the queue
// and marked Blocked before it checks its condition, so a wake-up between the check and the
// switch finds it and cancels the sleep.
#pragma once

#include <atomic>
#include <cstdint>

#include "lib/intrusive_list.h"
#include "sync/park_lock.h"

namespace cohort {

/// Every wait queue's lock (ranked: sync/lock_ranks.h).
extern LockClass g_wait_queue_class;

struct Task;

/// One waiting task (lives on the waiter's stack).
struct Waiter {
    Task* task = nullptr;
    ListNode link;
    // On a queue. Set by prepare and cleared by the waker (or finish), under the queue lock; a
    // woken task reads it without the lock, so neither wake_all nor the waker's progress makes
    // the tasks it wakes wait (the waker keeps the Task alive by a reference instead).
    std::atomic<bool> queued{false};
};

class WaitQueue {
  public:
    constexpr WaitQueue() = default;
    WaitQueue(const WaitQueue&) = delete;
    WaitQueue& operator=(const WaitQueue&) = delete;

    /// Blocks until `cond()` is true. `cond` is evaluated with the queue unlocked, after the
    /// caller is queued, so a wake_* that follows the change it waits for cannot be lost.
    template <typename Cond>
    void wait(Cond&& cond) {
        Waiter w;
        for (;;) {
            prepare(w);
            if (cond()) break;
            block();
            // Woken (normally for this): check before queueing again, so the many tasks a
            // wake_all releases do not all contend for the queue lock the waker still holds.
            if (cond()) break;
        }
        finish(w);
    }
    /// Wakes the longest waiter; returns whether there was one.
    bool wake_one();
    /// Wakes every waiter; returns how many.
    uint32_t wake_all();
    /// Waiters queued now (a snapshot).
    uint32_t waiters();

    // The protocol `wait` uses, for primitives that need to act between the steps.
    void prepare(Waiter& w); // queue (once) and mark the caller Blocked
    void block();            // switch away unless already woken
    void finish(Waiter& w);  // dequeue and mark the caller Running

  private:
    void wake(Waiter& w) COHORT_REQUIRES(lock_); // w is off the list
    ParkLock lock_{&g_wait_queue_class}; // shared by every waker and sleeper: see sync/park_lock.h
    IntrusiveList<Waiter, &Waiter::link> list_ COHORT_GUARDED_BY(lock_);
};

/// A sleeping lock: waiters block instead of spinning, so it may be held across blocking calls
/// (never in interrupt context). An unlock wakes the longest waiter, which then competes with
/// any newcomer for the lock (no strict FIFO handoff: it would force a switch per release).
class Mutex {
  public:
    void lock();
    [[nodiscard]] bool try_lock();
    void unlock();
    bool is_held_by_current() const;

  private:
    std::atomic<Task*> owner_{nullptr};
    WaitQueue waiters_;
};

/// Counting semaphore: down() blocks while the count is zero.
class Semaphore {
  public:
    explicit Semaphore(int64_t initial = 0) : count_(initial) {}
    void down();
    [[nodiscard]] bool try_down();
    void up();
    int64_t count() const { return count_.load(std::memory_order_relaxed); }

  private:
    std::atomic<int64_t> count_;
    WaitQueue waiters_;
};

} // namespace cohort
