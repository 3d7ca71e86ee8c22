// NUMA in the scheduling domains and the placement rules: levels from SLIT distances (as the
// kernel's test machines have them), home-node preference, distance-scaled balancing.
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "sched/placement.h"
#include "sched/topology.h"
#include "sched_sim.h"

namespace {

using namespace cohort;
using namespace cohort::sched;
using namespace cohort::sched::test;

// The distance matrices of the kernel's NUMA test machines (tests/CMakeLists.txt).
const std::vector<uint8_t> kTwo = {10, 21, 21, 10};
const std::vector<uint8_t> kChain4 = {10, 20, 30, 40, 20, 10, 20, 30,
                                      30, 20, 10, 20, 40, 30, 20, 10};
// Asymmetric: node 0 sees node 2 at 17, node 2 sees node 0 at 16.
const std::vector<uint8_t> kUneven8 = {
    10, 16, 17, 22, 28, 28, 34, 40, 16, 10, 22, 16, 28, 34, 28, 40, 16, 22, 10, 16, 34, 28,
    40, 28, 22, 16, 16, 10, 40, 34, 28, 28, 28, 28, 34, 40, 10, 16, 16, 22, 28, 34, 28, 40,
    16, 10, 22, 16, 34, 28, 40, 28, 16, 22, 10, 16, 40, 40, 28, 28, 22, 16, 16, 10};
const std::vector<uint8_t> kGroups8 = {
    10, 15, 15, 15, 25, 25, 25, 25, 15, 10, 15, 15, 25, 25, 25, 25, 15, 15, 10, 15, 25, 25,
    25, 25, 15, 15, 15, 10, 25, 25, 25, 25, 25, 25, 25, 25, 10, 15, 15, 15, 25, 25, 25, 25,
    15, 10, 15, 15, 25, 25, 25, 25, 15, 15, 10, 15, 25, 25, 25, 25, 15, 15, 15, 10};

// The CPUs of `cpu`'s domain at `level`, by CPU id.
std::set<uint32_t> members(const Topology& t, uint32_t cpu, uint32_t level) {
    std::set<uint32_t> s;
    for (uint32_t p = 0; p < t.ncpus(); ++p)
        if (t.in_domain(cpu, level, p)) s.insert(t.cpu_at(p));
    return s;
}

// What every NUMA machine must satisfy: each CPU's domains nest, the top one holds every CPU,
// the node level is exactly the CPU's node, each NUMA level is exactly the CPUs of the nodes
// within its distance of the CPU's node (by the CPU's node's row: its own view), CPUs of one
// node see the same domains, and the searches' runs cover each domain once.
void check_domains(const Sim& s, const std::vector<uint8_t>& dist, uint32_t nodes) {
    const Topology& t = s.topo;
    const uint32_t n = t.ncpus();
    ASSERT_EQ(t.nodes(), nodes);
    ASSERT_EQ(t.kind(t.levels() - 1), DomainKind::Machine);
    for (uint32_t c = 0; c < n; ++c) {
        const uint32_t node = t.node_of(c);
        bool saw_node_level = false;
        std::set<uint32_t> below{c};
        for (uint32_t l = 0; l < t.levels(); ++l) {
            const std::set<uint32_t> here = members(t, c, l);
            EXPECT_EQ(here.size(), t.domain_size(c, l));
            for (uint32_t x : below) EXPECT_TRUE(here.count(x)) << "cpu " << c << " level " << l;
            if (t.kind(l) == DomainKind::Node) {
                saw_node_level = true;
                for (uint32_t x = 0; x < n; ++x)
                    EXPECT_EQ(here.count(x) == 1, t.node_of(x) == node) << c << " " << x;
            }
            if (t.kind(l) == DomainKind::Numa) {
                for (uint32_t x = 0; x < n; ++x)
                    EXPECT_EQ(here.count(x) == 1, dist[node * nodes + t.node_of(x)] <= t.level_distance(l))
                        << "cpu " << c << " level " << l << " cpu " << x;
            }
            // Same as the first CPU of the node.
            const uint32_t first = t.cpu_at(t.node_span(node).lo);
            if (t.kind(l) != DomainKind::Smt && t.kind(l) != DomainKind::Package)
                EXPECT_EQ(members(t, first, l), here);
            // The runs a search visits: the domain minus the level below, each CPU once.
            std::multiset<uint32_t> visited;
            t.for_each_new_run(c, l, [&](Topology::Span r) {
                for (uint32_t p = r.lo; p < r.hi; ++p)
                    if (l == 0 || !t.in_domain(c, l - 1, p)) visited.insert(t.cpu_at(p));
                return false;
            });
            std::multiset<uint32_t> want;
            for (uint32_t x : here)
                if (l == 0 || !below.count(x)) want.insert(x);
            EXPECT_EQ(visited, want) << "cpu " << c << " level " << l;
            below = here;
        }
        EXPECT_EQ(below.size(), n);
        if (nodes > 1) EXPECT_TRUE(saw_node_level) << "cpu " << c;
    }
}

TEST(NumaTopology, TwoNodesSplitOneFlatPackage) {
    auto s = machine(1, 8, 1, 2, kTwo);
    ASSERT_EQ(s->topo.levels(), 2u);
    EXPECT_EQ(s->topo.kind(0), DomainKind::Node);
    EXPECT_EQ(s->topo.kind(1), DomainKind::Machine);
    EXPECT_EQ(s->topo.packages(), 1u);
    EXPECT_EQ(s->topo.domain_size(5, 0), 4u);
    check_domains(*s, kTwo, 2);
}

TEST(NumaTopology, AChainOfFourNodesHasALevelPerDistance) {
    auto s = machine(1, 16, 1, 4, kChain4);
    const Topology& t = s->topo;
    // node, <=20, <=30, machine (<=40 holds every node from every view: the machine level).
    ASSERT_EQ(t.levels(), 4u);
    EXPECT_EQ(t.kind(1), DomainKind::Numa);
    EXPECT_EQ(t.level_distance(1), 20u);
    EXPECT_EQ(t.level_distance(2), 30u);
    // From an end node the chain is three hops long; from an inner one two.
    EXPECT_EQ(t.domain_size(0, 1), 8u);
    EXPECT_EQ(t.domain_size(0, 2), 12u);
    EXPECT_EQ(t.domain_size(4, 1), 12u);
    EXPECT_EQ(t.domain_size(4, 2), 16u);
    check_domains(*s, kChain4, 4);
}

TEST(NumaTopology, AnAsymmetricTableGivesEveryDistanceOfEveryRowALevel) {
    auto s = machine(1, 64, 1, 8, kUneven8);
    const Topology& t = s->topo;
    // Distances 16, 17 (node 0's row only), 22, 28, 34; 40 is the machine.
    ASSERT_EQ(t.levels(), 7u);
    EXPECT_EQ(t.level_distance(2), 17u);
    // Node 0 reaches node 2 at 17; node 2 reaches node 0 at 16.
    EXPECT_FALSE(t.in_domain(0, 1, t.pos(16)));
    EXPECT_TRUE(t.in_domain(0, 2, t.pos(16)));
    EXPECT_TRUE(t.in_domain(16, 1, t.pos(0)));
    check_domains(*s, kUneven8, 8);
}

TEST(NumaTopology, GroupsOfNodesAt255Cpus) {
    auto s = machine(1, 255, 1, 8, kGroups8);
    const Topology& t = s->topo;
    ASSERT_EQ(t.levels(), 3u); // node, <=15 (four nodes), machine
    EXPECT_EQ(t.domain_size(0, 0), 32u);
    EXPECT_EQ(t.domain_size(0, 1), 128u);
    EXPECT_EQ(t.domain_size(254, 1), 127u); // the last node has 31 CPUs
    check_domains(*s, kGroups8, 8);
    // A search of every level reads each CPU's word a bounded number of times: 4 words of the
    // machine plus the node runs' words.
    EXPECT_LE(t.walk_words(), 4u + 8u + 1u);
}

TEST(NumaTopology, PackagesWithinNodesAndSmtKeepTheirLevels) {
    // 4 packages of 8 two-thread cores, two packages per node.
    auto s = machine(4, 8, 2, 2, kTwo);
    const Topology& t = s->topo;
    ASSERT_EQ(t.levels(), 4u);
    EXPECT_EQ(t.kind(0), DomainKind::Smt);
    EXPECT_EQ(t.kind(1), DomainKind::Package);
    EXPECT_EQ(t.kind(2), DomainKind::Node);
    EXPECT_EQ(t.domain_size(0, 2), 32u);
    check_domains(*s, kTwo, 2);
}

TEST(NumaTopology, NodesWithoutCpusAndUnreachableNodes) {
    // Node 1 has no CPUs: 8 CPUs all on node 0 make one domain.
    std::vector<CpuPlace> places(8);
    for (uint32_t c = 0; c < 8; ++c) places[c] = CpuPlace{0, c, 0, 0};
    Topology t;
    t.build(places.data(), 8, 2, kTwo.data());
    ASSERT_EQ(t.levels(), 1u);
    EXPECT_EQ(t.kind(0), DomainKind::Machine);
    EXPECT_EQ(t.node_span(1).size(), 0u);
    // Two islands: 0-1 and 2-3 cannot reach each other. The machine level still holds all.
    const std::vector<uint8_t> islands = {10, 20, 255, 255, 20, 10, 255, 255,
                                          255, 255, 10, 20, 255, 255, 20, 10};
    auto s = machine(1, 16, 1, 4, islands);
    ASSERT_EQ(s->topo.levels(), 3u);
    EXPECT_EQ(s->topo.kind(1), DomainKind::Numa);
    EXPECT_EQ(s->topo.domain_size(0, 1), 8u);
    EXPECT_EQ(s->topo.domain_size(0, 2), 16u);
}

TEST(NumaTopology, DistancesBeyondTheLevelLimitJoinTheMachine) {
    // A chain of 12 nodes, 10 per hop: distances 20 .. 120, eleven of them.
    const uint32_t k = 12;
    std::vector<uint8_t> d(k * k);
    for (uint32_t i = 0; i < k; ++i)
        for (uint32_t j = 0; j < k; ++j) d[i * k + j] = static_cast<uint8_t>(10 + 10 * (i > j ? i - j : j - i));
    auto s = machine(1, 48, 1, k, d);
    EXPECT_EQ(s->topo.numa_levels_dropped(), 3u);
    EXPECT_EQ(s->topo.levels(), 1u + Topology::kMaxNumaLevels + 1u);
    EXPECT_EQ(s->topo.kind(s->topo.levels() - 1), DomainKind::Machine);
}

TEST(NumaPlacement, AWakeUpPrefersAnIdleCpuOfTheHomeNode) {
    auto s = machine(1, 8, 1, 2, kTwo);
    for (uint32_t c = 0; c < 8; ++c) s->set(c, 0);
    // Last ran on node 0 (idle there too), home is node 1: it goes home.
    const uint32_t cpu = s->select(1, s->all(), Placement::Spread, 1);
    EXPECT_EQ(s->topo.node_of(cpu), 1u);
    // Without a home it stays where its cache is.
    EXPECT_EQ(s->select(1, s->all()), 1u);
    // Home on node 1, and node 1 busy: the idle previous CPU is the nearest idle one.
    for (uint32_t c = 4; c < 8; ++c) s->set(c, 1);
    EXPECT_EQ(s->topo.node_of(s->select(1, s->all(), Placement::Spread, 1)), 0u);
}

TEST(NumaPlacement, AwayFromAFullHomeTheNearestNodeWins) {
    auto s = machine(1, 16, 1, 4, kChain4);
    // Home node 1 (CPUs 4-7) is busy; idle CPUs on node 3 (prev, distance 30 from home) and
    // node 2 (distance 20): node 2 is nearer home.
    for (uint32_t c = 0; c < 16; ++c) s->set(c, 1);
    s->set(14, 0);
    s->set(9, 0);
    EXPECT_EQ(s->select(14, s->all(), Placement::Spread, 1), 9u);
    // Nothing idle: a CPU of the home node with one task beats the previous CPU's one task.
    s->set(14, 1), s->set(9, 1);
    EXPECT_EQ(s->topo.node_of(s->select(14, s->all(), Placement::Spread, 1)), 1u);
}

TEST(NumaBalance, AcrossNodesABusyTargetNeedsALargerGap) {
    auto s = machine(1, 8, 1, 2, kTwo);
    for (uint32_t c = 0; c < 8; ++c) s->set(c, c < 4 ? 4 : 2);
    s->set(6, 1); // node 1, distance 21: a move there needs a gap of 5
    auto push = [&](uint32_t mine) {
        s->set(0, mine);
        ProbeCost cost = full_budget(s->topo);
        return find_push_target(s->m(), 0, mine, s->all(), s->view(), cost);
    };
    EXPECT_EQ(imbalance_needed(s->topo, 0, 6), 5u);
    EXPECT_EQ(imbalance_needed(s->topo, 0, 3), 2u);
    EXPECT_EQ(push(3), kMaxCpus);
    EXPECT_EQ(push(5), kMaxCpus);
    EXPECT_EQ(push(6), 6u);
    s->set(2, 1); // the same node: a gap of 2 will do
    EXPECT_EQ(push(3), 2u);
    // An idle CPU takes a waiting task from any distance.
    s->set(2, 2), s->set(7, 0);
    EXPECT_EQ(push(2), 7u);
}

TEST(NumaBalance, APushPrefersAnIdleCpuOfTheTasksHomeNode) {
    auto s = machine(1, 16, 1, 4, kChain4);
    for (uint32_t c = 0; c < 16; ++c) s->set(c, 1);
    s->set(0, 3);
    s->set(1, 0);  // beside the busy CPU
    s->set(13, 0); // on node 3, the task's home
    ProbeCost cost = full_budget(s->topo);
    EXPECT_EQ(find_push_target(s->m(), 0, 3, s->all(), s->view(), cost, 3), 13u);
    cost = full_budget(s->topo);
    EXPECT_EQ(find_push_target(s->m(), 0, 3, s->all(), s->view(), cost), 1u);
}

TEST(NumaBalance, TheFullBudgetFindsTheOneIdleCpuAnywhere) {
    // 255 CPUs in 8 nodes: the only idle CPU is on the far group's last node. The bounded
    // wake-up budget may miss it; balancing's full budget must not, from any CPU.
    auto s = machine(1, 255, 1, 8, kGroups8);
    for (uint32_t c = 0; c < 255; ++c) s->set(c, 1);
    for (const uint32_t idle : {254u, 130u, 31u}) {
        s->set(idle, 0);
        for (uint32_t from = 0; from < 255; from += 7) {
            if (from == idle) continue;
            s->set(from, 2);
            ProbeCost cost = full_budget(s->topo);
            EXPECT_EQ(find_push_target(s->m(), from, 2, s->all(), s->view(), cost), idle)
                << "from " << from;
            s->set(from, 1);
        }
        s->set(idle, 1);
    }
}

TEST(NumaPlacement, SearchesStayBoundedOnNumaMachines) {
    for (const auto& [c, nodes, dist] :
         {std::tuple<uint32_t, uint32_t, std::vector<uint8_t>>{8, 2, kTwo},
          {16, 4, kChain4}, {64, 8, kUneven8}, {255, 8, kGroups8}}) {
        auto s = machine(1, c, 1, nodes, dist);
        const uint32_t n = s->n(), prev = n / 2;
        for (const uint32_t home : {kNoHome, 0u, nodes - 1}) {
            for (uint32_t x = 0; x < n; ++x) s->set(x, 2); // nobody idle: every budget spent
            ProbeCost cost = probe_budget(s->topo);
            select_cpu(s->m(), prev, s->all(), s->view(), cost, Placement::Spread, kMaxCpus, home);
            EXPECT_LE(cost.lines, max_search_lines(s->topo)) << c << " cpus, home " << home;
        }
    }
}

} // namespace
