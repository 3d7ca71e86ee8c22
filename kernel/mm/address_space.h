// Address spaces: a top-level page table plus the set of CPUs that have it loaded, which the
// TLB shootdown code uses to decide whom to ask to flush.
//
// The kernel half (PML4 slots 256-511) is shared: every address space copies the kernel's
// entries, which never change after boot (see vmm::init), so kernel mappings made later are
// visible everywhere. The lower half is private to each address space.
#pragma once

#include <atomic>
#include <cstdint>

#include "smp/cpumask.h"
#include "sync/spinlock.h"

namespace cohort {

/// Every address space's page-table lock (ranked: sync/lock_ranks.h).
extern LockClass g_address_space_class;

struct AddressSpace {
    uint64_t root = 0;    // physical address of the PML4
    uint64_t id = 0;      // unique for the life of the system; 0 is the kernel's
    AtomicCpuMask active; // CPUs on which this address space is loaded and in use
    // CPUs that still have it loaded while they run kernel threads (lazy TLB): shootdowns skip
    // them; they check the generation when they use it again, and address_space_destroy moves
    // them off it before its page tables are freed.
    AtomicCpuMask lazy;
    // Bumped by every change that needs a TLB flush, before the shootdown: with PCIDs, CPUs
    // not running it may still hold its entries and flush them when they load it again
    // (mm/pcid_cache.h).
    mutable std::atomic<uint64_t> tlb_gen{0};
    // Lower-half top-level slots (0-255) with an entry: the ones a CPU copies into its own
    // top-level table when it loads this space (arch/x86/cpu_private.h).
    std::atomic<uint64_t> lower_used[4]{};
    SpinLock lock{&g_address_space_class}; // serialises changes to the lower-half page tables
};

/// PCIDs are in use (CR4.PCIDE on every CPU; `pcid=0` turns them off).
bool address_space_pcid_enabled();
/// Address-space switches on the running CPU: with PCIDs, loads that kept the space's TLB
/// entries and loads that flushed them; every CR3 write; switches into a kernel thread that
/// kept the previous space loaded (lazy), returns to it that needed no flush, and returns that
/// flushed because a change was made meanwhile (its generation moved on).
struct AddressSpaceSwitchStats {
    uint64_t kept, flushed;
    uint64_t cr3_writes;
    uint64_t lazy_entered, lazy_kept, lazy_flushed;
};
AddressSpaceSwitchStats address_space_switch_stats();

/// The kernel's own address space (loaded on every CPU unless a private one is active).
AddressSpace& kernel_address_space();
void address_space_init_kernel(uint64_t root);

/// A new address space sharing the kernel half; nullptr when out of memory.
AddressSpace* address_space_create();
/// Frees the lower-half page tables and the address space. It must not be active anywhere;
/// CPUs that keep it loaded lazily are moved to the kernel's space first (a remote call, so
/// interrupts must be enabled).
void address_space_destroy(AddressSpace* as);

/// Loads `as` on the running CPU (CR3 only changes when it differs) and keeps the active masks
/// right: set in the new one before the switch, so a concurrent shootdown includes us, and
/// cleared in the old one after it.
void address_space_activate(AddressSpace* as);
/// The address space loaded on the running CPU.
AddressSpace* address_space_current();

/// The scheduler is switching to a kernel thread: keep the loaded address space (no CR3 write;
/// without PCIDs a CR3 write also drops the whole TLB) but leave its active set, so its
/// shootdowns skip this CPU. address_space_activate checks its generation on the way back and
/// flushes if anything changed meanwhile (Linux's lazy TLB). `tlb.lazy=0` turns this off:
/// kernel threads then load the kernel's space.
void address_space_enter_lazy();
/// CPU hotplug, on the CPU going offline: loads the kernel's space and leaves every space's
/// active set, so no shootdown waits for it; forgets its PCIDs (INIT empties the TLB).
void address_space_cpu_leaving();
/// Lazy TLB is on (`tlb.lazy`, default 1).
bool tlb_lazy_enabled();

/// Maps one 4 KiB page in the lower half (kernel access only; `writable` as asked, never
/// executable). False if already mapped or out of memory.
[[nodiscard]] bool address_space_map(AddressSpace* as, uint64_t va, uint64_t pa, bool writable);
/// Unmaps [va, va+size) in the lower half and shoots the pages down on every CPU where `as`
/// is active. Returns how many pages were mapped.
uint64_t address_space_unmap(AddressSpace* as, uint64_t va, uint64_t size);

} // namespace cohort
