// Per-CPU variables. Declare one in one line:
//
//     COHORT_PERCPU(uint64_t, g_ticks);
//     per_cpu(g_ticks)++;                  // this CPU's copy, found through %gs
//     per_cpu_on(cpu_by_id(3), g_ticks);   // another CPU's copy
//
// Declared variables live in the .percpu section of the image, which serves as the template:
// every CPU gets its own copy of it (plus room for run-time allocations), and
// CpuData::percpu_offset is the distance from the template to that copy.
#pragma once

#include <cstddef>
#include <cstdint>

#include "smp/cpu.h"

#define COHORT_PERCPU(type, name) [[gnu::section(".percpu")]] type name

namespace cohort {

/// This CPU's copy of a per-CPU variable: one load relative to the CPU's base (x86: %gs) plus
/// an add.
template <typename T>
inline T& per_cpu(T& var) {
    const uint64_t offset = arch::cpu_base_load<8>(); // CpuData::percpu_offset
    // Integer arithmetic: the offset "wraps" (copies sit below the image), which is fine for
    // addresses but would be pointer-overflow UB on char*.
    return *reinterpret_cast<T*>(reinterpret_cast<uintptr_t>(&var) + offset);
}

/// Another CPU's copy.
template <typename T>
inline T& per_cpu_on(const CpuData* cpu, T& var) {
    return *reinterpret_cast<T*>(reinterpret_cast<uintptr_t>(&var) + cpu->percpu_offset);
}

/// The least each CPU's area holds beyond the .percpu template: the run-time pool (the area is
/// whole pages, so the pool also gets the rest of the last page).
constexpr size_t kPerCpuDynamicSize = 4 * 1024;

/// Snapshots the template and gives the boot CPU its own copy (after the heap is up).
void percpu_init_boot_cpu();
/// Gives `cpu` a fresh copy of the template (zeroed run-time pool), in memory of NUMA node
/// `node`. False on allocation failure.
bool percpu_setup(CpuData* cpu, uint32_t node);

/// A run-time per-CPU allocation: the same offset in every CPU's area.
template <typename T>
class PerCpu {
  public:
    PerCpu() = default;
    explicit PerCpu(size_t offset) : offset_(offset) {}
    bool valid() const { return offset_ != 0; }
    T& get() const { return on(this_cpu()); }
    T& on(const CpuData* cpu) const {
        return *reinterpret_cast<T*>(reinterpret_cast<uintptr_t>(base(cpu)) + offset_);
    }

  private:
    static char* base(const CpuData* cpu);
    size_t offset_ = 0;
};

/// Reserves zeroed storage of `size` bytes on every CPU (present and future). Returns the
/// offset from the start of a CPU's area, or 0 when the pool is exhausted.
size_t percpu_alloc(size_t size, size_t align);

template <typename T>
PerCpu<T> percpu_alloc() {
    return PerCpu<T>(percpu_alloc(sizeof(T), alignof(T)));
}

extern "C" char __percpu_start[];
template <typename T>
char* PerCpu<T>::base(const CpuData* cpu) {
    return reinterpret_cast<char*>(reinterpret_cast<uintptr_t>(__percpu_start) + cpu->percpu_offset);
}

} // namespace cohort
