// Interrupt policies and the RAII guards whose type states them: `Guard<SpinLock, IrqSave>`.
//
// The policies are declared here and defined by the kernel (sync/irq_policy.cc: cli/sti) and
// by the host support (no-ops), so the guards are portable.
#pragma once

#include "sync/lock_class.h"
#include "sync/thread_annotations.h"

namespace cohort {

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

/// Scoped exclusive holder for any lock with lock(LockSite)/unlock(): SpinLock, RwLock (write
/// side). Interrupts are disabled before waiting and restored after release. Locks that need
/// per-acquisition state (MCSLock) specialise this template and keep that state in the guard.
template <typename Lock, typename Policy>
class COHORT_SCOPED_CAPABILITY Guard {
  public:
    explicit Guard(Lock& lock, LockSite site = COHORT_LOCK_SITE) COHORT_ACQUIRE(lock)
        : lock_(lock), state_(Policy::save()) {
        lock_.lock(site);
    }
    ~Guard() COHORT_RELEASE() {
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
