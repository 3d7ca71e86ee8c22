// The memory allocators' per-CPU caches as a whole.
#pragma once

namespace cohort {

/// Empties every per-CPU cache of the allocators: kernel stacks (unmapped in one batch), heap
/// objects and kept empty slabs, then page blocks. Afterwards heap_stats().pages,
/// kstack_in_use() and pmm::stats() count only what is in use, so a test that compares them
/// with a baseline drains before taking each snapshot. No CPU is interrupted (each cache has
/// its own lock); the one purge of stacks is a TLB shootdown. Waits for stack purges other
/// CPUs have under way (thread context only: it sleeps).
void mm_drain_caches();

} // namespace cohort
