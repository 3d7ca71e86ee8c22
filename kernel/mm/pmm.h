// The kernel's physical memory: a locked FrameAllocator fed by the normalised memory map.
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

uint64_t free_bytes();
uint64_t managed_bytes();

} // namespace cohort::pmm
