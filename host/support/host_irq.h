// The simulated interrupt state of host threads, for tests of the lock code's interrupt-safety
// checks (see irq_policy_host.cc).
#pragma once

#include "sync/lock_debug.h"

namespace cohort {

/// Sets the calling thread's simulated context; returns the previous one.
LockContext host_set_lock_context(LockContext c);

/// Runs a scope as if inside an interrupt handler (interrupts off), then restores the context.
class HostIrqScope {
  public:
    HostIrqScope() : saved_(host_set_lock_context({true, false})) {}
    ~HostIrqScope() { host_set_lock_context(saved_); }
    HostIrqScope(const HostIrqScope&) = delete;
    HostIrqScope& operator=(const HostIrqScope&) = delete;

  private:
    LockContext saved_;
};

} // namespace cohort
