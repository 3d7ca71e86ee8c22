// CPU hotplug: cpu_offline / cpu_online under the things that must cope with a CPU leaving
// and coming back: remote calls, timers, tasks, shootdowns, the TSC and the LAPIC timer.
// docs/hotplug.md.
#include <atomic>
#include <string_view>

#include "arch/arch.h"
#include "boot/params.h"
#include "debug/log.h"
#include "debug/fault_catcher.h"
#include "mm/layout.h"
#include "mm/phys.h"
#include "mm/pmm.h"
#include "mm/vmm.h"
#include "platform/cpu_hotplug_acpi.h"
#include "sched/sched.h"
#include "smp/call.h"
#include "smp/cpu.h"
#include "smp/hotplug.h"
#include "sync/cpu_relax.h"
#include "test/ktest.h"
#include "time/clock.h"

namespace cohort {
namespace {

// The CPU the tests take offline: the last one (the boot CPU runs the tests).
uint32_t victim() { return cpu_count() - 1; }

bool all_online() { return cpus_online() == cpu_count(); }

void note_cpu(void* arg) { *static_cast<uint32_t*>(arg) = this_cpu()->cpu_id; }

KTEST(hotplug, the_boot_cpu_and_bad_requests_are_refused) {
    if (cpu_count() < 2) return ktest::skip("one CPU");
    KEXPECT(cpu_offline(0) == HotplugError::BootCpu);
    KEXPECT(cpu_offline(cpu_count()) == HotplugError::NoSuchCpu);
    KEXPECT(cpu_online(1) == HotplugError::AlreadyOnline);
    KEXPECT(cpu_online(0) == HotplugError::BootCpu);
    KEXPECT(all_online());
}

KTEST(hotplug, a_cpu_goes_offline_and_comes_back) {
    if (cpu_count() < 2) return ktest::skip("one CPU");
    const uint32_t k = victim();
    const uint32_t before = cpus_online();
    HotplugReport r;
    KASSERT(cpu_offline(k, &r) == HotplugError::None);
    const CpuData* c = cpu_by_id(k);
    KEXPECT(!c->online.load());
    KEXPECT_EQ(cpus_online(), before - 1);
    KEXPECT(c->boot_stage.load() == BootStage::Offline);
    KEXPECT(!sched_cpu_running(k));
    uint32_t ran_on = kMaxCpus;
    KEXPECT(call_on(k, note_cpu, &ran_on, true) == CallStatus::Offline);
    KEXPECT(run_on(k, note_cpu, &ran_on) == CallStatus::Offline);
    KEXPECT_EQ(ran_on, kMaxCpus);
    KEXPECT(cpu_offline(k) == HotplugError::AlreadyOffline);
    HotplugReport back;
    KASSERT(cpu_online(k, &back) == HotplugError::None);
    KEXPECT(c->online.load());
    KEXPECT_EQ(cpus_online(), before);
    KEXPECT(sched_cpu_running(k));
    KEXPECT(call_on(k, note_cpu, &ran_on, true) == CallStatus::Ok);
    KEXPECT_EQ(ran_on, k);
    ran_on = kMaxCpus;
    KEXPECT(run_on(k, note_cpu, &ran_on) == CallStatus::Ok);
    KEXPECT_EQ(ran_on, k);
    // A task may be placed there again.
    run_pinned(k, note_cpu, &ran_on);
    KEXPECT_EQ(ran_on, k);
    ktest::note("cpu%u offline in %lu us, online in %lu us", k, r.duration_us, back.duration_us);
}

// A task allowed only on the CPU: the offline is refused, naming it, until it is gone.
struct PinnedSleeper {
    std::atomic<bool> stop{false};
};

void sleep_until_stopped(void* arg) {
    auto* p = static_cast<PinnedSleeper*>(arg);
    while (!p->stop.load()) sleep_for(1'000'000);
}

KTEST(hotplug, a_task_pinned_only_to_the_cpu_keeps_it_online) {
    if (cpu_count() < 2) return ktest::skip("one CPU");
    const uint32_t k = victim();
    PinnedSleeper p;
    CpuMask only;
    only.set(k);
    TaskOptions o;
    o.name = "pinned-here";
    o.affinity = &only;
    Task* t = task_create(sleep_until_stopped, &p, o);
    KASSERT(t != nullptr);
    HotplugReport r;
    KEXPECT(cpu_offline(k, &r) == HotplugError::PinnedTask);
    KEXPECT(std::string_view(r.task_name) == "pinned-here");
    KEXPECT(cpu_by_id(k)->online.load());
    KEXPECT(sched_cpu_running(k));
    p.stop.store(true);
    task_join(t);
    KASSERT(cpu_offline(k) == HotplugError::None);
    KASSERT(cpu_online(k) == HotplugError::None);
}

// Tasks queued there and a task sleeping on a timer armed there: the queued ones run
// elsewhere, the sleeper wakes no earlier than asked and elsewhere.
struct Mover {
    std::atomic<bool> stop{false};
    std::atomic<uint32_t> last_cpu{kMaxCpus};
    std::atomic<uint64_t> laps{0};
};

void spin_and_note(void* arg) {
    auto* m = static_cast<Mover*>(arg);
    while (!m->stop.load(std::memory_order_relaxed)) {
        m->last_cpu.store(this_cpu()->cpu_id, std::memory_order_relaxed);
        m->laps.fetch_add(1, std::memory_order_relaxed);
        cpu_relax();
    }
}

// A spinning task on `allowed`, noting where it runs in `m`.
Task* start_mover(Mover& m, const char* name, const CpuMask& allowed) {
    m.stop = false;
    m.last_cpu = kMaxCpus;
    TaskOptions o;
    o.name = name;
    o.affinity = &allowed;
    return task_create(spin_and_note, &m, o);
}

struct Sleeper {
    uint64_t asked_ns = 0, slept_ns = 0;
    uint32_t armed_on = kMaxCpus, woke_on = kMaxCpus;
};

void sleep_once(void* arg) {
    auto* s = static_cast<Sleeper*>(arg);
    const uint64_t t0 = monotonic_ns();
    s->armed_on = this_cpu()->cpu_id;
    sleep_for(s->asked_ns);
    s->slept_ns = monotonic_ns() - t0;
    s->woke_on = this_cpu()->cpu_id;
}

KTEST(hotplug, queued_tasks_and_pending_timers_move_with_it) {
    if (cpu_count() < 3) return ktest::skip("needs 3 CPUs");
    const uint32_t k = victim();
    CpuMask two; // the victim and cpu1: the tasks start on the victim and may only go to cpu1
    two.set(k);
    two.set(1);
    CpuMask only;
    only.set(k);
    // Two tasks pinned to cpu1 keep it busy enough that balancing leaves the victim's three
    // where they are until the offline moves them (a gap of one is not worth a move).
    static Mover ballast[2];
    Task* ballast_tasks[2];
    CpuMask cpu1;
    cpu1.set(1);
    for (uint32_t i = 0; i < 2; ++i) {
        ballast_tasks[i] = start_mover(ballast[i], "hotplug-ballast", cpu1);
        KASSERT(ballast_tasks[i] != nullptr);
    }
    constexpr uint32_t kSpinners = 3;
    static Mover movers[kSpinners];
    Task* spinners[kSpinners];
    for (uint32_t i = 0; i < kSpinners; ++i) {
        spinners[i] = start_mover(movers[i], "hotplug-spin", only);
        KASSERT(spinners[i] != nullptr);
    }
    Sleeper s;
    s.asked_ns = 300'000'000;
    TaskOptions so;
    so.name = "hotplug-sleep";
    so.affinity = &only;
    Task* sleeper = task_create(sleep_once, &s, so);
    KASSERT(sleeper != nullptr);
    // All on the victim; then allowed on cpu1 too (queued ones stay until the offline moves
    // them), and the sleeper's timer is armed on the victim.
    while (s.armed_on == kMaxCpus) sleep_for(1'000'000);
    for (uint32_t i = 0; i < kSpinners; ++i) task_set_affinity(spinners[i], two);
    task_set_affinity(sleeper, two);
    HotplugReport r;
    const HotplugError e = cpu_offline(k, &r);
    KEXPECT(e == HotplugError::None);
    // Every spinner runs again, on cpu1.
    uint64_t laps[kSpinners];
    for (uint32_t i = 0; i < kSpinners; ++i) laps[i] = movers[i].laps.load();
    const uint64_t deadline = monotonic_ns() + 20'000'000'000;
    bool all_ran = false;
    while (!all_ran && monotonic_ns() < deadline) {
        sleep_for(5'000'000);
        all_ran = true;
        for (uint32_t i = 0; i < kSpinners; ++i)
            all_ran = all_ran && movers[i].laps.load() > laps[i] + 1 && movers[i].last_cpu.load() == 1;
    }
    KEXPECT(all_ran);
    task_join(sleeper);
    for (uint32_t i = 0; i < kSpinners; ++i) movers[i].stop.store(true);
    for (uint32_t i = 0; i < kSpinners; ++i) task_join(spinners[i]);
    for (uint32_t i = 0; i < 2; ++i) ballast[i].stop.store(true);
    for (uint32_t i = 0; i < 2; ++i) task_join(ballast_tasks[i]);
    KEXPECT_EQ(s.armed_on, k);
    KEXPECT(s.woke_on != k);
    KEXPECT(s.slept_ns >= s.asked_ns);
    KEXPECT(r.timers_moved >= 1u);
    // (How many the evacuation moved varies: from the moment the CPU is marked going down, a
    // task switched out there leaves at its switch, before the worker gets to the rest.)
    if (e == HotplugError::None) KASSERT(cpu_online(k) == HotplugError::None);
    ktest::note("%u tasks and %u timers left cpu%u (timers to cpu%u); the sleeper asked for %lu "
                "ms, slept %lu ms, woke on cpu%u", r.tasks_moved, r.timers_moved, k, r.timer_cpu,
                s.asked_ns / 1'000'000, s.slept_ns / 1'000'000, s.woke_on);
}

// Remote calls queued to the CPU from every other CPU while it goes offline: each one that
// was accepted ran exactly once, on it; the others were refused with "offline".
struct CallStorm {
    uint32_t target = 0;
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> accepted{0}, refused{0}, ran{0}, ran_elsewhere{0}, other{0};
    std::atomic<uint32_t> senders_done{0};
};
CallStorm* g_storm = nullptr;

void storm_call(void*) {
    g_storm->ran.fetch_add(1, std::memory_order_relaxed);
    if (this_cpu()->cpu_id != g_storm->target)
        g_storm->ran_elsewhere.fetch_add(1, std::memory_order_relaxed);
}

void storm_sender(void*) {
    CallStorm& s = *g_storm;
    uint64_t i = 0;
    while (!s.stop.load(std::memory_order_relaxed)) {
        // Asynchronous ones up to the sender's credit (Busy when it is used up), and now and
        // then a synchronous one.
        const bool wait = ++i % 16 == 0;
        const CallStatus st = call_on(s.target, storm_call, nullptr, wait);
        if (st == CallStatus::Ok) s.accepted.fetch_add(1, std::memory_order_relaxed);
        else if (st == CallStatus::Offline) s.refused.fetch_add(1, std::memory_order_relaxed);
        else if (st != CallStatus::Busy) s.other.fetch_add(1, std::memory_order_relaxed);
        if (st != CallStatus::Ok) sleep_for(100'000);
    }
    s.senders_done.fetch_add(1);
}

KTEST(hotplug, calls_queued_to_a_departing_cpu_run_there_once_or_are_refused) {
    if (cpu_count() < 3) return ktest::skip("needs 3 CPUs");
    static CallStorm storm;
    storm.target = victim();
    storm.stop = false;
    storm.accepted = storm.refused = storm.ran = storm.ran_elsewhere = storm.other = 0;
    storm.senders_done = 0;
    g_storm = &storm;
    uint32_t senders = 0;
    Task* tasks[kMaxCpus];
    for (uint32_t c = 0; c + 1 < cpu_count(); ++c) {
        CpuMask only;
        only.set(c);
        TaskOptions o;
        o.name = "call-storm";
        o.affinity = &only;
        tasks[senders] = task_create(storm_sender, nullptr, o);
        KASSERT(tasks[senders] != nullptr);
        ++senders;
    }
    sleep_for(20'000'000);
    HotplugReport r;
    KASSERT(cpu_offline(storm.target, &r) == HotplugError::None);
    sleep_for(20'000'000); // senders see "offline" for a while
    storm.stop.store(true);
    for (uint32_t i = 0; i < senders; ++i) task_join(tasks[i]);
    const uint64_t accepted = storm.accepted.load(), ran = storm.ran.load();
    KEXPECT_EQ(ran, accepted);
    KEXPECT_EQ(storm.ran_elsewhere.load(), 0u);
    KEXPECT(storm.refused.load() > 0);
    KEXPECT_EQ(storm.other.load(), 0u);
    KASSERT(cpu_online(storm.target) == HotplugError::None);
    g_storm = nullptr;
    ktest::note("%u senders: %lu calls accepted and run once each on cpu%u, %lu refused as "
                "offline", senders, accepted, storm.target, storm.refused.load());
}

// A kernel mapping changed while the CPU is offline: the shootdown does not wait for it, and
// back online it reads the new frame, not a translation it cached before.
struct ReadVa {
    uint64_t va;
    uint64_t value;
};

void read_va(void* arg) {
    auto* r = static_cast<ReadVa*>(arg);
    r->value = *reinterpret_cast<volatile uint64_t*>(r->va);
}

uint64_t frame_with(uint64_t value) {
    const uint64_t f = pmm::alloc_zeroed_page();
    if (f != 0) *phys_to_virt<uint64_t>(f) = value;
    return f;
}

KTEST(hotplug, a_cpu_back_online_never_reads_a_stale_translation) {
    if (cpu_count() < 2) return ktest::skip("one CPU");
    const uint32_t k = victim();
    constexpr uint64_t kA = 0xa0a0'a0a0'0000'0001, kB = 0xb0b0'b0b0'0000'0002;
    const uint64_t a = frame_with(kA), b = frame_with(kB);
    KASSERT(a != 0 && b != 0);
    ReadVa r{layout::kMmioAreaBase + layout::kMmioAreaSize - 0xa00000, 0};
    KASSERT(vmm::map(r.va, a, layout::kPageSize, vmm::kRead | vmm::kWrite));
    KASSERT(call_on(k, read_va, &r, true) == CallStatus::Ok);
    KEXPECT_EQ(r.value, kA); // cached on k now
    KASSERT(cpu_offline(k) == HotplugError::None);
    KEXPECT_EQ(vmm::unmap(r.va, layout::kPageSize), uint64_t{1}); // does not wait for k
    KASSERT(vmm::map(r.va, b, layout::kPageSize, vmm::kRead | vmm::kWrite));
    KASSERT(cpu_online(k) == HotplugError::None);
    KASSERT(call_on(k, read_va, &r, true) == CallStatus::Ok);
    KEXPECT_EQ(r.value, kB);
    vmm::unmap(r.va, layout::kPageSize);
    pmm::free_pages(a);
    pmm::free_pages(b);
}

// Shootdowns from another CPU while the CPU goes and comes several times: none waits for it.
struct Remapper {
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> remaps{0};
    uint64_t va = 0, frame = 0;
};

void remap_loop(void* arg) {
    auto* m = static_cast<Remapper*>(arg);
    while (!m->stop.load()) {
        if (vmm::map(m->va, m->frame, layout::kPageSize, vmm::kRead | vmm::kWrite))
            vmm::unmap(m->va, layout::kPageSize); // a shootdown to every CPU online
        m->remaps.fetch_add(1);
    }
}

KTEST(hotplug, shootdowns_racing_with_offline_never_wait_for_it) {
    if (cpu_count() < 3) return ktest::skip("needs 3 CPUs");
    const uint32_t k = victim();
    static Remapper m;
    m.stop = false;
    m.remaps = 0;
    m.va = layout::kMmioAreaBase + layout::kMmioAreaSize - 0xc00000;
    m.frame = pmm::alloc_zeroed_page();
    KASSERT(m.frame != 0);
    CpuMask one;
    one.set(1);
    TaskOptions o;
    o.name = "remapper";
    o.affinity = &one;
    Task* t = task_create(remap_loop, &m, o);
    KASSERT(t != nullptr);
    constexpr uint32_t kCycles = 10;
    uint32_t done = 0;
    for (uint32_t i = 0; i < kCycles; ++i) {
        if (cpu_offline(k) != HotplugError::None) break;
        if (cpu_online(k) != HotplugError::None) break;
        ++done;
    }
    const uint64_t remaps = m.remaps.load();
    m.stop.store(true);
    task_join(t);
    pmm::free_pages(m.frame);
    KEXPECT_EQ(done, kCycles);
    KEXPECT(remaps > 0);
    KEXPECT(all_online());
    ktest::note("%u offline/online cycles of cpu%u beside %lu remaps with shootdowns", done, k,
                remaps);
}

// No machine-wide stop: on an otherwise idle machine, an offline and an online interrupt only
// the CPUs they involve (the initiator, the CPU itself and, for an offline, the one that takes
// its timers), however many CPUs there are. Counted by interrupts taken, not by time.
uint32_t disturbed_since(const uint64_t* before, uint32_t skip_a, uint32_t skip_b,
                         uint32_t* first) {
    uint32_t n = 0;
    *first = kMaxCpus;
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        if (c == skip_a || c == skip_b) continue;
        if (cpu_by_id(c)->counters.interrupts.load() != before[c]) {
            if (*first == kMaxCpus) *first = c;
            ++n;
        }
    }
    return n;
}

KTEST(hotplug, an_offline_interrupts_only_the_cpus_it_involves) {
    if (cpu_count() < 4) return ktest::skip("needs 4 CPUs");
    const uint32_t k = victim();
    static uint64_t before[kMaxCpus];
    sleep_for(20'000'000); // let the previous tests' tasks and timers die down
    for (uint32_t c = 0; c < cpu_count(); ++c) before[c] = cpu_by_id(c)->counters.interrupts.load();
    HotplugReport r;
    KASSERT(cpu_offline(k, &r) == HotplugError::None);
    uint32_t first = kMaxCpus;
    // cpu0 initiates; the timer heir may be kicked to reprogram its timer.
    const bool heir_counted = r.timer_cpu != 0 && r.timer_cpu != k &&
                              cpu_by_id(r.timer_cpu)->counters.interrupts.load() != before[r.timer_cpu];
    const uint32_t off = disturbed_since(before, 0, k, &first) - (heir_counted ? 1 : 0);
    for (uint32_t c = 0; c < cpu_count(); ++c) before[c] = cpu_by_id(c)->counters.interrupts.load();
    KASSERT(cpu_online(k) == HotplugError::None);
    uint32_t first_on = kMaxCpus;
    const uint32_t on = disturbed_since(before, 0, k, &first_on);
    KEXPECT_EQ(off, 0u);
    KEXPECT_EQ(on, 0u);
    ktest::note("of %u CPUs, besides cpu0, cpu%u and its timers' heir: %u interrupted by the "
                "offline (first cpu%u), %u by the online (first cpu%u)", cpu_count(), k, off,
                first == kMaxCpus ? 0 : first, on, first_on == kMaxCpus ? 0 : first_on);
}

KTEST(hotplug, every_cpu_goes_offline_and_back_in_turn) {
    if (cpu_count() < 2) return ktest::skip("one CPU");
    uint32_t cycled = 0;
    for (uint32_t k = 1; k < cpu_count(); ++k) {
        if (!cpu_by_id(k)->online.load()) continue;
        KEXPECT(cpu_offline(k) == HotplugError::None);
        KEXPECT(cpu_online(k) == HotplugError::None);
        uint32_t ran_on = kMaxCpus;
        KEXPECT(call_on(k, note_cpu, &ran_on, true) == CallStatus::Ok);
        KEXPECT_EQ(ran_on, k);
        ++cycled;
    }
    KEXPECT(all_online());
    ktest::note("%u CPUs went offline and came back, one after another", cycled);
}

// Cycles of one CPU, each followed by a look at its clocks: its TSC reads between two reads
// of ours (it came back in step), and a sleep there lasts at least what it asked (its LAPIC
// timer runs at the rate calibrated at boot, not faster).
struct ClockCheck {
    uint64_t read = 0;
    uint64_t slept = 0;
};

void read_clock(void* arg) { static_cast<ClockCheck*>(arg)->read = monotonic_ns(); }

void sleep_there(void* arg) {
    const uint64_t t0 = monotonic_ns();
    sleep_for(200'000);
    static_cast<ClockCheck*>(arg)->slept = monotonic_ns() - t0;
}

KTEST(hotplug, cycles_of_one_cpu_keep_its_tsc_and_timer_right) {
    if (cpu_count() < 2) return ktest::skip("one CPU");
    const uint32_t k = victim();
    const uint64_t cycles = param_u64("test.hotplug_cycles", 200);
    uint64_t done = 0, tsc_bad = 0, timer_bad = 0, worst_us = 0;
    for (uint64_t i = 0; i < cycles; ++i) {
        HotplugReport off, on;
        if (cpu_offline(k, &off) != HotplugError::None) break;
        if (cpu_online(k, &on) != HotplugError::None) break;
        const uint64_t us = off.duration_us + on.duration_us;
        if (us > worst_us) worst_us = us;
        ClockCheck c;
        const uint64_t before = monotonic_ns();
        if (call_on(k, read_clock, &c, true) != CallStatus::Ok) break;
        const uint64_t after = monotonic_ns();
        tsc_bad += c.read < before || c.read > after;
        if (run_on(k, sleep_there, &c) != CallStatus::Ok) break;
        timer_bad += c.slept < 200'000;
        ++done;
    }
    KEXPECT_EQ(done, cycles);
    KEXPECT_EQ(tsc_bad, 0u);
    KEXPECT_EQ(timer_bad, 0u);
    KEXPECT(all_online());
    ktest::note("%lu cycles of cpu%u (test.hotplug_cycles), the slowest %lu us; TSC out of step "
                "%lu times, a sleep cut short %lu times", done, k, worst_us, tsc_bad, timer_bad);
}

// --- torture: CPUs go and come under load (test=stress.*) ----------------------------------

uint64_t xorshift(uint64_t& x) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

struct Churn {
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> sync_ok{0}, sync_bad{0}, refused{0}, async_made{0}, async_ran{0};
    std::atomic<uint64_t> sleeps{0}, early{0}, children{0}, child_failures{0};
    std::atomic<uint64_t> reads{0}, stale{0};
    std::atomic<uint32_t> workers_done{0};
    uint64_t va = 0;      // a kernel page remapped by cpu0 between two tagged frames
    uint64_t frames[2] = {};
    std::atomic<uint64_t> gen{0}; // odd while changing
};
Churn* g_churn = nullptr;

void churn_count(void* arg) { static_cast<std::atomic<uint32_t>*>(arg)->fetch_add(1); }
void churn_async(void*) { g_churn->async_ran.fetch_add(1); }
void churn_child(void*) { sleep_for(100'000); }

void churn_read(void* arg) {
    auto* r = static_cast<ReadVa*>(arg);
    r->value = *reinterpret_cast<volatile uint64_t*>(r->va);
}

void churn_worker(void* arg) {
    Churn& c = *g_churn;
    uint64_t rng = 0x2545'f491'4f6c'dd1dull ^ reinterpret_cast<uintptr_t>(arg) ^ monotonic_ns();
    while (!c.stop.load(std::memory_order_relaxed)) {
        const uint32_t target = static_cast<uint32_t>(xorshift(rng) % cpu_count());
        switch (xorshift(rng) % 5) {
        case 0: { // a synchronous call, to a CPU that may be offline
            std::atomic<uint32_t> runs{0};
            const CallStatus st = call_on(target, churn_count, &runs, true);
            if (st == CallStatus::Ok && runs.load() == 1) c.sync_ok.fetch_add(1);
            else if (st == CallStatus::Offline && runs.load() == 0) c.refused.fetch_add(1);
            else c.sync_bad.fetch_add(1);
            break;
        }
        case 1: { // an asynchronous one: accepted means it runs
            const CallStatus st = call_on(target, churn_async, nullptr, false);
            if (st == CallStatus::Ok) c.async_made.fetch_add(1);
            else if (st == CallStatus::Offline) c.refused.fetch_add(1);
            break;
        }
        case 2: { // a short sleep: never early, wherever the timer ends up
            const uint64_t ns = 20'000 + xorshift(rng) % 300'000;
            const uint64_t t0 = monotonic_ns();
            sleep_for(ns);
            c.sleeps.fetch_add(1);
            if (monotonic_ns() - t0 < ns) c.early.fetch_add(1);
            break;
        }
        case 3: { // a child task, placed anywhere
            TaskOptions o;
            o.name = "churn-child";
            Task* t = task_create(churn_child, nullptr, o);
            if (t == nullptr) {
                c.child_failures.fetch_add(1);
                break;
            }
            task_join(t);
            c.children.fetch_add(1);
            break;
        }
        default: { // read the remapped page here (wherever this task runs now): a fault only
                   // while it was changing, a value only of a version mapped meanwhile
            const uint64_t g1 = c.gen.load(std::memory_order_acquire);
            ReadVa r{c.va, 0};
            FaultInfo f{};
            const bool faulted = run_catching_faults(churn_read, &r, &f);
            const uint64_t g2 = c.gen.load(std::memory_order_acquire);
            c.reads.fetch_add(1);
            if (faulted) {
                if (g1 == g2 && g1 % 2 == 0) c.stale.fetch_add(1);
                break;
            }
            const uint64_t version = r.value & 0xffff'ffff;
            if ((r.value >> 32) != 0xc0de || version < g1 / 2 || version > (g2 + 1) / 2)
                c.stale.fetch_add(1);
            break;
        }
        }
    }
    c.workers_done.fetch_add(1);
}

// The churn load: one unpinned worker per CPU id making calls, sleeping, starting children and
// reading a page cpu0 may remap, while CPUs come and go.
struct ChurnRun {
    Churn& c;
    uint64_t tasks_before = 0;
    uint32_t n = 0;
    Task* workers[kMaxCpus] = {};
};

bool churn_start(ChurnRun& run) {
    Churn& c = run.c;
    c.stop = false;
    c.sync_ok = c.sync_bad = c.refused = c.async_made = c.async_ran = 0;
    c.sleeps = c.early = c.children = c.child_failures = c.reads = c.stale = 0;
    c.workers_done = 0;
    c.gen = 0;
    g_churn = &c;
    run.tasks_before = sched_live_tasks();
    c.va = layout::kMmioAreaBase + layout::kMmioAreaSize - 0xe00000;
    for (uint64_t i = 0; i < 2; ++i) {
        c.frames[i] = pmm::alloc_zeroed_page();
        if (c.frames[i] == 0) return false;
    }
    *phys_to_virt<uint64_t>(c.frames[0]) = uint64_t{0xc0de} << 32;
    if (!vmm::map(c.va, c.frames[0], layout::kPageSize, vmm::kRead)) return false;
    // Placement and balancing keep them moving as CPUs go.
    run.n = cpu_count();
    for (uint32_t i = 0; i < run.n; ++i) {
        TaskOptions o;
        o.name = "churn";
        run.workers[i] = task_create(churn_worker, reinterpret_cast<void*>(uintptr_t{i} + 1), o);
        if (run.workers[i] == nullptr) return false;
    }
    return true;
}

// cpu0 moves the page the workers read to its other frame.
void churn_remap(Churn& c) {
    const uint64_t version = c.gen.load() / 2 + 1;
    c.gen.fetch_add(1, std::memory_order_acq_rel);
    vmm::unmap(c.va, layout::kPageSize);
    *phys_to_virt<volatile uint64_t>(c.frames[version % 2]) = (uint64_t{0xc0de} << 32) | version;
    if (!vmm::map(c.va, c.frames[version % 2], layout::kPageSize, vmm::kRead)) c.stale.fetch_add(1);
    c.gen.fetch_add(1, std::memory_order_acq_rel);
}

// Stops the workers, waits for what they started, and checks nothing was lost or wrong.
// `cpu_tasks` is how many tasks CPUs that started for the first time meanwhile added (an idle
// task and a worker each, which stay).
void churn_stop_and_check(ChurnRun& run, uint64_t cpu_tasks = 0) {
    Churn& c = run.c;
    c.stop.store(true);
    for (uint32_t i = 0; i < run.n; ++i) task_join(run.workers[i]);
    const uint64_t limit = monotonic_ns() + 30'000'000'000;
    const uint64_t tasks_after = run.tasks_before + cpu_tasks;
    while ((c.async_ran.load() < c.async_made.load() || sched_live_tasks() > tasks_after) &&
           monotonic_ns() < limit)
        sleep_for(2'000'000);
    vmm::unmap(c.va, layout::kPageSize);
    pmm::free_pages(c.frames[0]);
    pmm::free_pages(c.frames[1]);
    g_churn = nullptr;
    KEXPECT_EQ(c.sync_bad.load(), 0u);
    KEXPECT_EQ(c.async_ran.load(), c.async_made.load());
    KEXPECT_EQ(c.early.load(), 0u);
    KEXPECT_EQ(c.stale.load(), 0u);
    KEXPECT_EQ(c.child_failures.load(), 0u);
    KEXPECT_EQ(sched_live_tasks(), tasks_after);
    ktest::note("load: %lu sync calls ran once, %lu calls refused as offline, %lu/%lu async ran; "
                "%lu sleeps (%lu early), %lu children, %lu checked reads (%lu stale)",
                c.sync_ok.load(), c.refused.load(), c.async_ran.load(), c.async_made.load(),
                c.sleeps.load(), c.early.load(), c.children.load(), c.reads.load(),
                c.stale.load());
}

// The torture run of CPU hotplug (test=stress.*, not in test=all): cpu0 takes random CPUs
// offline and back for stress.hotplug_seconds while the churn load runs everywhere.
KTEST_NOT_IN_ALL(stress, cpus_go_offline_and_back_under_load) {
    if (cpu_count() < 3) return ktest::skip("needs 3 CPUs");
    const uint64_t seconds = param_u64("stress.hotplug_seconds", 10);
    static Churn churn;
    static ChurnRun run{churn};
    KASSERT(churn_start(run));
    const uint32_t n = run.n;
    Churn& c = churn;
    uint64_t rng = monotonic_ns() | 1;
    uint64_t offlines = 0, onlines = 0, errors = 0, remaps = 0, most_offline = 0;
    const uint64_t end = monotonic_ns() + seconds * 1'000'000'000;
    while (monotonic_ns() < end) {
        // Heads: a random online CPU but cpu0 goes (while two others stay); tails: a random
        // offline one comes back.
        const bool go = xorshift(rng) % 2 == 0 ? cpus_online() > 2 : cpus_online() == n;
        uint32_t k = 1 + static_cast<uint32_t>(xorshift(rng) % (n - 1));
        for (uint32_t tries = 0; tries < n && cpu_by_id(k)->online.load() != go; ++tries)
            k = k + 1 < n ? k + 1 : 1;
        HotplugError e = HotplugError::None;
        if (go) {
            e = cpu_offline(k);
            offlines += e == HotplugError::None;
        } else {
            e = cpu_online(k);
            onlines += e == HotplugError::None;
        }
        if (e != HotplugError::None && errors++ < 4)
            ktest::note("cpu%u: %s", k, hotplug_error_name(e));
        if (cpu_count() - cpus_online() > most_offline) most_offline = cpu_count() - cpus_online();
        churn_remap(c);
        ++remaps;
        sleep_for(xorshift(rng) % 2'000'000);
    }
    for (uint32_t k = 1; k < n; ++k)
        if (!cpu_by_id(k)->online.load() && cpu_online(k) != HotplugError::None) ++errors;
    churn_stop_and_check(run);
    KEXPECT_EQ(errors, 0u);
    KEXPECT(all_online());
    KEXPECT(offlines > 0 && onlines > 0);
    ktest::note("%lu s on %u CPUs: %lu offlines and %lu onlines (up to %lu CPUs offline at once), "
                "%lu remaps", seconds, n, offlines, onlines, most_offline, remaps);
}

// ACPI hot-add and hot-remove, driven from the host: tools/hotplug-acpi-check (ctest
// kernel.hotplug.acpi) boots -smp 2,maxcpus=8, waits for the "ready" line, then device_adds
// test.acpi_adds CPUs and device_dels test.acpi_removes of them, checking after each step that
// the kernel's online set is QEMU's. Here: the churn load runs throughout, every event is
// handled, and the CPUs that came run work.
KTEST_MANUAL(hotplug, acpi_cpus_come_and_go_under_load) {
    const AcpiCpuHotplugStats s0 = acpi_cpu_hotplug_stats();
    if (!s0.active) ktest::note("ACPI CPU hotplug is not active (QEMU q35 with -smp N,maxcpus=M)");
    KASSERT(s0.active);
    const uint64_t adds = param_u64("test.acpi_adds", 6);
    const uint64_t removes = param_u64("test.acpi_removes", 5);
    const uint64_t timeout_s = param_u64("test.acpi_timeout_s", 300);
    const uint32_t online_before = cpus_online();
    uint32_t unstarted_before = 0;
    for (uint32_t i = 0; i < cpu_count(); ++i) unstarted_before += !sched_cpu_started(i);
    uint64_t calls_before[kMaxCpus];
    for (uint32_t i = 0; i < cpu_count(); ++i)
        calls_before[i] = cpu_by_id(i)->counters.calls_run.load();
    // test.acpi_load=0: no load (the device_add benchmark measures an idle machine).
    const bool load = param_bool("test.acpi_load", true);
    static Churn churn;
    static ChurnRun run{churn};
    if (load) KASSERT(churn_start(run));
    log_info("hotplug-acpi: ready for %lu adds and %lu removes (%u CPUs online, %u slots)", adds,
             removes, online_before, s0.slots);
    const uint64_t deadline = monotonic_ns() + timeout_s * 1'000'000'000;
    uint32_t most_online = online_before;
    AcpiCpuHotplugStats s = s0;
    while ((s.plugged - s0.plugged < adds || s.removed - s0.removed < removes) &&
           monotonic_ns() < deadline) {
        sleep_for(20'000'000);
        if (load) churn_remap(churn);
        if (cpus_online() > most_online) most_online = cpus_online();
        s = acpi_cpu_hotplug_stats();
    }
    // With test.acpi_wait_host=1 the host says when it has compared the last step ('!' on the
    // serial port): the run must not end while it still asks QEMU.
    if (param_bool("test.acpi_wait_host", false)) {
        uint8_t byte = 0;
        while (!(arch::console_serial_read(byte) && byte == '!') && monotonic_ns() < deadline)
            sleep_for(10'000'000);
        KEXPECT_EQ(byte, uint8_t{'!'});
    }
    // Work that reached every CPU now online: the plugged ones took calls too.
    uint32_t idle_plugged = 0;
    for (uint32_t i = 0; i < cpu_count(); ++i) {
        const CpuData* cpu = cpu_by_id(i);
        if (cpu->online.load() && cpu->counters.calls_run.load() == calls_before[i]) {
            ++idle_plugged;
            ktest::note("cpu%u is online but ran no remote call during the test", i);
        }
    }
    // CPUs that started for the first time (one that leaves keeps its tasks for its return).
    uint32_t unstarted_after = 0;
    for (uint32_t i = 0; i < cpu_count(); ++i) unstarted_after += !sched_cpu_started(i);
    if (load) churn_stop_and_check(run, 2 * uint64_t{unstarted_before - unstarted_after});
    KEXPECT_EQ(s.plugged - s0.plugged, adds);
    KEXPECT_EQ(s.removed - s0.removed, removes);
    KEXPECT_EQ(s.refused - s0.refused, 0u);
    KEXPECT_EQ(uint64_t{cpus_online()}, online_before + adds - removes);
    KEXPECT_EQ(uint64_t{most_online}, online_before + adds);
    if (load) KEXPECT_EQ(idle_plugged, 0u);
    ktest::note("%lu CPUs plugged in and %lu removed by QEMU (%lu SCIs); %u CPUs online at most",
                s.plugged - s0.plugged, s.removed - s0.removed, s.scis - s0.scis, most_online);
}

} // namespace
} // namespace cohort
