// Where a task should run, and when a CPU should take work from another: pure decisions over a
// view of the CPUs (idle or not, how many runnable tasks), so host tests can drive them.
#pragma once

#include <cstdint>

#include "smp/cpumask.h"

namespace cohort::sched {

/// What placement and balancing need to know about one CPU.
struct CpuLoad {
    bool online = false;
    bool idle = false;     // running its idle task with nothing queued
    uint32_t runnable = 0; // running (not idle) plus queued tasks
};

/// Chooses the CPU for a task that becomes runnable (created or woken). `prev` is where it ran
/// last (kMaxCpus for a new task), `allowed` its affinity, `view(cpu)` returns a CpuLoad for
/// ids below `ncpus`. In order: the previous CPU if it is idle (its caches still hold the
/// task's data); else an idle allowed CPU, searched from `prev + 1` so wake-ups spread; else the
/// least loaded allowed CPU (ties go to the previous one). Returns kMaxCpus if none is allowed.
template <typename View>
uint32_t select_cpu(uint32_t prev, const CpuMask& allowed, uint32_t ncpus, View&& view) {
    const bool prev_ok = prev < ncpus && allowed.test(prev) && view(prev).online;
    if (prev_ok && view(prev).idle) return prev;
    const uint32_t start = prev < ncpus ? prev + 1 : 0;
    uint32_t best = kMaxCpus, best_load = UINT32_MAX;
    if (prev_ok) best = prev, best_load = view(prev).runnable;
    for (uint32_t i = 0; i < ncpus; ++i) {
        const uint32_t c = (start + i) % ncpus;
        if (!allowed.test(c)) continue;
        const CpuLoad l = view(c);
        if (!l.online) continue;
        if (l.idle) return c;
        if (l.runnable < best_load) best = c, best_load = l.runnable;
    }
    return best;
}

/// The CPU `self` should take one task from, or kMaxCpus: the most loaded online CPU whose load
/// exceeds ours by at least two (moving one task then narrows the gap instead of reversing it),
/// or by one when we are idle and it has a task waiting.
template <typename View>
uint32_t find_busiest(uint32_t self, uint32_t ncpus, View&& view) {
    const CpuLoad me = view(self);
    uint32_t busiest = kMaxCpus, most = 0;
    for (uint32_t c = 0; c < ncpus; ++c) {
        if (c == self) continue;
        const CpuLoad l = view(c);
        if (l.online && l.runnable > most) busiest = c, most = l.runnable;
    }
    if (busiest == kMaxCpus) return kMaxCpus;
    const uint32_t mine = me.idle ? 0 : me.runnable;
    // A CPU with one task has nothing waiting: taking its running task is impossible.
    if (most >= 2 && most >= mine + 2) return busiest;
    return kMaxCpus;
}

/// Periodic balancing from a busy CPU (`self`, with `mine` runnable tasks): the allowed CPU to
/// push one waiting task to, or kMaxCpus. An idle CPU first; else the least loaded one, and only
/// if it has at least two tasks fewer than we do, so a move narrows the gap instead of
/// reversing it (the same rule as find_busiest, seen from the other side).
template <typename View>
uint32_t find_push_target(uint32_t self, uint32_t mine, const CpuMask& allowed, uint32_t ncpus,
                          View&& view) {
    uint32_t best = kMaxCpus, best_load = UINT32_MAX;
    for (uint32_t c = allowed.first(); c != CpuMask::kNone && c < ncpus; c = allowed.next(c + 1)) {
        if (c == self) continue;
        const CpuLoad l = view(c);
        if (!l.online) continue;
        if (l.idle) return c;
        if (l.runnable < best_load) best = c, best_load = l.runnable;
    }
    if (best != kMaxCpus && best_load + 2 <= mine) return best;
    return kMaxCpus;
}

} // namespace cohort::sched
