#include "smp/ipi.h"

#include <atomic>

#include "arch/arch.h"
#include "boot/params.h"
#include "debug/log.h"
#include "lib/bitmap.h"
#include "smp/call.h"
#include "smp/cpu.h"
#include "sync/spinlock.h"
#include "sync/lock_ranks.h"
#include "sync/park.h"

namespace cohort {

namespace {

constexpr uint8_t kVectorFor[kIpiKinds] = {arch::kVecCall, arch::kVecReschedule,
                                           0 /* Stop and Backtrace go */, 0 /* as NMIs */};

void call_handler(arch::IrqFrame&) {
    ipi_count_received(IpiKind::Call);
    run_pending_calls();
    arch::irq_eoi(); // exactly one EOI per interrupt
}

void reschedule_handler(arch::IrqFrame&) {
    // Waking up was the point: the CPU leaves HLT and looks at its work when we return.
    ipi_count_received(IpiKind::Reschedule);
    arch::irq_eoi();
}

std::atomic<uint32_t> g_drop_call_to{UINT32_MAX}; // test hook: ipi_test_drop_next_call

LockClass g_vector_class{"vector allocator", rank::kVectors, LockScope::MachineWide};
SpinLock g_vector_lock{&g_vector_class};
Bitmap<256> g_vectors_used;

} // namespace

const char* ipi_kind_name(IpiKind k) {
    switch (k) {
    case IpiKind::Call: return "call";
    case IpiKind::Reschedule: return "reschedule";
    case IpiKind::Stop: return "stop";
    case IpiKind::Backtrace: return "backtrace";
    case IpiKind::Count: break;
    }
    return "?";
}

namespace {
std::atomic<bool> g_logical_ids_sound{true};
std::atomic<bool> g_cluster_wanted{true}; // ipi.cluster, read once in ipi_init
} // namespace

void ipi_init() {
    g_cluster_wanted.store(param_bool("ipi.cluster", true), std::memory_order_relaxed);
    arch::set_irq_handler(arch::kVecCall, call_handler);
    arch::set_irq_handler(arch::kVecReschedule, reschedule_handler);
    park::init(); // the lock waiters' kick (sync/park.h)
}

bool ipi_send(CpuData* target, IpiKind kind) {
    if (target != nullptr) cpu_validate(target); // a stale pointer is a panic, not a wild IPI
    if (target == nullptr || !target->online.load(std::memory_order_acquire)) {
        log_error("ipi: refusing to send a %s IPI to cpu%d, which is not online", ipi_kind_name(kind),
                  target != nullptr ? static_cast<int>(target->cpu_id) : -1);
        return false;
    }
    if (kind == IpiKind::Call && g_drop_call_to.load(std::memory_order_relaxed) == target->cpu_id) {
        uint32_t expected = target->cpu_id;
        if (g_drop_call_to.compare_exchange_strong(expected, UINT32_MAX)) return false;
    }
    CpuData* me = this_cpu();
    me->counters.ipis_sent[static_cast<int>(kind)].fetch_add(1, std::memory_order_relaxed);
    if (target == me) me->counters.self_ipis.fetch_add(1, std::memory_order_relaxed);
    if (kind == IpiKind::Stop || kind == IpiKind::Backtrace) arch::send_nmi(target->apic_id);
    else arch::send_ipi(target->apic_id, kVectorFor[static_cast<int>(kind)]);
    return true;
}

namespace {
std::atomic<bool> g_broadcast_exact{false};
}

void ipi_set_broadcast_exact(bool exact) { g_broadcast_exact.store(exact, std::memory_order_release); }
bool ipi_broadcast_exact() { return g_broadcast_exact.load(std::memory_order_acquire); }

bool ipi_send_all_others(IpiKind kind) {
    if (kind != IpiKind::Call && kind != IpiKind::Reschedule) return false;
    const uint32_t others = cpus_online() - 1;
    if (!ipi_broadcast_exact() || others + 1 != cpu_count() || others == 0) return false;
    // A test is about to lose one CPU's call IPI: only the one-by-one path can lose exactly it.
    if (kind == IpiKind::Call && g_drop_call_to.load(std::memory_order_relaxed) != UINT32_MAX)
        return false;
    CpuData* me = this_cpu();
    // Counted per CPU it interrupts: the cost that matters is theirs, not one ICR write.
    me->counters.ipis_sent[static_cast<int>(kind)].fetch_add(others, std::memory_order_relaxed);
    me->counters.broadcasts.fetch_add(1, std::memory_order_relaxed);
    arch::send_ipi_all_but_self(kVectorFor[static_cast<int>(kind)]);
    return true;
}

namespace {

void send_logical(uint32_t destination, IpiKind kind) {
    CpuData* me = this_cpu();
    const auto cpus = static_cast<uint64_t>(__builtin_popcount(destination & 0xffff));
    me->counters.ipis_sent[static_cast<int>(kind)].fetch_add(cpus, std::memory_order_relaxed);
    me->counters.cluster_ipis.fetch_add(1, std::memory_order_relaxed);
    // The sender may be in the destination too (a CPU of its own cluster): the callers never
    // add it, so its bit is never set.
    arch::send_ipi_cluster(destination, kVectorFor[static_cast<int>(kind)]);
}
} // namespace

void ipi_note_logical_id(CpuData* cpu) {
    cpu->x2apic_ldr = arch::cluster_id();
    if (!arch::cluster_ipis_available()) return;
    const uint32_t bits = cpu->x2apic_ldr & 0xffff;
    if (bits != 0 && (bits & (bits - 1)) == 0) return;
    if (g_logical_ids_sound.exchange(false))
        log_warn("ipi: cpu%u's x2APIC logical ID is %#x (want one bit of 16); multicasts go one "
                 "IPI per CPU", cpu->cpu_id, cpu->x2apic_ldr);
}

bool ipi_cluster_mode() {
    return arch::cluster_ipis_available() &&
           g_logical_ids_sound.load(std::memory_order_relaxed) &&
           g_cluster_wanted.load(std::memory_order_relaxed);
}

IpiBatch::IpiBatch(IpiKind kind)
    : kind_(kind),
      // A test about to lose one CPU's call IPI needs the one-by-one path, which can lose
      // exactly that one.
      logical_((kind == IpiKind::Call || kind == IpiKind::Reschedule) && ipi_cluster_mode() &&
               !(kind == IpiKind::Call && g_drop_call_to.load(std::memory_order_relaxed) != UINT32_MAX)) {}

void IpiBatch::add(CpuData* target) {
    if (!logical_ || target == this_cpu()) {
        ipi_send(target, kind_);
        return;
    }
    clusters_.add(target->x2apic_ldr, [this](uint32_t d) { send_logical(d, kind_); });
}

void IpiBatch::flush() {
    clusters_.flush([this](uint32_t d) { send_logical(d, kind_); });
}

void ipi_test_drop_next_call(uint32_t cpu) { g_drop_call_to.store(cpu); }
bool ipi_test_drop_pending() { return g_drop_call_to.load() != UINT32_MAX; }

void ipi_count_received(IpiKind kind) {
    this_cpu()->counters.ipis_received[static_cast<int>(kind)].fetch_add(1, std::memory_order_relaxed);
}

uint8_t vector_alloc() {
    Guard<SpinLock, IrqSave> guard(g_vector_lock);
    for (unsigned v = arch::kVecDeviceFirst; v <= arch::kVecDeviceLast; ++v) {
        if (!g_vectors_used.test(v)) {
            g_vectors_used.set(v);
            return static_cast<uint8_t>(v);
        }
    }
    return 0;
}

void vector_free(uint8_t vector) {
    Guard<SpinLock, IrqSave> guard(g_vector_lock);
    if (vector >= arch::kVecDeviceFirst && vector <= arch::kVecDeviceLast) g_vectors_used.clear(vector);
}

} // namespace cohort
