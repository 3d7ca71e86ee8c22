#include "irq/irq.h"

#include <atomic>

#include "arch/arch.h"
#include "debug/log.h"
#include "platform/acpi.h"
#include "smp/cpu.h"
#include "smp/cpumask.h"
#include "smp/ipi.h"
#include "smp/percpu.h"
#include "sync/guard.h"
#include "sync/lock_ranks.h"
#include "sync/spinlock.h"

namespace cohort {

namespace {

struct Line {
    bool used = false;
    const char* name = "";
    uint8_t isa_irq = 0;
    uint32_t gsi = 0;
    uint8_t vector = 0;
    uint32_t cpu = 0;
    irq::Signal signal;
    DeviceHandler handler = nullptr;
    void* ctx = nullptr;
};

LockClass g_irq_class{"interrupt table", rank::kIrqTable, LockScope::MachineWide};
// Taken only to route, move or release a line (rare): the dispatch path reads the vector map.
SpinLock g_irq_lock{&g_irq_class};
Line g_lines[kMaxIrqs] COHORT_GUARDED_BY(g_irq_lock);
// Vector -> line id + 1 (0: none), read by the dispatcher without the lock. A line's handler
// and context are written before its entry here, and the entry before the line is unmasked.
std::atomic<uint8_t> g_vector_line[256];
// The dispatcher's copy of each line's handler (the table itself is under the lock).
std::atomic<DeviceHandler> g_handler[kMaxIrqs];
std::atomic<void*> g_ctx[kMaxIrqs];
uint32_t g_controllers = 0;
// Scratch for the spreading rule, used under g_irq_lock.
uint32_t g_routed[kMaxCpus] COHORT_GUARDED_BY(g_irq_lock);
bool g_eligible[kMaxCpus] COHORT_GUARDED_BY(g_irq_lock);

COHORT_PERCPU(uint64_t, g_hits[kMaxIrqs]);

// A CPU going offline (CPU hotplug): no line is routed to it any more.
std::atomic<uint32_t> g_leaving{kMaxCpus};

bool cpu_can_take(uint32_t cpu) {
    const CpuData* c = cpu_by_id(cpu);
    return c != nullptr && c->online.load(std::memory_order_acquire) &&
           cpu != g_leaving.load(std::memory_order_acquire) &&
           arch::irqchip_reachable(c->apic_id);
}

// Fills g_routed and g_eligible for the spreading rule.
void count_routes() COHORT_REQUIRES(g_irq_lock) {
    const uint32_t n = cpu_count();
    for (uint32_t c = 0; c < n; ++c) {
        g_routed[c] = 0;
        g_eligible[c] = cpu_can_take(c);
    }
    for (const Line& l : g_lines)
        if (l.used && l.cpu < n) ++g_routed[l.cpu];
}

void dispatch(arch::IrqFrame& frame) {
    const uint8_t slot = g_vector_line[frame.vector & 0xff].load(std::memory_order_acquire);
    if (slot != 0) {
        const uint32_t id = slot - 1u;
        uint64_t& hits = per_cpu(g_hits)[id]; // this CPU's only: a store, read by others
        __atomic_store_n(&hits, hits + 1, __ATOMIC_RELAXED);
        if (DeviceHandler h = g_handler[id].load(std::memory_order_acquire))
            h(g_ctx[id].load(std::memory_order_relaxed));
    }
    arch::irq_eoi();
}

} // namespace

const char* irq_error_name(IrqError e) {
    switch (e) {
    case IrqError::None: return "no error";
    case IrqError::NoController: return "no interrupt controller has that line";
    case IrqError::NoVector: return "no free interrupt vector";
    case IrqError::TableFull: return "too many interrupt lines routed";
    case IrqError::NoSuchIrq: return "no such interrupt line";
    case IrqError::NoSuchCpu: return "no such CPU";
    case IrqError::CpuOffline: return "that CPU is offline";
    case IrqError::CpuUnreachable:
        return "that CPU's APIC id is above 254: an I/O APIC cannot address it without "
               "interrupt remapping";
    case IrqError::InUse: return "that IRQ is routed already";
    }
    return "?";
}

void irq_init() {
    const PlatformTopology& t = platform_topology();
    if (!t.valid || t.madt.io_apics.items().empty()) {
        log_warn("irq: the MADT lists no I/O APIC: no device interrupts");
        return;
    }
    g_controllers = arch::irqchip_init(t.madt.io_apics.items());
    if (g_controllers == 0) return;
    const uint32_t bsp_hw = this_cpu()->apic_id;
    for (const acpi::NmiSource& n : t.madt.nmi_sources.items()) {
        if (!arch::irqchip_has_line(n.gsi)) {
            log_warn("irq: the MADT's NMI source GSI %u is on no I/O APIC; ignored", n.gsi);
            continue;
        }
        arch::irqchip_route(n.gsi, 0, irq::signal_from_flags(n.flags, n.gsi < 16), bsp_hw, true);
        log_info("irq: GSI %u delivers NMIs to cpu0", n.gsi);
    }
    for (const acpi::InterruptOverride& o : t.madt.overrides.items()) {
        const irq::IsaRoute r = irq::isa_route(o.source_irq, t.madt.overrides.items());
        log_debug("irq: ISA IRQ %u -> GSI %u, %s, active %s", o.source_irq, r.gsi,
                  r.signal.level ? "level" : "edge", r.signal.active_low ? "low" : "high");
    }
}

uint32_t irq_controllers() { return g_controllers; }

int irq_request_isa(uint8_t isa_irq, const char* name, DeviceHandler handler, void* ctx,
                    IrqError* error) {
    IrqError dummy;
    if (error == nullptr) error = &dummy;
    const irq::IsaRoute route =
        irq::isa_route(isa_irq, platform_topology().madt.overrides.items());
    if (g_controllers == 0 || !arch::irqchip_has_line(route.gsi)) {
        *error = IrqError::NoController;
        return -1;
    }
    Guard<SpinLock, IrqSave> g(g_irq_lock);
    int id = -1;
    for (uint32_t i = 0; i < kMaxIrqs; ++i) {
        if (g_lines[i].used && g_lines[i].isa_irq == isa_irq) {
            *error = IrqError::InUse;
            return -1;
        }
        if (!g_lines[i].used && id < 0) id = static_cast<int>(i);
    }
    if (id < 0) {
        *error = IrqError::TableFull;
        return -1;
    }
    const uint32_t n = cpu_count();
    count_routes();
    const auto cpu = irq::spread_target(std::span(g_routed, n), std::span(g_eligible, n));
    if (!cpu) {
        *error = IrqError::CpuUnreachable;
        return -1;
    }
    const uint8_t vector = vector_alloc();
    if (vector == 0) {
        *error = IrqError::NoVector;
        return -1;
    }
    Line& l = g_lines[id];
    l = Line{true, name, isa_irq, route.gsi, vector, *cpu, route.signal, handler, ctx};
    // The slot's counts start again: they are this line's, "since it was routed". (Nothing
    // can hit the slot now: its vector is not routed yet.)
    for (uint32_t c = 0; c < n; ++c)
        if (const CpuData* cd = cpu_by_id(c)) __atomic_store_n(&per_cpu_on(cd, g_hits)[id], 0, __ATOMIC_RELAXED);
    g_handler[id].store(handler, std::memory_order_relaxed);
    g_ctx[id].store(ctx, std::memory_order_relaxed);
    arch::set_irq_handler(vector, dispatch);
    g_vector_line[vector].store(static_cast<uint8_t>(id + 1), std::memory_order_release);
    arch::irqchip_route(route.gsi, vector, route.signal, cpu_running(*cpu)->apic_id, false);
    log_info("irq: %s (ISA IRQ %u, GSI %u, %s) -> cpu%u vector %#x", name, isa_irq, route.gsi,
             route.signal.level ? "level" : "edge", *cpu, vector);
    *error = IrqError::None;
    return id;
}

void irq_release(int id) {
    if (id < 0 || id >= static_cast<int>(kMaxIrqs)) return;
    Guard<SpinLock, IrqSave> g(g_irq_lock);
    Line& l = g_lines[id];
    if (!l.used) return;
    arch::irqchip_mask(l.gsi);
    // An interrupt already in flight still finds a valid (empty) slot and is acknowledged.
    g_vector_line[l.vector].store(0, std::memory_order_release);
    g_handler[id].store(nullptr, std::memory_order_release);
    vector_free(l.vector);
    l.used = false;
}

uint32_t irq_evacuate(uint32_t cpu) {
    g_leaving.store(cpu, std::memory_order_release);
    if (cpu >= cpu_count()) return 0;
    Guard<SpinLock, IrqSave> g(g_irq_lock);
    uint32_t moved = 0;
    for (Line& l : g_lines) {
        if (!l.used || l.cpu != cpu) continue;
        count_routes();
        const auto to = irq::spread_target(std::span(g_routed, cpu_count()),
                                           std::span(g_eligible, cpu_count()));
        if (!to) {
            log_error("irq: %s cannot leave cpu%u: no other CPU can take it", l.name, cpu);
            continue;
        }
        l.cpu = *to;
        arch::irqchip_retarget(l.gsi, cpu_running(*to)->apic_id);
        log_info("irq: %s moves from cpu%u to cpu%u (cpu%u goes offline)", l.name, cpu, *to, cpu);
        ++moved;
    }
    return moved;
}

IrqError irq_set_affinity(int id, uint32_t cpu) {
    if (cpu >= cpu_count()) return IrqError::NoSuchCpu;
    const CpuData* c = cpu_by_id(cpu);
    if (c == nullptr || !c->online.load(std::memory_order_acquire) ||
        cpu == g_leaving.load(std::memory_order_acquire))
        return IrqError::CpuOffline;
    if (!arch::irqchip_reachable(c->apic_id)) return IrqError::CpuUnreachable;
    Guard<SpinLock, IrqSave> g(g_irq_lock);
    if (id < 0 || id >= static_cast<int>(kMaxIrqs) || !g_lines[id].used) return IrqError::NoSuchIrq;
    g_lines[id].cpu = cpu;
    arch::irqchip_retarget(g_lines[id].gsi, c->apic_id);
    return IrqError::None;
}

bool irq_info(int id, IrqInfo* out) {
    if (id < 0 || id >= static_cast<int>(kMaxIrqs)) return false;
    Guard<SpinLock, IrqSave> g(g_irq_lock);
    const Line& l = g_lines[id];
    if (!l.used) return false;
    const irq::EntryFields f = arch::irqchip_entry(l.gsi);
    *out = IrqInfo{l.name, l.isa_irq, l.gsi, l.vector, l.cpu, l.signal, f.masked, f.dest};
    return true;
}

uint64_t irq_count_on(int id, uint32_t cpu) {
    const CpuData* c = cpu_lookup(cpu);
    if (c == nullptr || id < 0 || id >= static_cast<int>(kMaxIrqs)) return 0;
    return __atomic_load_n(&per_cpu_on(c, g_hits)[id], __ATOMIC_RELAXED);
}

uint64_t irq_total_on(uint32_t cpu) {
    uint64_t sum = 0;
    for (uint32_t i = 0; i < kMaxIrqs; ++i) sum += irq_count_on(static_cast<int>(i), cpu);
    return sum;
}

int irq_find_isa(uint8_t isa_irq) {
    Guard<SpinLock, IrqSave> g(g_irq_lock);
    for (uint32_t i = 0; i < kMaxIrqs; ++i)
        if (g_lines[i].used && g_lines[i].isa_irq == isa_irq) return static_cast<int>(i);
    return -1;
}

} // namespace cohort
