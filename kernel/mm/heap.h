// kmalloc/kfree: the kernel heap (a SlabHeap over physical pages in the direct map).
#pragma once

#include <cstddef>

#include "mm/slab_heap.h"

namespace cohort {

void heap_init(bool poison);
/// 16-byte aligned, uninitialised; nullptr when out of memory.
[[nodiscard]] void* kmalloc(size_t size);
[[nodiscard]] void* kzalloc(size_t size);
void kfree(void* p);
SlabHeap::Stats heap_stats();

} // namespace cohort
