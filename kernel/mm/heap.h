// kmalloc/kfree: the kernel heap (a SlabHeap over physical pages in the direct map).
#pragma once

#include <cstddef>

#include "mm/slab_heap.h"

namespace cohort {

void heap_init(bool poison);
/// Per-CPU object caches for cpu_count() CPUs (after every CPU's id is fixed, before APs
/// allocate).
void heap_enable_cpu_caches();
/// Gives cached objects and kept empty slabs back, so heap_stats().pages is what live objects
/// use: tests that compare against a baseline drain first.
void heap_drain();
/// Flushes CPU `cpu`'s object cache (CPU hotplug); returns the objects flushed.
uint64_t heap_drain_cpu(uint32_t cpu);
uint64_t heap_cached_objects();
/// 16-byte aligned, uninitialised; nullptr when out of memory.
[[nodiscard]] void* kmalloc(size_t size);
[[nodiscard]] void* kzalloc(size_t size);
void kfree(void* p);
/// As kmalloc, in memory of NUMA node `node` (or the node nearest it with memory). Objects for
/// another node than the caller's take whole pages: meant for per-CPU structures set up once.
[[nodiscard]] void* kmalloc_node(size_t size, uint32_t node);
[[nodiscard]] void* kzalloc_node(size_t size, uint32_t node);
SlabHeap::Stats heap_stats();
SlabHeap::ClassStats heap_class_stats(size_t cls);

} // namespace cohort
