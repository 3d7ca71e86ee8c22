// bench=scale: does the work the machine gets done grow with its CPUs? For each operation one
// pinned task per online CPU repeats it for a fixed time, and one line is printed:
//   bench: {"name":"scale.page","bench":"scale","op":"page","cpus":N,"ops_per_s":X,
//           "global_lock_acq_per_kop":Y,"ipis_per_kop":Z,"self_ipis_per_kop":W,
//           "wakes":K,"lines_per_wake":L,"max_lines_per_wake":M}
// ops_per_s is the sum over all CPUs. `control` touches only the task's own memory: its rate is
// what the emulator itself gives N vCPUs, the yardstick the others are divided by (tools/bench
// kernel scale turns the lines into ratio tables, docs/scale.md). Machine-wide locks are the
// LockScope::MachineWide classes; IPIs are every kind this kernel sends to another CPU
// (self-IPIs are reported apart, as self_ipis_per_kop). lines_per_wake is what the scheduler
// counted for the wake-ups placed during the operation (other CPUs' lines read or written to
// choose the CPU and queue the task); max_lines_per_wake the most one wake-up cost since boot.
// Options: bench.scale_ms=T, the time per operation (default 200 + 2 per CPU: at 255 vCPUs on
// two host cores each vCPU runs about 1% of the time); bench.scale_ops=task,wake runs only
// those operations.
#include <atomic>
#include <string_view>

#include "bench/bench.h"
#include "boot/params.h"
#include "debug/log.h"
#include "lib/format.h"
#include "mm/address_space.h"
#include "mm/heap.h"
#include "mm/kstack.h"
#include "mm/layout.h"
#include "mm/phys.h"
#include "mm/pmm.h"
#include "sched/sched.h"
#include "sched/wait.h"
#include "smp/cpu.h"
#include "smp/ipi.h"
#include "smp/tlb.h"
#include "sync/lock_class.h"
#include "time/clock.h"
#include "time/timer.h"

namespace cohort {
namespace {

struct Run;

struct alignas(64) Slot {
    uint64_t ops = 0;
    uint32_t cpu = 0;
    uint32_t index = 0; // position among the online CPUs
    Run* run = nullptr;
};

struct Pair; // wake and shootdown partners

struct Run {
    std::atomic<uint32_t> ready{0};
    std::atomic<uint32_t> done{0};
    std::atomic<bool> go{false};
    std::atomic<bool> stop{false};
    std::atomic<bool> release{false}; // the counters are read: the tasks may end
    void (*op)(Slot&, Run&) = nullptr;
    Pair* pairs = nullptr;
};

// IPIs to other CPUs, and self-IPIs (a wake-up that must preempt this CPU's task once
// interrupts are back on: a write to its own LAPIC, no other CPU involved) apart.
struct IpiCount {
    uint64_t remote = 0, self = 0;
    uint64_t by_kind[kIpiKinds] = {};
};
IpiCount ipis_sent() {
    IpiCount n;
    for (uint32_t i = 0; i < cpu_count(); ++i) {
        const CpuData* c = cpu_by_id(i);
        if (c == nullptr) continue;
        uint64_t all = 0;
        for (int k = 0; k < kIpiKinds; ++k) {
            const uint64_t v = c->counters.ipis_sent[k].load(std::memory_order_relaxed);
            all += v;
            n.by_kind[k] += v;
        }
        const uint64_t self = c->counters.self_ipis.load(std::memory_order_relaxed);
        n.remote += all - self;
        n.self += self;
    }
    return n;
}

// Wake-ups placed on every CPU and the other CPUs' lines they cost (sched/placement.h).
struct WakeCost {
    uint64_t wakes = 0, lines = 0;
    uint32_t most = 0;
};
WakeCost wake_cost() {
    WakeCost w;
    for (uint32_t i = 0; i < cpu_count(); ++i) {
        const CpuSchedStats st = sched_cpu_stats(i);
        w.wakes += st.wakes_placed;
        w.lines += st.wake_lines;
        if (st.wake_lines_max > w.most) w.most = st.wake_lines_max;
    }
    return w;
}

bool stopping(const Run& r) { return r.stop.load(std::memory_order_relaxed); }

// --- operations: each runs until r.stop, adding its operations to s.ops ------------------------

void op_control(Slot& s, Run& r) {
    // Arithmetic over a private buffer: no shared line, no lock, no device register.
    uint64_t buf[64] = {};
    uint64_t x = s.cpu + 1;
    while (!stopping(r)) {
        for (uint64_t& w : buf) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            w += x;
        }
        asm volatile("" : : "r"(buf) : "memory");
        ++s.ops;
    }
}

void op_page(Slot& s, Run& r) {
    while (!stopping(r)) {
        const uint64_t p = pmm::alloc_page();
        if (p == 0) break;
        *phys_to_virt<uint64_t>(p) = s.ops; // touch it, as a user would
        pmm::free_pages(p);
        ++s.ops;
    }
}

void op_page16(Slot& s, Run& r) {
    while (!stopping(r)) {
        const uint64_t p = pmm::alloc_pages(16, 16);
        if (p == 0) break;
        *phys_to_virt<uint64_t>(p) = s.ops;
        pmm::free_pages(p, 16);
        ++s.ops;
    }
}

template <size_t kSize>
void op_kmalloc(Slot& s, Run& r) {
    while (!stopping(r)) {
        void* p = kmalloc(kSize);
        if (p == nullptr) break;
        *static_cast<uint64_t*>(p) = s.ops;
        kfree(p);
        ++s.ops;
    }
}

void empty_task(void*) {}

void op_task(Slot& s, Run& r) {
    // Created on this CPU: what is measured is creating, exiting and joining a task, not where
    // the scheduler would rather put it (that is the placement benchmarks' business).
    CpuMask here;
    here.set(s.cpu);
    while (!stopping(r)) {
        Task* t = task_create(empty_task, nullptr, {.name = "scale/t", .affinity = &here});
        if (t == nullptr) break;
        task_join(t);
        ++s.ops;
    }
}

void timer_noop(Timer&, void*) {}

void op_timer(Slot& s, Run& r) {
    // An anchor an hour ahead is this CPU's earliest deadline unless something sooner is
    // pending; the measured timers are later still, so arming and cancelling them never
    // reprograms the LAPIC.
    Timer anchor, t;
    const uint64_t far = monotonic_ns() + 3600ull * 1'000'000'000;
    timer_arm(anchor, far, timer_noop, nullptr);
    while (!stopping(r)) {
        timer_arm(t, far + 1'000'000 + (s.ops & 1023), timer_noop, nullptr);
        timer_cancel(t);
        ++s.ops;
    }
    timer_cancel_sync(anchor);
}

// Two tasks on two CPUs (or one CPU when the count is odd and this is the last one).
struct Pair {
    WaitQueue wq;
    std::atomic<uint32_t> turn{0};
    AddressSpace* space = nullptr;
};

void op_wake(Slot& s, Run& r) {
    Pair& p = r.pairs[s.index / 2];
    const uint32_t me = s.index % 2;
    while (!stopping(r)) {
        p.wq.wait([&] { return p.turn.load(std::memory_order_acquire) == me || stopping(r); });
        if (stopping(r)) break;
        p.turn.store(me ^ 1, std::memory_order_release);
        p.wq.wake_one();
        ++s.ops;
    }
    p.wq.wake_all(); // the partner may be waiting for a turn that will not come
}

void op_shootdown(Slot& s, Run& r) {
    // Both tasks of a pair run in the same private space; each maps and unmaps its own page,
    // and each unmap must reach the partner's CPU.
    const uint64_t va = 0x40000000 + uint64_t{s.index % 2} * layout::kPageSize;
    Pair& p = r.pairs[s.index / 2];
    const uint64_t frame = pmm::alloc_zeroed_page();
    if (frame == 0 || p.space == nullptr) return;
    while (!stopping(r)) {
        if (!address_space_map(p.space, va, frame, true)) break;
        (void)*reinterpret_cast<volatile uint64_t*>(va);
        address_space_unmap(p.space, va, layout::kPageSize);
        ++s.ops;
    }
    pmm::free_pages(frame);
}

void worker(void* arg) {
    Slot& s = *static_cast<Slot*>(arg);
    Run& r = *s.run;
    r.ready.fetch_add(1, std::memory_order_acq_rel);
    while (!r.go.load(std::memory_order_acquire)) sleep_for(1'000'000);
    r.op(s, r);
    r.done.fetch_add(1, std::memory_order_acq_rel);
    // Not gone yet: ending frees this task's stack, and a full batch of freed stacks is
    // purged with a shootdown to every CPU, which must not be counted against the operation.
    while (!r.release.load(std::memory_order_acquire)) sleep_for(1'000'000);
}

// `name` is one of the comma-separated words of `list`.
bool listed(std::string_view list, std::string_view name) {
    while (!list.empty()) {
        const size_t comma = list.find(',');
        if (list.substr(0, comma) == name) return true;
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

struct Op {
    const char* name;
    void (*fn)(Slot&, Run&);
    bool pinned = true; // one task per CPU; else the tasks may run anywhere (the scheduler places them)
};
constexpr Op kOps[] = {
    {"control", op_control},     {"page", op_page},           {"page16", op_page16},
    {"kmalloc64", op_kmalloc<64>}, {"kmalloc2k", op_kmalloc<2048>}, {"task", op_task},
    {"timer", op_timer},         {"wake", op_wake},           {"shootdown", op_shootdown},
    // The wake-up pairs again, free to run anywhere: every wake-up is placed by the search
    // (sched/placement.h), whose cost per wake-up lines_per_wake shows.
    {"wakeany", op_wake, false},
};

// Prints num / den with three decimals, without floating point.
void ratio3(char* buf, size_t size, uint64_t num, uint64_t den) {
    if (den == 0) {
        format(buf, size, "0");
        return;
    }
    const uint64_t milli = num * 1000 / den;
    format(buf, size, "%lu.%03lu", milli / 1000, milli % 1000);
}

// Events per 1000 operations.
void per_kop(char* buf, size_t size, uint64_t events, uint64_t ops) {
    ratio3(buf, size, events * 1000, ops);
}

// `n` tasks (one per online CPU, plus the odd CPU's partner for paired operations).
void run_op(const Op& op, Slot* slots, uint32_t n, Pair* pairs, uint64_t ms) {
    Run r;
    r.op = op.fn;
    r.pairs = pairs;
    Task** tasks = static_cast<Task**>(kzalloc(n * sizeof(Task*)));
    if (tasks == nullptr) {
        log_error("bench: scale: out of memory");
        return;
    }
    uint32_t started = 0;
    for (uint32_t i = 0; i < n; ++i) {
        slots[i].ops = 0;
        slots[i].run = &r;
        CpuMask one;
        one.set(slots[i].cpu);
        AddressSpace* space = op.fn == op_shootdown ? pairs[slots[i].index / 2].space : nullptr;
        tasks[i] = task_create(worker, &slots[i],
                               {.name = "scale", .affinity = op.pinned ? &one : nullptr,
                                .address_space = space});
        if (tasks[i] != nullptr) ++started;
    }
    while (r.ready.load(std::memory_order_acquire) < started) sleep_for(1'000'000);
    // The previous operation's tasks were created here and died on every CPU: the stacks their
    // CPUs' caches had no room for wait for a purge, some already being purged by a worker (a
    // shootdown to every CPU, slow with hundreds of vCPUs). That belongs to the harness, not to
    // the operation measured next: finish it first.
    for (;;) {
        kstack_purge();
        const KstackStats st = kstack_stats();
        if (st.purging == 0 && st.awaiting_purge == 0) break;
        sleep_for(1'000'000);
    }
    const uint64_t locks0 = LockClass::machine_wide_acquisitions();
    const uint64_t shootdowns0 = tlb_stats().shootdowns, purges0 = kstack_stats().purges;
    const IpiCount ipis0 = ipis_sent();
    const WakeCost wake0 = wake_cost();
    const uint64_t t0 = monotonic_ns();
    r.go.store(true, std::memory_order_release);
    sleep_for(ms * 1'000'000);
    r.stop.store(true, std::memory_order_release);
    const uint64_t elapsed = monotonic_ns() - t0;
    while (r.done.load(std::memory_order_acquire) < started) sleep_for(1'000'000);
    const uint64_t locks = LockClass::machine_wide_acquisitions() - locks0;
    const IpiCount ipis1 = ipis_sent();
    const WakeCost wake1 = wake_cost();
    const uint64_t shootdowns1 = tlb_stats().shootdowns, purges1 = kstack_stats().purges;
    r.release.store(true, std::memory_order_release);
    for (uint32_t i = 0; i < n; ++i)
        if (tasks[i] != nullptr) task_join(tasks[i]);
    kfree(tasks);
    uint64_t ops = 0;
    for (uint32_t i = 0; i < n; ++i) ops += slots[i].ops;
    char lk[32], ip[32], self[32], lines[32];
    per_kop(lk, sizeof(lk), locks, ops);
    per_kop(ip, sizeof(ip), ipis1.remote - ipis0.remote, ops);
    per_kop(self, sizeof(self), ipis1.self - ipis0.self, ops);
    ratio3(lines, sizeof(lines), wake1.lines - wake0.lines, wake1.wakes - wake0.wakes);
    if (started < n) log_error("bench: scale: %s: only %u of %u tasks started", op.name, started, n);
    log_info("bench: scale: %s: IPIs by kind: call %lu, reschedule %lu, stop %lu, backtrace %lu "
             "(self %lu); %lu TLB shootdowns, %lu stack purges", op.name, ipis1.by_kind[0] - ipis0.by_kind[0],
             ipis1.by_kind[1] - ipis0.by_kind[1], ipis1.by_kind[2] - ipis0.by_kind[2],
             ipis1.by_kind[3] - ipis0.by_kind[3], ipis1.self - ipis0.self,
             shootdowns1 - shootdowns0, purges1 - purges0);
    console_printf("bench: {\"name\":\"scale.%s\",\"bench\":\"scale\",\"op\":\"%s\",\"cpus\":%u,\"ops_per_s\":%lu,"
                   "\"global_lock_acq_per_kop\":%s,\"ipis_per_kop\":%s,\"self_ipis_per_kop\":%s,"
                   "\"wakes\":%lu,\"lines_per_wake\":%s,\"max_lines_per_wake\":%u}\n",
                   op.name, op.name, cpus_online(), elapsed == 0 ? 0 : ops * 1'000'000'000 / elapsed, lk, ip, self,
                   wake1.wakes - wake0.wakes, lines, wake1.most);
}

KBENCH(scale) {
    const uint32_t n = cpus_online();
    const uint64_t ms = param_u64("bench.scale_ms", 200 + 2 * uint64_t{n});
    auto* slots = static_cast<Slot*>(kzalloc((n + 1) * sizeof(Slot)));
    const uint32_t pair_count = (n + 1) / 2;
    auto* pairs = static_cast<Pair*>(kzalloc(pair_count * sizeof(Pair)));
    if (slots == nullptr || pairs == nullptr) {
        log_error("bench: scale: out of memory");
        return;
    }
    uint32_t k = 0;
    for (uint32_t c = 0; c < cpu_count() && k < n; ++c) {
        const CpuData* cpu = cpu_by_id(c);
        if (cpu == nullptr || !cpu->online.load(std::memory_order_acquire)) continue;
        new (&slots[k]) Slot{};
        slots[k].cpu = c;
        slots[k].index = k;
        ++k;
    }
    // An odd CPU count leaves the last CPU without a partner: for the paired operations it runs
    // both tasks of its pair (they share it, so its throughput counts once; its wake-ups and
    // unmaps stay local).
    new (&slots[k]) Slot{};
    slots[k].cpu = k > 0 ? slots[k - 1].cpu : 0;
    slots[k].index = k;
    for (uint32_t i = 0; i < pair_count; ++i) new (&pairs[i]) Pair();
    const auto only = params().get("bench.scale_ops"); // a comma-separated subset, for digging
    for (const Op& op : kOps) {
        if (only && !listed(*only, op.name)) continue;
        const bool paired = op.fn == op_wake || op.fn == op_shootdown;
        if (op.fn == op_shootdown)
            for (uint32_t i = 0; i < pair_count; ++i) pairs[i].space = address_space_create();
        for (uint32_t i = 0; i < pair_count; ++i) pairs[i].turn.store(0);
        run_op(op, slots, paired && k % 2 == 1 ? k + 1 : k, pairs, ms);
        if (op.fn == op_shootdown)
            for (uint32_t i = 0; i < pair_count; ++i)
                if (pairs[i].space != nullptr) address_space_destroy(pairs[i].space);
    }
    kfree(pairs);
    kfree(slots);
}

} // namespace
} // namespace cohort
