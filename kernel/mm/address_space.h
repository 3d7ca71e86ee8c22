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
    AtomicCpuMask active; // CPUs on which this address space is loaded right now
    // Bumped by every change that needs a TLB flush, before the shootdown: with PCIDs, CPUs
    // not running it may still hold its entries and flush them when they load it again
    // (mm/pcid_cache.h).
    mutable std::atomic<uint64_t> tlb_gen{0};
    SpinLock lock{&g_address_space_class}; // serialises changes to the lower-half page tables
};

/// PCIDs are in use (CR4.PCIDE on every CPU; `pcid=0` turns them off).
bool address_space_pcid_enabled();
/// Switches that kept the loaded address space's TLB entries (PCID) and that flushed them,
/// on the running CPU.
struct AddressSpaceSwitchStats {
    uint64_t kept, flushed;
};
AddressSpaceSwitchStats address_space_switch_stats();

/// The kernel's own address space (loaded on every CPU unless a private one is active).
AddressSpace& kernel_address_space();
void address_space_init_kernel(uint64_t root);

/// A new address space sharing the kernel half; nullptr when out of memory.
AddressSpace* address_space_create();
/// Frees the lower-half page tables and the address space. It must not be active anywhere.
void address_space_destroy(AddressSpace* as);

/// Loads `as` on the running CPU (CR3 only changes when it differs) and keeps the active masks
/// right: set in the new one before the switch, so a concurrent shootdown includes us, and
/// cleared in the old one after it.
void address_space_activate(AddressSpace* as);
/// The address space loaded on the running CPU.
AddressSpace* address_space_current();

/// Maps one 4 KiB page in the lower half (kernel access only; `writable` as asked, never
/// executable). False if already mapped or out of memory.
[[nodiscard]] bool address_space_map(AddressSpace* as, uint64_t va, uint64_t pa, bool writable);
/// Unmaps [va, va+size) in the lower half and shoots the pages down on every CPU where `as`
/// is active. Returns how many pages were mapped.
uint64_t address_space_unmap(AddressSpace* as, uint64_t va, uint64_t size);

} // namespace cohort
