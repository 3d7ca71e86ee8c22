// The fair policy and the placement rules, driven with simulated time.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <memory>
#include <vector>

#include "sched/fair.h"
#include "sched/placement.h"
#include "sched/topology.h"
#include "sched_sim.h"

namespace {

using namespace cohort;
using namespace cohort::sched;
using namespace cohort::sched::test;

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

TEST(Topology, ApicIdFieldsFollowTheWidths) {
    // 2 threads per core (1 bit), 8 cores per package (3 bits): package shift 4.
    const CpuPlace p = place_of(0x2b, TopologyWidths{1, 4});
    EXPECT_EQ(p.thread, 1u);
    EXPECT_EQ(p.core, 5u);
    EXPECT_EQ(p.package, 2u);
    // No SMT and everything one package (a shift of 32).
    const CpuPlace q = place_of(77, TopologyWidths{0, 32});
    EXPECT_EQ(q.thread, 0u);
    EXPECT_EQ(q.core, 77u);
    EXPECT_EQ(q.package, 0u);
}

TEST(Topology, FourPackagesOfEightCoresOfTwoThreadsHaveThreeLevels) {
    auto s = machine(4, 8, 2);
    const Topology& t = s->topo;
    ASSERT_EQ(t.levels(), 3u);
    EXPECT_EQ(t.kind(0), DomainKind::Smt);
    EXPECT_EQ(t.kind(1), DomainKind::Package);
    EXPECT_EQ(t.kind(2), DomainKind::Machine);
    EXPECT_EQ(t.packages(), 4u);
    EXPECT_EQ(t.max_cores(), 8u);
    EXPECT_EQ(t.max_threads(), 2u);
    for (uint32_t c = 0; c < 64; ++c) {
        EXPECT_EQ(t.span(c, 0).size(), 2u);
        EXPECT_EQ(t.span(c, 1).size(), 16u);
        EXPECT_EQ(t.span(c, 2).size(), 64u);
        // Every CPU of a span has the same core / package.
        for (uint32_t p = t.span(c, 0).lo; p < t.span(c, 0).hi; ++p)
            EXPECT_EQ(t.cpu_at(p) / 2, c / 2);
        for (uint32_t p = t.span(c, 1).lo; p < t.span(c, 1).hi; ++p)
            EXPECT_EQ(t.cpu_at(p) / 16, c / 16);
        EXPECT_EQ(t.cpu_at(t.pos(c)), c);
    }
}

TEST(Topology, AFlatMachineHasOnlyTheMachineLevel) {
    auto s = machine(1, 255, 1);
    ASSERT_EQ(s->topo.levels(), 1u);
    EXPECT_EQ(s->topo.kind(0), DomainKind::Machine);
    EXPECT_EQ(s->topo.span(200, 0).size(), 255u);
    auto one = machine(1, 1, 1);
    ASSERT_EQ(one->topo.levels(), 1u);
    EXPECT_EQ(one->topo.kind(0), DomainKind::Machine);
}

TEST(Topology, LevelsThatGroupNothingNewAreLeftOut) {
    // Two packages of one two-thread core: the package groups what the core does.
    auto s = machine(2, 1, 2);
    ASSERT_EQ(s->topo.levels(), 2u);
    EXPECT_EQ(s->topo.kind(0), DomainKind::Smt);
    EXPECT_EQ(s->topo.kind(1), DomainKind::Machine);
    // Single-thread cores in two packages: package and machine.
    auto p = machine(2, 4, 1);
    ASSERT_EQ(p->topo.levels(), 2u);
    EXPECT_EQ(p->topo.kind(0), DomainKind::Package);
    EXPECT_EQ(p->topo.kind(1), DomainKind::Machine);
}

TEST(Topology, CpuIdsOutOfTopologyOrderAndSparseApicIdsStillMakeContiguousDomains) {
    // CPU ids as a MADT may list them: package 1 before package 0, threads interleaved, and
    // core numbers with gaps (cores 0, 1, 4, 6 of a 3-bit field).
    const uint32_t apic[] = {0x13, 0x02, 0x10, 0x03, 0x0c, 0x12, 0x00, 0x1c,
                             0x01, 0x0d, 0x11, 0x1d, 0x08, 0x18, 0x09, 0x19};
    std::vector<CpuPlace> places;
    for (uint32_t id : apic) places.push_back(place_of(id, TopologyWidths{1, 4}));
    auto t = std::make_unique<Topology>();
    t->build(places.data(), static_cast<uint32_t>(places.size()));
    ASSERT_EQ(t->levels(), 3u);
    EXPECT_EQ(t->packages(), 2u);
    EXPECT_EQ(t->max_cores(), 4u);
    for (uint32_t c = 0; c < places.size(); ++c) {
        for (uint32_t l = 0; l < 2; ++l) {
            const Topology::Span sp = t->span(c, l);
            for (uint32_t p = sp.lo; p < sp.hi; ++p) {
                const CpuPlace& o = places[t->cpu_at(p)];
                EXPECT_EQ(o.package, places[c].package);
                if (l == 0) EXPECT_EQ(o.core, places[c].core);
            }
        }
        EXPECT_TRUE(t->span(c, 0).contains(t->pos(c)));
    }
}

TEST(Placement, PrefersTheIdlePreviousCpu) {
    auto s = machine(1, 4, 1);
    s->set(1, 0);
    s->set(2, 0);
    EXPECT_EQ(s->select(2, s->all()), 2u);
}

TEST(Placement, OtherwiseAnIdleCpuSearchedAfterThePreviousOne) {
    auto s = machine(1, 4, 1);
    s->set(0, 0);
    s->set(3, 0);
    EXPECT_EQ(s->select(1, s->all()), 3u);
    EXPECT_EQ(s->select(3, s->all()), 3u);
    s->set(3, 1);
    EXPECT_EQ(s->select(1, s->all()), 0u); // wraps around
}

TEST(Placement, OtherwiseTheLeastLoadedOfASampleNearThePreviousCpu) {
    auto s = machine(1, 8, 1);
    s->set(0, 3), s->set(1, 2), s->set(2, 1), s->set(3, 1);
    EXPECT_EQ(s->select(1, s->all()), 2u);
    s->set(1, 1); // a tie keeps the previous CPU
    EXPECT_EQ(s->select(1, s->all()), 1u);
    // The sample is bounded: a lightly loaded CPU far from the previous one is not seen.
    for (uint32_t c = 0; c < 8; ++c) s->set(c, 3);
    s->set(7, 2);
    EXPECT_EQ(s->select(0, s->all()), 0u);
    s->set(3, 2);
    EXPECT_EQ(s->select(0, s->all()), 3u);
}

TEST(Placement, AffinityAndOnlineStateAreHardLimits) {
    auto s = machine(1, 4, 1);
    s->set(0, 0);
    s->offline(2);
    CpuMask only23;
    only23.set(2);
    only23.set(3);
    EXPECT_EQ(s->select(0, only23), 3u);
    CpuMask only2;
    only2.set(2);
    EXPECT_EQ(s->select(0, only2), kMaxCpus);
    EXPECT_EQ(s->select(2, only2), kMaxCpus);
}

TEST(Placement, ATaskWhoseAllowedCpusAreMostlyOfflineStillFindsTheOnlineOne) {
    auto s = machine(1, 64, 1);
    CpuMask allowed = s->all();
    for (uint32_t c = 1; c < 64; ++c)
        if (c != 50) s->offline(c);
    allowed.clear(0);
    EXPECT_EQ(s->select(0, allowed), 50u);
}

TEST(Placement, SpreadTakesAnIdleCoreBeforeTheIdleSiblingOfABusyOne) {
    auto s = machine(2, 4, 2);
    // CPU 0 busy; its sibling 1 idle; core 2 (CPUs 4, 5) wholly idle; core 1 half busy.
    s->set(0, 1), s->set(1, 0), s->set(2, 1), s->set(3, 0), s->set(4, 0), s->set(5, 0);
    EXPECT_EQ(s->select(0, s->all()), 4u);
    // No idle core in the package or the machine search: the idle sibling.
    s->set(4, 1);
    for (uint32_t c = 8; c < 16; ++c) s->set(c, 1);
    EXPECT_EQ(s->select(0, s->all()), 1u);
}

TEST(Placement, PackFillsTheBusyPackageBeforeWakingAnIdleOne) {
    auto s = machine(2, 4, 1);
    // Package 0: CPU 0 busy, 1-3 idle. Package 1 (4-7): all idle.
    s->set(0, 1);
    for (uint32_t c = 1; c < 8; ++c) s->set(c, 0);
    // A task that last ran in the idle package goes next to the running work in pack mode,
    // stays where it was in spread mode (its previous CPU is idle).
    s->set(5, 1); // now package 1 has work too
    s->set(5, 0);
    CpuMask not5 = s->all();
    not5.clear(5);
    EXPECT_EQ(s->select(5, not5, Placement::Pack), 1u);
    EXPECT_EQ(s->select(5, not5, Placement::Spread), 6u);
}

TEST(Placement, ASearchReadsABoundedNumberOfLinesAtAnyMachineSize) {
    // Nobody idle (every mask word in the budget read, then the sample), and every CPU idle
    // but the previous one and those of its package (the preference checks all run).
    for (const Placement mode : {Placement::Spread, Placement::Pack}) {
        for (const auto& [p, c, t] : {std::array<uint32_t, 3>{1, 2, 1}, {1, 64, 1}, {1, 255, 1},
                                      {1, 4095, 1}, {4, 8, 2}, {16, 16, 2}, {2, 100, 3}}) {
            auto s = machine(p, c, t);
            const uint32_t n = s->n(), prev = n / 2;
            ProbeCost cost = probe_budget(s->topo);
            select_cpu(s->m(), prev, s->all(), s->view(), cost, mode);
            EXPECT_GT(cost.lines, 1u);
            EXPECT_LE(cost.lines, max_search_lines(s->topo)) << p << "x" << c << "x" << t;
            for (uint32_t x = 0; x < n; ++x)
                s->set(x, s->topo.span(x, 0).contains(s->topo.pos(prev)) ? 1 : 0);
            cost = probe_budget(s->topo);
            select_cpu(s->m(), prev, s->all(), s->view(), cost, mode);
            EXPECT_LE(cost.lines, max_search_lines(s->topo)) << p << "x" << c << "x" << t;
        }
    }
    // The bound follows the shape of packages, not the number of CPUs.
    EXPECT_EQ(max_search_lines(machine(1, 64, 1)->topo), max_search_lines(machine(1, 4095, 1)->topo));
    EXPECT_EQ(max_search_lines(machine(4, 8, 2)->topo), max_search_lines(machine(64, 8, 2)->topo));
}

TEST(Placement, WithNoIdleCpuTheTaskStaysOnAPreviousCpuThatRunsOneTask) {
    auto s = machine(1, 8, 1);
    EXPECT_EQ(s->select(5, s->all()), 5u); // every CPU runs one task
}

TEST(Placement, WithNoIdleCpuALightCpuBeyondTheSampleBeatsTheSample) {
    auto s = machine(1, 255, 1);
    for (uint32_t c = 0; c < 255; ++c) s->set(c, 2);
    s->set(100, 1); // two words away from CPU 0's: inside the budget
    EXPECT_EQ(s->select(0, s->all()), 100u);
    s->set(100, 2);
    s->set(250, 1); // beyond the budget: the bounded search does not see it
    EXPECT_EQ(s->select(0, s->all()), 0u);
}

TEST(Placement, ABurstOfWakeUpsEndsWithTwoTasksOnEveryCpu) {
    // The equal-tasks test's wake-all: 2N tasks, all last run on CPUs 0..N-1 in turn, woken
    // one after another, each staying where it was put.
    for (const auto& [p, c, t] : {std::array<uint32_t, 3>{1, 8, 1}, {2, 2, 2}, {4, 8, 2},
                                  {1, 64, 1}, {1, 255, 1}}) {
        auto s = machine(p, c, t);
        const uint32_t n = s->n();
        for (uint32_t x = 0; x < n; ++x) s->set(x, 0);
        std::vector<uint32_t> load(n, 0);
        for (uint32_t i = 0; i < 2 * n; ++i) {
            const uint32_t cpu = s->select(i % n, s->all());
            ASSERT_LT(cpu, n);
            s->set(cpu, ++load[cpu]);
        }
        for (uint32_t x = 0; x < n; ++x)
            EXPECT_EQ(load[x], 2u) << "cpu " << x << " of " << p << "x" << c << "x" << t;
    }
}

TEST(Balance, IdleCpuStealsFromTheNearestQueueWithAWaitingTask) {
    auto s = machine(2, 4, 1);
    s->set(0, 0);
    s->set(6, 3); // the other package
    std::vector<uint32_t> tried;
    auto take = [&](uint32_t c) {
        tried.push_back(c);
        return true;
    };
    ProbeCost cost = probe_budget(s->topo);
    EXPECT_EQ(steal_nearest(s->m(), 0, cost, take), 6u);
    s->set(2, 2); // the same package, nearer
    tried.clear();
    cost = probe_budget(s->topo);
    EXPECT_EQ(steal_nearest(s->m(), 0, cost, take), 2u);
    EXPECT_EQ(tried, std::vector<uint32_t>{2u});
    s->set(2, 1), s->set(6, 1); // nothing waiting anywhere
    cost = probe_budget(s->topo);
    EXPECT_EQ(steal_nearest(s->m(), 0, cost, take), kMaxCpus);
    // From CPU 6: CPU 0 comes first in a machine-wide search from 6, but CPU 5 shares the
    // package.
    s->set(6, 0), s->set(0, 3), s->set(5, 2);
    cost = probe_budget(s->topo);
    EXPECT_EQ(steal_nearest(s->m(), 6, cost, take), 5u);
}

TEST(Balance, StealingTriesABoundedNumberOfQueues) {
    auto s = machine(1, 64, 1);
    for (uint32_t c = 1; c < 64; ++c) s->set(c, 2);
    s->set(0, 0);
    uint32_t tries = 0;
    ProbeCost cost = probe_budget(s->topo);
    EXPECT_EQ(steal_nearest(s->m(), 0, cost, [&](uint32_t) { return ++tries, false; }), kMaxCpus);
    EXPECT_EQ(tries, kStealAttempts);
}

TEST(Balance, ThreeTasksGoToACpuWithOneEvenBeyondTheSample) {
    auto s = machine(1, 64, 1);
    for (uint32_t c = 0; c < 64; ++c) s->set(c, 2);
    s->set(40, 1);
    s->set(0, 3);
    ProbeCost cost = probe_budget(s->topo);
    EXPECT_EQ(find_push_target(s->m(), 0, 3, s->all(), s->view(), cost), 40u);
    s->set(0, 2); // 2 against 1 would only swap
    cost = probe_budget(s->topo);
    EXPECT_EQ(find_push_target(s->m(), 0, 2, s->all(), s->view(), cost), kMaxCpus);
}

TEST(Balance, PushGoesToAnIdleCpuFirstThenOnlyAcrossAGapOfTwo) {
    auto s = machine(1, 4, 1);
    s->set(0, 3), s->set(1, 2), s->set(2, 2), s->set(3, 2);
    const CpuMask all = s->all();
    auto push = [&](const CpuMask& allowed) {
        ProbeCost cost = probe_budget(s->topo);
        return find_push_target(s->m(), 0, 3, allowed, s->view(), cost);
    };
    EXPECT_EQ(push(all), kMaxCpus); // 3 vs 2: just a swap
    s->set(2, 1);
    EXPECT_EQ(push(all), 2u);
    s->set(3, 0);
    EXPECT_EQ(push(all), 3u); // idle beats least loaded
    CpuMask not3 = all;
    not3.clear(3);
    EXPECT_EQ(push(not3), 2u); // affinity is a hard limit
    s->offline(2);
    EXPECT_EQ(push(not3), kMaxCpus);
}

} // namespace
