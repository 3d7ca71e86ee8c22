// Lock classes: a name, a rank for lock-order checking, and contention statistics shared by
// every lock that points at the class. Locks without a class (nullptr) pay one predictable
// branch on the fast path and nothing else.
#pragma once

#include <atomic>
#include <cstdint>

namespace cohort {

/// Where a lock was taken. Filled in at the call site by COHORT_LOCK_SITE default arguments.
struct LockSite {
    const char* file = nullptr;
    uint32_t line = 0;
};

/// The caller's file and line, for use as a default argument (clang and gcc evaluate the
/// builtins at the call site of the function whose default argument this is).
#define COHORT_LOCK_SITE                                                                           \
    ::cohort::LockSite {                                                                           \
        __builtin_FILE(), __builtin_LINE()                                                         \
    }

/// Timestamps for wait and hold times: the TSC in both kernel and host (both are x86-64 with an
/// invariant TSC), so the numbers are comparable; convert with the kernel's TSC frequency.
inline uint64_t lock_clock_now() {
    return __builtin_ia32_rdtsc();
}

/// A snapshot of a class's statistics; times are lock_clock_now() ticks.
struct LockStats {
    uint64_t acquisitions = 0;
    uint64_t contended = 0; // acquisitions that had to wait
    uint64_t total_wait = 0;
    uint64_t max_wait = 0;
    uint64_t total_hold = 0; // exclusive holds only: shared holds overlap
    uint64_t max_hold = 0;
};

/// How many CPUs share one lock of a class. bench=scale counts acquisitions of MachineWide
/// classes per operation: such a lock on a path every CPU takes caps how the kernel scales.
enum class LockScope : uint8_t {
    PerObject,   // one per object (a wait queue, an address space)
    PerCpu,      // one per CPU, taken almost only by its owner (run queue, per-CPU caches)
    MachineWide, // one (or a few) for the whole machine (the page allocator's buddy lists)
};

/// A named group of locks with the same role, e.g. every slab-cache lock. Define one per role
/// as a global (`constinit LockClass g_pmm_class{"pmm", 20};`) and pass its address to the
/// locks. Classes register themselves on first use so bench=locks can list them.
class LockClass {
  public:
    /// `rank` orders classes: a lock may only be taken while every ranked lock held has a
    /// strictly lower rank. 0 means unranked (not order-checked).
    constexpr explicit LockClass(const char* name, uint32_t rank = 0, bool stats = true)
        : name_(name), rank_(rank), stats_on_(stats) {}
    /// `stats` off keeps a PerCpu class's locks from sharing a statistics cache line between
    /// every CPU (the counters below are machine-wide).
    constexpr LockClass(const char* name, uint32_t rank, LockScope scope, bool stats = true)
        : name_(name), rank_(rank), scope_(scope), stats_on_(stats) {}
    LockClass(const LockClass&) = delete;
    LockClass& operator=(const LockClass&) = delete;

    const char* name() const { return name_; }
    uint32_t rank() const { return rank_; }
    LockScope scope() const { return scope_; }

    bool stats_enabled() const { return stats_on_.load(std::memory_order_relaxed); }
    void set_stats_enabled(bool on) { stats_on_.store(on, std::memory_order_relaxed); }

    /// Called by locks: one acquisition that waited `wait` ticks.
    void record_acquire(bool contended, uint64_t wait);
    /// Called by locks: one exclusive hold of `hold` ticks.
    void record_hold(uint64_t hold);

    LockStats stats() const;
    void reset_stats();

    /// The registered classes (those that recorded at least one acquisition), newest first.
    static LockClass* first_registered();
    /// Acquisitions of every MachineWide class so far (those with statistics on).
    static uint64_t machine_wide_acquisitions();
    LockClass* next_registered() const { return next_; }

  private:
    void register_once();

    const char* name_;
    uint32_t rank_;
    LockScope scope_ = LockScope::PerObject;
    std::atomic<bool> stats_on_;
    std::atomic<bool> registered_{false};
    LockClass* next_ = nullptr;
    // Own cache line: every CPU taking a lock of this class writes here.
    alignas(64) std::atomic<uint64_t> acquisitions_{0};
    std::atomic<uint64_t> contended_{0};
    std::atomic<uint64_t> total_wait_{0};
    std::atomic<uint64_t> max_wait_{0};
    std::atomic<uint64_t> total_hold_{0};
    std::atomic<uint64_t> max_hold_{0};
};

/// True when `cls` wants timestamps: the only test on a class-less lock's fast path.
inline bool lock_stats_on(const LockClass* cls) {
    return cls != nullptr && cls->stats_enabled();
}

} // namespace cohort
