#include "smp/tlb.h"

#include <atomic>

#include "arch/arch.h"
#include "boot/params.h"
#include "debug/log.h"
#include "debug/panic.h"
#include "mm/address_space.h"
#include "mm/layout.h"
#include "smp/call.h"
#include "smp/cpu.h"
#include "smp/cpumask.h"

namespace cohort {

namespace {

std::atomic<uint64_t> g_shootdowns{0}, g_remote_cpus{0}, g_pages{0}, g_full{0};

struct FlushRequest {
    const uint64_t* starts;
    const uint64_t* ends;
    int count;
    bool all;
    bool kernel;
};

uint64_t pages_in(uint64_t start, uint64_t end) {
    return (end - (start & ~(layout::kPageSize - 1)) + layout::kPageSize - 1) / layout::kPageSize;
}

void flush_everything(bool kernel) {
    // Kernel mappings are global: only a full flush drops them.
    if (kernel) arch::tlb_flush_all();
    else arch::tlb_flush_nonglobal();
}

void flush_local(void* arg) {
    const auto* r = static_cast<const FlushRequest*>(arg);
    this_cpu()->counters.tlb_flushes.fetch_add(1, std::memory_order_relaxed);
    if (r->all) {
        flush_everything(r->kernel);
        return;
    }
    for (int i = 0; i < r->count; ++i)
        for (uint64_t va = r->starts[i] & ~(layout::kPageSize - 1); va < r->ends[i]; va += layout::kPageSize)
            arch::tlb_flush_page(va);
}

void shoot(const AddressSpace* as, const uint64_t* starts, const uint64_t* ends, int count,
           bool force_all, const void* caller) {
    uint64_t pages = 0;
    bool kernel = as == nullptr;
    for (int i = 0; i < count; ++i) {
        pages += pages_in(starts[i], ends[i]);
        kernel = kernel || ends[i] > layout::kKernelHalf;
    }
    FlushRequest req{starts, ends, count, force_all || pages > kTlbFlushAllThreshold, kernel};
    // Lower-half changes: CPUs that are not running the space may still hold its entries under
    // its PCID. They flush them when they load it again, seeing the new generation; bumped
    // before the active set is read (both seq_cst, a Dekker pair with address_space_activate),
    // so a CPU loading it right now is either asked below or sees the bump (mm/pcid_cache.h).
    if (as != nullptr) as->tlb_gen.fetch_add(1, std::memory_order_seq_cst);
    g_shootdowns.fetch_add(1, std::memory_order_relaxed);
    g_pages.fetch_add(pages, std::memory_order_relaxed);
    if (req.all) g_full.fetch_add(1, std::memory_order_relaxed);
    // The initiator is always among the targets (harmless if the space is not loaded here).
    // call_on_many queues to the others first, runs our share inline while they work, then
    // waits for all of them: the concurrent flush the design asks for. It allocates nothing,
    // so the only way it can fail is a caller with interrupts off that involves other CPUs.
    CallStatus s;
    if (tlb_shootdown_disabled()) {
        s = call_on_many_and_self(CpuMask{}, flush_local, &req);
    } else if (kernel) {
        s = call_on_all(flush_local, &req, /*wait=*/true, /*include_self=*/true);
    } else {
        const CpuMask targets = as->active.snapshot(cpu_count());
        // Statistics only: a migration right here makes it off by one at worst.
        const uint32_t me = this_cpu()->cpu_id;
        g_remote_cpus.fetch_add(targets.count() - (targets.test(me) ? 1 : 0),
                                std::memory_order_relaxed);
        s = call_on_many_and_self(targets, flush_local, &req);
    }
    if (kernel && !tlb_shootdown_disabled())
        g_remote_cpus.fetch_add(cpus_online() - 1, std::memory_order_relaxed);
    // Offline: a target went offline between the snapshot of the targets and the delivery, and
    // was left out (smp/call.cc's close protocol). It needs no flush: from there to its halt it
    // runs only its parking path (its own stack, CpuData, run and timer queues, never unmapped)
    // and it comes back through INIT, with an empty TLB (docs/hotplug.md).
    if (s != CallStatus::Ok && s != CallStatus::Offline)
        // Whoever called us is about to free or reuse what was mapped; returning would let
        // other CPUs write into memory that has a new owner. Stop here instead, naming them.
        panic("tlb: shootdown of %lu page(s) for %p could not be delivered (%s): called from "
              "%p; a shootdown needs interrupts enabled",
              pages, static_cast<const void*>(as), call_status_name(s), caller);
}

} // namespace

bool tlb_shootdown_disabled() {
    static const bool disabled = param_bool("tlb.disable_shootdown", false);
    return disabled;
}

void tlb_shootdown(const AddressSpace* as, uint64_t start, uint64_t end) {
    if (end <= start) return;
    shoot(as, &start, &end, 1, false, __builtin_return_address(0));
}

void TlbBatch::add(uint64_t start, uint64_t end) {
    if (end <= start) return;
    // Merge with an adjacent or overlapping range first: unmapping a run page by page should
    // stay one range.
    for (int i = 0; i < count_; ++i) {
        if (start <= ends_[i] && end >= starts_[i]) {
            starts_[i] = start < starts_[i] ? start : starts_[i];
            ends_[i] = end > ends_[i] ? end : ends_[i];
            return;
        }
    }
    if (count_ == kMaxRanges) {
        overflowed_ = true;
        return;
    }
    starts_[count_] = start;
    ends_[count_] = end;
    ++count_;
}

void TlbBatch::flush() {
    if (count_ == 0 && !overflowed_) return;
    shoot(as_, starts_, ends_, count_, overflowed_, __builtin_return_address(0));
    count_ = 0;
    overflowed_ = false;
}

TlbStats tlb_stats() {
    return {g_shootdowns.load(), g_remote_cpus.load(), g_pages.load(), g_full.load()};
}

} // namespace cohort
