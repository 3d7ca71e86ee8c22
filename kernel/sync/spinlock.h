// Ticket spinlock (FIFO-fair) and RAII guards whose type states the interrupt policy.
//
// The lock algorithm is portable (host-tested); the interrupt policies are supplied by the
// kernel (arch) or by the host test support, so the same code runs in both worlds.
#pragma once

#include <atomic>
#include <cstdint>

#include "sync/cpu_relax.h"

namespace cohort {

/// FIFO ticket lock: waiters are served in arrival order, so no CPU starves.
class SpinLock {
  public:
    constexpr SpinLock() = default;
    SpinLock(const SpinLock&) = delete;
    SpinLock& operator=(const SpinLock&) = delete;

    void lock() {
        const uint32_t ticket = next_.fetch_add(1, std::memory_order_relaxed);
        while (serving_.load(std::memory_order_acquire) != ticket) cpu_relax();
    }
    [[nodiscard]] bool try_lock() {
        uint32_t serving = serving_.load(std::memory_order_relaxed);
        uint32_t expected = serving;
        return next_.compare_exchange_strong(expected, serving + 1, std::memory_order_acquire,
                                             std::memory_order_relaxed);
    }
    void unlock() {
        // Only the holder writes serving_, so a plain increment published with release is enough.
        serving_.store(serving_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    }
    [[nodiscard]] bool is_locked() const {
        return next_.load(std::memory_order_relaxed) != serving_.load(std::memory_order_relaxed);
    }

  private:
    std::atomic<uint32_t> next_{0};
    std::atomic<uint32_t> serving_{0};
};

/// Guard policy: leave interrupts as they are (the caller guarantees they are off, or the
/// lock is never taken from interrupt context).
struct NoIrq {
    struct State {};
    static State save() { return {}; }
    static void restore(State) {}
};

/// Guard policy: disable interrupts for the critical section and restore the saved state.
struct IrqSave {
    struct State {
        bool enabled;
    };
    static State save();
    static void restore(State s);
};

/// Scoped lock holder: `Guard<SpinLock, IrqSave> g(lock);`.
template <typename Lock, typename Policy>
class Guard {
  public:
    explicit Guard(Lock& lock) : lock_(lock), state_(Policy::save()) { lock_.lock(); }
    ~Guard() {
        lock_.unlock();
        Policy::restore(state_);
    }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

  private:
    Lock& lock_;
    typename Policy::State state_;
};

} // namespace cohort
