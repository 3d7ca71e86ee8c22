// Lock torture on every CPU at once, lock debugging reports, and concurrent allocation.
// Each torture test has every CPU complete the same number of acquisitions (fairness as a count:
// a starved CPU never finishes, and the test says which) and prints one line per lock type:
// total acquisitions, how far apart the CPUs finished (the spread), and the invariant
// violations seen (must be 0). No verdict depends on how fast the host runs the vCPUs.
#include <new>
#include <atomic>

#include "arch/x86/cpu.h"
#include "debug/log.h"
#include "lib/format.h"
#include "mm/caches.h"
#include "mm/heap.h"
#include "mm/phys.h"
#include "mm/pmm.h"
#include "smp/call.h"
#include "smp/cpu.h"
#include "smp/cpumask.h"
#include "sync/barrier.h"
#include "sync/cpu_relax.h"
#include "sync/lock_class.h"
#include "sync/lock_debug.h"
#include "sync/mcs_lock.h"
#include "sync/park.h"
#include "sync/park_lock.h"
#include "sync/rwlock.h"
#include "sync/seqlock.h"
#include "sync/spinlock.h"
#include "test/ktest.h"
#include "time/clock.h"

namespace cohort {
namespace {

constexpr uint64_t kTortureNs = 150'000'000; // the seqlock test, which has no fairness to show

/// Acquisitions each CPU completes: about 400 in all per lock type (at least 20 each) up to 32
/// CPUs, then one or two each. A fair lock hands over only as fast as the host runs the next waiter's vCPU: with
/// 255 vCPUs on two host cores that is some ten handovers a second, so the count, not a time,
/// bounds the run.
uint64_t acquisitions_per_cpu() {
    const uint32_t n = cpus_online();
    if (n > 64) return 1;
    if (n > 32) return 2;
    const uint64_t each = 400 / (n == 0 ? 1 : n);
    return each < 20 ? 20 : each;
}

/// Data a lock protects: a, b and c always satisfy b == 2a and c == a + b between critical
/// sections, and `inside` counts CPUs in the critical section (must never exceed 1).
struct Protected {
    uint64_t a = 0, b = 0, c = 0;
    std::atomic<uint32_t> inside{0};
};

struct Torture {
    void reset() {
        target = acquisitions_per_cpu();
        data.a = data.b = data.c = 0;
        data.inside = 0;
        violations = 0;
        for (uint32_t i = 0; i < kMaxCpus; ++i) {
            per_cpu[i] = reads_per_cpu[i] = 0;
            finished_ns[i] = 0;
        }
    }
    uint64_t target; // acquisitions (writes, for the rwlock) each CPU completes
    Protected data;
    std::atomic<uint64_t> violations{0};
    uint64_t per_cpu[kMaxCpus];
    uint64_t reads_per_cpu[kMaxCpus];
    uint64_t finished_ns[kMaxCpus]; // after the start, when this CPU completed its share
};

void critical(Torture& t) {
    if (t.data.inside.fetch_add(1, std::memory_order_relaxed) != 0) t.violations.fetch_add(1);
    Protected& d = t.data;
    if (d.b != 2 * d.a || d.c != d.a + d.b) t.violations.fetch_add(1);
    const uint64_t a = d.a + 1;
    d.a = a;
    for (int i = 0; i < 20; ++i) cpu_relax(); // widen the window a second holder would hit
    d.b = 2 * a;
    d.c = a + d.b;
    t.data.inside.fetch_sub(1, std::memory_order_relaxed);
}

void report(const char* name, Torture& t) {
    uint64_t total = 0, first = UINT64_MAX, last = 0;
    uint32_t short_of_target = 0;
    for (uint32_t i = 0; i < cpu_count(); ++i) {
        if (!cpu_by_id(i)->online.load()) continue;
        total += t.per_cpu[i];
        if (t.per_cpu[i] != t.target) {
            if (++short_of_target <= 4)
                ktest::note("%s: cpu%u completed %lu of %lu acquisitions", name, i, t.per_cpu[i],
                            t.target);
            continue;
        }
        first = t.finished_ns[i] < first ? t.finished_ns[i] : first;
        last = t.finished_ns[i] > last ? t.finished_ns[i] : last;
    }
    ktest::note("%s: %lu acquisitions on %u CPUs (%lu each); first CPU done after %lu ms, last "
                "after %lu ms; %lu violations",
                name, total, cpus_online(), t.target, first / 1'000'000, last / 1'000'000,
                t.violations.load());
    KEXPECT_EQ(t.violations.load(), uint64_t{0});
    KEXPECT_EQ(short_of_target, 0u); // every CPU got its share: nobody starved
    KEXPECT_EQ(t.data.a, total);
}

// Every CPU runs body(me) until it has done t.target acquisitions (the body counts them in
// t.per_cpu). Waiting CPUs answer remote calls as they spin, so the run_on_many gathering them
// cannot itself be held up by a CPU that finished early.
template <typename Body>
void torture(Torture& t, Body body) {
    static Body* g_body;
    static Torture* g_t;
    static uint64_t g_start;
    g_body = &body;
    g_t = &t;
    g_start = monotonic_ns();
    KEXPECT(ktest::run_on_all_cpus([](void*) {
        const uint32_t me = this_cpu()->cpu_id;
        while (g_t->per_cpu[me] < g_t->target) (*g_body)(me);
        g_t->finished_ns[me] = monotonic_ns() - g_start;
    }, nullptr));
}

KTEST(locks, ticket_torture) {
    static Torture t;
    t.reset();
    static SpinLock lock;
    torture(t, [](uint32_t me) {
        Guard<SpinLock, IrqSave> g(lock);
        critical(t);
        ++t.per_cpu[me];
    });
    report("ticket", t);
}

KTEST(locks, mcs_torture) {
    static Torture t;
    t.reset();
    static MCSLock lock;
    torture(t, [](uint32_t me) {
        Guard<MCSLock, IrqSave> g(lock);
        critical(t);
        ++t.per_cpu[me];
    });
    report("mcs", t);
}

KTEST(locks, park_torture) {
    // Half the acquisitions with interrupts off (a parked waiter is woken by an NMI), half with
    // them on (by an IPI): both ways of parking and waking, on every CPU at once.
    static Torture t;
    t.reset();
    // Ten times the FIFO locks' share: enough contention for waiters to park, which this lock
    // makes cheap even with many more vCPUs than host cores.
    t.target *= 10;
    static ParkLock lock;
    lock.reset_stats();
    const uint64_t kicks0 = park::kicks_sent();
    torture(t, [](uint32_t me) {
        if (t.per_cpu[me] % 2 == 0) {
            Guard<ParkLock, IrqSave> g(lock);
            critical(t);
            ++t.per_cpu[me];
        } else {
            Guard<ParkLock, NoIrq> g(lock);
            critical(t);
            ++t.per_cpu[me];
        }
    });
    report("park", t);
    const uint32_t n = cpus_online();
    const uint32_t bound = (n - 1) * (ParkLock::kMaxSteals + 1) + ParkLock::kMaxSteals;
    ktest::note("park: %lu parks, %lu wake-ups that interrupted a halt, longest wait %u "
                "acquisitions once queued (bound %u), %u while pending (bounded in time, not "
                "acquisitions: a pending CPU the host does not run blocks nobody)", lock.parks(),
                park::kicks_sent() - kicks0, lock.max_wait_acquisitions(), bound,
                lock.max_pending_wait());
    KEXPECT(lock.max_wait_acquisitions() <= bound);
    KEXPECT_EQ(lock.waiters(), 0u);
}

KTEST(locks, rwlock_torture) {
    static Torture t;
    t.reset();
    static RwLock lock;
    torture(t, [](uint32_t me) {
        // One write in four; readers check the invariant and that no writer is inside.
        if ((t.reads_per_cpu[me] + t.per_cpu[me]) % 4 == 0) {
            WriteGuard<RwLock, IrqSave> g(lock);
            critical(t);
            ++t.per_cpu[me];
        } else {
            ReadGuard<RwLock, IrqSave> g(lock);
            const Protected& d = t.data;
            if (d.inside.load(std::memory_order_relaxed) != 0 || d.b != 2 * d.a || d.c != d.a + d.b)
                t.violations.fetch_add(1);
            ++t.reads_per_cpu[me];
        }
    });
    uint64_t reads = 0;
    for (uint32_t i = 0; i < cpu_count(); ++i) reads += t.reads_per_cpu[i];
    ktest::note("rwlock: %lu read acquisitions", reads);
    report("rwlock (writes)", t);
}

KTEST(locks, barrier_rounds) {
    static Barrier* barrier;
    static Barrier storage(1);
    const uint32_t n = cpus_online();
    barrier = new (&storage) Barrier(n);
    static std::atomic<uint32_t> arrived;
    static std::atomic<uint64_t> violations;
    static std::atomic<uint64_t> serial;
    arrived = 0;
    violations = 0;
    serial = 0;
    // Each round needs every CPU to run: fewer rounds where there are many (a 255-vCPU round
    // waits for 255 host threads to be scheduled in turn).
    static uint32_t g_rounds;
    g_rounds = n <= 8 ? 200 : n <= 64 ? 10 : 4;
    static uint32_t participants;
    participants = n;
    KEXPECT(ktest::run_on_all_cpus([](void*) {
        for (uint32_t r = 0; r < g_rounds; ++r) {
            arrived.fetch_add(1);
            if (barrier->wait()) serial.fetch_add(1);
            // Nobody passes round r before everybody arrived at it.
            if (arrived.load() < (r + 1) * participants) violations.fetch_add(1);
            barrier->wait();
        }
    }, nullptr));
    ktest::note("barrier: %u rounds on %u CPUs, %lu violations", g_rounds, n, violations.load());
    KEXPECT_EQ(violations.load(), uint64_t{0});
    KEXPECT_EQ(serial.load(), uint64_t{g_rounds});
}

KTEST(locks, seqlock_readers_never_see_torn_data) {
    struct Pair {
        uint64_t x, y; // y == ~x always
    };
    static SeqLocked<Pair> value;
    value.store(Pair{0, ~uint64_t{0}});
    static uint64_t deadline;
    static std::atomic<uint64_t> torn, reads, writes;
    torn = reads = writes = 0;
    deadline = monotonic_ns() + kTortureNs;
    KEXPECT(ktest::run_on_all_cpus([](void*) {
        uint64_t i = this_cpu()->cpu_id;
        while (monotonic_ns() < deadline) {
            if (this_cpu()->cpu_id == 0 && (++i % 8) == 0) {
                value.store(Pair{i, ~i});
                writes.fetch_add(1);
            } else {
                const Pair p = value.load();
                if (p.y != ~p.x) torn.fetch_add(1);
                reads.fetch_add(1);
            }
        }
    }, nullptr));
    ktest::note("seqlock: %lu reads, %lu writes, %lu torn", reads.load(), writes.load(), torn.load());
    KEXPECT_EQ(torn.load(), uint64_t{0});
}

// --- lock debugging in report mode ---------------------------------------------------------
#if COHORT_LOCK_DEBUG
LockReport g_last_report;
std::atomic<uint32_t> g_reports{0};
LockReporter g_kernel_reporter = nullptr;
void capture(const LockReport& r) {
    g_last_report = r;
    g_reports.fetch_add(1);
    // A long wait is only a warning in the kernel too: let its reporter fetch the holder's
    // backtrace, which the test then looks for.
    if (r.kind == LockReportKind::LongWait && g_kernel_reporter != nullptr) g_kernel_reporter(r);
    log_warn("lock (test, report mode): %s: lock at %s:%u, held lock taken at %s:%u",
             lock_report_kind_name(r.kind), r.site.file, r.site.line, r.held_site.file,
             r.held_site.line);
}

// The deliberate misuse below is exactly what -Wthread-safety exists to reject at compile time.
void take_twice(SpinLock& lock) COHORT_NO_THREAD_SAFETY_ANALYSIS {
    lock.lock();
    lock.lock(); // the bug under test: taking a lock we hold
    KEXPECT_EQ(g_reports.load(), 1u);
    KEXPECT(g_last_report.kind == LockReportKind::Recursion);
    KEXPECT(g_last_report.held_site.line != 0 &&
            g_last_report.site.line != g_last_report.held_site.line);
    lock.unlock(); // pairs with the skipped acquisition
    lock.unlock();
}

#endif

KTEST(locks, debug_reports_recursion_and_wrong_order) {
#if COHORT_LOCK_DEBUG
    const LockReporter previous = set_lock_reporter(capture);
    g_reports = 0;
    static SpinLock lock;
    take_twice(lock);
    KEXPECT(!lock.is_locked());

    static LockClass outer("test.outer", 10), inner("test.inner", 20);
    static SpinLock a(&outer), b(&inner);
    {
        Guard<SpinLock, IrqSave> ga(a);
        Guard<SpinLock, IrqSave> gb(b); // right order: no report
    }
    KEXPECT_EQ(g_reports.load(), 1u);
    {
        Guard<SpinLock, IrqSave> gb(b);
        Guard<SpinLock, IrqSave> ga(a); // wrong order
    }
    KEXPECT_EQ(g_reports.load(), 2u);
    KEXPECT(g_last_report.kind == LockReportKind::OrderViolation);
    KEXPECT(g_last_report.held_cls == &inner && g_last_report.cls == &outer);
    set_lock_reporter(previous);
#else
    ktest::skip("lock debugging is compiled out of release kernels");
#endif
}

#if COHORT_LOCK_DEBUG
struct Holder {
    SpinLock* lock;
    std::atomic<bool> holding{false};
    uint64_t hold_ns;
};
void hold_for_a_while(void* arg) {
    auto* h = static_cast<Holder*>(arg);
    Guard<SpinLock, IrqSave> g(*h->lock);
    h->holding.store(true);
    const uint64_t end = monotonic_ns() + h->hold_ns;
    while (monotonic_ns() < end) cpu_relax();
}

#endif

KTEST(locks, long_wait_is_reported_with_the_holder) {
#if COHORT_LOCK_DEBUG
    if (cpus_online() < 2) return ktest::skip("needs 2 CPUs");
    const LockReporter previous = set_lock_reporter(capture);
    g_kernel_reporter = previous;
    g_reports = 0;
    const uint64_t mark = log_mark();
    lock_report_reset_rate_limits(); // a long wait elsewhere a moment ago must not mute ours
    set_lock_wait_limit(tsc_hz() / 100); // 10 ms
    static SpinLock lock;
    static Holder h;
    h.lock = &lock;
    h.holding = false;
    h.hold_ns = 200'000'000;
    KASSERT(run_on_async(1, hold_for_a_while, &h) == CallStatus::Ok);
    while (!h.holding.load()) cpu_relax();
    {
        Guard<SpinLock, IrqSave> g(lock); // waits up to 200 ms: reported after 10
    }
    set_lock_wait_limit(tsc_hz() * 2);
    set_lock_reporter(previous);
    KEXPECT_EQ(g_reports.load(), 1u);
    KEXPECT(g_last_report.kind == LockReportKind::LongWait);
    KEXPECT_EQ(g_last_report.holder, 1u);
    KEXPECT(tsc_to_ns(g_last_report.waited) >= 10'000'000);
    g_kernel_reporter = nullptr;
    // The holder spun with interrupts off, so only an NMI could have fetched this, while cpu1
    // was still inside the critical section.
    KEXPECT(log_contains_since(mark, "cpu1: backtrace on request (holding the lock above)"));
    KEXPECT(log_contains_since(mark, "hold_for_a_while("));
#else
    ktest::skip("lock debugging is compiled out of release kernels");
#endif
}

#if COHORT_LOCK_DEBUG
SpinLock g_irq_test_lock;
uint32_t g_irq_site_line = 0;
void take_in_handler(void*) {
    Guard<SpinLock, NoIrq> g(g_irq_test_lock); // a call-function IPI handler: interrupts off
    g_irq_site_line = __LINE__ - 1;
}
#endif

KTEST(locks, lock_taken_in_a_handler_and_with_interrupts_on_is_reported) {
#if COHORT_LOCK_DEBUG
    if (cpus_online() < 2) return ktest::skip("needs 2 CPUs (the handler runs on another)");
    KASSERT(x86::interrupts_enabled());
    // The lock remembers how it was used (and that it was reported): a fresh one per run.
    new (&g_irq_test_lock) SpinLock();
    const LockReporter previous = set_lock_reporter(capture);
    g_reports = 0;
    { Guard<SpinLock, NoIrq> g(g_irq_test_lock); } // the bug: interrupts stay on while held
    const uint32_t on_line = __LINE__ - 1;
    KEXPECT_EQ(g_reports.load(), 0u);
    KASSERT(call_on(1, take_in_handler, nullptr, true) == CallStatus::Ok);
    set_lock_reporter(previous);
    KEXPECT_EQ(g_reports.load(), 1u);
    KEXPECT(g_last_report.kind == LockReportKind::IrqUnsafe);
    KEXPECT_EQ(g_last_report.owner, 1u);
    KEXPECT_EQ(g_last_report.site.line, g_irq_site_line);
    KEXPECT_EQ(g_last_report.held_site.line, on_line);
#else
    ktest::skip("lock debugging is compiled out of release kernels");
#endif
}

// --- concurrent allocation -------------------------------------------------------------------
struct AllocStress {
    uint64_t deadline;
    std::atomic<uint64_t> errors{0}, pages{0}, objects{0};
};

void alloc_worker(void* arg) {
    auto* s = static_cast<AllocStress*>(arg);
    const uint32_t me = this_cpu()->cpu_id;
    struct Item {
        void* p;
        uint64_t phys;
        size_t size;
    };
    Item items[32] = {};
    uint64_t rng = 0x9e3779b97f4a7c15ull * (me + 1);
    auto next = [&] {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
    };
    // Every allocation is filled with a pattern naming this CPU and the slot: another CPU
    // writing into it (double allocation) or the allocator reusing it early shows up.
    auto pattern = [me](int slot, size_t i) { return static_cast<uint8_t>(me * 31 + slot * 7 + i); };
    auto release = [&](int slot) {
        Item& it = items[slot];
        const auto* bytes = static_cast<const uint8_t*>(it.p);
        for (size_t i = 0; i < it.size; i += 7)
            if (bytes[i] != pattern(slot, i)) {
                s->errors.fetch_add(1);
                break;
            }
        if (it.phys != 0) pmm::free_pages(it.phys, (it.size + 4095) / 4096);
        else kfree(it.p);
        it = {};
    };
    while (monotonic_ns() < s->deadline) {
        const int slot = static_cast<int>(next() % 32);
        if (items[slot].p != nullptr) {
            release(slot);
            continue;
        }
        Item it{};
        if (next() % 4 == 0) {
            const uint64_t pages = 1 + next() % 4;
            it.phys = pmm::alloc_pages(pages);
            if (it.phys == 0) continue;
            it.p = phys_to_virt<void>(it.phys);
            it.size = pages * 4096;
            s->pages.fetch_add(1);
        } else {
            it.size = 1 + next() % 3000;
            it.p = kmalloc(it.size);
            if (it.p == nullptr) continue;
            s->objects.fetch_add(1);
        }
        auto* bytes = static_cast<uint8_t*>(it.p);
        for (size_t i = 0; i < it.size; ++i) bytes[i] = pattern(slot, i);
        items[slot] = it;
    }
    for (int slot = 0; slot < 32; ++slot)
        if (items[slot].p != nullptr) release(slot);
}

KTEST(mm, smp_concurrent_allocation_returns_to_baseline) {
    mm_drain_caches();
    const uint64_t free_before = pmm::free_bytes();
    const auto heap_before = heap_stats();
    static AllocStress s;
    s.errors = s.pages = s.objects = 0;
    s.deadline = monotonic_ns() + 200'000'000;
    KEXPECT(ktest::run_on_all_cpus(alloc_worker, &s));
    mm_drain_caches();
    const auto heap_after = heap_stats();
    ktest::note("%lu page and %lu heap allocations on %u CPUs", s.pages.load(), s.objects.load(),
                cpus_online());
    KEXPECT_EQ(s.errors.load(), uint64_t{0});
    KEXPECT_EQ(heap_after.objects, heap_before.objects);
    KEXPECT_EQ(heap_after.pages, heap_before.pages);
    KEXPECT_EQ(heap_after.errors, heap_before.errors);
    KEXPECT_EQ(pmm::free_bytes(), free_before);
}

} // namespace
} // namespace cohort
