// Kernel virtual memory: the kernel page tables, a page map/unmap API, device mappings and the
// W^X audit. Implemented by arch/x86/paging.cc.
#pragma once

#include <cstdint>

#include "lib/memmap.h"

namespace cohort {
class TlbBatch;
}

namespace cohort::vmm {

enum Prot : uint32_t {
    kRead = 0,          // every mapping is readable
    kWrite = 1u << 0,
    kExec = 1u << 1,
    kUncached = 1u << 2, // device registers
};

/// Builds the kernel page tables (direct map of RAM, W^X kernel image) and switches to them,
/// dropping the loader-era identity mapping.
void init(const MemoryMap& map);

/// Maps [va, va+size) to [pa, pa+size) with 4 KiB pages in the kernel page tables. Fails
/// (false, logged) rather than silently replacing an existing different mapping. Kernel-half
/// mappings are global; lower-half ones (the AP trampoline's identity map) never are.
[[nodiscard]] bool map(uint64_t va, uint64_t pa, uint64_t size, uint32_t prot);
/// Unmaps 4 KiB pages and shoots them down on every CPU. Returns how many were mapped.
uint64_t unmap(uint64_t va, uint64_t size);
/// Unmaps without flushing: the range joins `batch` (kernel-half TlbBatch), and the pages'
/// frames may be reused only after batch.flush(). One flush for many unmaps.
uint64_t unmap_batched(uint64_t va, uint64_t size, TlbBatch& batch);
/// Removes every lower-half (identity) mapping from the kernel page tables, flushes them from
/// every CPU's TLB and paging-structure caches, then frees the page-table pages.
void drop_low_half();
/// A top-level table for the AP trampoline, below 4 GiB (its 32-bit code loads it): the
/// kernel half shared with the kernel's own tables, and only the trampoline's code page (RX)
/// and data page (RW) identity-mapped in the lower half. Each AP leaves it for the kernel's
/// tables as its first act in 64-bit C++ code, so the kernel's tables never map the lower
/// half and removing the identity map needs no shootdown. 0 when out of memory.
uint64_t trampoline_root_create(uint64_t code_page, uint64_t data_page);
/// Frees a trampoline root and its lower-half tables. Only once no CPU can be using it: every
/// AP that ran the trampoline has loaded another CR3 or been sent INIT (which flushes its TLB
/// and paging-structure caches).
void trampoline_root_destroy(uint64_t root);
/// Physical address `va` maps to, or UINT64_MAX.
uint64_t translate(uint64_t va);
/// Page-table pages in use below the roots of every address space (built during boot or since).
int64_t page_table_pages();

/// Maps device memory (uncached) or firmware memory outside the direct map; returns the
/// virtual address of `pa` itself (offset preserved), or nullptr when out of address space.
void* map_device(uint64_t pa, uint64_t size, uint32_t prot = kRead | kWrite | kUncached);

/// Removes `pages` frames from `phys` on from the direct map (or, with `read_only`, leaves them
/// readable only), splitting its large pages as needed: for the CPU-private regions, at boot
/// only (no other CPU running: the flushes are local). False (logged) when out of memory for
/// the split tables, or when called with other CPUs running.
[[nodiscard]] bool direct_map_restrict(uint64_t phys, uint64_t pages, bool read_only);

/// Physical address of the kernel's master top-level table: every CPU's own top-level table
/// copies its kernel half, all but the CPU-private slot (arch/x86/cpu_private.cc).
uint64_t kernel_root();

struct WxAudit {
    uint64_t leaves_checked;
    uint64_t writable_executable; // violations
    uint64_t user_accessible;     // kernel-half pages with the user bit: also violations
    uint64_t first_bad_va;
};
/// Walks the live page tables of the kernel half and counts W+X and user-accessible mappings.
WxAudit audit_wx();

} // namespace cohort::vmm
