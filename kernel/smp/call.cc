#include "smp/call.h"

#include <atomic>
#include <cstddef>
#include <cstring>

#include "arch/arch.h"
#include "boot/params.h"
#include "debug/log.h"
#include "debug/panic.h"
#include "mm/heap.h"
#include "mm/layout.h"
#include "mm/phys.h"
#include "mm/pmm.h"
#include "mm/vmm.h"
#include "smp/cpu.h"
#include "smp/ipi.h"
#include "sched/sched.h"
#include "smp/percpu.h"
#include "smp/call_limit.h"
#include "smp/call_slots.h"
#include "sync/cpu_relax.h"
#include "time/clock.h"
#include "time/timer.h"

namespace cohort {

namespace {

constexpr uint32_t kCallMagic = 0xca11'5afe;

/// One unicast request. It always lives in one of its sender's slots (CallSlots), never on a
/// stack or in the heap: the slot it sits in, not anything written in it, says who sent it.
struct alignas(64) CallRequest {
    CallRequest* next;
    CallFn fn;
    void* arg;
    std::atomic<uint32_t>* pending; // synchronous: the waiter's count (kRejected when refused)
    uint32_t magic;
    uint32_t claimed_source; // the sender's own word: checked against its slot, never trusted
    bool deferred;           // run in thread context (run_on), not in the IPI handler
    bool held;               // was held back by the rate limit at least once (counted once)
};
static_assert(sizeof(CallRequest) == 64, "one slot, one cache line");

/// Set in a waiter's count when its request was refused (a target's validation failed).
constexpr uint32_t kRejected = 0x8000'0000;

constexpr uint32_t kSyncCallSlots = 32;
static_assert(kAsyncCallCredit <= 64 && kSyncCallSlots <= 64, "one word of slot bits");

/// A CPU's request slots, at a fixed place in the call-slot area (mm/layout.h): a target finds
/// the sender of a request by arithmetic on its address (slot_of), so a request cannot claim
/// to come from a CPU whose slots it does not sit in. Asynchronous slots are the sender's
/// credit; synchronous ones are held by a waiting task (which may have moved since). A slot is
/// taken by its CPU (preemption off) and given back by whichever CPU completed the request.
struct CallSlots {
    alignas(64) std::atomic<uint64_t> async_used; // bit i: async[i] is queued or running
    std::atomic<uint64_t> sync_used;              // bit i: sync[i] is queued or running
    alignas(64) CallRequest async[kAsyncCallCredit];
    CallRequest sync[kSyncCallSlots]; // right after async: slot index i covers both arrays
};
static_assert(sizeof(CallSlots) <= layout::kCallSlotStride, "the stride holds one CPU's slots");
static_assert(offsetof(CallSlots, sync) == offsetof(CallSlots, async) + sizeof(CallSlots::async));

CallSlots& slots_of(uint32_t cpu) {
    return *reinterpret_cast<CallSlots*>(layout::kCallSlotAreaBase + cpu * layout::kCallSlotStride);
}

/// Where a request sits: the CPU whose slot it is and the slot's index (async first).
struct SlotRef {
    uint32_t cpu;
    uint32_t index;
    bool pooled() const { return index < kAsyncCallCredit; }
};

constexpr CallSlotLayout kSlotLayout{layout::kCallSlotAreaBase, layout::kCallSlotStride,
                                     offsetof(CallSlots, async), sizeof(CallRequest),
                                     kAsyncCallCredit + kSyncCallSlots};

/// The slot `r` sits in, from its address alone (nothing in it is read); false when it is not
/// exactly a slot of a known CPU.
bool slot_of(const CallRequest* r, SlotRef* out) {
    CallSlotRef at{};
    if (!call_slot_at(kSlotLayout, reinterpret_cast<uint64_t>(r), cpu_count(), &at)) return false;
    *out = {at.cpu, at.index};
    return true;
}

/// Takes a free bit of the first `n` in `used`; -1 when all are taken.
int take_bit(std::atomic<uint64_t>& used, uint32_t n) {
    const uint64_t all = n == 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1;
    uint64_t u = used.load(std::memory_order_acquire);
    for (;;) {
        const uint64_t free = ~u & all;
        if (free == 0) return -1;
        const int i = __builtin_ctzll(free);
        if (used.compare_exchange_weak(u, u | (uint64_t{1} << i), std::memory_order_acquire,
                                       std::memory_order_acquire))
            return i;
    }
}

void release_slot(SlotRef s) {
    CallSlots& cs = slots_of(s.cpu);
    if (s.pooled()) cs.async_used.fetch_and(~(uint64_t{1} << s.index), std::memory_order_release);
    else cs.sync_used.fetch_and(~(uint64_t{1} << (s.index - kAsyncCallCredit)),
                                std::memory_order_release);
}

/// The one synchronous multicast (call_on_many, run_on_many) a CPU has outstanding per kind.
/// Targets find it through the sender's bit in their `incoming` mask, so one request serves
/// every target and nothing is allocated however many CPUs it names.
struct Multicast {
    CallFn fn;
    void* arg;
    std::atomic<uint32_t> pending; // targets that have not finished it
    std::atomic<Task*> owner;      // kDeferred only: the task using it (tasks take turns)
};
enum McKind : uint32_t { kIrq = 0, kDeferred = 1, kMcKinds = 2 };

/// Per-CPU state. Receiving side: the lock-free request queue (a stack of pushes, reversed on
/// draining so calls run in the order they were made) and the multicast masks, written by
/// senders; the backlog of requests the rate limit held back and the deferred list, which only
/// the owning CPU touches (with interrupts off). Sending side: the async pool and multicasts.
struct CallQueue {
    std::atomic<CallRequest*> head; // kClosed once the CPU went offline (call_close_here)
    AtomicCpuMask incoming[kMcKinds]; // senders with a multicast for this CPU
    std::atomic<bool> mc_closed;      // multicasts are refused (the CPU is going offline)
    CallRequest* backlog_head;
    CallRequest* backlog_tail;
    CallRequest* deferred_head;
    CallRequest* deferred_tail;
    CpuMask mc_held; // senders whose multicast the limiter held back (counted once each)
    CallLimiter limiter; // consulted only once this CPU has timers to retry with (limiter_on)
    bool limiter_on;
    bool retry_armed;
    bool closing; // this CPU is going offline: everything queued runs, the queue is closed
    Timer retry; // looks at the backlog again when the limiter's window ends
    alignas(64) Multicast outgoing[kMcKinds];
};
COHORT_PERCPU(CallQueue, g_call_queue);

CallLimiter::Params g_limit_params;
CallLimiter::Account* g_limit_accounts = nullptr; // cpu_count() per CPU, once the scheduler starts
std::atomic<bool> g_limit_configured{false};

CallQueue& queue_of(uint32_t cpu) { return per_cpu_on(cpu_by_id(cpu), g_call_queue); }

/// The head of a queue whose CPU went offline: pushes fail, so a request is either queued
/// before the CPU's last drain (and runs there) or refused (CallStatus::Offline).
CallRequest* const kClosed = reinterpret_cast<CallRequest*>(uintptr_t{1});

enum class Pushed { First, More, Closed };

/// First: the queue was empty, the caller must send the IPI.
Pushed push(CpuData* target, CallRequest* req) {
    CallQueue& q = per_cpu_on(target, g_call_queue);
    CallRequest* old = q.head.load(std::memory_order_relaxed);
    do {
        if (old == kClosed) return Pushed::Closed;
        req->next = old;
    } while (!q.head.compare_exchange_weak(old, req, std::memory_order_release,
                                           std::memory_order_relaxed));
    return old == nullptr ? Pushed::First : Pushed::More;
}

// Whether requests from `cpu` can be genuine: it is up (coming up, online or going down). A CPU
// waits for its own requests to complete before it parks (call_wait_sends_done), so one from
// a parked, absent or never-started CPU was not sent by it.
bool may_send(uint32_t cpu) {
    const BootStage st = cpu_by_id(cpu)->boot_stage.load(std::memory_order_acquire);
    return st >= BootStage::LongMode && st <= BootStage::Online;
}

bool g_source_check = true; // security.ipi_source_check (call_limits_init; tests turn it off)
bool source_check() { return g_source_check; }

/// Gives `r`'s slot back and tells its waiter, if any, that it ran (or was refused).
void complete(CallRequest* r, SlotRef s, bool rejected = false) {
    std::atomic<uint32_t>* pending = r->pending;
    r->magic = 0; // a stale pointer to the free slot is no request any more
    release_slot(s);
    // After this the slot may be reused: nothing touches the request.
    if (pending == nullptr) return;
    if (rejected) pending->fetch_or(kRejected, std::memory_order_relaxed);
    pending->fetch_sub(1, std::memory_order_release);
}

void execute(CallRequest* r, SlotRef s) {
    this_cpu()->counters.calls_run.fetch_add(1, std::memory_order_relaxed);
    if (s.pooled()) {
        // Nobody waits for it: its slot goes back to the sender before it runs, so the credit
        // bounds what is queued, not what runs (a run_on_async job may run for seconds).
        const CallFn fn = r->fn;
        void* const arg = r->arg;
        complete(r, s);
        fn(arg);
        return;
    }
    r->fn(r->arg);
    complete(r, s);
}

/// The slot of a request that was accepted already (its address was checked then).
SlotRef slot_known(const CallRequest* r) {
    SlotRef s;
    if (!slot_of(r, &s)) panic("smp: call request %p left its slot", static_cast<const void*>(r));
    return s;
}

/// A target's checks on a request it did not make, in slot `at`. A refused request is counted
/// and logged; if it is a request at all (magic), it is completed unrun with kRejected, so a
/// waiting sender learns it was refused instead of waiting forever.
bool slot_taken(SlotRef s) {
    const CallSlots& cs = slots_of(s.cpu);
    return s.pooled()
               ? (cs.async_used.load(std::memory_order_acquire) >> s.index) & 1
               : (cs.sync_used.load(std::memory_order_acquire) >> (s.index - kAsyncCallCredit)) & 1;
}

bool accept(CallRequest* r, SlotRef at) {
    CpuData* me = this_cpu();
    if (!slot_taken(at)) {
        // A free slot: whatever it holds is a finished request's leftovers, its waiter gone.
        me->counters.calls_rejected.fetch_add(1, std::memory_order_relaxed);
        log_error("smp: cpu%u rejected the call request in cpu%u's slot %u: the slot is free",
                  me->cpu_id, at.cpu, at.index);
        return false;
    }
    const char* why = nullptr;
    if (r->magic != kCallMagic) why = "no request magic";
    else if (r->fn == nullptr) why = "no function";
    else if (source_check() && r->claimed_source != at.cpu) why = "it claims another sender";
    else if (source_check() && !may_send(at.cpu)) why = "its CPU is not up";
    if (why == nullptr) return true;
    me->counters.calls_rejected.fetch_add(1, std::memory_order_relaxed);
    log_error("smp: cpu%u rejected the call request in cpu%u's slot %u (%s, stage %s): %s, "
              "claimed sender %u", me->cpu_id, at.cpu, at.index, at.pooled() ? "async" : "sync",
              boot_stage_name(cpu_by_id(at.cpu)->boot_stage.load(std::memory_order_relaxed)),
              why, r->claimed_source);
    if (r->magic == kCallMagic) complete(r, at, /*rejected=*/true);
    else release_slot(at); // nothing in it is trusted, not even the waiter's count
    return false;
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

// Queues `req` to `target`. Once pushed, the request belongs to the target's queue whatever
// happens to the IPI: a sender must never reuse or free it before it completes. (An IPI that
// cannot be sent leaves it to the waiter's re-send and the idle check: run_stranded_calls.)
// Returns false if the target's queue is closed (it went offline): the request was not queued.
bool enqueue(CpuData* target, CallRequest* req) {
    const Pushed p = push(target, req);
    if (p == Pushed::Closed) return false;
    this_cpu()->counters.calls_sent.fetch_add(1, std::memory_order_relaxed);
    if (p == Pushed::First) ipi_send(target, IpiKind::Call);
    return true;
}

/// Waits for `pending` to reach zero, answering our own calls meanwhile (someone may be
/// waiting for us at the same time). A target that has not answered after a while gets the
/// call IPI again (`resend`): harmless if the first one is merely slow, and the way out if it
/// was lost (a failed send, or an IPI that overtook the request on real hardware).
template <typename Resend>
void wait_for(std::atomic<uint32_t>& pending, Resend resend) {
    // 100 ms: far beyond any answer on hardware, and late enough that a vCPU the host merely
    // has not run yet is not sent IPI after IPI (10 ms re-sent 284,000 at 255 vCPUs).
    constexpr uint64_t kFirstResendNs = 100'000'000, kMaxResendNs = 1'000'000'000;
    uint64_t interval = kFirstResendNs;
    uint64_t next = monotonic_ns() + interval;
    // A worker waiting here (run_on inside run_on work) must also do the run_on work queued
    // for it: the CPU it waits for may be waiting for it the same way. Not while it keeps
    // preemption off (an interrupt-context multicast): that work may block.
    const bool worker = sched_in_worker() && lock_holds_on_this_cpu() == 0;
    for (uint32_t spins = 1; (pending.load(std::memory_order_acquire) & ~kRejected) != 0; ++spins) {
        run_pending_calls();
        if (worker) run_deferred_work();
        cpu_relax();
        if (spins % 256 != 0) continue;
        const uint64_t now = monotonic_ns();
        if (now < next) continue;
        resend();
        interval = interval * 2 > kMaxResendNs ? kMaxResendNs : interval * 2;
        next = now + interval;
    }
}

void resend_to(uint32_t cpu) {
    this_cpu()->counters.calls_resent.fetch_add(1, std::memory_order_relaxed);
    ipi_send(cpu_by_id(cpu), IpiKind::Call);
}

bool online(uint32_t cpu) {
    const CpuData* c = cpu_by_id(cpu);
    return c != nullptr && c->online.load(std::memory_order_acquire);
}

// Queues a pooled request nobody waits for; the target gives the slot back after running it.
// Preemption off (the slots are the running CPU's).
CallStatus post_async(uint32_t cpu, CallFn fn, void* arg, uint32_t source, bool deferred) {
    CallSlots& cs = slots_of(source);
    const int slot = take_bit(cs.async_used, kAsyncCallCredit);
    if (slot < 0) {
        this_cpu()->counters.calls_refused_busy.fetch_add(1, std::memory_order_relaxed);
        return CallStatus::Busy;
    }
    CallRequest* req = &cs.async[slot];
    *req = CallRequest{nullptr, fn, arg, nullptr, kCallMagic, source, deferred, false};
    if (!enqueue(cpu_by_id(cpu), req)) {
        release_slot({source, static_cast<uint32_t>(slot)});
        return CallStatus::Offline;
    }
    return CallStatus::Ok;
}

enum class SyncPost { Queued, Closed, NoSlot };

/// A synchronous unicast request: one of the running CPU's synchronous slots, filled in and
/// queued to `cpu`. Preemption off (the slots are the running CPU's). NoSlot: every slot is
/// held by a task of this CPU still waiting for its call (wait_for_sync_slot, then try again).
SyncPost try_post_sync(uint32_t cpu, CallFn fn, void* arg, std::atomic<uint32_t>* pending,
                       bool deferred) {
    const uint32_t me = this_cpu()->cpu_id;
    CallSlots& cs = slots_of(me);
    const int slot = take_bit(cs.sync_used, kSyncCallSlots);
    if (slot < 0) return SyncPost::NoSlot;
    CallRequest* req = &cs.sync[slot];
    *req = CallRequest{nullptr, fn, arg, pending, kCallMagic, me, deferred, false};
    if (enqueue(cpu_by_id(cpu), req)) return SyncPost::Queued;
    release_slot({me, kAsyncCallCredit + static_cast<uint32_t>(slot)});
    return SyncPost::Closed;
}

// Outside NoPreempt: one of the tasks holding this CPU's synchronous slots will be answered.
// A worker also runs the run_on work queued for it meanwhile, as wait_for does: a slot holder's
// target may be waiting for exactly that work.
void wait_for_sync_slot() {
    run_pending_calls();
    if (sched_in_worker() && lock_holds_on_this_cpu() == 0) run_deferred_work();
    if (lock_holds_on_this_cpu() == 0) yield();
    else cpu_relax();
}

void refuse_irqs_off(const char* what) {
    log_error("smp: %s from cpu%u with interrupts disabled refused: the target might be waiting "
              "for this CPU, which could then never answer",
              what, this_cpu()->cpu_id);
}

void reject_multicast(uint32_t src, McKind kind) {
    CpuData* me = this_cpu();
    me->counters.calls_rejected.fetch_add(1, std::memory_order_relaxed);
    if (src >= cpu_count()) {
        log_error("smp: cpu%u rejected a multicast from cpu%u: there is no such CPU", me->cpu_id,
                  src);
        return;
    }
    log_error("smp: cpu%u rejected a multicast from cpu%u: its CPU is not up (stage %s)",
              me->cpu_id, src,
              boot_stage_name(cpu_by_id(src)->boot_stage.load(std::memory_order_relaxed)));
    Multicast& m = queue_of(src).outgoing[kind];
    m.pending.fetch_or(kRejected, std::memory_order_relaxed);
    m.pending.fetch_sub(1, std::memory_order_release);
}

// Runs the multicasts of `kind` that senders left for this CPU (interrupts off for kIrq).
// With a limiter, a sender it holds back keeps its bit for a later pass.
bool run_multicasts(CallQueue& q, McKind kind, PassCost* cost, uint64_t* now) {
    bool held = false;
    const uint32_t words = (cpu_count() + 63) / 64;
    for (uint32_t w = 0; w < words; ++w) {
        for (uint64_t bits = q.incoming[kind].word(w); bits != 0; bits &= bits - 1) {
            const uint32_t src = w * 64 + static_cast<uint32_t>(__builtin_ctzll(bits));
            // The bit is the sender's slot: its multicast is the one in its own per-CPU data.
            // A CPU that is not up cannot have set it (a multicast is done before its sender
            // parks), and past the last CPU there is no sender at all.
            if (src >= cpu_count() || (source_check() && !may_send(src))) {
                if (q.incoming[kind].test_and_clear(src)) reject_multicast(src, kind);
                continue;
            }
            if (kind == kIrq && q.limiter_on && !q.limiter.admit(src, *now)) {
                if (!q.mc_held.test(src)) {
                    q.mc_held.set(src);
                    this_cpu()->counters.calls_throttled.fetch_add(1, std::memory_order_relaxed);
                }
                held = true;
                continue;
            }
            if (kind == kIrq) q.mc_held.clear(src);
            // Cleared before the call completes: the sender may post its next multicast (and
            // set the bit again) as soon as its pending count reaches zero. Whoever clears it
            // completes the call: a sender that found this CPU going offline takes its bit back
            // (post_many), and then it is not ours to run.
            if (!q.incoming[kind].test_and_clear(src)) continue;
            Multicast& m = queue_of(src).outgoing[kind];
            const CallFn fn = m.fn;
            void* const arg = m.arg;
            this_cpu()->counters.calls_run.fetch_add(1, std::memory_order_relaxed);
            fn(arg);
            m.pending.fetch_sub(1, std::memory_order_release);
            if (cost != nullptr) {
                const uint64_t after = monotonic_ns();
                if (q.limiter_on) q.limiter.charge(src, after - *now);
                cost->in_calls += after - *now;
                cost->handled = true;
                *now = after;
            }
        }
    }
    return held;
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
    g_source_check = param_bool("security.ipi_source_check", true);
    if (!g_source_check) log_warn("smp: remote-call source check off (security.ipi_source_check=0)");
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
    if (!p.enabled) log_warn("smp: remote-call rate limit off (ipi.rate_limit=0)");
    else log_info("smp: remote calls may use %lu%% of every %lu us per CPU, %lu%% per sender "
                  "(an empty call interrupt costs %lu us)", p.budget_ns * 100 / p.window_ns,
                  p.window_ns / 1000, p.per_source_ns * 100 / p.window_ns, irq_ns / 1000);
}

void call_limits_start() {
    // One account per sender on every CPU: no two senders share an allowance. Allocated once
    // here (cpu_count() squared, 8 bytes each: 0.5 MiB at 255 CPUs), never on the call path.
    const uint32_t n = cpu_count();
    g_limit_accounts = static_cast<CallLimiter::Account*>(
        kzalloc(size_t{n} * n * sizeof(CallLimiter::Account)));
    if (g_limit_accounts == nullptr) {
        log_error("smp: no memory for the remote-call limiter's %u x %u accounts; calls are not "
                  "rate-limited", n, n);
        return;
    }
    g_limit_configured.store(true, std::memory_order_release);
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
    case CallStatus::Busy: return "sender out of asynchronous-call credit";
    case CallStatus::Rejected: return "rejected by the target (a request it could not attribute)";
    }
    return "?";
}

void run_pending_calls() {
    arch::IrqOff irq; // the backlog, the deferred list and the limiter are this CPU's
    CpuData* me = this_cpu();
    CallQueue& q = per_cpu(g_call_queue);
    if (!q.limiter_on && !q.closing && g_limit_configured.load(std::memory_order_acquire) &&
        timer_ready_here()) {
        // Until now every request was admitted.
        q.limiter.set_params(g_limit_params, g_limit_accounts + size_t{me->cpu_id} * cpu_count(),
                             cpu_count());
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
    // Closing (call_close_here), the queue is taken for the last time and left closed.
    CallRequest* list = q.head.exchange(q.closing ? kClosed : nullptr, std::memory_order_acquire);
    if (list == kClosed) list = nullptr;
    cost.handled = list != nullptr;
    // Reverse: pushes made a LIFO stack, calls must run in the order they were made. Only
    // what sits in a CPU's call slots is followed: any other pointer is not even read.
    CallRequest* ordered = nullptr;
    // At most every slot of every CPU once: more means a slot was pushed twice (a cycle).
    for (uint64_t left = uint64_t{cpu_count()} * (kAsyncCallCredit + kSyncCallSlots) + 1;
         list != nullptr; --left) {
        SlotRef at;
        if (left == 0) {
            me->counters.calls_rejected.fetch_add(1, std::memory_order_relaxed);
            log_error("smp: cpu%u dropped the rest of its call queue: longer than every slot "
                      "there is (a request was queued twice)", me->cpu_id);
            break;
        }
        if (!slot_of(list, &at)) {
            me->counters.calls_rejected.fetch_add(1, std::memory_order_relaxed);
            log_error("smp: cpu%u dropped its call queue from %p on: not a call slot, so nothing "
                      "in or after it can be trusted", me->cpu_id, static_cast<void*>(list));
            break;
        }
        CallRequest* next = list->next;
        list->next = ordered;
        ordered = list;
        list = next;
    }
    while (ordered != nullptr) {
        CallRequest* r = ordered;
        ordered = r->next;
        if (accept(r, slot_known(r))) append(q.backlog_head, q.backlog_tail, r);
    }
    // Run what the limiter admits, in order; the rest keeps its place in the backlog.
    CallRequest** link = &q.backlog_head;
    CallRequest* prev = nullptr;
    while (CallRequest* r = *link) {
        const SlotRef at = slot_known(r);
        if (q.limiter_on && !q.limiter.admit(at.cpu, now)) {
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
        execute(r, at); // r may be reused from here on
        const uint64_t after = monotonic_ns();
        if (q.limiter_on) q.limiter.charge(at.cpu, after - now);
        cost.in_calls += after - now;
        cost.handled = true;
        now = after;
    }
    const bool mc_held = run_multicasts(q, kIrq, &cost, &now);
    if (q.incoming[kDeferred].any(cpu_count())) sched_kick_worker();
    if (q.backlog_head != nullptr || mc_held) arm_retry(q);
}

void run_stranded_calls() {
    CallQueue& q = per_cpu(g_call_queue);
    if (q.retry_armed) return; // held back on purpose: the retry timer comes
    const CallRequest* head = q.head.load(std::memory_order_acquire);
    const bool queued = (head != nullptr && head != kClosed) ||
                        q.incoming[kIrq].any(cpu_count()) || q.incoming[kDeferred].any(cpu_count());
    if (!queued || arch::irq_pending(arch::kVecCall)) return;
    // Work is queued for us and no call IPI is on its way: either its sender is between the
    // push and the IPI (harmless), or the IPI was lost or overtook the request. Counted, and
    // answered now rather than after the next unrelated interrupt.
    this_cpu()->counters.calls_stranded.fetch_add(1, std::memory_order_relaxed);
    run_pending_calls();
}

bool run_deferred_work() {
    bool ran = false;
    for (;;) {
        CallRequest* r;
        {
            arch::IrqOff irq;
            CallQueue& q = per_cpu(g_call_queue);
            r = q.deferred_head;
            if (r == nullptr) {
                if (!q.incoming[kDeferred].any(cpu_count())) return ran;
            } else {
                q.deferred_head = r->next;
                if (q.deferred_head == nullptr) q.deferred_tail = nullptr;
            }
        }
        // Thread context, interrupts enabled. Not charged to the limiter: the worker task is an
        // ordinary (if heavily weighted) task, so the scheduler shares the CPU between it and
        // the CPU's own work, and long run_on work (a test running for seconds on every CPU)
        // must not leave its sender in debt for the next second. The worker is pinned to this
        // CPU, so the queue stays ours while we run.
        if (r != nullptr) execute(r, slot_known(r));
        else run_multicasts(per_cpu(g_call_queue), kDeferred, nullptr, nullptr);
        ran = true;
    }
}

void call_close_here() {
    CallQueue& q = per_cpu(g_call_queue);
    {
        arch::IrqOff irq;
        q.closing = true;
        q.limiter_on = false; // what was held back runs now
        if (q.retry_armed) timer_cancel(q.retry);
        q.retry_armed = false;
        q.mc_closed.store(true, std::memory_order_seq_cst);
    }
    run_pending_calls(); // closes the queue; interrupt-context calls run, deferred ones wait
    run_deferred_work();
    run_pending_calls(); // multicasts whose senders did not see the mark yet
    run_deferred_work();
}

void call_reopen(uint32_t cpu) {
    CallQueue& q = queue_of(cpu);
    q.closing = false;
    q.backlog_head = q.backlog_tail = nullptr;
    q.deferred_head = q.deferred_tail = nullptr;
    q.mc_held = CpuMask{};
    q.mc_closed.store(false, std::memory_order_seq_cst);
    q.head.store(nullptr, std::memory_order_release);
}

bool has_deferred_work() {
    const CallQueue& q = per_cpu(g_call_queue);
    return q.deferred_head != nullptr || q.incoming[kDeferred].any(cpu_count());
}

CallStatus call_on(uint32_t cpu, CallFn fn, void* arg, bool wait) {
    std::atomic<uint32_t> pending{1};
    for (;;) {
        {
            // "Is the target this CPU?" must stay true until the request is queued: no
            // migration in between (the wait below may move; it only polls).
            NoPreempt stay;
            CpuData* me = this_cpu();
            if (cpu == me->cpu_id) {
                arch::IrqOff irq; // same conditions as on a remote CPU
                fn(arg);
                return CallStatus::Ok;
            }
            if (!online(cpu)) return CallStatus::Offline;
            if (!wait) return post_async(cpu, fn, arg, me->cpu_id, /*deferred=*/false);
            if (!arch::irqs_enabled()) {
                refuse_irqs_off("a synchronous call");
                return CallStatus::RefusedIrqsOff;
            }
            const SyncPost p = try_post_sync(cpu, fn, arg, &pending, /*deferred=*/false);
            if (p == SyncPost::Closed) return CallStatus::Offline;
            if (p == SyncPost::Queued) break;
        }
        wait_for_sync_slot();
    }
    wait_for(pending, [cpu] { resend_to(cpu); });
    return pending.load(std::memory_order_acquire) & kRejected ? CallStatus::Rejected
                                                               : CallStatus::Ok;
}

namespace {

/// Which CPUs a multicast goes to: `mask` (or every online CPU when null), with the running
/// CPU added, removed or left as the mask says. Decided under NoPreempt, so "the running CPU"
/// is the one that runs the own share.
struct Targets {
    const CpuMask* mask;
    enum Self { AsMask, Always, Never } self;
    bool has(uint32_t c, uint32_t me) const {
        if (c == me) return self == Always || (self == AsMask && mask != nullptr && mask->test(c));
        return mask == nullptr ? online(c) : mask->test(c);
    }
};

// Takes this CPU's deferred multicast for the calling task: tasks on one CPU take turns (the
// previous user may have moved elsewhere and still be waiting for its targets). Returns the CPU
// whose slot it got, with preemption off.
uint32_t claim_deferred_slot() {
    Task* me = current_task();
    for (;;) {
        lock_hold_enter(); // NoPreempt, kept once the slot is ours
        const uint32_t cpu = this_cpu()->cpu_id;
        Task* expected = nullptr;
        if (per_cpu(g_call_queue).outgoing[kDeferred].owner.compare_exchange_strong(
                expected, me, std::memory_order_acquire))
            return cpu;
        lock_hold_exit();
        yield();
    }
}

/// call_on_many, call_on_all and run_on_many: one shared request, the sender's bit set in every
/// target's mask, our own share run meanwhile, then the wait. Nothing is allocated.
CallStatus post_many(const Targets& to, CallFn fn, void* arg, bool wait, bool deferred) {
    if (!wait) {
        // Asynchronous: one pooled request per target, within the sender's credit.
        NoPreempt stay;
        const uint32_t me = this_cpu()->cpu_id;
        CallStatus status = CallStatus::Ok;
        for (uint32_t c = 0; c < cpu_count(); ++c) {
            if (!to.has(c, me)) continue;
            CallStatus s;
            if (c == me) {
                arch::IrqOff irq;
                fn(arg);
                continue;
            }
            s = online(c) ? post_async(c, fn, arg, me, deferred) : CallStatus::Offline;
            if (s != CallStatus::Ok) status = s;
        }
        return status;
    }
    if (!arch::irqs_enabled()) {
        // Fine if nobody else is involved (early boot, or only ourselves named).
        const uint32_t me = this_cpu()->cpu_id;
        for (uint32_t c = 0; c < cpu_count(); ++c) {
            if (c != me && to.has(c, me) && online(c)) {
                refuse_irqs_off("a synchronous call");
                return CallStatus::RefusedIrqsOff;
            }
        }
        if (to.has(me, me)) fn(arg);
        return CallStatus::Ok;
    }
    const McKind kind = deferred ? kDeferred : kIrq;
    // Interrupt-context work keeps preemption off until every target has answered: the slot
    // is this CPU's, and a shootdown's own share must be this CPU's TLB (Linux does the same).
    // Thread-context work may take long, so its slot is claimed by the task instead.
    uint32_t slot_cpu;
    if (deferred) slot_cpu = claim_deferred_slot();
    else {
        lock_hold_enter();
        slot_cpu = this_cpu()->cpu_id;
    }
    Multicast& m = per_cpu(g_call_queue).outgoing[kind];
    m.fn = fn;
    m.arg = arg;
    m.pending.store(0, std::memory_order_relaxed);
    CallStatus status = CallStatus::Ok;
    bool self = false;
    uint32_t targets = 0;
    CpuData* me = this_cpu();
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        if (!to.has(c, slot_cpu)) continue;
        if (c == slot_cpu) {
            self = true;
            continue;
        }
        if (!online(c)) {
            status = CallStatus::Offline;
            continue;
        }
        m.pending.fetch_add(1, std::memory_order_relaxed);
        // The bit publishes fn, arg and the count (a seq_cst RMW); it was clear, since our
        // previous multicast completed everywhere before this one started.
        CallQueue& tq = queue_of(c);
        tq.incoming[kind].test_and_set(slot_cpu);
        // A target going offline sets mc_closed, then runs the bits it finds (seq_cst both
        // sides): it sees ours, or we see its mark and take the bit back. Whoever clears the
        // bit owns the call; if we do, it never ran.
        if (tq.mc_closed.load(std::memory_order_seq_cst) &&
            tq.incoming[kind].test_and_clear(slot_cpu)) {
            m.pending.fetch_sub(1, std::memory_order_relaxed);
            status = CallStatus::Offline;
            continue;
        }
        me->counters.calls_sent.fetch_add(1, std::memory_order_relaxed);
        ++targets;
    }
    // Every other CPU: one broadcast when the shorthand is exact; else one IPI per x2APIC
    // cluster, or one per CPU.
    if (targets != 0 && !(targets + 1 == cpu_count() && ipi_send_all_others(IpiKind::Call))) {
        IpiBatch batch(IpiKind::Call);
        for (uint32_t c = 0; c < cpu_count(); ++c)
            if (c != slot_cpu && to.has(c, slot_cpu) && online(c)) batch.add(cpu_by_id(c));
        batch.flush();
    }
    if (self && !deferred) {
        arch::IrqOff irq;
        fn(arg);
    }
    if (deferred) lock_hold_exit(); // the slot stays ours through `owner`; we may move now
    if (self && deferred) {
        // Not on a CPU going offline: it waits for this multicast before it parks.
        if (online(slot_cpu)) run_pinned(slot_cpu, fn, arg);
        else status = CallStatus::Offline;
    }
    wait_for(m.pending, [&] {
        for (uint32_t c = 0; c < cpu_count(); ++c)
            if (c != slot_cpu && queue_of(c).incoming[kind].test(slot_cpu)) resend_to(c);
    });
    if (m.pending.load(std::memory_order_acquire) & kRejected) status = CallStatus::Rejected;
    if (deferred) {
        m.owner.store(nullptr, std::memory_order_release);
    } else {
        lock_hold_exit();
        // A reschedule asked for while we waited happens now, as at the end of any NoPreempt.
        { NoPreempt reschedule_point; }
    }
    return status;
}

} // namespace

CallStatus call_on_many(const CpuMask& cpus, CallFn fn, void* arg, bool wait) {
    return post_many(Targets{&cpus, Targets::AsMask}, fn, arg, wait, /*deferred=*/false);
}

CallStatus call_on_many_and_self(const CpuMask& cpus, CallFn fn, void* arg) {
    return post_many(Targets{&cpus, Targets::Always}, fn, arg, /*wait=*/true, /*deferred=*/false);
}

CallStatus run_on_many(const CpuMask& cpus, CallFn fn, void* arg) {
    return post_many(Targets{&cpus, Targets::AsMask}, fn, arg, /*wait=*/true, /*deferred=*/true);
}

CallStatus call_on_all(CallFn fn, void* arg, bool wait, bool include_self) {
    return post_many(Targets{nullptr, include_self ? Targets::Always : Targets::Never}, fn, arg,
                     wait, /*deferred=*/false);
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
    if (!arch::irqs_enabled()) {
        refuse_irqs_off("run_on");
        return CallStatus::RefusedIrqsOff;
    }
    std::atomic<uint32_t> pending{1};
    for (;;) {
        {
            NoPreempt stay; // the slot is the CPU the request is queued from
            const SyncPost p = try_post_sync(cpu, fn, arg, &pending, /*deferred=*/true);
            if (p == SyncPost::Closed) return CallStatus::Offline;
            if (p == SyncPost::Queued) break;
        }
        wait_for_sync_slot();
    }
    wait_for(pending, [cpu] { resend_to(cpu); });
    return pending.load(std::memory_order_acquire) & kRejected ? CallStatus::Rejected
                                                               : CallStatus::Ok;
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

void log_call_health() {
    uint64_t sent = 0, run = 0, resent = 0, stranded = 0, busy = 0, unhandled = 0, rejected = 0;
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        const CpuCounters& k = cpu_by_id(c)->counters;
        sent += k.calls_sent.load(std::memory_order_relaxed);
        run += k.calls_run.load(std::memory_order_relaxed);
        resent += k.calls_resent.load(std::memory_order_relaxed);
        stranded += k.calls_stranded.load(std::memory_order_relaxed);
        busy += k.calls_refused_busy.load(std::memory_order_relaxed);
        unhandled += k.unhandled_irqs.load(std::memory_order_relaxed);
        rejected += k.calls_rejected.load(std::memory_order_relaxed);
    }
    log_info("smp: remote calls %lu sent, %lu run, %lu rejected; %lu call IPIs re-sent to slow "
             "targets, %lu queues found stranded when idle, %lu async calls refused (credit); "
             "%lu unhandled interrupts",
             sent, run, rejected, resent, stranded, busy, unhandled);
}

uint32_t async_calls_outstanding(uint32_t cpu) {
    return static_cast<uint32_t>(
        __builtin_popcountll(slots_of(cpu_by_id(cpu)->cpu_id).async_used.load(std::memory_order_relaxed)));
}

} // namespace cohort

namespace cohort {

bool call_slots_setup(uint32_t cpu, uint32_t node) {
    constexpr uint64_t kPages = layout::kCallSlotStride / layout::kPageSize;
    if (uint64_t{cpu} * layout::kCallSlotStride >= layout::kCallSlotAreaSize) return false;
    const uint64_t va = layout::kCallSlotAreaBase + uint64_t{cpu} * layout::kCallSlotStride;
    if (vmm::translate(va) != UINT64_MAX) return true; // a CPU id set up before
    // On the sender's node: it writes every request; each target reads one.
    const uint64_t phys = pmm::alloc_pages_node(node, kPages);
    if (phys == 0) return false;
    memset(phys_to_virt<void>(phys), 0, kPages * layout::kPageSize);
    if (!vmm::map(va, phys, layout::kCallSlotStride, vmm::kWrite)) {
        pmm::free_pages(phys, kPages);
        return false;
    }
    return true;
}

void call_wait_sends_done() {
    const uint32_t me = this_cpu()->cpu_id;
    const CallSlots& cs = slots_of(me);
    const CallQueue& q = per_cpu(g_call_queue);
    const uint64_t start = monotonic_ns();
    uint64_t resend = start + 100'000'000, report = start + 1'000'000'000;
    for (;;) {
        const int async = __builtin_popcountll(cs.async_used.load(std::memory_order_acquire));
        const int sync = __builtin_popcountll(cs.sync_used.load(std::memory_order_acquire));
        const bool mc = (q.outgoing[kIrq].pending.load(std::memory_order_acquire) & ~kRejected) != 0;
        const bool run_mc = q.outgoing[kDeferred].owner.load(std::memory_order_acquire) != nullptr;
        if (async == 0 && sync == 0 && !mc && !run_mc) return;
        const uint64_t now = monotonic_ns();
        if (now >= resend) {
            // An IPI lost or overtaken by its request, as wait_for re-sends for: every online
            // CPU with something queued gets the call interrupt again (rare: a slow offline).
            for (uint32_t c = 0; c < cpu_count(); ++c) {
                if (c == me || !online(c)) continue;
                const CallQueue& tq = queue_of(c);
                const CallRequest* head = tq.head.load(std::memory_order_acquire);
                if ((head != nullptr && head != kClosed) || tq.incoming[kDeferred].test(me))
                    resend_to(c);
            }
            resend = now + 100'000'000;
        }
        if (now - start >= 5'000'000'000) {
            // Parking anyway: what is left is refused by its targets as coming from a CPU
            // that is not up, and a waiting sender gets CallStatus::Rejected, not a hang.
            log_error("smp: cpu%u parks with %d async and %d synchronous requests, %s multicast "
                      "and %s run_on_many still outstanding after 5 s; their targets will "
                      "refuse them", me, async, sync, mc ? "a" : "no", run_mc ? "a" : "no");
            return;
        }
        if (now >= report) {
            log_warn("smp: cpu%u waits %lu ms to park for its own calls: %d async and %d "
                     "synchronous requests, %s multicast, %s run_on_many outstanding",
                     me, (now - start) / 1'000'000, async, sync, mc ? "a" : "no",
                     run_mc ? "a" : "no");
            report = now + 1'000'000'000;
        }
        cpu_relax();
    }
}

} // namespace cohort

namespace cohort::call_testing {

CallStatus forge_call(uint32_t target, uint32_t slot_cpu, uint32_t claimed, CallFn fn, void* arg) {
    std::atomic<uint32_t> pending{1};
    {
        NoPreempt stay;
        CallSlots& cs = slots_of(cpu_by_id(slot_cpu)->cpu_id);
        const int slot = take_bit(cs.sync_used, kSyncCallSlots);
        if (slot < 0) return CallStatus::Busy;
        CallRequest* req = &cs.sync[slot];
        *req = CallRequest{nullptr, fn, arg, &pending, kCallMagic, claimed, false, false};
        if (!enqueue(cpu_by_id(target), req)) {
            release_slot({slot_cpu, kAsyncCallCredit + static_cast<uint32_t>(slot)});
            return CallStatus::Offline;
        }
    }
    wait_for(pending, [target] { resend_to(target); });
    return pending.load() & kRejected ? CallStatus::Rejected : CallStatus::Ok;
}

bool forge_stale_call(uint32_t target, uint32_t slot_cpu, CallFn fn, void* arg) {
    static std::atomic<uint32_t> pending{1}; // must never be touched: nobody waits on it
    const uint64_t rejected = cpu_by_id(target)->counters.calls_rejected.load();
    {
        NoPreempt stay;
        CallSlots& cs = slots_of(cpu_by_id(slot_cpu)->cpu_id);
        const uint64_t used = cs.sync_used.load(std::memory_order_acquire);
        if (~used == 0) return false;
        const int slot = __builtin_ctzll(~used); // free: its bit stays clear
        CallRequest* req = &cs.sync[slot];
        *req = CallRequest{nullptr, fn, arg, &pending, kCallMagic, slot_cpu, false, false};
        if (!enqueue(cpu_by_id(target), req)) return false;
    }
    const uint64_t give_up = monotonic_ns() + 10'000'000'000;
    while (cpu_by_id(target)->counters.calls_rejected.load() == rejected) {
        if (monotonic_ns() > give_up) return false;
        run_pending_calls();
        cpu_relax();
    }
    return pending.load() == 1;
}

CallStatus forge_multicast(uint32_t target, uint32_t source, CallFn fn, void* arg) {
    Multicast& m = queue_of(source).outgoing[kIrq];
    m.fn = fn;
    m.arg = arg;
    m.pending.store(1, std::memory_order_relaxed);
    queue_of(target).incoming[kIrq].test_and_set(source);
    ipi_send(cpu_by_id(target), IpiKind::Call);
    wait_for(m.pending, [target] { resend_to(target); });
    return m.pending.load() & kRejected ? CallStatus::Rejected : CallStatus::Ok;
}

} // namespace cohort::call_testing
