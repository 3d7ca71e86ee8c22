// The fair policy and the placement rules, driven with simulated time.
#include <gtest/gtest.h>

#include <vector>

#include "sched/fair.h"
#include "sched/placement.h"

namespace {

using namespace cohort;
using namespace cohort::sched;

struct SimTask {
    FairEntity e;
    uint64_t ran_ns = 0;
};

// Runs the scheduler's loop on one simulated CPU: pick the least vruntime, run it for its slice
// (or until a task in the queue should preempt it), charge it, put it back.
void simulate(std::vector<SimTask>& tasks, uint64_t total_ns, const FairParams& p) {
    FairQueue q;
    for (SimTask& t : tasks) q.enqueue(t.e);
    uint64_t now = 0;
    while (now < total_ns) {
        FairEntity* e = q.first();
        q.dequeue(*e);
        SimTask* t = reinterpret_cast<SimTask*>(e); // e is the first member
        const uint64_t slice = fair_slice(e->weight, q.total_weight() + e->weight, q.count() + 1, p);
        e->vruntime += weighted_delta(slice, e->weight);
        t->ran_ns += slice;
        now += slice;
        q.update_min_vruntime(e);
        q.enqueue(*e);
    }
}

TEST(FairPolicy, WeightsOneTwoFourGetProportionalTime) {
    std::vector<SimTask> tasks(3);
    tasks[0].e.weight = 1024;
    tasks[1].e.weight = 2048;
    tasks[2].e.weight = 4096;
    simulate(tasks, 2'000'000'000, FairParams{});
    const double total = tasks[0].ran_ns + tasks[1].ran_ns + tasks[2].ran_ns;
    EXPECT_NEAR(tasks[0].ran_ns / total, 1.0 / 7, 0.01);
    EXPECT_NEAR(tasks[1].ran_ns / total, 2.0 / 7, 0.01);
    EXPECT_NEAR(tasks[2].ran_ns / total, 4.0 / 7, 0.01);
}

TEST(FairPolicy, EqualTasksShareEqually) {
    std::vector<SimTask> tasks(5);
    simulate(tasks, 1'000'000'000, FairParams{});
    for (const SimTask& t : tasks) EXPECT_NEAR(t.ran_ns / 1e9, 0.2, 0.01);
}

TEST(FairPolicy, QueueIsOrderedAndFifoAmongEquals) {
    FairEntity a, b, c, d;
    a.vruntime = 5, b.vruntime = 3, c.vruntime = 5, d.vruntime = 1;
    FairQueue q;
    q.enqueue(a);
    q.enqueue(b);
    q.enqueue(c);
    q.enqueue(d);
    EXPECT_EQ(q.count(), 4u);
    EXPECT_EQ(q.total_weight(), 4u * kDefaultWeight);
    EXPECT_EQ(q.first(), &d);
    EXPECT_EQ(q.last(), &c); // equal to a, but arrived later
    EXPECT_EQ(q.prev(c), &a);
    q.dequeue(d);
    EXPECT_EQ(q.first(), &b);
    q.dequeue(b);
    q.dequeue(a);
    EXPECT_EQ(q.first(), &c);
    q.dequeue(c);
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.total_weight(), 0u);
}

TEST(FairPolicy, PlacementBoundsSleeperCreditAndNeverRewindsTheFloor) {
    FairParams p;
    FairQueue q;
    FairEntity running;
    running.vruntime = 100'000'000;
    q.update_min_vruntime(&running);
    EXPECT_EQ(q.min_vruntime(), 100'000'000u);
    // A long sleeper (vruntime far behind) comes back only wakeup_credit behind the floor.
    EXPECT_EQ(q.placement(0, false, p), 100'000'000u - p.wakeup_credit_ns);
    // A new task starts at the floor, never ahead of the tasks already waiting.
    EXPECT_EQ(q.placement(0, true, p), 100'000'000u);
    // Nobody is moved backwards in virtual time.
    EXPECT_EQ(q.placement(200'000'000, false, p), 200'000'000u);
    running.vruntime = 50; // the floor is monotonic
    q.update_min_vruntime(&running);
    EXPECT_EQ(q.min_vruntime(), 100'000'000u);
}

TEST(FairPolicy, PreemptionNeedsALeadOfMoreThanTheMinimumSlice) {
    FairParams p;
    FairEntity run, next;
    next.vruntime = 1000;
    run.vruntime = 1000 + p.min_slice_ns;
    EXPECT_FALSE(fair_should_preempt(run, next, p));
    run.vruntime += 1;
    EXPECT_TRUE(fair_should_preempt(run, next, p));
    EXPECT_FALSE(fair_should_preempt(next, run, p));
}

TEST(FairPolicy, SlicesFollowWeightAndRespectTheMinimum) {
    FairParams p;
    EXPECT_EQ(fair_slice(1024, 1024, 1, p), p.period_ns);
    EXPECT_EQ(fair_slice(1024, 4096, 2, p), p.period_ns / 4);
    EXPECT_EQ(fair_slice(1, 1u << 20, 2, p), p.min_slice_ns);
    // 100 tasks: the period stretches so each still gets the minimum.
    EXPECT_EQ(fair_slice(1024, 100 * 1024, 100, p), p.min_slice_ns);
    EXPECT_EQ(weighted_delta(1000, 2048), 500u);
    EXPECT_EQ(weighted_delta(1000, 512), 2000u);
}

struct Cpus {
    std::vector<CpuLoad> loads;
    explicit Cpus(size_t n) : loads(n) {
        for (CpuLoad& l : loads) l.online = true, l.runnable = 1;
    }
    auto view() {
        return [this](uint32_t c) { return loads[c]; };
    }
    uint32_t n() const { return static_cast<uint32_t>(loads.size()); }
};

TEST(Placement, PrefersTheIdlePreviousCpu) {
    Cpus c(4);
    c.loads[1].idle = true, c.loads[1].runnable = 0;
    c.loads[2].idle = true, c.loads[2].runnable = 0;
    EXPECT_EQ(select_cpu(2, CpuMask::first_n(4), c.n(), c.view()), 2u);
}

TEST(Placement, OtherwiseAnIdleCpuSearchedAfterThePreviousOne) {
    Cpus c(4);
    c.loads[0].idle = true, c.loads[0].runnable = 0;
    c.loads[3].idle = true, c.loads[3].runnable = 0;
    EXPECT_EQ(select_cpu(1, CpuMask::first_n(4), c.n(), c.view()), 3u);
    EXPECT_EQ(select_cpu(kMaxCpus, CpuMask::first_n(4), c.n(), c.view()), 0u);
}

TEST(Placement, OtherwiseTheLeastLoadedAllowedCpu) {
    Cpus c(4);
    c.loads[0].runnable = 3, c.loads[1].runnable = 2, c.loads[2].runnable = 1;
    c.loads[3].runnable = 1;
    EXPECT_EQ(select_cpu(1, CpuMask::first_n(4), c.n(), c.view()), 2u);
    c.loads[1].runnable = 1; // a tie keeps the previous CPU
    EXPECT_EQ(select_cpu(1, CpuMask::first_n(4), c.n(), c.view()), 1u);
}

TEST(Placement, AffinityAndOnlineStateAreHardLimits) {
    Cpus c(4);
    c.loads[0].idle = true, c.loads[0].runnable = 0;
    c.loads[2].online = false, c.loads[2].idle = true;
    CpuMask only23;
    only23.set(2);
    only23.set(3);
    EXPECT_EQ(select_cpu(0, only23, c.n(), c.view()), 3u);
    CpuMask only2;
    only2.set(2);
    EXPECT_EQ(select_cpu(0, only2, c.n(), c.view()), kMaxCpus);
}

TEST(Balance, IdleCpuStealsFromTheBusiestWithAWaitingTask) {
    Cpus c(4);
    c.loads[0].idle = true, c.loads[0].runnable = 0;
    c.loads[2].runnable = 3;
    EXPECT_EQ(find_busiest(0, c.n(), c.view()), 2u);
    c.loads[2].runnable = 1; // nothing waiting anywhere
    EXPECT_EQ(find_busiest(0, c.n(), c.view()), kMaxCpus);
}

TEST(Balance, BusyCpuMovesWorkOnlyWhenTheGapIsTwo) {
    Cpus c(3);
    c.loads[0].runnable = 2, c.loads[1].runnable = 3, c.loads[2].runnable = 2;
    EXPECT_EQ(find_busiest(0, c.n(), c.view()), kMaxCpus); // 3 vs 2: moving would just swap
    c.loads[1].runnable = 4;
    EXPECT_EQ(find_busiest(0, c.n(), c.view()), 1u);
    c.loads[1].online = false;
    EXPECT_EQ(find_busiest(0, c.n(), c.view()), kMaxCpus);
}

TEST(Balance, PushGoesToAnIdleCpuFirstThenOnlyAcrossAGapOfTwo) {
    Cpus c(4);
    c.loads[0].runnable = 3, c.loads[1].runnable = 2, c.loads[2].runnable = 2;
    c.loads[3].runnable = 2;
    const CpuMask all = CpuMask::first_n(4);
    EXPECT_EQ(find_push_target(0, 3, all, c.n(), c.view()), kMaxCpus); // 3 vs 2: just a swap
    c.loads[2].runnable = 1;
    EXPECT_EQ(find_push_target(0, 3, all, c.n(), c.view()), 2u);
    c.loads[3].idle = true, c.loads[3].runnable = 0;
    EXPECT_EQ(find_push_target(0, 3, all, c.n(), c.view()), 3u); // idle beats least loaded
    CpuMask not3 = all;
    not3.clear(3);
    EXPECT_EQ(find_push_target(0, 3, not3, c.n(), c.view()), 2u); // affinity is a hard limit
    c.loads[2].online = false;
    EXPECT_EQ(find_push_target(0, 3, not3, c.n(), c.view()), kMaxCpus);
}

} // namespace
