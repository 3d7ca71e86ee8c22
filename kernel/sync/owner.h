// Who is running: the identity locks record as their owner.
//
// The kernel answers with the CPU id, host builds with a small per-thread number, so the lock
// algorithms and their debugging checks run unchanged in both worlds.
#pragma once

#include <cstdint>

namespace cohort {

/// Stored in a lock's owner field while nobody holds it.
inline constexpr uint32_t kNoOwner = UINT32_MAX;

/// The caller's owner id: the CPU id in the kernel, a per-thread id (from 0) on the host.
/// Never returns kNoOwner. Defined by the kernel (sync/irq_policy.cc) and by host/support.
uint32_t current_owner_id();

/// Every lock acquisition and release (exclusive or shared) calls these. The kernel counts the
/// locks its CPU holds, so the scheduler never preempts a task inside a spinlock's critical
/// section; the host counts per thread.
void lock_hold_enter();
void lock_hold_exit();
/// Locks the caller holds now (the kernel: this CPU).
uint32_t lock_holds_on_this_cpu();
/// A try-lock that failed gives back the hold it took on entry.
inline bool lock_hold_abandon() {
    lock_hold_exit();
    return false;
}

} // namespace cohort
