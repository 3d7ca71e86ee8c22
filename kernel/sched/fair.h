// The fair scheduling policy, free of hardware: a run queue ordered by weighted virtual run
// time (as CFS), the placement rules for new and waking tasks, time slices and the preemption
// test. The kernel's scheduler (sched/core.cc) applies it under its run-queue locks; host tests
// drive it with simulated time.
//
// Virtual run time advances by real run time scaled by kDefaultWeight / weight, so a task of
// weight 2048 accrues it half as fast as one of 1024 and is picked twice as often. Always
// running the queued task with the least virtual run time gives each task a share of the CPU
// proportional to its weight.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lib/rbtree.h"

namespace cohort::sched {

/// Weight of an ordinary task. Weights are relative: 1:2:4 means shares of 1/7, 2/7, 4/7.
inline constexpr uint32_t kDefaultWeight = 1024;
inline constexpr uint32_t kMinWeight = 1, kMaxWeight = 1u << 20;

/// Tunables, in nanoseconds. The defaults suit an emulator as well as hardware: under TCG a
/// timer interrupt costs tens of microseconds, so slices are a few milliseconds.
struct FairParams {
    uint64_t period_ns = 12'000'000;     // every runnable task runs once per period...
    uint64_t min_slice_ns = 2'000'000;   // ...unless that makes slices shorter than this
    uint64_t wakeup_credit_ns = 3'000'000; // how far behind the queue a sleeper may re-enter
};

/// The scheduler's per-task bookkeeping for the fair class.
struct FairEntity {
    uint64_t vruntime = 0;
    uint32_t weight = kDefaultWeight;
    RbNode link;           // in a FairQueue while ready
    void* owner = nullptr; // the task (or test object) this entity schedules
};

/// Virtual time for `ns` of real run time at `weight`.
uint64_t weighted_delta(uint64_t ns, uint32_t weight);

/// Ready entities ordered by vruntime (FIFO among equals), in a red-black tree: O(log n)
/// enqueue and dequeue, O(1) first and last. The running entity is not queued. Not thread-safe:
/// the owner's run-queue lock protects it.
class FairQueue {
  public:
    void enqueue(FairEntity& e);
    void dequeue(FairEntity& e);
    /// The entity with the least vruntime, or nullptr.
    FairEntity* first() { return tree_.first(); }
    /// The entity with the largest vruntime (the one that waits least for a CPU: the natural
    /// one to hand to another CPU), or nullptr.
    FairEntity* last() { return tree_.last(); }
    bool empty() const { return tree_.empty(); }
    size_t count() const { return tree_.size(); }
    uint64_t total_weight() const { return total_weight_; }

    /// Monotonic floor of the queue's virtual time: the least vruntime among the queued and the
    /// running entity (`running` may be nullptr). New and woken entities are placed relative to it.
    uint64_t min_vruntime() const { return min_vruntime_; }
    void update_min_vruntime(const FairEntity* running);

    /// Where an arriving entity starts: a new one at the floor (it must not jump ahead of those
    /// waiting), a woken one at most `wakeup_credit` behind it (a long sleep earns a little
    /// priority, not a monopoly), never before its own vruntime.
    uint64_t placement(uint64_t vruntime, bool is_new, const FairParams& p) const;

    /// The neighbour of `e` towards the front (smaller vruntime), or nullptr: walks the queue
    /// from last() when looking for an entity another CPU may take.
    FairEntity* prev(FairEntity& e) { return tree_.prev(e); }

  private:
    struct ByVruntime {
        bool operator()(const FairEntity& a, const FairEntity& b) const {
            return a.vruntime < b.vruntime;
        }
    };
    RbTree<FairEntity, &FairEntity::link, ByVruntime> tree_;
    uint64_t total_weight_ = 0;
    uint64_t min_vruntime_ = 0;
};

/// The slice `weight` gets when `nr_running` tasks of `total_weight` (including it) share a CPU.
uint64_t fair_slice(uint32_t weight, uint64_t total_weight, size_t nr_running, const FairParams& p);

/// A running entity is preempted by `next` once it is ahead in virtual time by more than the
/// minimum slice (scaled to next's weight), so two equal tasks alternate instead of thrashing.
bool fair_should_preempt(const FairEntity& running, const FairEntity& next, const FairParams& p);

} // namespace cohort::sched
