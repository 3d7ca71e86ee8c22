// Parking a waiting CPU: a lock waiter that has spun long enough halts (under a hypervisor or
// an emulator, a halted vCPU gives its host core back, to the lock holder among others) until
// another CPU wakes it. The lock algorithms (sync/park_lock.h) are portable; these hooks are
// supplied by the kernel (sync/park.cc: HLT, woken by an IPI or, when the waiter halted with
// interrupts off, an NMI) and by the host tests (host/support/park_host.cc: a futex wait).
#pragma once

#include <atomic>
#include <cstdint>

namespace cohort::park {

/// One waiting context's record: a CPU has a few (a wait may be interrupted by a handler
/// that waits for another lock), each alone on its cache line, the line its waiter spins on.
struct alignas(64) Waiter {
    std::atomic<Waiter*> next{nullptr}; // the next waiter in a lock's queue
    std::atomic<bool> head{false};      // set by the predecessor: this waiter leads the queue
    std::atomic<bool> kicked{false};    // set by an unlocker: the lock was released
    std::atomic<bool> parked{false};    // halted (or about to), so a wake-up must interrupt it
    std::atomic<bool> granted{false};   // the unlocker handed it the lock directly
    std::atomic<uint64_t> seen{0};      // when it last spun (lock_clock_now): it is running
    bool irqs_on = false;               // it halts with interrupts enabled (kick by IPI)
    uint32_t cpu = 0;                   // whose record (kernel: the CPU; host: the thread)
};

/// The calling context's next free record (nested waits get their own), and its release.
/// Interrupts may be on; an interrupt handler that waits too gets the next record.
Waiter& waiter_enter();
void waiter_exit(Waiter& w);

/// Halts the caller until `flag` (a field of `w`) is true: marks `w` parked, checks the flag
/// and halts, with no window in which a wake() between the check and the halt is lost. May
/// return early (another interrupt); callers re-check.
void wait(Waiter& w, const std::atomic<bool>& flag);

/// Sets `flag` (a field of `w`) and, if `w`'s owner is parked, interrupts it: an IPI when it
/// halted with interrupts on, an NMI when they were off (nothing else ends such a halt).
void wake(Waiter& w, std::atomic<bool>& flag);

/// Wake-ups that had to interrupt a parked CPU, since boot (statistics).
uint64_t kicks_sent();

#ifndef COHORT_HOST
/// Installs the kick interrupt's handler (with the other IPI handlers, before any AP starts).
void init();
/// In the NMI handler: NMIs were sent here as kicks since the last call (so an NMI that
/// carries nothing else is expected).
bool consume_kick_nmis();
#endif

} // namespace cohort::park
