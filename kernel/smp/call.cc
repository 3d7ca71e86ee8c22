#include "smp/call.h"

#include <atomic>

#include "arch/x86/cpu.h"
#include "debug/log.h"
#include "mm/heap.h"
#include "smp/cpu.h"
#include "smp/ipi.h"
#include "sched/sched.h"
#include "smp/percpu.h"
#include "sync/cpu_relax.h"

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
};

/// Per-CPU state: the lock-free request queue (a stack of pushes, reversed on draining so calls
/// run in the order they were made) and the deferred list only the owning CPU touches.
struct CallQueue {
    std::atomic<CallRequest*> head;
    CallRequest* deferred_head;
    CallRequest* deferred_tail;
};
COHORT_PERCPU(CallQueue, g_call_queue);

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

void refuse_irqs_off(const char* what) {
    log_error("smp: %s from cpu%u with interrupts disabled refused: the target might be waiting "
              "for this CPU, which could then never answer",
              what, this_cpu()->cpu_id);
}

} // namespace

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
    x86::InterruptGuard irq; // the deferred list and nested handlers need interrupts off
    CallQueue& q = per_cpu(g_call_queue);
    CallRequest* list = q.head.exchange(nullptr, std::memory_order_acquire);
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
            this_cpu()->counters.calls_rejected.fetch_add(1, std::memory_order_relaxed);
            log_error("smp: cpu%u rejected a malformed call request %p (magic %#x, source %u)",
                      this_cpu()->cpu_id, static_cast<void*>(r), r->magic, r->source_cpu);
            continue;
        }
        if (r->deferred) {
            r->next = nullptr;
            if (q.deferred_tail != nullptr) q.deferred_tail->next = r;
            else q.deferred_head = r;
            q.deferred_tail = r;
            sched_kick_worker();
            continue;
        }
        execute(r);
    }
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
        execute(r); // interrupts enabled: this is thread context
        ran = true;
    }
}

bool has_deferred_work() { return per_cpu(g_call_queue).deferred_head != nullptr; }

CallStatus call_on(uint32_t cpu, CallFn fn, void* arg, bool wait) {
    CpuData* me = this_cpu();
    if (cpu == me->cpu_id) {
        x86::InterruptGuard irq; // same conditions as on a remote CPU
        fn(arg);
        return CallStatus::Ok;
    }
    if (!online(cpu)) return CallStatus::Offline;
    if (wait) {
        if (!x86::interrupts_enabled()) {
            refuse_irqs_off("a synchronous call");
            return CallStatus::RefusedIrqsOff;
        }
        std::atomic<uint32_t> pending{1};
        CallRequest req{nullptr, fn, arg, &pending, kCallMagic, me->cpu_id, false, false};
        if (!enqueue(cpu_by_id(cpu), &req)) return CallStatus::Offline;
        wait_for(pending);
        return CallStatus::Ok;
    }
    auto* req = static_cast<CallRequest*>(kmalloc(sizeof(CallRequest)));
    if (req == nullptr) return CallStatus::NoMemory;
    *req = CallRequest{nullptr, fn, arg, nullptr, kCallMagic, me->cpu_id, true, false};
    if (!enqueue(cpu_by_id(cpu), req)) {
        kfree(req);
        return CallStatus::Offline;
    }
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
    CpuData* me = this_cpu();
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
    bool self = false;
    size_t used = 0;
    CallStatus status = CallStatus::Ok;
    // Send everything first, then run our own share, then wait: the targets work in parallel.
    for (uint32_t c = cpus.first(); c != CpuMask::kNone; c = cpus.next(c + 1)) {
        if (c == me->cpu_id) {
            self = true;
            continue;
        }
        if (!online(c)) {
            status = CallStatus::Offline;
            continue;
        }
        if (wait) {
            CallRequest* r = &reqs[used++];
            *r = CallRequest{nullptr, fn, arg, &pending, kCallMagic, me->cpu_id, false, deferred};
            pending.fetch_add(1, std::memory_order_relaxed);
            if (!enqueue(cpu_by_id(c), r)) pending.fetch_sub(1, std::memory_order_relaxed);
        } else if (call_on(c, fn, arg, false) != CallStatus::Ok) {
            status = CallStatus::NoMemory;
        }
    }
    if (self) {
        if (deferred) {
            fn(arg); // thread context, like the others
        } else {
            x86::InterruptGuard irq;
            fn(arg);
        }
    }
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
    CpuData* me = this_cpu();
    if (cpu == me->cpu_id) {
        fn(arg);
        return CallStatus::Ok;
    }
    if (!online(cpu)) return CallStatus::Offline;
    if (!x86::interrupts_enabled()) {
        refuse_irqs_off("run_on");
        return CallStatus::RefusedIrqsOff;
    }
    std::atomic<uint32_t> pending{1};
    CallRequest req{nullptr, fn, arg, &pending, kCallMagic, me->cpu_id, false, true};
    if (!enqueue(cpu_by_id(cpu), &req)) return CallStatus::Offline;
    wait_for(pending);
    return CallStatus::Ok;
}

CallStatus run_on_async(uint32_t cpu, CallFn fn, void* arg) {
    if (!online(cpu)) return CallStatus::Offline;
    auto* req = static_cast<CallRequest*>(kmalloc(sizeof(CallRequest)));
    if (req == nullptr) return CallStatus::NoMemory;
    *req = CallRequest{nullptr, fn, arg, nullptr, kCallMagic, this_cpu()->cpu_id, true, true};
    if (cpu == this_cpu()->cpu_id) {
        execute(req);
        return CallStatus::Ok;
    }
    if (!enqueue(cpu_by_id(cpu), req)) {
        kfree(req);
        return CallStatus::Offline;
    }
    return CallStatus::Ok;
}

} // namespace cohort
