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

/// Allocates and maps a stack of `size` bytes (rounded up to pages, at most 252 KiB).
/// Returns an invalid stack when memory or slots are exhausted.
KernelStack kstack_alloc(size_t size);
void kstack_free(KernelStack& stack);

/// If `addr` lies in the guard region of an allocated stack, writes a description such as
/// ", in the guard page below kernel stack 3 [...]" into buf and returns true.
bool kstack_describe_guard(uint64_t addr, char* buf, size_t size);

uint64_t kstack_in_use();

} // namespace cohort
