// CPU-private variables: state a CPU keeps for itself alone. Declare one in one line:
//
//     COHORT_CPU_PRIVATE(PcidCache, g_pcids);
//     cpu_private(g_pcids).switch_to(...);   // the running CPU's copy
//
// Unlike per-CPU variables (smp/percpu.h), which every CPU can reach through cpu_by_id, each
// CPU's copy lives in its private region (mm/layout.h: kCpuPrivateData), at the same address on
// every CPU, mapped only in that CPU's own top-level table and with no direct-map alias: no
// other CPU can read or write it. There is no `cpu_private_on(other)`; state others must see
// stays per-CPU. Usable once the CPU runs on its own page tables (the boot CPU: after
// switch_to_guarded_stacks; an AP: from the first line of ap_entry).
#pragma once

#include <cstdint>

#include "mm/layout.h"

#define COHORT_CPU_PRIVATE(type, name) [[gnu::section(".cpu_private")]] type name

extern "C" char __cpu_private_start[], __cpu_private_end[];

namespace cohort {

/// The running CPU's copy of a CPU-private variable: a constant address, no %gs load.
template <typename T>
inline T& cpu_private(T& var) {
    return *reinterpret_cast<T*>(layout::kCpuPrivateData + (reinterpret_cast<uintptr_t>(&var) -
                                                            reinterpret_cast<uintptr_t>(__cpu_private_start)));
}

} // namespace cohort
