#include "smp/call.h"

#include <atomic>

#include "arch/x86/cpu.h"
#include "boot/params.h"
#include "debug/log.h"
#include "mm/heap.h"
#include "smp/cpu.h"
#include "smp/ipi.h"
#include "sched/sched.h"
#include "smp/percpu.h"
#include "smp/call_limit.h"
#include "sync/cpu_relax.h"
#include "time/clock.h"
#include "time/timer.h"

namespace cohort {

namespace {

constexpr uint32_t kCallMagic = 0xca11'5afe;

struct CallRequest {
    CallRequest* next;
    CallFn fn;
    void* arg;
    std::atomic<uint32_t>* pending; // decremented once the call ran (synchronous callers)
    uint32_t magic;
    uint32_t source_cpu;
    bool heap_owned; // freed by the target after running (asynchronous)
    bool deferred;   // run in thread context (run_on), not in the IPI handler
    bool held;       // was held back by the rate limit at least once (counted once)
};

/// Per-CPU state: the lock-free request queue (a stack of pushes, reversed on draining so calls
/// run in the order they were made); the backlog of requests the rate limit held back and the
/// deferred list, which only the owning CPU touches (with interrupts off).
struct CallQueue {
    std::atomic<CallRequest*> head;
    CallRequest* backlog_head;
    CallRequest* backlog_tail;
    CallRequest* deferred_head;
    CallRequest* deferred_tail;
    CallLimiter limiter; // consulted only once this CPU has timers to retry with (limiter_on)
    bool limiter_on;
    bool retry_armed;
    Timer retry; // looks at the backlog again when the limiter's window ends
};
COHORT_PERCPU(CallQueue, g_call_queue);

CallLimiter::Params g_limit_params;
bool g_limit_configured = false;

/// Returns true when the queue was empty: then the caller must send the IPI.
bool push(CpuData* target, CallRequest* req) {
    CallQueue& q = per_cpu_on(target, g_call_queue);
    CallRequest* old = q.head.load(std::memory_order_relaxed);
    do {
        req->next = old;
    } while (!q.head.compare_exchange_weak(old, req, std::memory_order_release,
                                           std::memory_order_relaxed));
    return old == nullptr;
}

bool valid(const CallRequest* r) {
    // A request is trusted only if it is well-formed and comes from a CPU that is online.
    if (r->magic != kCallMagic || r->fn == nullptr) return false;
    const CpuData* src = cpu_by_id(r->source_cpu);
    return src != nullptr && src->online.load(std::memory_order_acquire);
}

void complete(CallRequest* r) {
    std::atomic<uint32_t>* pending = r->pending;
    const bool heap = r->heap_owned;
    if (heap) kfree(r);
    // After this the (stack-allocated) request may be gone: nothing touches it afterwards.
    if (pending != nullptr) pending->fetch_sub(1, std::memory_order_release);
}

void execute(CallRequest* r) {
    this_cpu()->counters.calls_run.fetch_add(1, std::memory_order_relaxed);
    r->fn(r->arg);
    complete(r);
}

void append(CallRequest*& head, CallRequest*& tail, CallRequest* r) {
    r->next = nullptr;
    if (tail != nullptr) tail->next = r;
    else head = r;
    tail = r;
}

void retry_backlog(Timer&, void*) {
    per_cpu(g_call_queue).retry_armed = false;
    run_pending_calls();
}

void arm_retry(CallQueue& q);

// Looks at held-back requests again when the limiter's window ends. Interrupts off.
void arm_retry(CallQueue& q) {
    if (!q.limiter_on || q.retry_armed) return;
    q.retry_armed = true;
    timer_arm(q.retry, q.limiter.next_window(monotonic_ns()), retry_backlog, nullptr);
}

// Charges a pass's own time (queue handling, not the calls) to the limiter when it ends, if
// it handled any request. Polls that find nothing (a synchronous caller spins on them while
// it waits) are this CPU's own business: charging them would let a waiting CPU use up its
// budget by waiting, and never admit the request it waits for.
struct PassCost {
    CallQueue& q;
    uint64_t start = monotonic_ns();
    uint64_t in_calls = 0; // already charged to their senders
    bool handled = false;
    ~PassCost() {
        if (!q.limiter_on || !handled) return;
        const uint64_t total = monotonic_ns() - start;
        q.limiter.charge_overhead(total > in_calls ? total - in_calls : 0);
    }
};

bool enqueue(CpuData* target, CallRequest* req) {
    this_cpu()->counters.calls_sent.fetch_add(1, std::memory_order_relaxed);
    if (push(target, req)) return ipi_send(target, IpiKind::Call);
    return true;
}

void wait_for(std::atomic<uint32_t>& pending) {
    while (pending.load(std::memory_order_acquire) != 0) {
        run_pending_calls(); // someone may be waiting for us at the same time
        cpu_relax();
    }
}

bool online(uint32_t cpu) {
    const CpuData* c = cpu_by_id(cpu);
    return c != nullptr && c->online.load(std::memory_order_acquire);
}

// Queues a heap-owned request nobody waits for; the target frees it after running it.
CallStatus post_async(uint32_t cpu, CallFn fn, void* arg, uint32_t source, bool deferred) {
    auto* req = static_cast<CallRequest*>(kmalloc(sizeof(CallRequest)));
    if (req == nullptr) return CallStatus::NoMemory;
    *req = CallRequest{nullptr, fn, arg, nullptr, kCallMagic, source, true, deferred, false};
    if (!enqueue(cpu_by_id(cpu), req)) {
        kfree(req);
        return CallStatus::Offline;
    }
    return CallStatus::Ok;
}

void refuse_irqs_off(const char* what) {
    log_error("smp: %s from cpu%u with interrupts disabled refused: the target might be waiting "
              "for this CPU, which could then never answer",
              what, this_cpu()->cpu_id);
}

} // namespace

namespace {
// What one call interrupt with nothing to do costs this CPU: the price of each retry when
// requests are held back. Measured with IPIs to ourselves; interrupts must be enabled.
uint64_t measure_empty_call_interrupt_ns() {
    CpuData* me = this_cpu();
    auto& received = me->counters.ipis_received[static_cast<int>(IpiKind::Call)];
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 8; ++i) {
        const uint64_t before = received.load();
        const uint64_t t0 = monotonic_ns();
        if (!ipi_send(me, IpiKind::Call)) return 0;
        while (received.load() == before && monotonic_ns() - t0 < 100'000'000) cpu_relax();
        const uint64_t ns = monotonic_ns() - t0;
        best = ns < best ? ns : best;
    }
    return best;
}
} // namespace

void call_limits_init() {
    CallLimiter::Params p;
    p.enabled = param_bool("ipi.rate_limit", true);
    // Held-back requests are retried once per window, by a timer interrupt: the window must be
    // long enough that this costs next to nothing (1 ms on hardware, where an interrupt takes
    // a microsecond or two; far longer on an emulator such as Bochs at 4 M instructions per
    // second, where one costs about a millisecond).
    const uint64_t irq_ns = measure_empty_call_interrupt_ns();
    uint64_t window = irq_ns * 200;
    window = window < 1'000'000 ? 1'000'000 : window > 200'000'000 ? 200'000'000 : window;
    window = param_u64("ipi.window_us", window / 1000) * 1000;
    if (window == 0) window = 1'000'000;
    p.window_ns = window;
    const uint64_t pct = param_u64("ipi.budget_pct", 50);
    p.budget_ns = p.window_ns / 2;
    if (pct >= 1 && pct <= 100) p.budget_ns = p.window_ns * pct / 100;
    else log_warn("smp: ipi.budget_pct=%lu is not 1..100; keeping 50%%", pct);
    const uint64_t src = param_u64("ipi.source_pct", 50);
    p.per_source_ns = p.budget_ns / 2;
    if (src >= 1 && src <= 100) p.per_source_ns = p.budget_ns * src / 100;
    else log_warn("smp: ipi.source_pct=%lu is not 1..100; keeping 50%%", src);
    g_limit_params = p;
    g_limit_configured = true;
    if (!p.enabled) log_warn("smp: remote-call rate limit off (ipi.rate_limit=0)");
    else log_info("smp: remote calls may use %lu%% of every %lu us per CPU, %lu%% per sender "
                  "(an empty call interrupt costs %lu us)", p.budget_ns * 100 / p.window_ns,
                  p.window_ns / 1000, p.per_source_ns * 100 / p.window_ns, irq_ns / 1000);
}

CallLimitStats call_limit_stats() {
    return {g_limit_params.enabled, g_limit_params.window_ns, g_limit_params.budget_ns,
            g_limit_params.per_source_ns};
}

const char* call_status_name(CallStatus s) {
    switch (s) {
    case CallStatus::Ok: return "ok";
    case CallStatus::RefusedIrqsOff: return "refused (interrupts disabled)";
    case CallStatus::Offline: return "target offline";
    case CallStatus::NoMemory: return "out of memory";
    }
    return "?";
}

void run_pending_calls() {
    x86::InterruptGuard irq; // the backlog, the deferred list and the limiter are this CPU's
    CpuData* me = this_cpu();
    CallQueue& q = per_cpu(g_call_queue);
    if (!q.limiter_on && g_limit_configured && timer_ready_here()) {
        q.limiter.set_params(g_limit_params); // until now every request was admitted
        q.limiter_on = true;
    }
    PassCost cost{q};
    uint64_t now = cost.start;
    if (q.limiter_on && (q.retry_armed || q.limiter.exhausted(now))) {
        // Requests are being held back until the window ends. Leave new ones in the lock-free
        // queue meanwhile: while it is not empty, senders send no IPIs, so a storm costs this
        // CPU about one interrupt per window, not one per request. (Its requests wait for the
        // window's end, at most window_ns; then every sender gets its share again.)
        arm_retry(q);
        return;
    }
    CallRequest* list = q.head.exchange(nullptr, std::memory_order_acquire);
    cost.handled = list != nullptr;
    // Reverse: pushes made a LIFO stack, calls must run in the order they were made.
    CallRequest* ordered = nullptr;
    while (list != nullptr) {
        CallRequest* next = list->next;
        list->next = ordered;
        ordered = list;
        list = next;
    }
    while (ordered != nullptr) {
        CallRequest* r = ordered;
        ordered = r->next;
        if (!valid(r)) {
            me->counters.calls_rejected.fetch_add(1, std::memory_order_relaxed);
            log_error("smp: cpu%u rejected a malformed call request %p (magic %#x, source %u)",
                      me->cpu_id, static_cast<void*>(r), r->magic, r->source_cpu);
            continue;
        }
        append(q.backlog_head, q.backlog_tail, r);
    }
    // Run what the limiter admits, in order; the rest keeps its place in the backlog.
    CallRequest** link = &q.backlog_head;
    CallRequest* prev = nullptr;
    while (CallRequest* r = *link) {
        if (q.limiter_on && !q.limiter.admit(r->source_cpu, now)) {
            if (!r->held) {
                r->held = true;
                me->counters.calls_throttled.fetch_add(1, std::memory_order_relaxed);
            }
            prev = r;
            link = &r->next;
            continue;
        }
        *link = r->next;
        if (q.backlog_tail == r) q.backlog_tail = prev;
        if (r->deferred) {
            append(q.deferred_head, q.deferred_tail, r);
            sched_kick_worker();
            continue;
        }
        const uint32_t source = r->source_cpu;
        execute(r); // may free r
        const uint64_t after = monotonic_ns();
        if (q.limiter_on) q.limiter.charge(source, after - now);
        cost.in_calls += after - now;
        cost.handled = true;
        now = after;
    }
    if (q.backlog_head != nullptr) arm_retry(q);
}

bool run_deferred_work() {
    bool ran = false;
    for (;;) {
        CallRequest* r;
        {
            x86::InterruptGuard irq;
            CallQueue& q = per_cpu(g_call_queue);
            r = q.deferred_head;
            if (r == nullptr) return ran;
            q.deferred_head = r->next;
            if (q.deferred_head == nullptr) q.deferred_tail = nullptr;
        }
        // Thread context, interrupts enabled. Not charged to the limiter: the worker task is an
        // ordinary (if heavily weighted) task, so the scheduler shares the CPU between it and
        // the CPU's own work, and long run_on work (a test running for seconds on every CPU)
        // must not leave its sender in debt for the next second.
        execute(r);
        ran = true;
    }
}

bool has_deferred_work() { return per_cpu(g_call_queue).deferred_head != nullptr; }

CallStatus call_on(uint32_t cpu, CallFn fn, void* arg, bool wait) {
    std::atomic<uint32_t> pending{1};
    CallRequest req{nullptr, fn, arg, &pending, kCallMagic, 0, false, false, false};
    {
        // "Is the target this CPU?" must stay true until the request is queued: no migration
        // in between (the wait below may move; it only polls).
        NoPreempt stay;
        CpuData* me = this_cpu();
        if (cpu == me->cpu_id) {
            x86::InterruptGuard irq; // same conditions as on a remote CPU
            fn(arg);
            return CallStatus::Ok;
        }
        if (!online(cpu)) return CallStatus::Offline;
        if (!wait) return post_async(cpu, fn, arg, me->cpu_id, /*deferred=*/false);
        if (!x86::interrupts_enabled()) {
            refuse_irqs_off("a synchronous call");
            return CallStatus::RefusedIrqsOff;
        }
        req.source_cpu = me->cpu_id;
        if (!enqueue(cpu_by_id(cpu), &req)) return CallStatus::Offline;
    }
    wait_for(pending);
    return CallStatus::Ok;
}

namespace {
/// call_on_many and run_on_many: queue to every target first, run our own share, then wait.
CallStatus post_many(const CpuMask& cpus, CallFn fn, void* arg, bool wait, bool deferred);
} // namespace

CallStatus call_on_many(const CpuMask& cpus, CallFn fn, void* arg, bool wait) {
    return post_many(cpus, fn, arg, wait, /*deferred=*/false);
}

CallStatus run_on_many(const CpuMask& cpus, CallFn fn, void* arg) {
    return post_many(cpus, fn, arg, /*wait=*/true, /*deferred=*/true);
}

namespace {
CallStatus post_many(const CpuMask& cpus, CallFn fn, void* arg, bool wait, bool deferred) {
    if (wait && !x86::interrupts_enabled()) {
        refuse_irqs_off("a synchronous call");
        return CallStatus::RefusedIrqsOff;
    }
    const size_t n = cpus.count();
    CallRequest* reqs = nullptr;
    std::atomic<uint32_t> pending{0};
    if (wait && n > 0) {
        reqs = static_cast<CallRequest*>(kmalloc(n * sizeof(CallRequest)));
        if (reqs == nullptr) return CallStatus::NoMemory;
    }
    uint32_t self_cpu = kMaxCpus;
    size_t used = 0;
    CallStatus status = CallStatus::Ok;
    {
        // The CPU that leaves itself out of the loop must be the one that runs the own share:
        // a task moved to another CPU in between would flush (say) the wrong TLB and leave its
        // old CPU out altogether. So no migration until the own share of an interrupt-context
        // call has run; thread-context work for ourselves runs pinned to that CPU instead (it
        // may block, which NoPreempt forbids).
        NoPreempt stay;
        const uint32_t me = this_cpu()->cpu_id;
        // Send everything first, then run our own share, then wait: the targets work in parallel.
        for (uint32_t c = cpus.first(); c != CpuMask::kNone; c = cpus.next(c + 1)) {
            if (c == me) {
                self_cpu = me;
                continue;
            }
            if (!online(c)) {
                status = CallStatus::Offline;
                continue;
            }
            if (wait) {
                CallRequest* r = &reqs[used++];
                *r = CallRequest{nullptr, fn, arg, &pending, kCallMagic, me, false, deferred, false};
                pending.fetch_add(1, std::memory_order_relaxed);
                if (!enqueue(cpu_by_id(c), r)) pending.fetch_sub(1, std::memory_order_relaxed);
            } else if (call_on(c, fn, arg, false) != CallStatus::Ok) {
                status = CallStatus::NoMemory;
            }
        }
        if (self_cpu != kMaxCpus && !deferred) {
            x86::InterruptGuard irq;
            fn(arg);
        }
    }
    if (self_cpu != kMaxCpus && deferred) run_pinned(self_cpu, fn, arg);
    if (wait) {
        wait_for(pending);
        kfree(reqs);
    }
    return status;
}

} // namespace

CallStatus call_on_all(CallFn fn, void* arg, bool wait, bool include_self) {
    CpuMask mask;
    for (uint32_t i = 0; i < cpu_count(); ++i)
        if (online(i) && (include_self || i != this_cpu()->cpu_id)) mask.set(i);
    return call_on_many(mask, fn, arg, wait);
}

CallStatus run_on(uint32_t cpu, CallFn fn, void* arg) {
    if (!online(cpu)) return CallStatus::Offline;
    bool self;
    {
        NoPreempt stay;
        self = cpu == this_cpu()->cpu_id;
    }
    // Work for this CPU runs in the calling task, pinned there for the call (it might have
    // moved since the check: run_pinned brings it back).
    if (self) {
        run_pinned(cpu, fn, arg);
        return CallStatus::Ok;
    }
    if (!x86::interrupts_enabled()) {
        refuse_irqs_off("run_on");
        return CallStatus::RefusedIrqsOff;
    }
    std::atomic<uint32_t> pending{1};
    CallRequest req{nullptr, fn, arg, &pending, kCallMagic, this_cpu()->cpu_id, false, true, false};
    if (!enqueue(cpu_by_id(cpu), &req)) return CallStatus::Offline;
    wait_for(pending);
    return CallStatus::Ok;
}

CallStatus run_on_async(uint32_t cpu, CallFn fn, void* arg) {
    if (!online(cpu)) return CallStatus::Offline;
    {
        NoPreempt stay;
        const uint32_t me = this_cpu()->cpu_id;
        if (cpu != me) return post_async(cpu, fn, arg, me, /*deferred=*/true);
    }
    run_pinned(cpu, fn, arg); // for this CPU: now, in the calling task
    return CallStatus::Ok;
}

} // namespace cohort
