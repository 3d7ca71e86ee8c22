// Each CPU's own stacks: the kernel stack its idle task starts on and one stack per IST slot
// in use, all guarded (mm/kstack.h). Shared by the boot CPU's switch away from its static boot
// stack (main.cc) and the per-AP set-up (ap_boot.cc).
#pragma once

#include <cstddef>

#include "smp/cpu.h"

namespace cohort::x86 {

inline constexpr size_t kKernelStackSize = 64 * 1024;
inline constexpr size_t kIstStackSize = 16 * 1024;

/// Allocates `cpu`'s kernel stack and its IST stacks and records their bounds in
/// cpu.kernel_stack_top/bottom and cpu.ist_tops (not in the TSS: the caller loads or patches
/// that). False when out of memory or stack slots, with nothing left allocated.
bool alloc_cpu_stacks(CpuData& cpu);

} // namespace cohort::x86
