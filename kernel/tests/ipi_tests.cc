// IPIs and remote calls: every ordered pair of CPUs, self calls, refusals, and a storm in which
// every CPU calls every other one, synchronously and not, with exact accounting afterwards.
#include <atomic>

#include "arch/x86/cpu.h"
#include "arch/x86/lapic.h"
#include "mm/heap.h"
#include "time/timer.h"
#include "debug/log.h"
#include "smp/call.h"
#include "smp/cpu.h"
#include "smp/ipi.h"
#include "sched/sched.h"
#include "test/ktest.h"
#include "sync/cpu_relax.h"
#include "time/clock.h"

namespace cohort {
namespace {

uint32_t online_count() {
    uint32_t n = 0;
    for (uint32_t i = 0; i < cpu_count(); ++i) n += cpu_by_id(i)->online.load();
    return n;
}

struct Probe {
    std::atomic<uint32_t> runs{0};
    std::atomic<uint32_t> ran_on{UINT32_MAX};
    uint64_t result = 0;
    uint64_t input = 0;
};

void probe_fn(void* arg) {
    auto* p = static_cast<Probe*>(arg);
    p->ran_on.store(this_cpu()->cpu_id);
    p->result = p->input * 3 + this_cpu()->cpu_id;
    p->runs.fetch_add(1);
}

// Results of A calling B, for every ordered pair: [a * n + b].
struct PairResults {
    uint32_t n;
    Probe* probes;
    std::atomic<uint32_t> bad_status{0};
};

/// Targets each CPU calls: all others up to kMaxTargets CPUs; beyond, kMaxTargets of them
/// spread over the machine (a + 1, a + 1 + step, ...), so every CPU is called as often as it
/// calls and the work grows with n, not n squared.
constexpr uint32_t kMaxTargets = 16;
bool is_target(uint32_t a, uint32_t b, uint32_t n) {
    if (a == b) return false;
    if (n <= kMaxTargets + 1) return true;
    // Fewer where vCPUs far outnumber host cores: each call waits for the host to run the
    // target's vCPU.
    const uint32_t targets = n > 64 ? 4 : kMaxTargets;
    const uint32_t step = (n - 1) / targets;
    const uint32_t d = (b + n - a) % n; // 1 .. n-1
    return (d - 1) % step == 0 && (d - 1) / step < targets;
}

void call_everyone_from_here(void* arg) {
    auto* r = static_cast<PairResults*>(arg);
    const uint32_t a = this_cpu()->cpu_id;
    for (uint32_t b = 0; b < r->n; ++b) {
        if (!is_target(a, b, r->n) || !cpu_by_id(b)->online.load()) continue;
        Probe& p = r->probes[a * r->n + b];
        p.input = 1000 * a + b;
        if (call_on(b, probe_fn, &p, /*wait=*/true) != CallStatus::Ok) r->bad_status.fetch_add(1);
    }
}

KTEST(ipi, call_runs_once_on_the_target_for_every_pair) {
    if (online_count() < 2) return ktest::skip("needs at least 2 CPUs");
    const uint32_t n = cpu_count();
    static PairResults r;
    r.n = n;
    r.bad_status = 0;
    r.probes = new Probe[n * n];
    KASSERT(r.probes != nullptr);
    // Every CPU A calls every other CPU B (or 16 of them) from thread context, all at once.
    KASSERT(ktest::run_on_all_cpus(call_everyone_from_here, &r));
    uint32_t pairs = 0;
    KEXPECT_EQ(r.bad_status.load(), 0u);
    for (uint32_t a = 0; a < n; ++a) {
        for (uint32_t b = 0; b < n; ++b) {
            if (!is_target(a, b, n) || !cpu_by_id(a)->online.load() || !cpu_by_id(b)->online.load())
                continue;
            const Probe& p = r.probes[a * n + b];
            KEXPECT_EQ(p.runs.load(), 1u);
            KEXPECT_EQ(p.ran_on.load(), b);
            KEXPECT_EQ(p.result, p.input * 3 + b);
            ++pairs;
        }
    }
    ktest::note("%u ordered pairs", pairs);
    delete[] r.probes;
}

KTEST(ipi, self_call_runs_inline) {
    Probe p;
    p.input = 7;
    KEXPECT(call_on(this_cpu()->cpu_id, probe_fn, &p, true) == CallStatus::Ok);
    KEXPECT_EQ(p.runs.load(), 1u);
    KEXPECT_EQ(p.ran_on.load(), this_cpu()->cpu_id);
}

KTEST(ipi, sync_call_with_interrupts_off_is_refused) {
    if (online_count() < 2) return ktest::skip("needs at least 2 CPUs");
    Probe p;
    const uint64_t mark = log_mark();
    x86::cli();
    const CallStatus s = call_on(1, probe_fn, &p, true);
    x86::sti();
    KEXPECT(s == CallStatus::RefusedIrqsOff);
    KEXPECT_EQ(p.runs.load(), 0u);
    KEXPECT(log_contains_since(mark, "with interrupts disabled refused"));
}

void count_fn(void* arg) { static_cast<std::atomic<uint32_t>*>(arg)->fetch_add(1); }

KTEST(ipi, call_on_all_reaches_every_online_cpu) {
    std::atomic<uint32_t> n{0};
    KEXPECT(call_on_all(count_fn, &n, true, true) == CallStatus::Ok);
    KEXPECT_EQ(n.load(), online_count());
    n = 0;
    KEXPECT(call_on_all(count_fn, &n, true, false) == CallStatus::Ok);
    KEXPECT_EQ(n.load(), online_count() - 1);
}

void mark_cpu_fn(void* arg) {
    static_cast<std::atomic<uint64_t>*>(arg)->fetch_or(uint64_t{1} << this_cpu()->cpu_id);
}

KTEST(ipi, partial_multicast_sends_one_ipi_per_x2apic_cluster) {
    if (!ipi_cluster_mode()) return ktest::skip("needs x2APIC mode (Bochs), ipi.cluster on");
    if (online_count() < 3 || cpu_count() > 64) return ktest::skip("needs 3 to 64 CPUs, all online");
    // Hardware gives each CPU the logical ID the SDM derives from its x2APIC id.
    for (uint32_t c = 0; c < cpu_count(); ++c)
        KEXPECT_EQ(cpu_by_id(c)->x2apic_ldr, x2apic_logical_id(cpu_by_id(c)->apic_id));
    // Every other CPU but the last: not "all others", so no shorthand.
    CpuData* me = this_cpu();
    CpuMask to;
    uint64_t want = 0;
    uint32_t clusters[64];
    uint32_t nclusters = 0;
    for (uint32_t c = 0; c + 1 < cpu_count(); ++c) {
        if (c == me->cpu_id) continue;
        to.set(c);
        want |= uint64_t{1} << c;
        const uint32_t cl = cpu_by_id(c)->x2apic_ldr >> 16;
        bool seen = false;
        for (uint32_t i = 0; i < nclusters; ++i) seen = seen || clusters[i] == cl;
        if (!seen) clusters[nclusters++] = cl;
    }
    std::atomic<uint64_t> ran{0};
    const uint64_t logical_before = me->counters.cluster_ipis.load();
    const uint64_t sent_before = me->counters.ipis_sent[static_cast<int>(IpiKind::Call)].load();
    const uint64_t resent_before = me->counters.calls_resent.load();
    KEXPECT(call_on_many(to, mark_cpu_fn, &ran, true) == CallStatus::Ok);
    KEXPECT_EQ(ran.load(), want);
    KEXPECT_EQ(me->counters.cluster_ipis.load() - logical_before, uint64_t{nclusters});
    // The logical IPIs themselves reached every target: none needed the resend (after 100 ms)
    // that would otherwise have rescued the call.
    KEXPECT_EQ(me->counters.calls_resent.load() - resent_before, uint64_t{0});
    // Counted per CPU interrupted (plus any resend to a slow CPU, one by one).
    KEXPECT(me->counters.ipis_sent[static_cast<int>(IpiKind::Call)].load() - sent_before >=
            static_cast<uint64_t>(__builtin_popcountll(want)));
    ktest::note("%d CPUs reached with %u logical IPI(s)", __builtin_popcountll(want), nclusters);
}

// --- storm ---------------------------------------------------------------------------------
struct Storm {
    uint64_t deadline_ns;
    std::atomic<uint64_t> made_sync{0}, made_async{0};
    std::atomic<uint64_t> executed{0};
    std::atomic<uint32_t> bad_status{0};
};

void storm_target(void* arg) { static_cast<Storm*>(arg)->executed.fetch_add(1); }

void storm_worker(void* arg) {
    auto* s = static_cast<Storm*>(arg);
    const uint32_t me = this_cpu()->cpu_id;
    uint64_t i = me;
    for (uint32_t t = 0;; t = (t + 1) % cpu_count()) {
        if (monotonic_ns() >= s->deadline_ns) return; // checked per call: bounded at any size
        if (t == me || !cpu_by_id(t)->online.load()) continue;
        const bool wait = (++i % 3) != 0;
        const CallStatus st = call_on(t, storm_target, s, wait);
        if (st != CallStatus::Ok) s->bad_status.fetch_add(1);
        else (wait ? s->made_sync : s->made_async).fetch_add(1);
    }
}

uint64_t total_sent(IpiKind k) {
    uint64_t n = 0;
    for (uint32_t i = 0; i < cpu_count(); ++i)
        n += cpu_by_id(i)->counters.ipis_sent[static_cast<int>(k)].load();
    return n;
}
uint64_t total_received(IpiKind k) {
    uint64_t n = 0;
    for (uint32_t i = 0; i < cpu_count(); ++i)
        n += cpu_by_id(i)->counters.ipis_received[static_cast<int>(k)].load();
    return n;
}

uint64_t total_calls_sent() {
    uint64_t n = 0;
    for (uint32_t i = 0; i < cpu_count(); ++i) n += cpu_by_id(i)->counters.calls_sent.load();
    return n;
}
uint64_t total_calls_run() {
    uint64_t n = 0;
    for (uint32_t i = 0; i < cpu_count(); ++i) n += cpu_by_id(i)->counters.calls_run.load();
    return n;
}

KTEST(ipi, storm_loses_nothing) {
    const uint32_t n = online_count();
    if (n < 2) return ktest::skip("needs at least 2 CPUs");
    const uint64_t sent_before = total_sent(IpiKind::Call);
    const uint64_t received_before = total_received(IpiKind::Call);
    const uint64_t calls_sent_before = total_calls_sent();
    const uint64_t calls_run_before = total_calls_run();
    // Deltas: other tests may have sent forged requests on purpose (security.*), and the
    // console's `test` runs the suite again in one boot.
    uint64_t rejected_before = 0;
    for (uint32_t i = 0; i < cpu_count(); ++i)
        rejected_before += cpu_by_id(i)->counters.calls_rejected.load();
    static Storm s;
    s.made_sync = s.made_async = s.executed = 0;
    s.bad_status = 0;
    s.deadline_ns = monotonic_ns() + 200'000'000; // bounded: 200 ms of storm
    // A worker on every CPU at once, in thread context.
    KASSERT(ktest::run_on_all_cpus(storm_worker, &s));
    const uint64_t limit = monotonic_ns() + 10'000'000'000;
    // Asynchronous calls may still be in flight: wait until every one has run.
    const uint64_t made = [&] { return s.made_sync.load() + s.made_async.load(); }();
    while (s.executed.load() < made && monotonic_ns() < limit) run_pending_calls();
    ktest::note("%lu synchronous and %lu asynchronous calls between %u CPUs, %lu call IPIs",
                s.made_sync.load(), s.made_async.load(), n, total_sent(IpiKind::Call) - sent_before);
    KEXPECT_EQ(s.bad_status.load(), 0u);
    KEXPECT_EQ(s.executed.load(), made);
    KEXPECT(made > 0);
    // Requests are what must not be lost: every one sent ran exactly once.
    while (total_calls_run() - calls_run_before < total_calls_sent() - calls_sent_before &&
           monotonic_ns() < limit)
        cpu_relax();
    KEXPECT_EQ(total_calls_run() - calls_run_before, total_calls_sent() - calls_sent_before);
    // IPIs only announce work, and a second IPI for a vector that is still pending merges with
    // the first in the APIC (one IRR bit per vector), so fewer may arrive than were sent. With
    // the empty-to-non-empty rule there are never more IPIs than calls.
    const uint64_t sent = total_sent(IpiKind::Call) - sent_before;
    const uint64_t received = total_received(IpiKind::Call) - received_before;
    ktest::note("call IPIs: %lu sent, %lu received", sent, received);
    KEXPECT(received <= sent);
    KEXPECT(received > 0);
    // Waiters re-send to targets slow to answer (100 ms and more): those come on top.
    uint64_t resent = 0;
    for (uint32_t i = 0; i < cpu_count(); ++i) resent += cpu_by_id(i)->counters.calls_resent.load();
    KEXPECT(sent <= made + n + resent);
    uint64_t rejected = 0;
    for (uint32_t i = 0; i < cpu_count(); ++i) rejected += cpu_by_id(i)->counters.calls_rejected.load();
    KEXPECT_EQ(rejected - rejected_before, uint64_t{0});
}


// --- a storm toward one CPU ------------------------------------------------------------------
struct Flood {
    std::atomic<bool> stop{false};
    alignas(64) std::atomic<uint64_t> own_progress{0}; // the target's line, nobody else writes it
    alignas(64) std::atomic<uint32_t> in_flight{0};
    std::atomic<uint64_t> executed{0};
    uint64_t made = 0;
};
Flood g_flood;

// Expensive remote work: 50 us of the target's time in its interrupt handler.
void heavy_call(void*) {
    const uint64_t end = monotonic_ns() + 50'000;
    while (monotonic_ns() < end) cpu_relax();
    g_flood.executed.fetch_add(1);
    g_flood.in_flight.fetch_sub(1);
}

// The target CPU's own work: count as fast as it can until told to stop.
void own_work(void*) {
    while (!g_flood.stop.load(std::memory_order_relaxed)) {
        g_flood.own_progress.fetch_add(1, std::memory_order_relaxed);
        for (int i = 0; i < 64; ++i) cpu_relax();
    }
}

uint64_t progress_over(uint64_t ns, bool flood, uint32_t target) {
    const uint64_t before = g_flood.own_progress.load();
    const uint64_t end = monotonic_ns() + ns;
    while (monotonic_ns() < end) {
        if (!flood) {
            // Busy here too: emulators share their host time among busy vCPUs (Bochs among all
            // of them in one thread), so the baseline must have as many CPUs busy as the storm.
            cpu_relax();
            continue;
        }
        // Up to 8 asynchronous calls in flight, then a synchronous one: the target's queue is
        // never empty, so without a limit its handler would never return to its own task.
        if (g_flood.in_flight.load() < 8) {
            g_flood.in_flight.fetch_add(1);
            if (call_on(target, heavy_call, nullptr, false) == CallStatus::Ok) ++g_flood.made;
            else g_flood.in_flight.fetch_sub(1);
        } else {
            g_flood.in_flight.fetch_add(1);
            if (call_on(target, heavy_call, nullptr, true) == CallStatus::Ok) ++g_flood.made;
            else g_flood.in_flight.fetch_sub(1);
        }
    }
    return g_flood.own_progress.load() - before;
}

// One sender (this CPU) floods one target with expensive calls while a task of the target's
// keeps counting. The rate limit must leave that task most of its CPU, hold requests back
// rather than drop them, and show the storm in the target's counters. Only two CPUs are busy,
// so the baseline is not distorted by more busy vCPUs than host cores.
KTEST(ipi, storm_toward_one_cpu_leaves_it_time_for_its_own_task) {
    if (online_count() < 2) return ktest::skip("needs at least 2 CPUs");
    const uint32_t target = 1;
    CpuData* t = cpu_by_id(target);
    g_flood.stop = false;
    g_flood.own_progress = 0;
    g_flood.in_flight = 0;
    g_flood.executed = 0;
    g_flood.made = 0;
    CpuMask only;
    only.set(target);
    Task* own = task_create(own_work, nullptr, {.name = "own-work", .affinity = &only});
    KASSERT(own != nullptr);
    const uint64_t throttled_before = t->counters.calls_throttled.load();
    const uint64_t received_before = t->counters.calls_run.load();
    // Long enough for many of the limiter's windows (longer where interrupts are slow).
    const auto lim = call_limit_stats();
    const uint64_t span = lim.window_ns * 100 > 100'000'000 ? lim.window_ns * 100 : 100'000'000;
    // Quiet and stormy phases alternate, so a host busy with something else for a while (the
    // other tests ctest runs beside this one) slows both sides alike rather than one.
    uint64_t quiet = 0, stormy = 0, storm_ns = 0, irqs = 0, irq_ns = 0;
    for (int round = 0; round < 4; ++round) {
        quiet += progress_over(span / 2, false, target);
        const uint64_t irqs_before = t->counters.interrupts.load();
        const uint64_t irq_cycles_before = t->counters.irq_cycles.load();
        const uint64_t storm_start = monotonic_ns();
        stormy += progress_over(span / 2, true, target);
        storm_ns += monotonic_ns() - storm_start;
        irqs += t->counters.interrupts.load() - irqs_before;
        irq_ns += tsc_to_ns(t->counters.irq_cycles.load() - irq_cycles_before);
    }
    quiet /= 2; // per span
    stormy /= 2;
    // Held-back requests run in later windows: wait (bounded) until every one has.
    const uint64_t limit = monotonic_ns() + 5'000'000'000;
    while (g_flood.executed.load() < g_flood.made && monotonic_ns() < limit) sleep_for(1'000'000);
    g_flood.stop = true;
    task_join(own);
    const uint64_t throttled = t->counters.calls_throttled.load() - throttled_before;
    ktest::note("own task on cpu%u: %lu steps per %lu ms alone, %lu during the storm (%lu %%)",
                target, quiet, span / 1000000, stormy, quiet ? stormy * 100 / quiet : 0);
    ktest::note("storm: %lu calls of 50 us, %lu run on cpu%u, %lu held back by the limit; "
                "%lu interrupts there, %lu %% of its time in handlers (limit %s: %lu us of each "
                "%lu us, %lu us per sender)",
                g_flood.made, t->counters.calls_run.load() - received_before, target, throttled,
                irqs, irq_ns * 100 / storm_ns,
                lim.enabled ? "on" : "off", lim.budget_ns / 1000, lim.window_ns / 1000,
                lim.per_source_ns / 1000);
    KEXPECT_EQ(g_flood.executed.load(), g_flood.made); // nothing lost, however long held back
    KEXPECT(g_flood.made > 0);
    // The limit allows one sender a quarter of the target's time: the task keeps well over
    // half of its pace (40 % leaves room for an emulator's noise); unlimited, it nearly stops.
    KEXPECT(stormy * 100 >= quiet * 40);
    KEXPECT(throttled > 0);
}


// --- interrupt-delivery hygiene ---------------------------------------------------------------

// Without its EOI an interrupt keeps its in-service bit, which blocks its priority class and
// all below it: 0xfe (class 15, above the timer and every IPI) would silence the CPU for good.
constexpr uint8_t kUnhandledVector = 0xfe;

struct Alive {
    Timer timer;
    std::atomic<bool> timer_fired{false};
    std::atomic<bool> call_ran{false};
};

void arm_soon(void* arg) {
    auto* a = static_cast<Alive*>(arg);
    timer_arm(a->timer, monotonic_ns() + 20'000'000,
              [](Timer&, void* p) { static_cast<Alive*>(p)->timer_fired.store(true); }, a);
}

void send_unhandled(void*) { x86::lapic_send_ipi(x86::lapic_id(), kUnhandledVector); }

bool wait_flag(const std::atomic<bool>& f, uint64_t ns) {
    const uint64_t end = monotonic_ns() + ns;
    while (!f.load() && monotonic_ns() < end) sleep_for(1'000'000);
    return f.load();
}

KTEST(ipi, unhandled_vector_is_acknowledged_on_every_cpu) {
    static Alive alive[kMaxCpus];
    static uint64_t unhandled_before[kMaxCpus];
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        alive[c].timer_fired = alive[c].call_ran = false;
        unhandled_before[c] = cpu_by_id(c)->counters.unhandled_irqs.load();
    }
    // On every CPU at once: a timer armed before the stray interrupt, then the interrupt itself
    // (sent by each CPU to itself, so it arrives while nothing else is in service).
    KASSERT(call_on_all([](void*) { arm_soon(&alive[this_cpu()->cpu_id]); }, nullptr, true, true) ==
            CallStatus::Ok);
    KASSERT(call_on_all(send_unhandled, nullptr, true, true) == CallStatus::Ok);
    // Asynchronous, then polled with a deadline: a deaf CPU must fail the test, not hang it.
    const uint32_t me = this_cpu()->cpu_id;
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        if (!cpu_by_id(c)->online.load()) continue;
        if (c == me) {
            alive[c].call_ran = true;
            continue;
        }
        while (call_on(c, [](void* p) { static_cast<Alive*>(p)->call_ran.store(true); },
                       &alive[c], false) == CallStatus::Busy)
            sleep_for(1'000'000);
    }
    uint32_t deaf = 0, counted = 0;
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        CpuData* cpu = cpu_by_id(c);
        if (!cpu->online.load()) continue;
        const bool timer_ok = wait_flag(alive[c].timer_fired, 2'000'000'000);
        const bool call_ok = wait_flag(alive[c].call_ran, 2'000'000'000);
        if (!timer_ok || !call_ok) {
            if (++deaf <= 4)
                ktest::note("cpu%u after vector %#x: timer %s, remote call %s", c, kUnhandledVector,
                            timer_ok ? "fired" : "never fired", call_ok ? "ran" : "never ran");
        }
        counted += cpu->counters.unhandled_irqs.load() > unhandled_before[c];
    }
    KEXPECT_EQ(deaf, 0u);
    KEXPECT_EQ(counted, cpus_online());
}

// A call IPI that never arrives (a failed send; on real hardware, one that overtook its
// request) must not lose the call: the request stays queued, the waiter sends again, and an
// idle target finds the queue itself.
KTEST(ipi, lost_call_ipi_does_not_lose_the_call) {
    if (online_count() < 2) return ktest::skip("needs at least 2 CPUs");
    const uint32_t target = 1;
    CpuData* t = cpu_by_id(target);
    uint64_t resent_before = 0;
    for (uint32_t i = 0; i < cpu_count(); ++i) resent_before += cpu_by_id(i)->counters.calls_resent.load();
    const uint64_t stranded_before = t->counters.calls_stranded.load();
    Probe p;
    p.input = 7;
    ipi_test_drop_next_call(target);
    const CallStatus s = call_on(target, probe_fn, &p, /*wait=*/true);
    KEXPECT(s == CallStatus::Ok);
    KEXPECT_EQ(p.runs.load(), 1u);
    KEXPECT_EQ(p.ran_on.load(), target);
    // The IPI really was dropped, and the call ran all the same. What ran it is not asserted:
    // a resend, the target's own look at its queue, or an interrupt that was already on its
    // way (an earlier call IPI still pending, the limiter's retry timer) may each be first;
    // under OVMF the last happened, and a test counting only the first two failed.
    KEXPECT(!ipi_test_drop_pending());
    // The same for a multicast.
    CpuMask both;
    both.set(0);
    both.set(target);
    std::atomic<uint32_t> n{0};
    ipi_test_drop_next_call(target);
    KEXPECT(call_on_many(both, [](void* a) { static_cast<std::atomic<uint32_t>*>(a)->fetch_add(1); },
                         &n, true) == CallStatus::Ok);
    KEXPECT_EQ(n.load(), 2u);
    KEXPECT(!ipi_test_drop_pending());
    uint64_t resent = 0;
    for (uint32_t i = 0; i < cpu_count(); ++i) resent += cpu_by_id(i)->counters.calls_resent.load();
    ktest::note("recovered by %lu re-sent IPI(s) and %lu idle check(s) on cpu%u",
                resent - resent_before, t->counters.calls_stranded.load() - stranded_before, target);
}

// Asynchronous calls toward a CPU the limiter holds back: each sender has a fixed credit, so
// the storm cannot grow the heap (or anything else); a sender past its credit hears Busy.
struct Credit {
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> ran{0};
    std::atomic<uint64_t> busy{0};
    std::atomic<uint64_t> made{0};
    std::atomic<uint32_t> max_outstanding{0};
};
Credit g_credit;

void slow_async(void*) {
    const uint64_t end = monotonic_ns() + 100'000;
    while (monotonic_ns() < end) cpu_relax();
    g_credit.ran.fetch_add(1);
}

void flood_cpu0(void*) {
    const uint32_t me = this_cpu()->cpu_id;
    if (me == 0) return;
    while (!g_credit.stop.load()) {
        const CallStatus s = call_on(0, slow_async, nullptr, false);
        if (s == CallStatus::Ok) g_credit.made.fetch_add(1);
        else if (s == CallStatus::Busy) g_credit.busy.fetch_add(1);
        const uint32_t out = async_calls_outstanding(me);
        uint32_t seen = g_credit.max_outstanding.load();
        while (out > seen && !g_credit.max_outstanding.compare_exchange_weak(seen, out)) {
        }
        cpu_relax();
    }
}

KTEST(ipi, async_storm_is_bounded_by_each_senders_credit) {
    if (online_count() < 2) return ktest::skip("needs at least 2 CPUs");
    g_credit.stop = false;
    g_credit.ran = g_credit.busy = g_credit.made = 0;
    g_credit.max_outstanding = 0;
    const SlabHeap::Stats heap_before = heap_stats();
    CpuMask others;
    for (uint32_t c = 1; c < cpu_count(); ++c)
        if (cpu_by_id(c)->online.load()) others.set(c);
    // The senders flood cpu0 (this CPU) from thread context while cpu0 sleeps in between, so
    // its handler and limiter see the storm; 300 ms of it, counted, not timed for a verdict.
    Task* stopper = task_create(
        [](void*) {
            sleep_for(300'000'000);
            g_credit.stop.store(true);
        },
        nullptr, {.name = "credit-stop"});
    KASSERT(stopper != nullptr);
    uint64_t peak_objects = 0;
    // run_on_many waits for all of them; cpu0 keeps answering their calls while it waits.
    struct Args {
        CpuMask* others;
    } args{&others};
    Task* flood = task_create(
        [](void* a) { run_on_many(*static_cast<Args*>(a)->others, flood_cpu0, nullptr); }, &args,
        {.name = "credit-flood"});
    KASSERT(flood != nullptr);
    while (!g_credit.stop.load()) {
        const uint64_t objects = heap_stats().objects;
        peak_objects = objects > peak_objects ? objects : peak_objects;
        sleep_for(5'000'000);
    }
    task_join(flood);
    task_join(stopper);
    // Every call made must run. How long the backlog takes depends on the host: the limiter
    // charges a call the wall time it took, descheduled vCPU time included, and with 254
    // senders on two host cores draining up to 254 x 64 calls took 3 to 10 s. The bound only
    // keeps a lost call from hanging the run.
    const uint64_t drain_start = monotonic_ns();
    const uint64_t limit = drain_start + 120'000'000'000;
    while (g_credit.ran.load() < g_credit.made.load() && monotonic_ns() < limit) sleep_for(1'000'000);
    ktest::note("%lu asynchronous calls made, %lu refused as Busy; at most %u outstanding per "
                "sender (credit %u); heap objects %lu before, at most %lu during; backlog ran in "
                "%lu ms", g_credit.made.load(), g_credit.busy.load(),
                g_credit.max_outstanding.load(), kAsyncCallCredit, heap_before.objects,
                peak_objects, (monotonic_ns() - drain_start) / 1'000'000);
    KEXPECT_EQ(g_credit.ran.load(), g_credit.made.load());
    KEXPECT(g_credit.max_outstanding.load() <= kAsyncCallCredit);
    KEXPECT(g_credit.busy.load() > 0);
    // Tasks, stacks and this test's own bookkeeping come and go: a few dozen objects, never one
    // per call in flight.
    KEXPECT(peak_objects <= heap_before.objects + 64);
}

// run_on work that itself calls run_on: CPU a's worker waits for b's while b's waits for a's.
// Each worker must keep doing the work queued for it while it waits, or both wait forever.
struct Crossed {
    std::atomic<uint32_t> arrived{0};
    std::atomic<uint32_t> done{0};
    std::atomic<uint32_t> inner{0};
    uint32_t a = 0, b = 0;
};
Crossed g_crossed;

void crossed_job(void*) {
    const uint32_t me = this_cpu()->cpu_id;
    const uint32_t other = me == g_crossed.a ? g_crossed.b : g_crossed.a;
    g_crossed.arrived.fetch_add(1);
    const uint64_t end = monotonic_ns() + 2'000'000'000;
    while (g_crossed.arrived.load() < 2 && monotonic_ns() < end) cpu_relax();
    if (run_on(other, [](void*) { g_crossed.inner.fetch_add(1); }, nullptr) == CallStatus::Ok)
        g_crossed.done.fetch_add(1);
}

KTEST(ipi, run_on_inside_run_on_work_does_not_deadlock) {
    if (online_count() < 3) return ktest::skip("needs 3 CPUs: two workers and this test");
    g_crossed.arrived = g_crossed.done = g_crossed.inner = 0;
    g_crossed.a = 1;
    g_crossed.b = 2;
    KASSERT(run_on_async(1, crossed_job, nullptr) == CallStatus::Ok);
    KASSERT(run_on_async(2, crossed_job, nullptr) == CallStatus::Ok);
    const uint64_t end = monotonic_ns() + 10'000'000'000;
    while (g_crossed.done.load() < 2 && monotonic_ns() < end) sleep_for(1'000'000);
    KEXPECT_EQ(g_crossed.done.load(), 2u);
    KEXPECT_EQ(g_crossed.inner.load(), 2u);
}

} // namespace
} // namespace cohort
