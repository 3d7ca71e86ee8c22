// The kernel's lock order, in one place. A lock may be taken only while every lock already
// held has a strictly lower rank (debug builds check it: sync/lock_debug.h), so the numbers
// read from the outermost lock to the innermost. Gaps leave room for new classes.
//
//   percpu areas -> kernel stack caches -> kernel stack slots -> address-space and kernel
//     page tables -> wait queues -> run queues -> task and reaper lists -> timer queues
//     -> heap CPU caches -> heap size classes -> page CPU caches -> page allocator
//     -> interrupt table -> vector allocator -> I/O APIC chips -> console input -> console
//
// Why this order: a wake-up holds its wait queue's lock while it takes the run queue's; the
// scheduler arms timers and frees tasks under a run-queue or wait-queue lock; page tables and
// the heap take pages from the page allocator while they hold their own lock; a CPU cache
// refills from (and drains to) the shared structure behind it while it holds its own lock;
// anything may log.
#pragma once

#include <cstdint>

namespace cohort::rank {

inline constexpr uint32_t kPercpu = 10;
inline constexpr uint32_t kStackCache = 15;
inline constexpr uint32_t kStackSlots = 20;
inline constexpr uint32_t kAddressSpace = 30;
inline constexpr uint32_t kKernelPageTables = 32;
inline constexpr uint32_t kWaitQueue = 50;
inline constexpr uint32_t kRunQueue = 60;
inline constexpr uint32_t kTaskList = 70;
inline constexpr uint32_t kReapList = 72;
inline constexpr uint32_t kTimerQueue = 80;
inline constexpr uint32_t kHeapCpuCache = 95;
inline constexpr uint32_t kHeap = 100;
inline constexpr uint32_t kPageCpuCache = 105;
inline constexpr uint32_t kPageAllocator = 110;
inline constexpr uint32_t kIrqTable = 115;
inline constexpr uint32_t kVectors = 120;
inline constexpr uint32_t kIoApic = 125;
inline constexpr uint32_t kConsoleInput = 240;
inline constexpr uint32_t kConsole = 250;

} // namespace cohort::rank
