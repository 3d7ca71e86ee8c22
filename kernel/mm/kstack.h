// Kernel stacks with guard regions: each stack sits at the top of its own 256 KiB slot of
// virtual address space, and the unmapped rest of the slot below it catches overflows.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cohort {

struct KernelStack {
    uint64_t bottom = 0; // lowest mapped address
    uint64_t top = 0;    // one past the highest address: the initial stack pointer
    uint32_t slot = 0;
    bool valid() const { return top != 0; }
};

/// Task stacks' usual size: stacks of exactly this size are cached per CPU.
inline constexpr size_t kKernelStackDefaultSize = 16 * 1024;

/// Allocates and maps a stack of `size` bytes (rounded up to pages, at most 252 KiB).
/// Returns an invalid stack when memory or slots are exhausted. A default-size stack may come
/// from this CPU's cache: same guard region, contents zeroed.
KernelStack kstack_alloc(size_t size);
/// The same with its frames from NUMA node `node` (or the node nearest it with memory), never
/// from a CPU's cache: for stacks the boot CPU sets up for another CPU.
KernelStack kstack_alloc_node(size_t size, uint32_t node);
/// Keeps a default-size stack in this CPU's cache if there is room (no unmap, no IPI);
/// otherwise queues it for the next batched unmap (one shootdown for up to 32 stacks), which
/// runs here once a batch is full. Thread context.
void kstack_free(KernelStack& stack);
/// The same without ever purging, for the context switch that buries a dead task: returns
/// true when a batch is due, and then some thread should call kstack_purge().
bool kstack_release_nonblocking(KernelStack& stack);
/// Unmaps and frees every stack queued for a purge (thread context, interrupts on).
void kstack_purge();
/// Turns the per-CPU caches on (once every CPU's per-CPU area exists).
void kstack_enable_cpu_caches();
/// Unmaps every cached stack and every stack awaiting a purge, and frees them. Returns how
/// many stacks came out of CPU caches.
uint64_t kstack_drain();
/// CPU hotplug: CPU `cpu`'s cached stacks go to the purge queue (unmapped with the next
/// batch, not now). Returns how many.
uint64_t kstack_drain_cpu(uint32_t cpu);

struct KstackStats {
    uint64_t slots_in_use = 0;   // mapped or awaiting a purge, cached ones included
    uint64_t cached = 0;         // in CPU caches
    uint64_t awaiting_purge = 0; // unmapped with the next batch
    uint64_t cache_hits = 0, cache_misses = 0, purges = 0;
    uint32_t purging = 0;        // purges under way right now
};
KstackStats kstack_stats();

/// If `addr` lies in the guard region of an allocated stack, writes a description such as
/// ", in the guard page below kernel stack 3 [...]" into buf and returns true.
bool kstack_describe_guard(uint64_t addr, char* buf, size_t size);

uint64_t kstack_in_use();

} // namespace cohort
