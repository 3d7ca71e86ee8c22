// Each CPU's own stacks: the kernel stack its idle task starts on and one stack per IST slot
// in use, all guarded (mm/kstack.h). Shared by the boot CPU's switch away from its static boot
// stack (main.cc) and the per-AP set-up (ap_boot.cc).
#pragma once

#include <cstddef>

#include "smp/cpu.h"

namespace cohort::x86 {

/// The boot CPU runs all of boot (ACPI parsing, bring-up) on its kernel stack; an AP's only
/// runs its own set-up and then its idle task, as deep as any task (which get 16 KiB).
inline constexpr size_t kBootCpuStackSize = 64 * 1024;
inline constexpr size_t kApStackSize = 16 * 1024;
/// Exception handlers on IST stacks (NMI, double fault, machine check, debug) only report and
/// stop or return; 8 KiB holds a panic with its backtrace (Linux gives them 4 KiB). Every byte
/// here is per CPU: at 255 CPUs, 8 KiB less per stack is 8 MiB less to back at boot.
inline constexpr size_t kIstStackSize = 8 * 1024;

/// Allocates `cpu`'s kernel stack and its IST stacks and records their bounds in
/// cpu.kernel_stack_top/bottom and cpu.ist_tops (not in the TSS: the caller loads or patches
/// that). False when out of memory or stack slots, with nothing left allocated.
bool alloc_cpu_stacks(CpuData& cpu);

} // namespace cohort::x86
