// TLB shootdown: after a mapping changes, make every CPU that may cache it forget it.
//
// A request names an address range. Up to kTlbFlushAllThreshold pages each CPU flushes page by
// page with INVLPG; above it, everything (a CR3 reload, or a CR4.PGE toggle when global kernel
// pages are involved). Requests ride on remote calls: the initiator queues them to every
// target (one IPI per idle queue), flushes its own TLB while they run, then waits for every
// acknowledgement. Lower-half ranges go to the CPUs where the address space is active;
// kernel-half ranges (global pages) to every online CPU. With PCIDs, CPUs where the space is
// not active may still hold its entries; they flush them when they load it again, because the
// request bumps the space's generation first (mm/pcid_cache.h).
#pragma once

#include <cstdint>

namespace cohort {

struct AddressSpace;

/// Pages above which a flush drops everything instead of page by page. Measured with
/// bench=tlb_ceiling (docs/ipi.md): page-by-page and full flush cost the same at about 33 pages
/// before counting what a full flush throws away besides; Linux uses 33 too.
inline constexpr uint64_t kTlbFlushAllThreshold = 33;

/// Invalidates [start, end) for `as` (nullptr: a kernel-half range) on every CPU that may cache
/// it, including this one, and returns once all have done so: after it, what was mapped there
/// may be freed. It has no failure mode: it allocates nothing, and a call with interrupts
/// disabled while other CPUs are involved (they might be waiting for us) is a kernel bug that
/// panics naming the caller, since returning would let them use freed memory.
void tlb_shootdown(const AddressSpace* as, uint64_t start, uint64_t end);

/// Collects several ranges of one address space and shoots them down with one request.
class TlbBatch {
  public:
    explicit TlbBatch(const AddressSpace* as) : as_(as) {}
    ~TlbBatch() { flush(); }
    void add(uint64_t start, uint64_t end);
    /// Sends what was collected (nothing if empty), as tlb_shootdown does.
    void flush();

    static constexpr int kMaxRanges = 16;

  private:
    const AddressSpace* as_;
    uint64_t starts_[kMaxRanges];
    uint64_t ends_[kMaxRanges];
    int count_ = 0;
    bool overflowed_ = false; // more ranges than fit: flush everything
};

struct TlbStats {
    uint64_t shootdowns;   // requests initiated
    uint64_t remote_cpus;  // CPUs asked, summed over requests
    uint64_t pages;        // pages named in requests
    uint64_t full_flushes; // flushes that dropped everything
};
TlbStats tlb_stats();

/// Test hook (tlb.disable_shootdown=1): only the initiating CPU flushes. Lets a test show that
/// the coherency checks fail without shootdowns.
bool tlb_shootdown_disabled();

} // namespace cohort
