// The spin-wait hint, shared by kernel and host builds (both are x86-64).
#pragma once

namespace cohort {
/// Tells the CPU we are spinning: saves power and lets a sibling hyperthread run.
inline void cpu_relax() { __builtin_ia32_pause(); }
} // namespace cohort
