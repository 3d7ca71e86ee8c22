// The kernel's park hooks (sync/park.h): per-CPU waiter records, HLT to park, an IPI or an NMI
// to wake.
#include "sync/park.h"

#include "arch/arch.h"
#include "debug/panic.h"
#include "lib/assert.h"
#include "smp/cpu.h"
#include "smp/percpu.h"

namespace cohort::park {

namespace {

// Nested waits: a task's wait, a handler interrupting it, and one more level for safety (NMI
// handlers never take these locks).
constexpr uint32_t kDepth = 4;

struct CpuWaiters {
    Waiter records[kDepth];
    uint32_t depth = 0;
    // NMIs sent here as kicks and not yet seen by the NMI handler: it says nothing about
    // them (it reports NMIs nobody asked for).
    std::atomic<uint32_t> kick_nmis{0};
};
COHORT_PERCPU(CpuWaiters, g_waiters);

// Before the per-CPU areas exist only the boot CPU runs, and a lock it waits for is held by
// itself (a bug the lock debugging reports); the slow path still needs a record.
CpuWaiters g_early;

CpuWaiters& mine() { return this_cpu() != nullptr ? per_cpu(g_waiters) : g_early; }

std::atomic<uint64_t> g_kicks{0};

void kick_handler(arch::IrqFrame&) { arch::irq_eoi(); } // the interrupt itself is the point

} // namespace

void init() { arch::set_irq_handler(arch::kVecKick, kick_handler); }

Waiter& waiter_enter() {
    CpuWaiters& c = mine();
    // An interrupt between the read and the increment finishes with its own record (and
    // gives it back) before we continue, so a plain increment is enough.
    const uint32_t d = c.depth++;
    if (d >= kDepth) panic("park: lock waits nested %u deep on one CPU", d + 1);
    Waiter& w = c.records[d];
    w.cpu = this_cpu() != nullptr ? this_cpu()->cpu_id : 0;
    w.irqs_on = arch::irqs_enabled();
    w.parked.store(false, std::memory_order_relaxed);
    return w;
}

void waiter_exit(Waiter& w) {
    CpuWaiters& c = mine();
    COHORT_ASSERT(c.depth > 0 && &c.records[c.depth - 1] == &w);
    (void)w;
    --c.depth;
}

void wait(Waiter& w, const std::atomic<bool>& flag) {
    // seq_cst on both sides (here and in wake): either the waker sees `parked` and interrupts
    // us, or we see `flag` and do not halt.
    w.parked.store(true, std::memory_order_seq_cst);
    if (!flag.load(std::memory_order_seq_cst)) arch::park_halt(flag, w.irqs_on);
    w.parked.store(false, std::memory_order_relaxed);
}

void wake(Waiter& w, std::atomic<bool>& flag) {
    flag.store(true, std::memory_order_seq_cst);
    if (!w.parked.load(std::memory_order_seq_cst)) return;
    CpuData* cpu = cpu_by_id(w.cpu);
    if (cpu == nullptr || cpu == this_cpu()) return;
    g_kicks.fetch_add(1, std::memory_order_relaxed);
    if (w.irqs_on) {
        arch::send_ipi(cpu->apic_id, arch::kVecKick);
    } else {
        per_cpu_on(cpu, g_waiters).kick_nmis.fetch_add(1, std::memory_order_relaxed);
        arch::send_nmi(cpu->apic_id);
    }
}

uint64_t kicks_sent() { return g_kicks.load(std::memory_order_relaxed); }

bool consume_kick_nmis() {
    if (this_cpu() == nullptr) return false;
    // One kick per NMI: a kick sent while the NMI before it is being handled latches a second
    // NMI, which must find its own count (taking them all at once made that one "unexpected").
    // NMIs that merge leave a count behind, which at worst hides one unexplained NMI.
    std::atomic<uint32_t>& n = per_cpu(g_waiters).kick_nmis;
    uint32_t cur = n.load(std::memory_order_relaxed);
    while (cur != 0 && !n.compare_exchange_weak(cur, cur - 1, std::memory_order_relaxed)) {
    }
    return cur != 0;
}

} // namespace cohort::park
