// The NUMA node map (kernel/numa/node_map.h) built from SRAT and SLIT tables that go through
// the real ACPI parsers: tables crafted byte by byte here for each case the firmware can
// present, and the tables QEMU 7.2 generated for the test configurations, recorded
// from a running QEMU (tests/data/qemu-numa/README.md says how) and also rebuilt here from a
// model of QEMU's SRAT layout, byte for byte.
#include "numa/node_map.h"

#include "acpi/madt.h"
#include "acpi/srat.h"
#include "acpi/tables.h"
#include "lib/memmap.h"
#include "table_builder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace cohort;
using namespace cohort::numa;
using Matrix = std::vector<std::vector<int>>;

constexpr uint64_t MiB = uint64_t{1} << 20;
constexpr uint64_t GiB = uint64_t{1} << 30;
constexpr uint32_t kMemEnabled = 1, kMemHotPluggable = 2;

// --- Building tables -------------------------------------------------------------------------

using Builder = cohort::host::TableBuilder;

// The 36-byte SDT header. The defaults are the identifiers QEMU puts in its tables, so the
// model of QEMU's SRAT below can be compared with a recording byte for byte.
Builder sdt(const char* sig, uint8_t revision) {
    return cohort::host::sdt_header(sig, revision, "BOCHS", "BXPC", "BXPC");
}

// Fills in the length and the checksum.
std::vector<uint8_t> finish(Builder t) { return cohort::host::finish_table(std::move(t)); }

class Srat {
  public:
    Srat() : t_(sdt("SRAT", 1)) { t_.u32(1).u64(0); } // table revision 1, 8 reserved bytes

    // Type 0: 8-bit APIC id; the domain's low byte at offset 2, the upper 24 bits at 9-11.
    Srat& cpu(uint32_t apic, uint32_t domain, bool enabled = true) {
        t_.u8(0).u8(16).u8(domain & 0xFF).u8(apic).u32(enabled ? 1 : 0).u8(0);
        t_.u8((domain >> 8) & 0xFF).u8((domain >> 16) & 0xFF).u8(domain >> 24).u32(0);
        return *this;
    }
    // Type 2: 32-bit x2APIC id and domain.
    Srat& x2apic(uint32_t apic, uint32_t domain, bool enabled = true) {
        t_.u8(2).u8(24).u16(0).u32(domain).u32(apic).u32(enabled ? 1 : 0).u32(0).u32(0);
        return *this;
    }
    // Type 1.
    Srat& mem(uint64_t base, uint64_t length, uint32_t domain, uint32_t flags = kMemEnabled) {
        t_.u8(1).u8(40).u32(domain).u16(0).u64(base).u64(length).u32(0).u32(flags).u64(0);
        return *this;
    }
    std::vector<uint8_t> bytes() const { return finish(t_); }

  private:
    Builder t_;
};

std::vector<uint8_t> slit_table(const Matrix& m) {
    Builder t = sdt("SLIT", 1);
    t.u64(m.size());
    for (const auto& row : m)
        for (int d : row)
            t.u8(static_cast<uint64_t>(d));
    return finish(t);
}

// d(i, j) = 10 + 10 * |i - j|: a chain of `n` nodes.
Matrix chain(int n) {
    Matrix m(n, std::vector<int>(n));
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j)
            m[i][j] = 10 + 10 * std::abs(i - j);
    return m;
}

std::vector<uint8_t> read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// --- Parsing through the real parsers ----------------------------------------------------------

// An SRAT and a SLIT (either may be empty: no such table) after validate_table, parse_srat and
// Slit::parse. Holds the bytes, which the Slit points into.
struct Tables {
    std::vector<uint8_t> srat_bytes, slit_bytes;
    std::vector<acpi::SratCpu> cpus = std::vector<acpi::SratCpu>(8192);
    std::vector<acpi::SratMemory> memory = std::vector<acpi::SratMemory>(256);
    std::vector<acpi::NumaNode> nodes = std::vector<acpi::NumaNode>(256);
    acpi::SratInfo srat;
    bool has_srat = false;
    std::optional<acpi::Slit> slit;
    acpi::Error errs[16];
    acpi::ErrorLog log{errs};

    Tables(std::vector<uint8_t> srat_in, std::vector<uint8_t> slit_in)
        : srat_bytes(std::move(srat_in)), slit_bytes(std::move(slit_in)) {
        if (!srat_bytes.empty()) {
            const auto t = acpi::validate_table(srat_bytes, "SRAT", log);
            if (t)
                has_srat = acpi::parse_srat(*t, acpi::SratStorage{cpus, memory, nodes}, srat, log);
        }
        if (!slit_bytes.empty()) {
            const auto t = acpi::validate_table(slit_bytes, "SLIT", log);
            if (t) slit = acpi::Slit::parse(*t, log);
        }
    }
    Tables(const Tables&) = delete;
    const acpi::SratInfo* srat_ptr() const { return has_srat ? &srat : nullptr; }
    const acpi::Slit* slit_ptr() const { return slit ? &*slit : nullptr; }
};

std::vector<MemRegion> usable(std::initializer_list<std::pair<uint64_t, uint64_t>> ranges) {
    std::vector<MemRegion> out;
    for (const auto& [base, end] : ranges)
        out.push_back(MemRegion{base, end - base, MemType::Usable});
    return out;
}

std::unique_ptr<NodeMap> build(const Tables& t, const std::vector<uint32_t>& apic_ids,
                               const std::vector<MemRegion>& memory) {
    auto map = std::make_unique<NodeMap>();
    map->build(t.srat_ptr(), t.slit_ptr(), apic_ids, memory);
    return map;
}

std::vector<uint32_t> apics(uint32_t first, uint32_t count) {
    std::vector<uint32_t> v;
    for (uint32_t i = 0; i < count; ++i)
        v.push_back(first + i);
    return v;
}

std::vector<int> order(const NodeMap& m, uint32_t node) {
    const auto s = m.nearest_nodes_with_memory(node);
    return {s.begin(), s.end()};
}

// The fallback order computed the obvious way, to check the map's against on any table.
std::vector<int> expected_order(const NodeMap& m, uint32_t node) {
    std::vector<int> v;
    for (uint32_t n = 0; n < m.nodes(); ++n)
        if (m.memory_bytes(n) > 0 && m.distance(node, n) != kUnreachable)
            v.push_back(static_cast<int>(n));
    std::stable_sort(v.begin(), v.end(),
                     [&](int a, int b) { return m.distance(node, a) < m.distance(node, b); });
    return v;
}

std::vector<int> levels(const NodeMap& m) {
    uint8_t buf[256];
    const size_t n = m.distance_levels(buf);
    return {buf, buf + std::min<size_t>(n, sizeof buf)};
}

std::string describe(const NodeMap& m, uint32_t node) {
    char buf[512];
    m.describe_node(node, buf, sizeof buf);
    return buf;
}

NodeMask mask(std::initializer_list<int> nodes) {
    NodeMask m = 0;
    for (int n : nodes)
        m |= NodeMask{1} << n;
    return m;
}

void expect_distances(const NodeMap& m, const Matrix& want) {
    ASSERT_EQ(m.nodes(), want.size());
    for (uint32_t i = 0; i < want.size(); ++i)
        for (uint32_t j = 0; j < want.size(); ++j)
            EXPECT_EQ(m.distance(i, j), want[i][j]) << "from node " << i << " to " << j;
}

void expect_fallbacks_follow_distance(const NodeMap& m) {
    for (uint32_t n = 0; n < m.nodes(); ++n)
        EXPECT_EQ(order(m, n), expected_order(m, n)) << "from node " << n;
}

// --- Crafted tables ------------------------------------------------------------------------

TEST(NumaNodeMap, WithoutSratEverythingIsNodeZero) {
    Tables t({}, {});
    const auto mem = usable({{0x100000, 512 * MiB}, {4 * GiB, 5 * GiB}});
    auto m = build(t, apics(0, 4), mem);
    EXPECT_EQ(m->nodes(), 1u);
    EXPECT_EQ(m->domain(0), 0u);
    EXPECT_EQ(m->cpus(), 4u);
    for (uint32_t cpu = 0; cpu < 4; ++cpu)
        EXPECT_EQ(m->cpu_node(cpu), 0u);
    EXPECT_EQ(m->cpu_node(4), kNoNode);
    EXPECT_EQ(m->cpu_count(0), 4u);
    EXPECT_EQ(m->memory_bytes(0), 511 * MiB + GiB);
    ASSERT_EQ(m->ranges().size(), 2u);
    EXPECT_FALSE(m->ranges()[0].outside_srat); // no SRAT: nothing is "outside" it
    EXPECT_EQ(m->distance(0, 0), 10);
    EXPECT_EQ(order(*m, 0), (std::vector<int>{0}));
    EXPECT_EQ(levels(*m), (std::vector<int>{10}));
    EXPECT_FALSE(m->notes().any());
    EXPECT_EQ(m->notes().slit, SlitStatus::Absent);
    EXPECT_EQ(describe(*m, 0), "node 0 (domain 0): CPUs 0-3, 1535 MiB, distances 10");
}

TEST(NumaNodeMap, TwoNodesWithDistance21) {
    Tables t(Srat()
                 .cpu(0, 0)
                 .cpu(1, 0)
                 .cpu(2, 1)
                 .cpu(3, 1)
                 .mem(0, 0xA0000, 0)
                 .mem(MiB, 255 * MiB, 0)
                 .mem(256 * MiB, 256 * MiB, 1)
                 .bytes(),
             slit_table({{10, 21}, {21, 10}}));
    ASSERT_TRUE(t.has_srat && t.slit);
    auto m = build(t, apics(0, 4), usable({{0x6b9000, 0x1ffe0000}}));
    ASSERT_EQ(m->nodes(), 2u);
    EXPECT_EQ(m->cpu_node(1), 0u);
    EXPECT_EQ(m->cpu_node(2), 1u);
    EXPECT_EQ(m->cpu_count(0), 2u);
    EXPECT_EQ(m->cpu_count(1), 2u);
    EXPECT_EQ(m->memory_bytes(0), 256 * MiB - 0x6b9000);
    EXPECT_EQ(m->memory_bytes(1), 0x1ffe0000 - 256 * MiB);
    ASSERT_EQ(m->ranges().size(), 2u);
    EXPECT_EQ(m->ranges()[0].end(), 256 * MiB);
    EXPECT_EQ(m->node_of_address(256 * MiB - 1), 0u);
    EXPECT_EQ(m->node_of_address(256 * MiB), 1u);
    EXPECT_EQ(m->node_of_address(0x1ffe0000), kNoNode);
    EXPECT_EQ(m->node_of_address(0), kNoNode); // not usable in this map
    expect_distances(*m, {{10, 21}, {21, 10}});
    EXPECT_EQ(order(*m, 0), (std::vector<int>{0, 1}));
    EXPECT_EQ(order(*m, 1), (std::vector<int>{1, 0}));
    EXPECT_EQ(levels(*m), (std::vector<int>{10, 21}));
    EXPECT_EQ(m->nodes_within(0, 10), mask({0}));
    EXPECT_EQ(m->nodes_within(0, 21), mask({0, 1}));
    EXPECT_EQ(m->notes().slit, SlitStatus::Used);
    EXPECT_FALSE(m->notes().any());
    EXPECT_EQ(describe(*m, 0), "node 0 (domain 0): CPUs 0-1, 249 MiB, distances 10 21");
    EXPECT_EQ(describe(*m, 1), "node 1 (domain 1): CPUs 2-3, 255 MiB, distances 21 10");
}

TEST(NumaNodeMap, FourNodeChainFallsBackByDistanceFromEveryNode) {
    Srat s;
    for (uint32_t cpu = 0; cpu < 16; ++cpu)
        s.cpu(cpu, cpu / 4);
    for (uint32_t n = 0; n < 4; ++n)
        s.mem(n * GiB, GiB, n);
    Tables t(s.bytes(), slit_table(chain(4)));
    auto m = build(t, apics(0, 16), usable({{MiB, 4 * GiB}}));
    ASSERT_EQ(m->nodes(), 4u);
    expect_distances(*m, chain(4));
    // Equal distances (node 1 sees 0 and 2 at 20) go by node id.
    EXPECT_EQ(order(*m, 0), (std::vector<int>{0, 1, 2, 3}));
    EXPECT_EQ(order(*m, 1), (std::vector<int>{1, 0, 2, 3}));
    EXPECT_EQ(order(*m, 2), (std::vector<int>{2, 1, 3, 0}));
    EXPECT_EQ(order(*m, 3), (std::vector<int>{3, 2, 1, 0}));
    // From node 3's view 40 is a level; node 1 never sees it.
    EXPECT_EQ(levels(*m), (std::vector<int>{10, 20, 30, 40}));
    EXPECT_EQ(m->nodes_within(1, 20), mask({0, 1, 2}));
    EXPECT_EQ(m->nodes_within(3, 30), mask({1, 2, 3}));
    EXPECT_EQ(m->nodes_within(0, 9), 0u);
    EXPECT_EQ(m->nodes_within(4, 40), 0u);
    for (uint32_t n = 0; n < 4; ++n) {
        EXPECT_EQ(m->cpu_count(n), 4u);
        EXPECT_EQ(m->memory_bytes(n), n == 0 ? GiB - MiB : GiB);
        EXPECT_EQ(m->nearest_node_with_memory(n), n);
    }
    EXPECT_EQ(describe(*m, 2), "node 2 (domain 2): CPUs 8-11, 1024 MiB, distances 30 20 10 20");
}

// Uneven and asymmetric: 0->1 is 12 but 1->0 is 13, and 33 appears only in node 5's row.
const Matrix kUneven8 = {
    {10, 12, 20, 20, 30, 30, 40, 40}, {13, 10, 20, 21, 30, 31, 40, 41},
    {20, 20, 10, 12, 25, 30, 35, 40}, {21, 20, 12, 10, 30, 25, 40, 35},
    {30, 30, 25, 30, 10, 14, 20, 20}, {31, 30, 30, 33, 14, 10, 20, 22},
    {40, 40, 35, 40, 20, 20, 10, 12}, {41, 40, 40, 35, 20, 22, 12, 10},
};

TEST(NumaNodeMap, EightNodesWithAnUnevenAsymmetricSlit) {
    Srat s;
    for (uint32_t cpu = 0; cpu < 64; ++cpu)
        s.cpu(cpu, cpu / 8);
    for (uint32_t n = 0; n < 8; ++n)
        s.mem(n * 512 * MiB, 512 * MiB, n);
    Tables t(s.bytes(), slit_table(kUneven8));
    auto m = build(t, apics(0, 64), usable({{0, 4 * GiB}}));
    ASSERT_EQ(m->nodes(), 8u);
    expect_distances(*m, kUneven8);
    EXPECT_EQ(m->distance(0, 1), 12);
    EXPECT_EQ(m->distance(1, 0), 13);
    EXPECT_EQ(order(*m, 0), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
    EXPECT_EQ(order(*m, 3), (std::vector<int>{3, 2, 1, 0, 5, 4, 7, 6}));
    EXPECT_EQ(order(*m, 5), (std::vector<int>{5, 4, 6, 7, 1, 2, 0, 3}));
    expect_fallbacks_follow_distance(*m);
    EXPECT_EQ(levels(*m),
              (std::vector<int>{10, 12, 13, 14, 20, 21, 22, 25, 30, 31, 33, 35, 40, 41}));
    EXPECT_EQ(m->nodes_within(5, 20), mask({4, 5, 6}));
    EXPECT_EQ(m->nodes_within(5, 22), mask({4, 5, 6, 7}));
    EXPECT_EQ(m->nodes_within(1, 12), mask({1})); // 1->0 is 13, although 0->1 is 12
    EXPECT_EQ(m->nodes_within(0, 12), mask({0, 1}));

    // distance_levels writes what fits and says how many there are.
    uint8_t two[2] = {};
    EXPECT_EQ(m->distance_levels(two), 14u);
    EXPECT_EQ(two[0], 10);
    EXPECT_EQ(two[1], 12);
}

TEST(NumaNodeMap, MemorylessNodeAllocatesFromTheNearestNodeWithMemory) {
    // Node 1 has CPUs and no memory; node 2 is nearer to it than node 0.
    Tables t(Srat()
                 .cpu(0, 0)
                 .cpu(1, 0)
                 .cpu(2, 1)
                 .cpu(3, 1)
                 .cpu(4, 2)
                 .mem(0, GiB, 0)
                 .mem(GiB, GiB, 2)
                 .bytes(),
             slit_table({{10, 30, 20}, {30, 10, 20}, {20, 20, 10}}));
    auto m = build(t, apics(0, 5), usable({{MiB, 2 * GiB}}));
    ASSERT_EQ(m->nodes(), 3u);
    EXPECT_TRUE(m->memoryless(1));
    EXPECT_FALSE(m->cpuless(1));
    EXPECT_FALSE(m->memoryless(0));
    EXPECT_FALSE(m->memoryless(2));
    EXPECT_EQ(m->memory_bytes(1), 0u);
    EXPECT_EQ(m->cpu_count(1), 2u);
    EXPECT_EQ(m->nearest_node_with_memory(1), 2u);
    EXPECT_EQ(order(*m, 1), (std::vector<int>{2, 0}));
    EXPECT_EQ(order(*m, 0), (std::vector<int>{0, 2})); // node 1 has nothing to give
    EXPECT_EQ(m->nearest_node_with_memory(0), 0u);
    EXPECT_FALSE(m->notes().any()); // a memory-less node is legal, not a firmware problem
    EXPECT_EQ(describe(*m, 1),
              "node 1 (domain 1): CPUs 2-3, no memory (allocates from node 2), distances 30 10 20");
}

TEST(NumaNodeMap, CpulessNodeHoldsMemoryOnly) {
    Tables t(Srat().cpu(0, 0).cpu(1, 0).mem(0, GiB, 0).mem(GiB, 3 * GiB, 1).bytes(),
             slit_table({{10, 17}, {17, 10}}));
    auto m = build(t, apics(0, 2), usable({{MiB, 3 * GiB}, {4 * GiB, 5 * GiB}}));
    ASSERT_EQ(m->nodes(), 2u);
    EXPECT_TRUE(m->cpuless(1));
    EXPECT_FALSE(m->memoryless(1));
    EXPECT_EQ(m->cpu_count(1), 0u);
    // The SRAT range [1G, 4G) covers [1G, 3G) of the first region only; [4G, 5G) is outside.
    EXPECT_EQ(m->memory_bytes(1), 2 * GiB);
    EXPECT_EQ(order(*m, 0), (std::vector<int>{0, 1}));
    EXPECT_EQ(order(*m, 1), (std::vector<int>{1, 0}));
    EXPECT_EQ(m->notes().ranges_outside_srat, 1u);
    EXPECT_EQ(describe(*m, 1), "node 1 (domain 1): no CPUs, 2048 MiB, distances 17 10");
}

TEST(NumaNodeMap, X2apicAffinityEntriesPlaceCpus) {
    // APIC ids above 255 exist only as type 2 entries; type 2 may also carry small ids, and
    // 32-bit domains. A type 0 entry splits its domain across offsets 2 and 9-11.
    Tables t(Srat()
                 .cpu(0, 0)
                 .cpu(1, 0)
                 .x2apic(2, 0x10000)
                 .x2apic(256, 0x10000)
                 .x2apic(0x12345, 0x102)
                 .cpu(3, 0x102)
                 .mem(0, GiB, 0)
                 .mem(GiB, GiB, 0x102)
                 .mem(2 * GiB, GiB, 0x10000)
                 .bytes(),
             {});
    auto m = build(t, {0, 1, 2, 256, 0x12345, 3}, usable({{0, 3 * GiB}}));
    ASSERT_EQ(m->nodes(), 3u);
    EXPECT_EQ(m->domain(0), 0u);
    EXPECT_EQ(m->domain(1), 0x102u);
    EXPECT_EQ(m->domain(2), 0x10000u);
    EXPECT_EQ(m->node_of_domain(0x10000), 2u);
    EXPECT_EQ(m->node_of_domain(5), kNoNode);
    const std::vector<uint32_t> want = {0, 0, 2, 2, 1, 1};
    for (uint32_t cpu = 0; cpu < want.size(); ++cpu)
        EXPECT_EQ(m->cpu_node(cpu), want[cpu]) << "cpu " << cpu;
    EXPECT_EQ(m->notes().cpus_not_in_srat, 0u);
    EXPECT_EQ(describe(*m, 1), "node 1 (domain 258): CPUs 4-5, 1024 MiB, distances 20 10 20");
}

TEST(NumaNodeMap, CpuMissingFromSratGoesToNodeZeroAndIsCounted) {
    Tables t(Srat().cpu(0, 1).cpu(1, 1).cpu(2, 2).mem(0, GiB, 1).mem(GiB, GiB, 2).bytes(), {});
    auto m = build(t, {0, 1, 2, 7, 9}, usable({{MiB, 2 * GiB}}));
    ASSERT_EQ(m->nodes(), 2u);
    EXPECT_EQ(m->domain(0), 1u); // dense ids: domain 1 is node 0
    EXPECT_EQ(m->cpu_node(3), 0u);
    EXPECT_EQ(m->cpu_node(4), 0u);
    EXPECT_EQ(m->cpu_count(0), 4u);
    EXPECT_EQ(m->notes().cpus_not_in_srat, 2u);
    EXPECT_TRUE(m->notes().any());
    EXPECT_EQ(describe(*m, 0), "node 0 (domain 1): CPUs 0-1,3-4, 1023 MiB, distances 10 20");
}

TEST(NumaNodeMap, MemoryOutsideSratRangesGoesToNodeZeroAndIsCounted) {
    Tables t(Srat().cpu(0, 0).cpu(1, 1).mem(0, 256 * MiB, 0).mem(512 * MiB, 256 * MiB, 1).bytes(),
             {});
    auto m = build(t, apics(0, 2), usable({{MiB, GiB}}));
    const auto r = m->ranges();
    ASSERT_EQ(r.size(), 4u);
    EXPECT_EQ(r[0].base, MiB);
    EXPECT_EQ(r[0].end(), 256 * MiB);
    EXPECT_FALSE(r[0].outside_srat);
    EXPECT_EQ(r[1].base, 256 * MiB);
    EXPECT_EQ(r[1].node, 0);
    EXPECT_TRUE(r[1].outside_srat);
    EXPECT_EQ(r[2].node, 1);
    EXPECT_EQ(r[2].end(), 768 * MiB);
    EXPECT_TRUE(r[3].outside_srat);
    EXPECT_EQ(r[3].end(), GiB);
    EXPECT_EQ(m->notes().ranges_outside_srat, 2u);
    EXPECT_EQ(m->notes().bytes_outside_srat, 512 * MiB);
    EXPECT_EQ(m->memory_bytes(0), 255 * MiB + 512 * MiB);
    EXPECT_EQ(m->memory_bytes(1), 256 * MiB);
    EXPECT_EQ(m->node_of_address(300 * MiB), 0u);
    EXPECT_EQ(m->node_of_address(600 * MiB), 1u);
    EXPECT_EQ(m->node_of_address(900 * MiB), 0u);
}

TEST(NumaNodeMap, SlitWithTooFewLocalitiesFallsBackTo10And20) {
    Srat s;
    for (uint32_t n = 0; n < 4; ++n)
        s.cpu(n, n).mem(n * GiB, GiB, n);
    Tables t(s.bytes(), slit_table({{10, 21}, {21, 10}}));
    ASSERT_TRUE(t.slit); // a valid SLIT by itself, just not for this SRAT
    auto m = build(t, apics(0, 4), usable({{0, 4 * GiB}}));
    EXPECT_EQ(m->notes().slit, SlitStatus::TooSmall);
    EXPECT_TRUE(m->notes().slit_rejected());
    EXPECT_EQ(m->notes().slit_from, 2u); // localities
    EXPECT_EQ(m->notes().slit_to, 3u);   // the domain it cannot describe
    EXPECT_EQ(m->distance(0, 1), 20);    // not 21
    EXPECT_EQ(m->distance(3, 3), 10);
    EXPECT_EQ(levels(*m), (std::vector<int>{10, 20}));
    EXPECT_EQ(order(*m, 2), (std::vector<int>{2, 0, 1, 3}));
    EXPECT_STREQ(slit_status_name(m->notes().slit), "too few localities");
}

TEST(NumaNodeMap, SlitWithBadDiagonalFallsBackTo10And20) {
    Tables t(Srat().cpu(0, 0).cpu(1, 1).mem(0, GiB, 0).mem(GiB, GiB, 1).bytes(),
             slit_table({{10, 21}, {21, 11}}));
    auto m = build(t, apics(0, 2), usable({{0, 2 * GiB}}));
    EXPECT_EQ(m->notes().slit, SlitStatus::BadDiagonal);
    EXPECT_EQ(m->notes().slit_from, 1u);
    EXPECT_EQ(m->notes().slit_to, 1u);
    EXPECT_EQ(m->notes().slit_value, 11u);
    expect_distances(*m, {{10, 20}, {20, 10}});
}

TEST(NumaNodeMap, SlitWithRemoteDistanceOf10OrLessFallsBack) {
    Tables t(Srat().cpu(0, 0).cpu(1, 1).cpu(2, 2).bytes(),
             slit_table({{10, 21, 21}, {21, 10, 21}, {21, 10, 10}}));
    auto m = build(t, apics(0, 3), {});
    EXPECT_EQ(m->notes().slit, SlitStatus::BadDistance);
    EXPECT_EQ(m->notes().slit_from, 2u);
    EXPECT_EQ(m->notes().slit_to, 1u);
    EXPECT_EQ(m->notes().slit_value, 10u);
    EXPECT_EQ(m->distance(2, 1), 20);
    EXPECT_EQ(m->distance(0, 1), 20); // the whole table is dropped, not just the bad entry
}

TEST(NumaNodeMap, SlitThatDoesNotFitItsTableNeverReachesTheMap) {
    // The parser refuses a locality count the table cannot hold (logged as BadSlitSize); the
    // kernel then has no SLIT and the map uses 10/20.
    Builder b = sdt("SLIT", 1);
    b.u64(3).u8(10).u8(20).u8(20).u8(10);
    Tables t(Srat().cpu(0, 0).cpu(1, 1).bytes(), finish(b));
    EXPECT_FALSE(t.slit);
    EXPECT_EQ(t.log.count(acpi::ErrorCode::BadSlitSize), 1u);
    auto m = build(t, apics(0, 2), {});
    EXPECT_EQ(m->notes().slit, SlitStatus::Absent);
    EXPECT_EQ(m->distance(0, 1), 20);
}

TEST(NumaNodeMap, UnreachableNodesAreNeverFallbacks) {
    Tables t(Srat()
                 .cpu(0, 0)
                 .cpu(1, 1)
                 .cpu(2, 2)
                 .mem(0, GiB, 0)
                 .mem(GiB, GiB, 1)
                 .mem(2 * GiB, GiB, 2)
                 .bytes(),
             slit_table({{10, 20, 255}, {20, 10, 20}, {255, 20, 10}}));
    auto m = build(t, apics(0, 3), usable({{0, 3 * GiB}}));
    EXPECT_EQ(m->notes().slit, SlitStatus::Used);
    EXPECT_EQ(order(*m, 0), (std::vector<int>{0, 1}));
    EXPECT_EQ(order(*m, 1), (std::vector<int>{1, 0, 2}));
    EXPECT_EQ(m->nodes_within(0, 255), mask({0, 1}));
    EXPECT_EQ(levels(*m), (std::vector<int>{10, 20}));
}

TEST(NumaNodeMap, HotPluggableRangesAreNoted) {
    // Node 1's first range is present and hot-pluggable; its second one is not populated yet.
    Tables t(Srat()
                 .cpu(0, 0)
                 .cpu(1, 1)
                 .mem(0, 512 * MiB, 0)
                 .mem(512 * MiB, 512 * MiB, 1, kMemEnabled | kMemHotPluggable)
                 .mem(4 * GiB, 4 * GiB, 1, kMemEnabled | kMemHotPluggable)
                 .bytes(),
             {});
    auto m = build(t, apics(0, 2), usable({{MiB, GiB}}));
    const auto r = m->ranges();
    ASSERT_EQ(r.size(), 2u);
    EXPECT_FALSE(r[0].hot_pluggable);
    EXPECT_TRUE(r[1].hot_pluggable);
    EXPECT_EQ(r[1].node, 1);
    EXPECT_EQ(m->memory_bytes(1), 512 * MiB); // present memory only
    EXPECT_EQ(m->hotplug_bytes(1), 512 * MiB + 4 * GiB);
    EXPECT_EQ(m->hotplug_bytes(0), 0u);
    EXPECT_EQ(describe(*m, 1),
              "node 1 (domain 1): CPU 1, 512 MiB, hot-pluggable 4608 MiB, distances 20 10");
}

TEST(NumaNodeMap, EqualDistancesAreBrokenByNodeId) {
    Srat s;
    for (uint32_t n = 0; n < 4; ++n)
        s.cpu(n, n).mem(n * GiB, GiB, n);
    Tables t(s.bytes(),
             slit_table({{10, 25, 25, 20}, {15, 10, 15, 30}, {30, 30, 10, 30}, {20, 20, 20, 10}}));
    auto m = build(t, apics(0, 4), usable({{0, 4 * GiB}}));
    EXPECT_EQ(order(*m, 0), (std::vector<int>{0, 3, 1, 2}));
    EXPECT_EQ(order(*m, 1), (std::vector<int>{1, 0, 2, 3}));
    EXPECT_EQ(order(*m, 2), (std::vector<int>{2, 0, 1, 3}));
    EXPECT_EQ(order(*m, 3), (std::vector<int>{3, 0, 1, 2}));
}

TEST(NumaNodeMap, DisabledSratEntriesAreIgnored) {
    Tables t(Srat()
                 .cpu(0, 0)
                 .cpu(1, 1, false)
                 .x2apic(2, 3, false)
                 .mem(0, GiB, 0)
                 .mem(GiB, GiB, 2, 0)
                 .bytes(),
             {});
    EXPECT_EQ(t.srat.disabled, 3u);
    auto m = build(t, apics(0, 3), usable({{0, 2 * GiB}}));
    EXPECT_EQ(m->nodes(), 1u); // domains 1, 2 and 3 appear only in disabled entries
    EXPECT_EQ(m->cpu_node(1), 0u);
    EXPECT_EQ(m->notes().cpus_not_in_srat, 2u);
    EXPECT_EQ(m->notes().ranges_outside_srat, 1u); // [1G, 2G): its entry is disabled
}

TEST(NumaNodeMap, SratWithNoEnabledEntryCountsAsNone) {
    Tables t(Srat().cpu(0, 4, false).mem(0, GiB, 4, 0).mem(GiB, 0, 5).bytes(), {});
    auto m = build(t, apics(0, 2), usable({{0, GiB}}));
    EXPECT_EQ(m->nodes(), 1u);
    EXPECT_TRUE(m->notes().srat_empty);
    EXPECT_EQ(m->notes().cpus_not_in_srat, 0u);
    EXPECT_EQ(m->notes().ranges_outside_srat, 0u);
}

TEST(NumaNodeMap, SparseDomainsGetDenseIdsInDomainOrder) {
    // Table order 7, 3, 200: nodes are numbered by domain, and the SLIT is read by domain.
    Tables t(Srat()
                 .cpu(0, 7)
                 .cpu(1, 3)
                 .cpu(2, 200)
                 .mem(0, GiB, 7)
                 .mem(GiB, GiB, 3)
                 .mem(2 * GiB, GiB, 200)
                 .bytes(),
             [] {
                 Matrix d(201, std::vector<int>(201, 50));
                 for (int i = 0; i < 201; ++i)
                     d[i][i] = 10;
                 d[3][7] = d[7][3] = 15;
                 d[3][200] = d[200][3] = 30;
                 d[7][200] = d[200][7] = 20;
                 return slit_table(d);
             }());
    auto m = build(t, apics(0, 3), usable({{0, 3 * GiB}}));
    ASSERT_EQ(m->nodes(), 3u);
    EXPECT_EQ(m->domain(0), 3u);
    EXPECT_EQ(m->domain(1), 7u);
    EXPECT_EQ(m->domain(2), 200u);
    EXPECT_EQ(m->cpu_node(0), 1u);
    EXPECT_EQ(m->cpu_node(1), 0u);
    EXPECT_EQ(m->cpu_node(2), 2u);
    EXPECT_EQ(m->node_of_address(0), 1u);
    expect_distances(*m, {{10, 15, 30}, {15, 10, 20}, {30, 20, 10}});
    EXPECT_EQ(order(*m, 2), (std::vector<int>{2, 1, 0}));
}

TEST(NumaNodeMap, DomainsBeyondTheLimitFoldIntoNodeZero) {
    Srat s;
    for (uint32_t d = 0; d <= kMaxNodes; ++d) // 65 domains, listed highest first
        s.cpu(kMaxNodes - d, kMaxNodes - d);
    Tables t(s.bytes(), {});
    auto m = build(t, apics(0, kMaxNodes + 1), {});
    EXPECT_EQ(m->nodes(), kMaxNodes);
    EXPECT_EQ(m->domain(kMaxNodes - 1), kMaxNodes - 1); // the lowest 64 are kept
    EXPECT_EQ(m->cpu_node(kMaxNodes), 0u);
    EXPECT_EQ(m->cpu_node(kMaxNodes - 1), kMaxNodes - 1);
    EXPECT_EQ(m->notes().srat_entries_dropped, 1u);
    EXPECT_EQ(m->notes().cpus_not_in_srat, 1u);
}

TEST(NumaNodeMap, UnsortedMemoryIsSortedAndMerged) {
    Tables t(Srat().cpu(0, 0).cpu(1, 1).mem(0, GiB, 0).mem(GiB, GiB, 1).bytes(), {});
    std::vector<MemRegion> mem = {
        {GiB + 4096, GiB - 4096, MemType::Usable},
        {0x5000, 0x3000, MemType::Reserved}, // not usable: ignored
        {0, 0x5000, MemType::Usable},
        {0x8000, GiB - 0x8000 + 4096, MemType::Usable}, // crosses into node 1
    };
    auto m = build(t, apics(0, 2), mem);
    const auto r = m->ranges();
    ASSERT_EQ(r.size(), 3u);
    EXPECT_EQ(r[0].base, 0u);
    EXPECT_EQ(r[1].base, 0x8000u);
    EXPECT_EQ(r[1].end(), GiB);
    EXPECT_EQ(r[2].base, GiB); // [1G, 1G+4K) and [1G+4K, 2G) merged
    EXPECT_EQ(r[2].end(), 2 * GiB);
    EXPECT_EQ(m->node_of_address(0x6000), kNoNode);
    EXPECT_EQ(m->node_of_address(GiB + 100), 1u);
    EXPECT_EQ(m->node_of_address(2 * GiB), kNoNode);
}

TEST(NumaNodeMap, PiecesBeyondCapacityAreCountedNotStored) {
    std::vector<MemRegion> mem;
    for (uint64_t i = 0; i < kMaxRanges + 10; ++i)
        mem.push_back(MemRegion{i * 0x2000, 0x1000, MemType::Usable});
    Tables t({}, {});
    auto m = build(t, apics(0, 1), mem);
    EXPECT_EQ(m->ranges().size(), kMaxRanges);
    EXPECT_EQ(m->notes().ranges_dropped, 10u);
    EXPECT_EQ(m->notes().bytes_dropped, 10u * 0x1000);
    EXPECT_EQ(m->memory_bytes(0), uint64_t{kMaxRanges} * 0x1000);
}

TEST(NumaNodeMap, DescribeNodeCompressesCpuListsAndTruncatesSafely) {
    Srat s;
    for (uint32_t cpu = 0; cpu < 16; ++cpu)
        s.cpu(cpu, cpu < 4 || (cpu >= 8 && cpu < 12) ? 0 : cpu == 13 ? 2 : 1);
    s.mem(0, 512 * 1024, 0); // less than a MiB
    Tables t(s.bytes(), {});
    auto m = build(t, apics(0, 16), usable({{0, 512 * 1024}}));
    EXPECT_EQ(describe(*m, 0), "node 0 (domain 0): CPUs 0-3,8-11, 512 KiB, distances 10 20 20");
    EXPECT_EQ(describe(*m, 1), "node 1 (domain 1): CPUs 4-7,12,14-15, no memory (allocates "
                               "from node 0), distances 20 10 20");
    EXPECT_EQ(describe(*m, 2), "node 2 (domain 2): CPU 13, no memory (allocates from node 0), "
                               "distances 20 20 10");
    EXPECT_EQ(describe(*m, 3), "node 3: no such node");

    const std::string full = describe(*m, 0);
    char small[16];
    std::memset(small, 'x', sizeof small);
    EXPECT_EQ(m->describe_node(0, small, sizeof small), full.size());
    EXPECT_EQ(std::string(small), full.substr(0, sizeof small - 1));
    EXPECT_EQ(m->describe_node(0, nullptr, 0), full.size());
}

TEST(NumaNodeMap, RebuildingReplacesEverything) {
    Srat s;
    for (uint32_t n = 0; n < 4; ++n)
        s.cpu(n, n).mem(n * GiB, GiB, n);
    Tables four(s.bytes(), slit_table(chain(4)));
    Tables none({}, {});
    auto m = build(four, apics(0, 4), usable({{0, 4 * GiB}}));
    ASSERT_EQ(m->nodes(), 4u);
    m->build(none.srat_ptr(), none.slit_ptr(), apics(0, 2), usable({{0, GiB}}));
    EXPECT_EQ(m->nodes(), 1u);
    EXPECT_EQ(m->cpus(), 2u);
    EXPECT_EQ(m->ranges().size(), 1u);
    EXPECT_EQ(m->memory_bytes(0), GiB);
    EXPECT_EQ(m->hotplug_bytes(0), 0u);
    EXPECT_EQ(m->notes().slit, SlitStatus::Absent);
    EXPECT_EQ(m->distance(0, 1), kUnreachable);
}

// --- What QEMU 7.2 generates ------------------------------------------------------------

// A QEMU machine of the test configurations: flat -smp (APIC id = CPU index), each
// node's RAM in node order from address 0, all of it below 4 GiB.
struct QemuMachine {
    const char* dir; // under tests/data/qemu-numa
    std::vector<uint32_t> node_cpus;
    std::vector<uint64_t> node_mib;
    Matrix dist; // empty: no -numa dist, so no SLIT
    uint64_t hotplug_base = 0, hotplug_length = 0;

    uint32_t cpus() const {
        uint32_t n = 0;
        for (uint32_t c : node_cpus)
            n += c;
        return n;
    }
    uint64_t ram() const {
        uint64_t n = 0;
        for (uint64_t m : node_mib)
            n += m * MiB;
        return n;
    }
    uint32_t node_of_cpu(uint32_t cpu) const {
        for (uint32_t n = 0; n < node_cpus.size(); ++n) {
            if (cpu < node_cpus[n]) return n;
            cpu -= node_cpus[n];
        }
        return kNoNode;
    }
};

// QEMU's SRAT as hw/i386/acpi-build.c lays it out (QEMU 7.2): a type 0 entry per possible CPU
// (type 2 from APIC id 255 on, which TCG cannot create), then each node's memory in node
// order with the legacy hole [640K, 1M) cut out and nodes without memory skipped, disabled
// zero entries until there are nodes + 2 memory entries, and the hot-pluggable device memory
// region (when -m has maxmem) as one entry of the last node.
std::vector<uint8_t> qemu_srat(const QemuMachine& q) {
    Srat s;
    for (uint32_t cpu = 0; cpu < q.cpus(); ++cpu)
        s.cpu(cpu, q.node_of_cpu(cpu));
    uint64_t next = 0;
    size_t entries = 0;
    for (uint32_t n = 0; n < q.node_mib.size(); ++n) {
        uint64_t base = next;
        uint64_t length = q.node_mib[n] * MiB;
        next = base + length;
        if (base <= 0xA0000 && next > 0xA0000) {
            s.mem(base, 0xA0000 - base, n);
            ++entries;
            base = MiB;
            length = next - MiB;
        }
        if (length > 0) {
            s.mem(base, length, n);
            ++entries;
        }
    }
    for (; entries < q.node_mib.size() + 2; ++entries)
        s.mem(0, 0, 0, 0);
    if (q.hotplug_length != 0)
        s.mem(q.hotplug_base, q.hotplug_length, static_cast<uint32_t>(q.node_mib.size() - 1),
              kMemEnabled | kMemHotPluggable);
    return s.bytes();
}

// The memory map Cohort's boot log shows under QEMU q35 with PVH direct boot (loglevel=debug,
// 2 nodes, 512 MiB): the first MiB is the AP trampoline or reserved, the kernel image from
// 1 MiB to 0x6b9000, SeaBIOS' 128 KiB at the top of RAM reserved, the rest usable.
std::vector<MemRegion> qemu_memory_map(uint64_t ram) {
    auto map = std::make_unique<MemoryMap>();
    map->add(0, 0x9fc00, MemType::Usable);
    map->add(0x9fc00, 0x400, MemType::Reserved);
    map->add(0xf0000, 0x10000, MemType::Reserved);
    map->add(MiB, ram - MiB - 0x20000, MemType::Usable);
    map->add(ram - 0x20000, 0x20000, MemType::Reserved);
    map->add(0xb0000000, 0x10000000, MemType::Reserved);
    map->normalize();
    map->reserve(0, 0xa0000, MemType::Trampoline);
    map->reserve(MiB, 0x6b9000 - MiB, MemType::Kernel);
    const auto r = map->regions();
    return {r.begin(), r.end()};
}

// Usable bytes of `memory` inside [base, end).
uint64_t usable_within(const std::vector<MemRegion>& memory, uint64_t base, uint64_t end) {
    uint64_t n = 0;
    for (const MemRegion& r : memory) {
        if (r.type != MemType::Usable) continue;
        const uint64_t lo = std::max(base, r.base), hi = std::min(end, r.end());
        if (lo < hi) n += hi - lo;
    }
    return n;
}

// The CPUs the kernel would run: the MADT's enabled entries, in table order.
std::vector<uint32_t> madt_apic_ids(const std::vector<uint8_t>& bytes) {
    acpi::Error errs[8];
    acpi::ErrorLog log(errs);
    std::vector<acpi::CpuEntry> cpus(1024);
    acpi::MadtTopology topo;
    const auto t = acpi::validate_table(bytes, "APIC", log);
    EXPECT_TRUE(t);
    if (!t) return {};
    EXPECT_TRUE(
        acpi::parse_madt(*t, acpi::kNoBsp, acpi::MadtStorage{cpus, {}, {}, {}, {}, {}}, topo, log));
    std::vector<uint32_t> ids;
    for (const acpi::CpuEntry& c : topo.cpus.items())
        if (c.state == acpi::CpuState::Enabled) ids.push_back(c.apic_id);
    return ids;
}

Matrix two_level(int n, int group, int near, int far) {
    Matrix m(n, std::vector<int>(n));
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j)
            m[i][j] = i == j ? 10 : i / group == j / group ? near : far;
    return m;
}

// The configurations of issue 15, with the options given to tools/run (each directory's
// qemu-command.txt has the exact QEMU command line).
std::vector<QemuMachine> qemu_machines() {
    const Matrix d21 = {{10, 21}, {21, 10}};
    return {
        // --smp 8 --mem 512M --numa 2 --numa-dist '10,21;21,10'
        {"two", {4, 4}, {256, 256}, d21},
        // --smp 16 --mem 512M --numa 4 --numa-dist <chain 10/20/30/40>
        {"chain4", {4, 4, 4, 4}, {128, 128, 128, 128}, chain(4)},
        // --smp 64 --mem 1G --numa 8 --numa-dist <uneven, asymmetric: 0->2 17, 2->0 16>
        {"uneven8",
         std::vector<uint32_t>(8, 8),
         std::vector<uint64_t>(8, 128),
         {{10, 16, 17, 22, 28, 28, 34, 40},
          {16, 10, 22, 16, 28, 34, 28, 40},
          {16, 22, 10, 16, 34, 28, 40, 28},
          {22, 16, 16, 10, 40, 34, 28, 28},
          {28, 28, 34, 40, 10, 16, 16, 22},
          {28, 34, 28, 40, 16, 10, 22, 16},
          {34, 28, 40, 28, 16, 22, 10, 16},
          {40, 40, 28, 28, 22, 16, 16, 10}}},
        // --smp 8 --numa-cpus '0-3;4-7' --numa-mem '512M;0' --numa-dist '10,21;21,10'
        {"memless", {4, 4}, {512, 0}, d21},
        // --smp 8 --numa-cpus '0-7;' --numa-mem '256M;256M' --numa-dist '10,21;21,10'
        {"cpuless", {8, 0}, {256, 256}, d21},
        // --smp 255 --mem 1G --numa 8 --numa-dist <two groups of 4: 15 inside, 25 across>
        {"big255",
         {32, 32, 32, 32, 32, 32, 32, 31},
         std::vector<uint64_t>(8, 128),
         two_level(8, 4, 15, 25)},
        // --smp 4 --mem 512M --numa 2 (no distances: QEMU builds no SLIT)
        {"nodist4", {2, 2}, {256, 256}, {}},
        // --smp 4 --mem 512M --numa 2 --numa-dist '10,21;21,10'
        //   --qemu-arg=-m --qemu-arg=512M,slots=2,maxmem=2G: device memory at 4G, 1.5G plus
        //   1G alignment room per slot
        {"hotplug", {2, 2}, {256, 256}, d21, 4 * GiB, 3584 * MiB},
    };
}

// "" when equal, else where they first differ (a byte-array diff would print both whole).
std::string difference(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want) {
    if (got == want) return "";
    size_t i = 0;
    while (i < got.size() && i < want.size() && got[i] == want[i])
        ++i;
    return "sizes " + std::to_string(got.size()) + " and " + std::to_string(want.size()) +
           ", first difference at byte " + std::to_string(i);
}

std::string data_dir(const QemuMachine& q) {
    return std::string(COHORT_QEMU_NUMA_DATA) + "/" + q.dir + "/";
}

TEST(NumaNodeMapQemu, RecordedSratMatchesTheModelOfQemusLayout) {
    for (const QemuMachine& q : qemu_machines()) {
        SCOPED_TRACE(q.dir);
        const auto recorded = read_file(data_dir(q) + "srat.dat");
        ASSERT_FALSE(recorded.empty()) << "missing " << data_dir(q) << "srat.dat";
        EXPECT_EQ(difference(qemu_srat(q), recorded), "");
        const auto slit = read_file(data_dir(q) + "slit.dat");
        if (q.dist.empty())
            EXPECT_TRUE(slit.empty());
        else
            EXPECT_EQ(difference(slit_table(q.dist), slit), "");
    }
}

TEST(NumaNodeMapQemu, NodeMapMatchesWhatQemuWasTold) {
    for (const QemuMachine& q : qemu_machines()) {
        SCOPED_TRACE(q.dir);
        Tables t(read_file(data_dir(q) + "srat.dat"), read_file(data_dir(q) + "slit.dat"));
        ASSERT_TRUE(t.has_srat);
        EXPECT_TRUE(t.srat.complete);
        EXPECT_EQ(t.log.total(), 0u);
        const auto cpus = madt_apic_ids(read_file(data_dir(q) + "apic.dat"));
        ASSERT_EQ(cpus.size(), q.cpus());
        const auto memory = qemu_memory_map(q.ram());
        auto m = build(t, cpus, memory);

        const uint32_t nodes = static_cast<uint32_t>(q.node_cpus.size());
        // A node QEMU was given neither CPUs nor memory would be absent from the SRAT; the
        // configurations here have none.
        ASSERT_EQ(m->nodes(), nodes);
        EXPECT_FALSE(m->notes().any());
        EXPECT_EQ(m->notes().slit, q.dist.empty() ? SlitStatus::Absent : SlitStatus::Used);
        for (uint32_t cpu = 0; cpu < q.cpus(); ++cpu)
            EXPECT_EQ(m->cpu_node(cpu), q.node_of_cpu(cpu)) << "cpu " << cpu;
        uint64_t base = 0;
        for (uint32_t n = 0; n < nodes; ++n) {
            SCOPED_TRACE(testing::Message() << "node " << n);
            EXPECT_EQ(m->domain(n), n);
            EXPECT_EQ(m->cpu_count(n), q.node_cpus[n]);
            const uint64_t end = base + q.node_mib[n] * MiB;
            EXPECT_EQ(m->memory_bytes(n), usable_within(memory, base, end));
            EXPECT_EQ(m->memoryless(n), q.node_mib[n] == 0);
            EXPECT_EQ(m->cpuless(n), q.node_cpus[n] == 0);
            base = end;
        }
        EXPECT_EQ(m->hotplug_bytes(nodes - 1), q.hotplug_length);
        expect_distances(*m, q.dist.empty() ? two_level(nodes, 1, 0, 20) : q.dist);
        expect_fallbacks_follow_distance(*m);
    }
}

TEST(NumaNodeMapQemu, FallbackOrdersAndLevelsOfTheTestMachines) {
    auto map_of = [](const char* dir) {
        for (const QemuMachine& q : qemu_machines()) {
            if (std::string(q.dir) != dir) continue;
            Tables t(read_file(data_dir(q) + "srat.dat"), read_file(data_dir(q) + "slit.dat"));
            return build(t, madt_apic_ids(read_file(data_dir(q) + "apic.dat")),
                         qemu_memory_map(q.ram()));
        }
        return std::unique_ptr<NodeMap>();
    };
    auto chain4 = map_of("chain4");
    ASSERT_TRUE(chain4);
    EXPECT_EQ(order(*chain4, 1), (std::vector<int>{1, 0, 2, 3}));
    EXPECT_EQ(order(*chain4, 2), (std::vector<int>{2, 1, 3, 0}));
    EXPECT_EQ(levels(*chain4), (std::vector<int>{10, 20, 30, 40}));

    auto uneven = map_of("uneven8");
    EXPECT_EQ(order(*uneven, 0), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
    EXPECT_EQ(order(*uneven, 2), (std::vector<int>{2, 0, 3, 1, 5, 7, 4, 6}));
    EXPECT_EQ(order(*uneven, 7), (std::vector<int>{7, 5, 6, 4, 2, 3, 0, 1}));
    EXPECT_EQ(levels(*uneven), (std::vector<int>{10, 16, 17, 22, 28, 34, 40}));

    auto memless = map_of("memless");
    EXPECT_EQ(memless->nearest_node_with_memory(1), 0u);
    EXPECT_EQ(describe(*memless, 1),
              "node 1 (domain 1): CPUs 4-7, no memory (allocates from node 0), distances 21 10");

    auto cpuless = map_of("cpuless");
    EXPECT_EQ(describe(*cpuless, 1), "node 1 (domain 1): no CPUs, 255 MiB, distances 21 10");

    auto big = map_of("big255");
    EXPECT_EQ(describe(*big, 7), "node 7 (domain 7): CPUs 224-254, 127 MiB, distances 25 25 25 "
                                 "25 15 15 15 10");
    EXPECT_EQ(order(*big, 5), (std::vector<int>{5, 4, 6, 7, 0, 1, 2, 3}));
    EXPECT_EQ(big->nodes_within(5, 15), mask({4, 5, 6, 7}));
    EXPECT_EQ(levels(*big), (std::vector<int>{10, 15, 25}));

    auto hot = map_of("hotplug");
    EXPECT_EQ(describe(*hot, 1),
              "node 1 (domain 1): CPUs 2-3, 255 MiB, hot-pluggable 3584 MiB, distances 21 10");
}

} // namespace
