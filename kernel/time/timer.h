// Per-CPU timer queues on the local APIC's one-shot timer: each CPU keeps its pending timers
// ordered by deadline (a red-black tree: arming and cancelling are O(log n)) and programs its LAPIC for the earliest one only, so a CPU with nothing
// due takes no timer interrupts at all (tickless). Callbacks run in that CPU's timer interrupt.
#pragma once

#include <atomic>
#include <cstdint>

#include "lib/rbtree.h"

namespace cohort {

struct Timer;
/// Runs in interrupt context on the CPU the timer was armed on, with interrupts disabled.
using TimerFn = void (*)(Timer& timer, void* arg);

/// One pending expiry. Owned by the caller; must stay alive (and not be re-armed) until it has
/// fired or timer_cancel() returned.
struct Timer {
    uint64_t deadline_ns = 0; // monotonic_ns() time
    TimerFn fn = nullptr;
    void* arg = nullptr;
    RbNode link;
    std::atomic<uint32_t> cpu{UINT32_MAX}; // queue it is armed on, UINT32_MAX when idle
};

struct CpuData;
/// Installs the timer interrupt handler and `cpu`'s queue (before that CPU arms timers; any
/// CPU may do it for another that is not using timers yet). Until then the LAPIC timer of that
/// CPU is free for other uses (bring-up delays).
void timer_init_cpu(CpuData* cpu);

/// The calling CPU's timer queue is set up (timer_init_cpu ran for it).
bool timer_ready_here();

/// Arms `t` on the calling CPU to call fn(t, arg) at or after `deadline_ns`. A deadline in the
/// past fires at the next timer interrupt (immediately). `t` must not be armed.
void timer_arm(Timer& t, uint64_t deadline_ns, TimerFn fn, void* arg);

/// Disarms `t` if it has not fired yet; returns true if it was pending. Callable from any CPU;
/// a callback running at the same moment on the timer's CPU may still be in progress on return
/// when it returns false.
bool timer_cancel(Timer& t);

/// timer_cancel, and if the timer had already fired, waits until its callback has returned on
/// whatever CPU ran it: afterwards the timer (and what its callback uses) may be freed. Not
/// from the timer's own callback, nor from a handler that interrupted it.
bool timer_cancel_sync(Timer& t);

/// Halts the calling CPU until `deadline_ns` or an earlier interrupt, whichever comes first:
/// for waits that must leave the host CPU to other vCPUs under an emulator. Needs this CPU's
/// timer queue; returns with interrupts enabled.
void timer_halt_until(uint64_t deadline_ns);

/// CPU hotplug, on the CPU going offline (interrupts off): moves every timer pending on its
/// queue to CPU `to`'s, deadlines unchanged, stops its LAPIC timer and marks its queue not
/// ready (timer_init_cpu readies it again). Per-CPU timers are the caller's to cancel first.
/// Returns how many moved.
uint32_t timer_evacuate(uint32_t to);

/// Timers that fired on the calling CPU so far (statistics, tests).
uint64_t timer_fired_count();

} // namespace cohort
