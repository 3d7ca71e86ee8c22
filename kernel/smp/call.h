// Remote function calls: run a function on other CPUs, synchronously or not.
//
// Each CPU has a lock-free multi-producer queue of requests. A producer sends the call IPI
// only when it turns the queue from empty to non-empty, so a burst of requests costs one
// interrupt; the target drains everything queued so far in one go. A synchronous caller waits
// on a completion count and keeps draining its own queue meanwhile, so two CPUs calling each
// other cannot deadlock.
//
// Nothing here allocates. A multicast (call_on_many, run_on_many) is one request in the
// sender's per-CPU data that every target finds through the sender's bit in its `incoming`
// mask. A unicast request takes one of its sender's preallocated slots, which sit at a fixed
// address per CPU: a target knows the sender from the slot (or the bit), never from what the
// request says, and refuses one that claims another sender or comes from a CPU that is not up
// (docs/security.md, "IPI sources"). An asynchronous request holds one of kAsyncCallCredit
// slots until it starts running, and a sender whose slots are all queued gets
// CallStatus::Busy (and should retry later); a synchronous one holds one of 32 until it ran. Calls from one sender
// to one target run in the order they were made, except that a multicast may overtake
// asynchronous calls that the rate limit holds back.
#pragma once

#include <cstdint>

#include "smp/cpumask.h"

namespace cohort {

using CallFn = void (*)(void* arg);

enum class CallStatus {
    Ok,
    RefusedIrqsOff, // synchronous call with interrupts disabled: it could deadlock
    Offline,        // the target is not online
    Busy,           // the sender has kAsyncCallCredit asynchronous calls queued already
    Rejected,       // the target refused the request: it did not come from where it claimed
};
const char* call_status_name(CallStatus s);

/// Runs fn(arg) on `cpu` in interrupt context (interrupts off). With `wait`, returns once it
/// has run. Calling the running CPU runs fn inline.
CallStatus call_on(uint32_t cpu, CallFn fn, void* arg, bool wait);
/// Asynchronous calls one CPU may have queued at once (its credit): a slot is given back when
/// its call starts running.
inline constexpr uint32_t kAsyncCallCredit = 64;

/// As call_on for every CPU in `cpus` (the running CPU, if included, runs inline while the
/// others work). A synchronous multicast keeps the caller on its CPU until all have answered.
CallStatus call_on_many(const CpuMask& cpus, CallFn fn, void* arg, bool wait);
/// Synchronous call_on_many on `cpus` plus the running CPU, decided without a migration in
/// between (TLB shootdowns: the initiator's own TLB is always one of them).
CallStatus call_on_many_and_self(const CpuMask& cpus, CallFn fn, void* arg);
/// Every online CPU except (unless `include_self`) the running one.
CallStatus call_on_all(CallFn fn, void* arg, bool wait, bool include_self);

/// Runs fn(arg) on `cpu` in thread context (its worker task, interrupts enabled) and waits for it
/// to finish: for work that may take time, spin on locks or make synchronous calls itself.
CallStatus run_on(uint32_t cpu, CallFn fn, void* arg);

/// run_on for every CPU in `cpus` at once (the running CPU, if included, runs its share last),
/// waiting for all of them; nothing stays allocated once it returns.
CallStatus run_on_many(const CpuMask& cpus, CallFn fn, void* arg);

/// As run_on, without waiting: the work is queued and this returns at once.
CallStatus run_on_async(uint32_t cpu, CallFn fn, void* arg);

/// CPU hotplug, on the CPU going offline, in its worker (thread context), once it is no longer
/// counted online: closes its queue and runs every call queued so far (interrupt-context ones
/// with interrupts off, deferred ones here). From then on calls to it return
/// CallStatus::Offline: a call is either queued before the close and runs, or refused.
void call_close_here();
/// CPU hotplug, before an offline CPU restarts: its queue accepts calls again.
void call_reopen(uint32_t cpu);
/// Drains the running CPU's request queue (the IPI handler and waiting callers use it).
void run_pending_calls();
/// The idle loop's check before it halts (interrupts off): requests queued for this CPU with
/// no call IPI pending are run now, and counted in CpuCounters::calls_stranded.
void run_stranded_calls();
/// Logs one line of the remote-call health counters summed over every CPU: calls sent and
/// run, call IPIs re-sent to slow targets, queues found stranded (non-empty with no call IPI
/// pending) by the idle check, asynchronous calls refused for credit, unhandled interrupts.
void log_call_health();
/// Asynchronous requests of `cpu` queued now (of its kAsyncCallCredit).
uint32_t async_calls_outstanding(uint32_t cpu);
/// Maps CPU `cpu`'s request slots (in memory of NUMA node `node`); at boot, for every CPU id
/// including hot-add slots. False when out of memory: the kernel cannot start that CPU.
bool call_slots_setup(uint32_t cpu, uint32_t node);
/// CPU hotplug, on the departing CPU just before it parks (interrupts off): waits until every
/// request it sent has completed, so none is left that targets would have to refuse. Re-sends
/// call IPIs to targets with work queued every 100 ms, logs what is outstanding every second,
/// and parks anyway after 5 s (logged; the leftovers are then refused, their waiters told so).
void call_wait_sends_done();
/// Runs thread-context work queued by run_on (each CPU's worker task calls it with interrupts
/// enabled). Returns true if it ran anything.
bool run_deferred_work();
/// Work queued by run_on is waiting on this CPU (call with interrupts disabled).
bool has_deferred_work();

/// Test hooks (docs/security.md, "IPI sources"): requests no genuine sender makes.
namespace call_testing {
/// Queues fn(arg) to `target` as a synchronous request sitting in `slot_cpu`'s slots and
/// claiming to come from `claimed`, waits for the target, and returns its verdict.
CallStatus forge_call(uint32_t target, uint32_t slot_cpu, uint32_t claimed, CallFn fn, void* arg);
/// Queues to `target` a leftover request: one in a free synchronous slot of `slot_cpu` (as a
/// stale pointer to a finished request would be). Returns once the target has looked at it
/// (its calls_rejected count moved) or after 10 s; false if it never did.
bool forge_stale_call(uint32_t target, uint32_t slot_cpu, CallFn fn, void* arg);
/// Sets `source`'s bit in `target`'s multicast mask, with fn(arg) in `source`'s multicast, as
/// if `source` had sent one (it must not be sending: a CPU that is not up), and waits.
CallStatus forge_multicast(uint32_t target, uint32_t source, CallFn fn, void* arg);
} // namespace call_testing

/// Reads the rate-limit options (ipi.rate_limit, ipi.budget_pct, ipi.source_pct).
void call_limits_init();
/// Once every CPU is known (the scheduler starts): gives each CPU one limiter account per
/// sender. Each CPU applies the limit once its timers run (smp/call_limit.h); until then every
/// call is admitted.
void call_limits_start();
struct CallLimitStats {
    bool enabled;
    uint64_t window_ns, budget_ns, per_source_ns;
};
CallLimitStats call_limit_stats();

} // namespace cohort
