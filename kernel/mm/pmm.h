// The kernel's physical memory: a buddy allocator fed by the normalised memory map, with a
// cache per CPU in front of it for blocks of up to 16 pages (mm/page_cache.h). docs/memory.md.
#pragma once

#include <cstdint>

#include "lib/memmap.h"

namespace cohort::pmm {

/// Sets up the allocator from the normalised map (which already has the kernel image and the
/// low 1 MiB carved out). Its bitmap is placed in usable RAM below 4 GiB.
void init(MemoryMap& map);

/// One uninitialised 4 KiB frame; returns 0 when memory is exhausted.
uint64_t alloc_page();
/// `count` contiguous frames aligned to `align_pages`, all below `limit` (physical address).
uint64_t alloc_pages(uint64_t count, uint64_t align_pages = 1, uint64_t limit = UINT64_MAX);
/// Returns frames; a double free panics with the address (it means memory corruption).
void free_pages(uint64_t phys, uint64_t count = 1);
/// A frame filled with zeroes, reached through the direct map.
uint64_t alloc_zeroed_page();

/// Turns the per-CPU caches on, sized for cpu_count() CPUs. Call once every CPU's per-CPU area
/// exists and before any AP allocates.
void enable_cpu_caches();
/// Returns every CPU's cached blocks to the shared allocator (without interrupting those CPUs:
/// each cache has its own lock). Allocation does this by itself before it fails. Returns the
/// frames that went back.
uint64_t drain_cpu_caches();
/// The same for CPU `cpu`'s cache alone (CPU hotplug); returns the frames.
uint64_t drain_cpu_cache(uint32_t cpu);

/// Frames, at one moment. At a quiescent point managed == free + cached + used: every frame is
/// in the allocator, in a CPU cache, or held by a caller (counted on every path, so a frame
/// lost or duplicated between cache and allocator breaks the sum).
struct Stats {
    uint64_t managed = 0;
    uint64_t free = 0;   // in the shared allocator
    uint64_t cached = 0; // in CPU caches
    uint64_t used = 0;   // held by callers
};
Stats stats();

/// `count` contiguous frames from NUMA node `node` (or, when it has none free, the node
/// nearest it by SLIT distance), aligned to `align_pages`; 0 when memory is exhausted. Without
/// NUMA, or for a node that does not exist, the caller's node.
uint64_t alloc_pages_node(uint32_t node, uint64_t count, uint64_t align_pages = 1);

/// Splits the allocator by NUMA node (numa_map()): each node with memory gets its own buddy
/// lists, lock and metadata; frames in use at that moment are adopted by their node. From then
/// on a CPU allocates from its node first, then from the nearest nodes (by distance, then
/// node id), and a freed block goes back to its node; a CPU's cache holds only its node's
/// blocks. Call once, after numa_init() and before the CPU caches are on. False (and nothing
/// changes) with fewer than two nodes.
bool split_by_node();
/// The node whose allocator `phys` belongs to (0 before the split).
uint32_t node_of(uint64_t phys);
/// One node's frames, as Stats (used: what callers hold of that node's memory, counted from
/// the split on; at a quiescent point managed == free + cached + used for every node).
using NodeStats = Stats;
NodeStats node_stats(uint32_t node);
/// Free frames on a list of the wrong node (a zone's free lists or a CPU cache): 0 always.
uint64_t misplaced_frames();

/// Memory that can be allocated: the allocator's and the CPU caches' free frames.
uint64_t free_bytes();
uint64_t managed_bytes();
/// What the allocator's own metadata takes (about 9.3 bytes per frame up to the top of RAM,
/// holes included).
uint64_t metadata_bytes();

} // namespace cohort::pmm
