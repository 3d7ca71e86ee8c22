#include "sched/wait.h"

#include "sync/lock_ranks.h"

#include "lib/assert.h"
#include "sched/sched.h"

namespace cohort {

LockClass g_wait_queue_class{"wait queue", rank::kWaitQueue};

void WaitQueue::prepare(Waiter& w) {
    Task* me = current_task();
    Guard<ParkLock, IrqSave> g(lock_);
    if (!w.queued.load(std::memory_order_relaxed)) {
        w.task = me;
        w.queued.store(true, std::memory_order_relaxed);
        list_.push_back(w);
    }
    // Under the queue lock: a waker that takes the lock after us sees Blocked and wakes us, one
    // that took it before us made its change visible before our condition check.
    me->state.store(TaskState::Blocked, std::memory_order_release);
}

void WaitQueue::block() { sched_block(); }

void WaitQueue::finish(Waiter& w) {
    if (w.queued.load(std::memory_order_acquire)) {
        Guard<ParkLock, IrqSave> g(lock_);
        if (w.queued.load(std::memory_order_relaxed)) { // never woken: leave by ourselves
            list_.remove(w);
            w.queued.store(false, std::memory_order_relaxed);
        }
    }
    current_task()->state.store(TaskState::Running, std::memory_order_relaxed);
}

void WaitQueue::wake(Waiter& w) {
    // Once `queued` is false the waiter may return and its Waiter is gone; and a waiter that
    // had not blocked yet may even finish, exit and be reaped before wake_up runs. The reference
    // keeps its Task valid until then.
    Task* t = w.task;
    task_ref(t);
    w.queued.store(false, std::memory_order_release); // the last touch of `w`
    wake_up(t);
    task_unref(t);
}

bool WaitQueue::wake_one() {
    Guard<ParkLock, IrqSave> g(lock_);
    Waiter* w = list_.pop_front();
    if (w != nullptr) wake(*w);
    return w != nullptr;
}

uint32_t WaitQueue::wake_all() {
    uint32_t n = 0;
    Guard<ParkLock, IrqSave> g(lock_);
    while (Waiter* w = list_.pop_front()) {
        wake(*w);
        ++n;
    }
    return n;
}

uint32_t WaitQueue::waiters() {
    Guard<ParkLock, IrqSave> g(lock_);
    return static_cast<uint32_t>(list_.size());
}

void Mutex::lock() {
    Task* me = current_task();
    COHORT_ASSERT(owner_.load(std::memory_order_relaxed) != me); // not recursive
    if (try_lock()) return;
    waiters_.wait([this] { return try_lock(); });
}

bool Mutex::try_lock() {
    Task* expected = nullptr;
    return owner_.compare_exchange_strong(expected, current_task(), std::memory_order_acquire,
                                          std::memory_order_relaxed);
}

void Mutex::unlock() {
    COHORT_ASSERT(owner_.load(std::memory_order_relaxed) == current_task());
    owner_.store(nullptr, std::memory_order_release);
    waiters_.wake_one();
}

bool Mutex::is_held_by_current() const {
    return owner_.load(std::memory_order_relaxed) == current_task();
}

void Semaphore::down() {
    if (try_down()) return;
    waiters_.wait([this] { return try_down(); });
}

bool Semaphore::try_down() {
    int64_t c = count_.load(std::memory_order_relaxed);
    while (c > 0) {
        if (count_.compare_exchange_weak(c, c - 1, std::memory_order_acquire,
                                         std::memory_order_relaxed))
            return true;
    }
    return false;
}

void Semaphore::up() {
    count_.fetch_add(1, std::memory_order_release);
    waiters_.wake_one();
}

} // namespace cohort
