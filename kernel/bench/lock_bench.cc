// bench=locks: every online CPU hammers one lock for a fixed time, the locks taking turns over
// several rounds; prints the median acquisitions per second (and the slowest and fastest
// round) and the lock class statistics (contention, longest wait and hold, in TSC cycles).
#include <atomic>

#include "bench/bench.h"
#include "boot/params.h"
#include "debug/log.h"
#include "smp/call.h"
#include "smp/cpu.h"
#include "sync/cpu_relax.h"
#include "sync/lock_class.h"
#include "sync/mcs_lock.h"
#include "sync/park.h"
#include "sync/park_lock.h"
#include "sync/rwlock.h"
#include "sync/spinlock.h"
#include "test/ktest.h"
#include "time/clock.h"

namespace cohort {
namespace {

constexpr uint64_t kRunNs = 100'000'000;

LockClass g_ticket_class("bench.ticket");
LockClass g_mcs_class("bench.mcs");
LockClass g_park_class("bench.park");
LockClass g_rw_class("bench.rwlock");

struct Run {
    uint64_t deadline;
    std::atomic<uint64_t> acquisitions{0};
    uint64_t shared_counter = 0;
};

// One round: every online CPU runs `body` (one acquisition) until the deadline; returns
// acquisitions per second.
uint64_t hammer_once(uint64_t (*body)(Run&)) {
    static Run run;
    static uint64_t (*g_body)(Run&);
    g_body = body;
    run.acquisitions = 0;
    run.deadline = monotonic_ns() + kRunNs;
    const uint64_t t0 = monotonic_ns();
    ktest::run_on_all_cpus([](void*) {
        uint64_t n = 0;
        while (monotonic_ns() < run.deadline) n += g_body(run);
        run.acquisitions.fetch_add(n);
    }, nullptr);
    return run.acquisitions.load() * 1000000000 / (monotonic_ns() - t0);
}

struct Contender {
    const char* name;
    LockClass* cls;
    uint64_t (*body)(Run&);
};

// The locks take turns, round after round (bench.lock_rounds, default 5), and each reports its
// median round: a host that slows the emulator for a moment (another process, a host-core
// migration) costs every lock a round alike, instead of deciding a comparison between two
// single runs. The class statistics cover all rounds.
void hammer_rounds(const Contender* locks, uint32_t count) {
    constexpr uint32_t kMaxRounds = 15;
    const uint64_t asked = param_u64("bench.lock_rounds", 5);
    const uint32_t rounds = asked == 0 ? 1 : asked > kMaxRounds ? kMaxRounds : static_cast<uint32_t>(asked);
    uint64_t rate[8][kMaxRounds];
    for (uint32_t i = 0; i < count; ++i) locks[i].cls->reset_stats();
    for (uint32_t r = 0; r < rounds; ++r)
        for (uint32_t i = 0; i < count; ++i) rate[i][r] = hammer_once(locks[i].body);
    for (uint32_t i = 0; i < count; ++i) {
        uint64_t* x = rate[i];
        for (uint32_t a = 1; a < rounds; ++a) // insertion sort: at most 15 rounds
            for (uint32_t b = a; b > 0 && x[b - 1] > x[b]; --b) {
                const uint64_t t = x[b];
                x[b] = x[b - 1];
                x[b - 1] = t;
            }
        const LockStats st = locks[i].cls->stats();
        console_printf("bench: {\"name\":\"locks.%s\",\"cpus\":%u,\"acquisitions_per_s\":%lu,"
                       "\"min_per_s\":%lu,\"max_per_s\":%lu,\"rounds\":%u,\"contended\":%lu,"
                       "\"max_wait_cycles\":%lu,\"max_hold_cycles\":%lu}\n",
                       locks[i].name, cpus_online(), x[rounds / 2], x[0], x[rounds - 1], rounds,
                       st.contended, st.max_wait, st.max_hold);
    }
}

/// Handoff latency: CPU 0 holds the lock with CPU 1 queued behind it, stamps the TSC and
/// releases; CPU 1 stamps the TSC when it gets the lock. (QEMU's vCPUs share the host TSC; on
/// hardware the invariant TSC is synchronised across cores.)
template <typename Lock, typename Acquire, typename Release>
void handoff(const char* name, Lock& lock, Acquire acquire, Release release) {
    constexpr uint32_t kRuns = 200;
    static uint64_t samples[kRuns];
    if (cpus_online() < 2) return;
    struct Shared {
        std::atomic<uint32_t> round{0};
        std::atomic<bool> waiting{false};
        std::atomic<uint64_t> released_at{0};
        std::atomic<bool> done{false};
    };
    static Shared sh;
    sh.round = 0;
    sh.done = false;
    static Lock* g_lock;
    static Acquire* g_acq;
    static Release* g_rel;
    g_lock = &lock;
    g_acq = &acquire;
    g_rel = &release;
    // CPU 1: for each round, queue on the lock and report how long the handoff took.
    run_on_async(1, [](void*) {
        for (uint32_t r = 0; r < kRuns; ++r) {
            while (sh.round.load(std::memory_order_acquire) != r * 2 + 1) cpu_relax();
            sh.waiting.store(true, std::memory_order_release);
            (*g_acq)(*g_lock);
            const uint64_t now = __builtin_ia32_rdtsc();
            samples[r] = now - sh.released_at.load(std::memory_order_acquire);
            (*g_rel)(*g_lock);
            sh.round.store(r * 2 + 2, std::memory_order_release);
        }
        sh.done.store(true, std::memory_order_release);
    }, nullptr);
    for (uint32_t r = 0; r < kRuns; ++r) {
        (*g_acq)(lock);
        sh.waiting.store(false, std::memory_order_relaxed);
        sh.round.store(r * 2 + 1, std::memory_order_release);
        while (!sh.waiting.load(std::memory_order_acquire)) cpu_relax();
        for (int i = 0; i < 200; ++i) cpu_relax(); // let CPU 1 reach the lock's wait loop
        sh.released_at.store(__builtin_ia32_rdtsc(), std::memory_order_release);
        (*g_rel)(lock);
        while (sh.round.load(std::memory_order_acquire) != r * 2 + 2) cpu_relax();
    }
    while (!sh.done.load(std::memory_order_acquire)) cpu_relax();
    uint64_t median = 0, p99 = 0;
    kbench::summarize(samples, kRuns, &median, &p99);
    console_printf("bench: {\"name\":\"locks.%s_handoff\",\"cpus\":%u,\"median_cycles\":%lu,"
                   "\"p99_cycles\":%lu,\"runs\":%u}\n",
                   name, cpus_online(), median, p99, kRuns);
}

SpinLock g_ticket(&g_ticket_class);
MCSLock g_mcs(&g_mcs_class);
ParkLock g_parklock(&g_park_class);
RwLock g_rw(&g_rw_class);

KBENCH(locks) {
    SpinLock& ticket = g_ticket;
    MCSLock& mcs = g_mcs;
    ParkLock& parklock = g_parklock;
    RwLock& rw = g_rw;
    parklock.reset_stats();
    const uint64_t kicks0 = park::kicks_sent();
    static const Contender kLocks[] = {
        {"ticket", &g_ticket_class,
         [](Run& r) -> uint64_t {
             Guard<SpinLock, IrqSave> g(g_ticket);
             ++r.shared_counter;
             return 1;
         }},
        {"mcs", &g_mcs_class,
         [](Run& r) -> uint64_t {
             Guard<MCSLock, IrqSave> g(g_mcs);
             ++r.shared_counter;
             return 1;
         }},
        {"park", &g_park_class,
         [](Run& r) -> uint64_t {
             Guard<ParkLock, IrqSave> g(g_parklock);
             ++r.shared_counter;
             return 1;
         }},
    };
    hammer_rounds(kLocks, 3);
    log_info("bench: locks.park: %lu parks, %lu wake-ups that interrupted a halt, %lu direct "
             "handovers, %lu taken by the pending CPU, longest wait %u acquisitions queued "
             "and %u pending", parklock.parks(), park::kicks_sent() - kicks0,
             parklock.handovers(), parklock.pending_takes(), parklock.max_wait_acquisitions(),
             parklock.max_pending_wait());
    // The reader-writer lock's two mixes share a lock class: they take turns in rounds of
    // their own.
    static const Contender kRead[] = {{"rwlock_read_mostly", &g_rw_class, [](Run& r) -> uint64_t {
        // One write in 16, chosen per CPU so the choice itself shares nothing.
        static uint32_t round[4096];
        if ((++round[this_cpu()->cpu_id] & 15) == 0) {
            WriteGuard<RwLock, IrqSave> g(g_rw);
            ++r.shared_counter;
        } else {
            ReadGuard<RwLock, IrqSave> g(g_rw);
            (void)r.shared_counter;
        }
        return 1;
    }}};
    hammer_rounds(kRead, 1);
    static const Contender kWrite[] = {{"rwlock_write_heavy", &g_rw_class, [](Run& r) -> uint64_t {
        WriteGuard<RwLock, IrqSave> g(g_rw);
        ++r.shared_counter;
        return 1;
    }}};
    hammer_rounds(kWrite, 1);
    handoff("ticket", ticket, [](SpinLock& l) COHORT_NO_THREAD_SAFETY_ANALYSIS { l.lock(); },
            [](SpinLock& l) COHORT_NO_THREAD_SAFETY_ANALYSIS { l.unlock(); });
    static MCSLock::Node node0, node1;
    handoff("mcs", mcs,
            [](MCSLock& l) COHORT_NO_THREAD_SAFETY_ANALYSIS {
                l.lock(this_cpu()->cpu_id == 0 ? node0 : node1);
            },
            [](MCSLock& l) COHORT_NO_THREAD_SAFETY_ANALYSIS {
                l.unlock(this_cpu()->cpu_id == 0 ? node0 : node1);
            });
    handoff("park", parklock, [](ParkLock& l) COHORT_NO_THREAD_SAFETY_ANALYSIS { l.lock(); },
            [](ParkLock& l) COHORT_NO_THREAD_SAFETY_ANALYSIS { l.unlock(); });
    handoff("rwlock", rw, [](RwLock& l) COHORT_NO_THREAD_SAFETY_ANALYSIS { l.write_lock(); },
            [](RwLock& l) COHORT_NO_THREAD_SAFETY_ANALYSIS { l.write_unlock(); });
}

} // namespace
} // namespace cohort
