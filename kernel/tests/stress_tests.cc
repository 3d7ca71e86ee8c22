// Torture mode: everything at once on every CPU for stress.seconds (default 20). Each CPU's
// worker cycles through remote calls, every lock kind, scheduler churn, page-table churn (kernel
// half and a private address space) and allocation churn, while a timer on every CPU takes the
// same locks in its interrupt handler and one CPU keeps memory close to exhaustion. Invariants
// are checked throughout (every read of a remapped page, every critical section, every call)
// and at the end (every call ran exactly once, memory and heap back to baseline, every CPU made
// progress in every kind). Lock-order, recursion and interrupt-safety reports panic the kernel
// (sync/lock_report.cc), UBSan reports fail the test (the harness); long lock waits, expected
// with many more vCPUs than host cores, are counted and reported.
//
// ctest runs it at 8 and 64 CPUs (kernel.stress.*); longer runs: tools/run --smp 255 --mem 1G --
// test=stress.* stress.seconds=120.
#include <atomic>

#include "arch/x86/cpu.h"
#include "boot/params.h"
#include "debug/fault_catcher.h"
#include "mm/caches.h"
#include "mm/address_space.h"
#include "mm/heap.h"
#include "mm/kstack.h"
#include "mm/layout.h"
#include "mm/phys.h"
#include "mm/pmm.h"
#include "mm/vmm.h"
#include "sched/sched.h"
#include "sched/wait.h"
#include "smp/call.h"
#include "smp/cpu.h"
#include "smp/cpumask.h"
#include "sync/cpu_relax.h"
#include "sync/lock_debug.h"
#include "sync/mcs_lock.h"
#include "sync/rwlock.h"
#include "sync/seqlock.h"
#include "sync/spinlock.h"
#include "test/ktest.h"
#include "time/clock.h"
#include "time/timer.h"

namespace cohort {
namespace {

enum Kind : uint32_t { kCalls, kLocks, kTasks, kPageTables, kAlloc, kIrqLocks, kKinds };
const char* const kKindNames[kKinds] = {"calls", "locks", "tasks", "page tables", "alloc",
                                        "irq locks"};

struct alignas(64) PerCpu {
    uint64_t ops[kKinds];
    uint64_t rng;
    Timer timer;
    Task* children[4];
    uint32_t next_child;
};

/// What the locks protect: b == 2a and c == a + b between critical sections.
struct Guarded {
    uint64_t a = 0, b = 0, c = 0;
};

struct Pair {
    uint64_t x, y; // y == ~x
};

/// One of each lock kind with the data it guards, shared by a group of kGroup CPUs: their
/// threads and their timer interrupts all take them. A group and not the whole machine, because
/// with many more vCPUs than host cores a fair lock hands over only as fast as the host runs
/// the next waiter (tens a second at 64 vCPUs on 2 cores): one lock for 255 CPUs' ticks would
/// measure the host's scheduler, not the kernel. Threads also visit other groups' locks.
constexpr uint32_t kGroup = 4;
struct LockSet {
    SpinLock ticket;
    MCSLock mcs;
    RwLock rw;
    SeqLocked<Pair> seq;
    Guarded ticket_data, mcs_data, rw_data;
};

constexpr uint32_t kSlots = 64; // kernel-half pages remapped under load (one per CPU, shared)
constexpr uint64_t kPrivateVa = 0x0000'4000'0000'0000;

struct Stress {
    uint64_t deadline;
    uint64_t grace_deadline; // past the deadline, for CPUs that have not done every kind yet
    std::atomic<bool> stop;
    PerCpu cpu[kMaxCpus];

    LockSet sets[kMaxCpus / kGroup];
    std::atomic<uint64_t> lock_violations;

    std::atomic<uint64_t> async_made, async_ran, sync_made, sync_bad, multicast_made;

    std::atomic<uint64_t> tasks_made, tasks_refused, task_sleeps, task_early;
    WaitQueue ping;
    std::atomic<uint64_t> ping_token;

    // Kernel-half slots: slot s maps frames[s][gen % 2] holding tag(s, version); gen odd while
    // it changes. Writers take a slot with its own flag, readers check every value.
    uint64_t slot_va;
    uint64_t frames[kSlots][2];
    std::atomic<uint64_t> gen[kSlots];
    std::atomic<bool> slot_busy[kSlots];
    // The private space: one page, remapped the same way, read by tasks running in it.
    AddressSpace* as;
    uint64_t pframes[2];
    std::atomic<uint64_t> pgen;
    std::atomic<bool> pbusy;
    std::atomic<uint64_t> reads, faults, stale;

    // Memory pressure (one CPU): frames threaded through themselves.
    uint64_t hoard;
    uint64_t hoarded;
    uint64_t low_water; // free bytes the hoarder leaves
    std::atomic<uint64_t> alloc_failures;
};
Stress g_s;

uint64_t next_random(uint64_t& x) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

uint32_t random_online_cpu(uint64_t& rng) {
    for (;;) {
        const uint32_t c = static_cast<uint32_t>(next_random(rng) % cpu_count());
        if (cpu_by_id(c)->online.load(std::memory_order_relaxed)) return c;
    }
}

uint64_t slot_tag(uint32_t slot, uint64_t version) {
    return (uint64_t{0x5157} << 48) | (uint64_t{slot} << 32) | version;
}

// --- locks, from threads and from interrupt handlers -------------------------------------------

void critical(Guarded& d) {
    if (d.b != 2 * d.a || d.c != d.a + d.b) g_s.lock_violations.fetch_add(1);
    const uint64_t a = d.a + 1;
    d.a = a;
    d.b = 2 * a;
    d.c = a + d.b;
}

void check_read(const Guarded& d) {
    if (d.b != 2 * d.a || d.c != d.a + d.b) g_s.lock_violations.fetch_add(1);
}

void lock_round(LockSet& l, bool write, uint64_t value) {
    {
        Guard<SpinLock, IrqSave> g(l.ticket);
        critical(l.ticket_data);
    }
    {
        Guard<MCSLock, IrqSave> g(l.mcs);
        critical(l.mcs_data);
    }
    if (write) {
        WriteGuard<RwLock, IrqSave> g(l.rw);
        critical(l.rw_data);
    } else {
        ReadGuard<RwLock, IrqSave> g(l.rw);
        check_read(l.rw_data);
    }
    if (write) {
        // Interrupts off: the timer's reader on this CPU would spin forever on a write it
        // interrupted (seqlock writers must keep out the readers that can preempt them).
        x86::InterruptGuard irq;
        l.seq.store(Pair{value, ~value});
    } else {
        const Pair p = l.seq.load();
        if (p.y != ~p.x) g_s.lock_violations.fetch_add(1);
    }
}

// The timer interrupt's share: this CPU's group's locks, read sides only for rwlock and seqlock
// (a writer in a handler is fine for the rwlock, but its readers elsewhere would then need
// interrupts off too, which the thread side here does not do for reads).
void irq_tick(Timer& t, void* arg) {
    auto& me = *static_cast<PerCpu*>(arg);
    if (g_s.stop.load(std::memory_order_relaxed)) return;
    lock_round(g_s.sets[this_cpu()->cpu_id / kGroup], false, 0);
    ++me.ops[kIrqLocks];
    timer_arm(t, monotonic_ns() + 10'000'000, irq_tick, arg);
}

void lock_op(PerCpu& me, uint32_t self) {
    const uint32_t groups = (cpu_count() + kGroup - 1) / kGroup;
    const uint32_t g = next_random(me.rng) % 4 == 0 ? static_cast<uint32_t>(next_random(me.rng) % groups)
                                                    : self / kGroup;
    lock_round(g_s.sets[g], next_random(me.rng) % 4 == 0, next_random(me.rng));
}

// --- remote calls ---------------------------------------------------------------------------

struct Token {
    std::atomic<uint32_t> runs{0};
};

void count_run(void* arg) { static_cast<Token*>(arg)->runs.fetch_add(1); }
void async_run(void*) { g_s.async_ran.fetch_add(1); }

void call_op(PerCpu& me, uint32_t self) {
    const uint32_t target = random_online_cpu(me.rng);
    switch (next_random(me.rng) % 3) {
    case 0: {
        Token t;
        if (call_on(target, count_run, &t, true) != CallStatus::Ok || t.runs.load() != 1)
            g_s.sync_bad.fetch_add(1);
        g_s.sync_made.fetch_add(1);
        break;
    }
    case 1:
        if (target != self && call_on(target, async_run, nullptr, false) == CallStatus::Ok)
            g_s.async_made.fetch_add(1);
        break;
    default: {
        CpuMask two;
        two.set(target);
        two.set(random_online_cpu(me.rng));
        std::atomic<uint32_t> runs{0};
        if (call_on_many(two, [](void* a) { static_cast<std::atomic<uint32_t>*>(a)->fetch_add(1); },
                         &runs, true) != CallStatus::Ok ||
            runs.load() != two.count())
            g_s.sync_bad.fetch_add(1);
        g_s.multicast_made.fetch_add(1);
        break;
    }
    }
}

// --- page tables ----------------------------------------------------------------------------

struct ReadArgs {
    volatile uint64_t* va;
    uint64_t value;
};

void read_word(void* arg) {
    auto* r = static_cast<ReadArgs*>(arg);
    r->value = *r->va;
}

// Reads `va` between two generation reads: a fault is allowed only while the page was changing,
// a value only of a version mapped at some moment in between (tlb_tests.cc explains the rule).
void checked_read(uint64_t va, const std::atomic<uint64_t>& gen, uint64_t tag_base) {
    const uint64_t g1 = gen.load(std::memory_order_acquire);
    ReadArgs r{reinterpret_cast<volatile uint64_t*>(va), 0};
    FaultInfo f{};
    const bool faulted = run_catching_faults(read_word, &r, &f);
    const uint64_t g2 = gen.load(std::memory_order_acquire);
    g_s.reads.fetch_add(1, std::memory_order_relaxed);
    if (faulted) {
        g_s.faults.fetch_add(1, std::memory_order_relaxed);
        if (g1 == g2 && g1 % 2 == 0) g_s.stale.fetch_add(1);
        return;
    }
    const uint64_t version = r.value & 0xffff'ffffull;
    if ((r.value & ~0xffff'ffffull) != tag_base || version < g1 / 2 || version > (g2 + 1) / 2)
        g_s.stale.fetch_add(1);
}

void remap_kernel_slot(uint32_t s) {
    bool expected = false;
    if (!g_s.slot_busy[s].compare_exchange_strong(expected, true)) return;
    const uint64_t va = g_s.slot_va + s * layout::kPageSize;
    const uint64_t version = g_s.gen[s].load() / 2 + 1;
    g_s.gen[s].fetch_add(1, std::memory_order_acq_rel); // odd: changing
    vmm::unmap(va, layout::kPageSize);                   // returns after every CPU flushed
    const uint64_t frame = g_s.frames[s][version % 2];
    *phys_to_virt<volatile uint64_t>(frame) = slot_tag(s, version);
    if (!vmm::map(va, frame, layout::kPageSize, vmm::kRead)) g_s.stale.fetch_add(1);
    g_s.gen[s].fetch_add(1, std::memory_order_acq_rel); // even: mapped
    g_s.slot_busy[s].store(false);
}

void remap_private() {
    bool expected = false;
    if (!g_s.pbusy.compare_exchange_strong(expected, true)) return;
    const uint64_t version = g_s.pgen.load() / 2 + 1;
    g_s.pgen.fetch_add(1, std::memory_order_acq_rel);
    address_space_unmap(g_s.as, kPrivateVa, layout::kPageSize);
    const uint64_t frame = g_s.pframes[version % 2];
    *phys_to_virt<volatile uint64_t>(frame) = slot_tag(kSlots, version);
    if (!address_space_map(g_s.as, kPrivateVa, frame, false)) g_s.stale.fetch_add(1);
    g_s.pgen.fetch_add(1, std::memory_order_acq_rel);
    g_s.pbusy.store(false);
}

void page_table_op(PerCpu& me, uint32_t self) {
    const uint32_t slots = cpu_count() < kSlots ? cpu_count() : kSlots;
    if (next_random(me.rng) % 2 == 0) remap_kernel_slot(self % slots);
    else if (next_random(me.rng) % 4 == 0) remap_private();
    for (int i = 0; i < 4; ++i) {
        const uint32_t s = static_cast<uint32_t>(next_random(me.rng) % slots);
        checked_read(g_s.slot_va + s * layout::kPageSize, g_s.gen[s], slot_tag(s, 0));
    }
}

// --- scheduler churn ------------------------------------------------------------------------

// A short life in the private space: sleeps, wait-queue handshakes, affinity flips and reads of
// the private page (each one through this task's CR3, possibly right after a migration).
void child(void* arg) {
    uint64_t rng = reinterpret_cast<uint64_t>(arg) | 1;
    for (int i = 0; i < 6 && !g_s.stop.load(std::memory_order_relaxed); ++i) {
        switch (next_random(rng) % 4) {
        case 0: {
            const uint64_t ns = 10'000 + next_random(rng) % 200'000;
            const uint64_t t0 = monotonic_ns();
            sleep_for(ns);
            if (monotonic_ns() - t0 < ns) g_s.task_early.fetch_add(1);
            g_s.task_sleeps.fetch_add(1);
            break;
        }
        case 1: {
            CpuMask m;
            m.set(random_online_cpu(rng));
            m.set(random_online_cpu(rng));
            task_set_affinity(current_task(), m);
            yield();
            break;
        }
        case 2: {
            // Take the token if it is free, else wait (bounded) for it to be handed back.
            const uint64_t mine = next_random(rng) | 1;
            uint64_t expected = 0;
            if (g_s.ping_token.compare_exchange_strong(expected, mine)) {
                yield();
                g_s.ping_token.store(0);
                g_s.ping.wake_all();
            } else {
                const uint64_t end = monotonic_ns() + 5'000'000;
                g_s.ping.wait([end] {
                    return g_s.ping_token.load() == 0 || monotonic_ns() > end ||
                           g_s.stop.load(std::memory_order_relaxed);
                });
            }
            break;
        }
        default:
            checked_read(kPrivateVa, g_s.pgen, slot_tag(kSlots, 0));
            break;
        }
    }
}

void task_op(PerCpu& me) {
    Task*& slot = me.children[me.next_child % 4];
    if (slot != nullptr) {
        task_join(slot);
        slot = nullptr;
    }
    Task* t = task_create(child, reinterpret_cast<void*>(next_random(me.rng)),
                          {.name = "stress", .address_space = g_s.as});
    if (t == nullptr) {
        g_s.tasks_refused.fetch_add(1);
        return;
    }
    g_s.tasks_made.fetch_add(1);
    if (next_random(me.rng) % 4 == 0) task_detach(t); // nobody joins it: freed on exit
    else slot = t;
    ++me.next_child;
}

// --- allocation churn -----------------------------------------------------------------------

void hoard_to_low_water() {
    // A few thousand pages a round, so the boot CPU's share of the other work goes on too.
    for (int i = 0; i < 4096 && pmm::free_bytes() > g_s.low_water; ++i) {
        const uint64_t f = pmm::alloc_page();
        if (f == 0) break;
        *phys_to_virt<uint64_t>(f) = g_s.hoard;
        g_s.hoard = f;
        ++g_s.hoarded;
    }
}

void release_hoard(uint64_t keep) {
    while (g_s.hoarded > keep && g_s.hoard != 0) {
        const uint64_t next = *phys_to_virt<uint64_t>(g_s.hoard);
        pmm::free_pages(g_s.hoard);
        g_s.hoard = next;
        --g_s.hoarded;
    }
}

void alloc_op(PerCpu& me, uint32_t self) {
    void* objs[8];
    uint32_t n = 0;
    for (; n < 8; ++n) {
        const size_t size = 16u << (next_random(me.rng) % 9); // 16 B .. 4 KiB
        objs[n] = kmalloc(size);
        if (objs[n] == nullptr) {
            g_s.alloc_failures.fetch_add(1);
            break;
        }
        static_cast<char*>(objs[n])[0] = static_cast<char>(self);
    }
    const uint64_t page = pmm::alloc_page();
    if (page == 0) g_s.alloc_failures.fetch_add(1);
    for (uint32_t i = 0; i < n; ++i) kfree(objs[i]);
    if (page != 0) pmm::free_pages(page);
    // The boot CPU keeps the machine close to exhaustion, breathing out now and then.
    if (self == 0) {
        if (next_random(me.rng) % 8 == 0) release_hoard(g_s.hoarded / 2);
        else hoard_to_low_water();
    }
}

// --- the run ------------------------------------------------------------------------------

void stress_worker(void*) {
    const uint32_t self = this_cpu()->cpu_id;
    PerCpu& me = g_s.cpu[self];
    me.rng = 0x9e37'79b9'7f4a'7c15ull ^ (uint64_t{self} << 17) ^ monotonic_ns();
    timer_cancel(me.timer);
    {
        // Armed from this CPU: the handler runs here, interrupting this very loop.
        NoPreempt stay;
        timer_arm(me.timer, monotonic_ns() + 1'000'000, irq_tick, &me);
    }
    // Until the deadline, and past it until this CPU has done every kind at least once (the
    // progress check counts, it does not time: with 255 vCPUs on two host cores a CPU may get
    // through only one round in two minutes). A CPU still short at the grace limit is reported.
    auto all_kinds_done = [&me] {
        for (uint32_t k = 0; k < kKinds - 1; ++k)
            if (me.ops[k] == 0) return false;
        return true;
    };
    for (uint64_t i = 0; monotonic_ns() < g_s.deadline ||
                         (!all_kinds_done() && monotonic_ns() < g_s.grace_deadline);
         ++i) {
        const uint32_t self_now = this_cpu()->cpu_id; // a worker never moves, but be exact
        switch (i % (kKinds - 1)) {
        case kCalls: call_op(me, self_now); break;
        case kLocks: lock_op(me, self_now); break;
        case kTasks: task_op(me); break;
        case kPageTables: page_table_op(me, self_now); break;
        default: alloc_op(me, self_now); break;
        }
        ++me.ops[i % (kKinds - 1)];
    }
    for (Task*& t : me.children) {
        if (t != nullptr) task_join(t);
        t = nullptr;
    }
}

KTEST_NOT_IN_ALL(stress, everything_at_once_on_every_cpu) {
    const uint64_t seconds = param_u64("stress.seconds", 20);
    const uint32_t n = cpus_online();
    mm_drain_caches();
    const uint64_t stacks_before = kstack_in_use();
    const uint64_t tasks_before = sched_live_tasks();
    const uint64_t long_waits_before = lock_long_waits_reported();

    Stress& S = g_s;
    S.stop = false;
    S.lock_violations = 0;
    S.async_made = S.async_ran = S.sync_made = S.sync_bad = S.multicast_made = 0;
    S.tasks_made = S.tasks_refused = S.task_sleeps = S.task_early = 0;
    S.ping_token = 0;
    S.reads = S.faults = S.stale = 0;
    S.alloc_failures = 0;
    S.hoard = 0;
    S.hoarded = 0;
    // Leave room for the tasks' stacks and the kernel's own needs: 4 MiB plus 64 KiB a CPU.
    S.low_water = (4ull << 20) + uint64_t{n} * (64u << 10);
    for (uint32_t g = 0; g < (cpu_count() + kGroup - 1) / kGroup; ++g) {
        LockSet& l = S.sets[g];
        l.ticket_data = l.mcs_data = l.rw_data = Guarded{};
        l.seq.store(Pair{0, ~uint64_t{0}});
    }
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        PerCpu& p = S.cpu[c];
        for (uint64_t& o : p.ops) o = 0;
        for (Task*& t : p.children) t = nullptr;
        p.next_child = 0;
    }
    const uint32_t slots = cpu_count() < kSlots ? cpu_count() : kSlots;
    S.slot_va = layout::kMmioAreaBase + layout::kMmioAreaSize - 0x2000000;
    for (uint32_t s = 0; s < slots; ++s) {
        S.frames[s][0] = pmm::alloc_zeroed_page();
        S.frames[s][1] = pmm::alloc_zeroed_page();
        KASSERT(S.frames[s][0] != 0 && S.frames[s][1] != 0);
        *phys_to_virt<uint64_t>(S.frames[s][0]) = slot_tag(s, 0);
        S.gen[s] = 0;
        S.slot_busy[s] = false;
        KASSERT(vmm::map(S.slot_va + s * layout::kPageSize, S.frames[s][0], layout::kPageSize,
                         vmm::kRead));
    }
    S.as = address_space_create();
    KASSERT(S.as != nullptr);
    S.pframes[0] = pmm::alloc_zeroed_page();
    S.pframes[1] = pmm::alloc_zeroed_page();
    KASSERT(S.pframes[0] != 0 && S.pframes[1] != 0);
    *phys_to_virt<uint64_t>(S.pframes[0]) = slot_tag(kSlots, 0);
    S.pgen = 0;
    S.pbusy = false;
    KASSERT(address_space_map(S.as, kPrivateVa, S.pframes[0], false));
    // Taken once the slots and the private page are mapped: their page tables stay until the
    // end, and the kernel half's are never freed (they are shared by every address space).
    mm_drain_caches();
    const uint64_t free_before = pmm::free_bytes();
    const uint64_t objects_before = heap_stats().objects;
    const int64_t tables_before = vmm::page_table_pages();

    const uint64_t t0 = monotonic_ns();
    S.deadline = t0 + seconds * 1'000'000'000;
    S.grace_deadline = S.deadline + (seconds < 12 ? 60 : 5 * seconds) * 1'000'000'000;
    KEXPECT(ktest::run_on_all_cpus(stress_worker, nullptr));
    S.stop = true;
    const uint64_t ran_ns = monotonic_ns() - t0;
    release_hoard(0);
    for (uint32_t c = 0; c < cpu_count(); ++c)
        if (cpu_by_id(c)->online.load()) timer_cancel_sync(S.cpu[c].timer);
    // Asynchronous calls and detached tasks finish on their own: wait for them (bounded).
    const uint64_t limit = monotonic_ns() + 30'000'000'000;
    while ((S.async_ran.load() < S.async_made.load() || sched_live_tasks() > tasks_before) &&
           monotonic_ns() < limit)
        sleep_for(2'000'000);

    uint64_t totals[kKinds] = {};
    uint32_t idle_kinds = 0;
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        if (!cpu_by_id(c)->online.load()) continue;
        for (uint32_t k = 0; k < kKinds; ++k) {
            totals[k] += S.cpu[c].ops[k];
            if (S.cpu[c].ops[k] == 0 && ++idle_kinds <= 8)
                ktest::note("cpu%u made no progress in %s", c, kKindNames[k]);
        }
    }
    ktest::note("%u CPUs for %lu ms: %lu call rounds (%lu sync, %lu multicast, %lu/%lu async ran), "
                "%lu lock rounds, %lu in handlers, %lu violations",
                n, ran_ns / 1'000'000, totals[kCalls], S.sync_made.load(),
                S.multicast_made.load(), S.async_ran.load(), S.async_made.load(), totals[kLocks],
                totals[kIrqLocks], S.lock_violations.load());
    ktest::note("tasks: %lu made, %lu refused (memory), %lu sleeps (%lu early); page tables: %lu "
                "rounds, %lu checked reads, %lu faulted while unmapped, %lu stale; alloc: %lu "
                "rounds, %lu failures near exhaustion, %ld new page tables; %lu long lock waits "
                "reported",
                S.tasks_made.load(), S.tasks_refused.load(), S.task_sleeps.load(),
                S.task_early.load(), totals[kPageTables], S.reads.load(), S.faults.load(),
                S.stale.load(), totals[kAlloc], S.alloc_failures.load(),
                vmm::page_table_pages() - tables_before,
                lock_long_waits_reported() - long_waits_before);

    // New kernel-half page tables (stack slots further out than before, say) stay: not a leak.
    mm_drain_caches();
    const int64_t new_tables = vmm::page_table_pages() - tables_before;
    const uint64_t free_after = pmm::free_bytes() + uint64_t(new_tables) * layout::kPageSize;
    const uint64_t objects_after = heap_stats().objects;
    for (uint32_t s = 0; s < slots; ++s) {
        vmm::unmap(S.slot_va + s * layout::kPageSize, layout::kPageSize);
        pmm::free_pages(S.frames[s][0]);
        pmm::free_pages(S.frames[s][1]);
    }
    address_space_unmap(S.as, kPrivateVa, layout::kPageSize);
    address_space_destroy(S.as);
    pmm::free_pages(S.pframes[0]);
    pmm::free_pages(S.pframes[1]);

    KEXPECT_EQ(S.lock_violations.load(), uint64_t{0});
    KEXPECT_EQ(S.sync_bad.load(), uint64_t{0});
    KEXPECT_EQ(S.async_ran.load(), S.async_made.load());
    KEXPECT_EQ(S.stale.load(), uint64_t{0});
    KEXPECT_EQ(S.task_early.load(), uint64_t{0});
    KEXPECT_EQ(idle_kinds, 0u);
    KEXPECT_EQ(sched_live_tasks(), tasks_before);
    KEXPECT_EQ(kstack_in_use(), stacks_before);
    KEXPECT_EQ(objects_after, objects_before);
    KEXPECT_EQ(free_after, free_before);
}

} // namespace
} // namespace cohort
