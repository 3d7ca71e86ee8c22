// CPU-private mappings (docs/security.md, "CPU-private mappings"): every CPU runs on its own
// top-level page table, a copy of the kernel's master table whose slot 510 points at tables
// only that CPU has. They map, at the same addresses on every CPU, the CPU's own top-level
// table (writable only there), its IST stacks (guard pages between) and its CPU-private
// variables (smp/cpu_private.h). Those pages have no direct-map alias (the table pages a
// read-only one), so no other CPU can write them. An address space's lower half is copied into
// the running CPU's table when it is loaded (arch/x86/address_space.cc).
#pragma once

#include <cstddef>
#include <cstdint>

namespace cohort {
struct AddressSpace;
struct CpuData;
} // namespace cohort

namespace cohort::x86 {

/// Builds `cpu`'s own top-level table and private region in memory of its node and takes its
/// pages out of the direct map. At boot, for every CPU (hot-add slots included), before it
/// runs; false (logged) when out of memory.
bool cpu_private_setup(CpuData& cpu);
/// The top of IST stack `i` (0-based), the same address on every CPU.
uint64_t cpu_private_ist_top(int i);
/// The regions are enforced (`security.cpu_private`, default 1). With 0 they are built the same
/// but keep a writable direct-map alias: the test that another CPU cannot write them then fails.
bool cpu_private_enforced();
/// Which CPU's private pages (or page tables) `phys` is in; UINT32_MAX when none.
uint32_t cpu_private_owner(uint64_t phys, const char** what);
/// If `addr` is a guard page of the private region or a direct-map address of some CPU's
/// private pages, says so in `buf` (for fault reports).
bool cpu_private_describe(uint64_t addr, char* buf, size_t size);

// The lower half of the running CPU's top-level table (arch/x86/address_space.cc).
/// Clears the previous space's entries (before loading CR3 for another space).
void lower_half_clear();
/// Copies `as`'s entries (after that CR3 load) and records it as installed.
void lower_half_fill(const AddressSpace* as);
/// The space whose lower half the running CPU's table holds.
const AddressSpace* lower_half_installed();
/// A not-present fault at lower-half `addr` whose top-level entry the installed space has and
/// this CPU's copy lacks (the space grew since it was installed): copies it; true to retry.
bool lower_half_sync_fault(uint64_t addr);
/// Entries lower_half_sync_fault copied so far, on every CPU.
uint64_t lower_half_syncs();

} // namespace cohort::x86
