// The spin-wait hint, shared by kernel and host builds (both are x86-64).
#pragma once

#ifdef COHORT_HOST
#include <sched.h>
#endif

namespace cohort {
/// Tells the CPU we are spinning: saves power and lets a sibling hyperthread run.
#ifndef COHORT_HOST
inline void cpu_relax() { __builtin_ia32_pause(); }
#else
/// On the host, spinning threads may outnumber CPUs and the lock holder may be preempted; yield
/// so the holder (or the next ticket) gets to run instead of spinning out a whole time slice.
inline void cpu_relax() {
    __builtin_ia32_pause();
    sched_yield();
}
#endif
} // namespace cohort
