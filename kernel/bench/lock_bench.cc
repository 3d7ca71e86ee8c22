// bench=locks: every online CPU hammers one lock for a fixed time; prints acquisitions per
// second and the lock class statistics (contention, longest wait and hold, in TSC cycles).
#include <atomic>

#include "bench/bench.h"
#include "debug/log.h"
#include "smp/cpu.h"
#include "sync/lock_class.h"
#include "sync/mcs_lock.h"
#include "sync/rwlock.h"
#include "sync/spinlock.h"
#include "test/ktest.h"
#include "time/clock.h"

namespace cohort {
namespace {

constexpr uint64_t kRunNs = 100'000'000;

LockClass g_ticket_class("bench.ticket");
LockClass g_mcs_class("bench.mcs");
LockClass g_rw_class("bench.rwlock");

struct Run {
    uint64_t deadline;
    std::atomic<uint64_t> acquisitions{0};
    uint64_t shared_counter = 0;
};

template <typename Body>
void hammer(const char* name, LockClass& cls, Body body) {
    static Run run;
    static Body* g_body;
    g_body = &body;
    run.acquisitions = 0;
    cls.reset_stats();
    run.deadline = monotonic_ns() + kRunNs;
    const uint64_t t0 = monotonic_ns();
    ktest::run_on_all_cpus([](void*) {
        uint64_t n = 0;
        while (monotonic_ns() < run.deadline) n += (*g_body)(run);
        run.acquisitions.fetch_add(n);
    }, nullptr);
    const uint64_t ns = monotonic_ns() - t0;
    const LockStats st = cls.stats();
    console_printf("bench: {\"name\":\"locks.%s\",\"cpus\":%u,\"acquisitions_per_s\":%lu,"
                   "\"contended\":%lu,\"max_wait_cycles\":%lu,\"max_hold_cycles\":%lu}\n",
                   name, cpus_online(), run.acquisitions.load() * 1000000000 / ns, st.contended,
                   st.max_wait, st.max_hold);
}

KBENCH(locks) {
    static SpinLock ticket(&g_ticket_class);
    static MCSLock mcs(&g_mcs_class);
    static RwLock rw(&g_rw_class);
    hammer("ticket", g_ticket_class, [](Run& r) -> uint64_t {
        Guard<SpinLock, IrqSave> g(ticket);
        ++r.shared_counter;
        return 1;
    });
    hammer("mcs", g_mcs_class, [](Run& r) -> uint64_t {
        Guard<MCSLock, IrqSave> g(mcs);
        ++r.shared_counter;
        return 1;
    });
    hammer("rwlock_read_mostly", g_rw_class, [](Run& r) -> uint64_t {
        // One write in 16, chosen per CPU so the choice itself shares nothing.
        static uint32_t round[4096];
        if ((++round[this_cpu()->cpu_id] & 15) == 0) {
            WriteGuard<RwLock, IrqSave> g(rw);
            ++r.shared_counter;
        } else {
            ReadGuard<RwLock, IrqSave> g(rw);
            (void)r.shared_counter;
        }
        return 1;
    });
    hammer("rwlock_write_heavy", g_rw_class, [](Run& r) -> uint64_t {
        WriteGuard<RwLock, IrqSave> g(rw);
        ++r.shared_counter;
        return 1;
    });
}

} // namespace
} // namespace cohort
