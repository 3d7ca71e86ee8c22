// Remote function calls: run a function on other CPUs, synchronously or not.
//
// Each CPU has a lock-free multi-producer queue of requests. A producer sends the call IPI
// only when it turns the queue from empty to non-empty, so a burst of requests costs one
// interrupt; the target drains everything queued so far in one go. A synchronous caller waits
// on a completion count and keeps draining its own queue meanwhile, so two CPUs calling each
// other cannot deadlock. Requests live on the caller's stack (synchronous) or the heap
// (asynchronous): there is no fixed-size ring to overflow.
#pragma once

#include <cstdint>

#include "smp/cpumask.h"

namespace cohort {

using CallFn = void (*)(void* arg);

enum class CallStatus {
    Ok,
    RefusedIrqsOff, // synchronous call with interrupts disabled: it could deadlock
    Offline,        // the target is not online
    NoMemory,       // no memory for an asynchronous request
};
const char* call_status_name(CallStatus s);

/// Runs fn(arg) on `cpu` in interrupt context (interrupts off). With `wait`, returns once it
/// has run. Calling the running CPU runs fn inline.
CallStatus call_on(uint32_t cpu, CallFn fn, void* arg, bool wait);
/// As call_on for every CPU in `cpus` (the running CPU, if included, runs inline last).
CallStatus call_on_many(const CpuMask& cpus, CallFn fn, void* arg, bool wait);
/// Every online CPU except (unless `include_self`) the running one.
CallStatus call_on_all(CallFn fn, void* arg, bool wait, bool include_self);

/// Runs fn(arg) on `cpu` in thread context (its idle loop, interrupts enabled) and waits for it
/// to finish: for work that may take time, spin on locks or make synchronous calls itself.
CallStatus run_on(uint32_t cpu, CallFn fn, void* arg);

/// run_on for every CPU in `cpus` at once (the running CPU, if included, runs its share last),
/// waiting for all of them; nothing stays allocated once it returns.
CallStatus run_on_many(const CpuMask& cpus, CallFn fn, void* arg);

/// As run_on, without waiting: the work is queued and this returns at once.
CallStatus run_on_async(uint32_t cpu, CallFn fn, void* arg);

/// Drains the running CPU's request queue (the IPI handler and waiting callers use it).
void run_pending_calls();
/// Runs thread-context work queued by run_on (each CPU's worker task calls it with interrupts
/// enabled). Returns true if it ran anything.
bool run_deferred_work();
/// Work queued by run_on is waiting on this CPU (call with interrupts disabled).
bool has_deferred_work();

/// Reads the rate-limit options (ipi.rate_limit, ipi.budget_pct, ipi.source_pct). Each
/// CPU applies them once its timers run (smp/call_limit.h); until then every call is admitted.
void call_limits_init();
struct CallLimitStats {
    bool enabled;
    uint64_t window_ns, budget_ns, per_source_ns;
};
CallLimitStats call_limit_stats();

} // namespace cohort
