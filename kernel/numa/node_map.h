// The NUMA node map: which node each CPU and each usable memory range belongs to, and how far
// nodes are from each other, derived from the firmware's SRAT and SLIT (either may be missing)
// and the memory map. Portable and allocation-free, so the host tests can feed it crafted and
// recorded tables; the kernel builds one at boot and the page allocator and the scheduler read
// it (docs/numa.md).
//
// Nodes are dense ids 0 .. nodes()-1 given to the SRAT's proximity domains in increasing domain
// order; the domain number is kept for the log. Everything the firmware leaves undescribed goes
// to node 0 and is counted in notes(), so the kernel can warn instead of failing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "acpi/srat.h"
#include "lib/memmap.h"
#include "smp/cpumask.h"

namespace cohort::numa {

/// Nodes beyond this many (the lowest domain numbers are kept) are folded into node 0. 64 lets
/// a set of nodes be one 64-bit word; no x86 machine in the corpus comes near it.
inline constexpr uint32_t kMaxNodes = 64;
/// Usable memory pieces after splitting at SRAT boundaries; the kernel's memory map holds at
/// most MemoryMap::kCapacity regions, and each SRAT boundary inside one adds a piece.
inline constexpr uint32_t kMaxRanges = 512;
inline constexpr uint32_t kNoNode = 0xFFFF'FFFF;
/// SLIT conventions: a node's distance to itself, the distance assumed between two nodes when
/// there is no (usable) SLIT, and "no path".
inline constexpr uint8_t kLocalDistance = 10;
inline constexpr uint8_t kRemoteDistance = 20;
inline constexpr uint8_t kUnreachable = 0xFF;

/// A set of dense node ids, bit i = node i.
using NodeMask = uint64_t;
static_assert(kMaxNodes <= 64, "NodeMask is one word");

/// A piece of usable memory that lies in one node.
struct NodeRange {
    uint64_t base;
    uint64_t length;
    uint8_t node;
    bool hot_pluggable; ///< The SRAT range covering it has the hot-pluggable flag.
    bool outside_srat;  ///< No SRAT range covers it: placed on node 0 (counted in notes()).
    uint64_t end() const { return base + length; }
};

/// What became of the SLIT.
enum class SlitStatus : uint8_t {
    Absent,      ///< None given: 10 local, 20 remote.
    Used,        ///< Distances come from the SLIT.
    TooSmall,    ///< Fewer localities than some node's domain needs: 10/20 used instead.
    BadDiagonal, ///< A node's distance to itself is not 10: 10/20 used instead.
    BadDistance, ///< A distance between two nodes is 10 or less: 10/20 used instead.
};

/// Short text for the boot log.
const char* slit_status_name(SlitStatus status);

/// What the firmware left out or got wrong; each field is a count the kernel logs as a warning
/// (or, for the SLIT, an error). All zero / Absent / Used on a well-described machine.
struct NodeMapNotes {
    /// Running CPUs with no enabled SRAT processor entry (or one in a dropped domain), placed on
    /// node 0. Zero when there is no SRAT at all: then every CPU is on node 0 by definition.
    uint32_t cpus_not_in_srat = 0;
    /// Usable memory no SRAT memory range covers (or only one of a dropped domain), placed on
    /// node 0. Zero when there is no SRAT.
    uint32_t ranges_outside_srat = 0;
    uint64_t bytes_outside_srat = 0;
    /// Pieces beyond kMaxRanges: not in ranges() and not counted in any node.
    uint32_t ranges_dropped = 0;
    uint64_t bytes_dropped = 0;
    /// SRAT entries whose domain is not among the lowest kMaxNodes domains.
    uint32_t srat_entries_dropped = 0;
    /// CPUs beyond kMaxCpus in the list given to build(): ignored.
    uint32_t cpus_dropped = 0;
    /// The SRAT walk stopped early or its output arrays overflowed: some entries were not seen.
    bool srat_incomplete = false;
    /// SRAT given, but with no enabled entry: treated as absent (one node).
    bool srat_empty = false;
    SlitStatus slit = SlitStatus::Absent;
    /// Where the SLIT went wrong: the domains of the first bad entry and its value
    /// (BadDiagonal, BadDistance), or the locality count and the domain it could not hold
    /// (TooSmall: slit_from = localities, slit_to = domain).
    uint32_t slit_from = 0, slit_to = 0, slit_value = 0;

    /// True if the SLIT was present but not used.
    bool slit_rejected() const { return slit != SlitStatus::Absent && slit != SlitStatus::Used; }
    /// True if anything above deserves a log line.
    bool any() const {
        return cpus_not_in_srat || ranges_outside_srat || ranges_dropped || srat_entries_dropped ||
               cpus_dropped || srat_incomplete || srat_empty || slit_rejected();
    }
};

/// The node map. About 26 KiB of fixed arrays: the kernel keeps one in static storage.
class NodeMap {
  public:
    /// Builds the map, replacing any previous contents.
    /// - `srat`, `slit`: the parsed tables, or null when the firmware has none (a SLIT that
    ///   Slit::parse rejected is passed as null).
    /// - `apic_ids[cpu]`: the APIC id of logical CPU `cpu`, for every CPU the kernel runs.
    /// - `memory`: the memory map's regions; only Usable ones are placed.
    void build(const acpi::SratInfo* srat, const acpi::Slit* slit,
               std::span<const uint32_t> apic_ids, std::span<const MemRegion> memory);

    /// Number of nodes, at least 1.
    uint32_t nodes() const { return nnodes_; }
    /// The proximity domain node `node` stands for (0 for the single node without SRAT).
    uint32_t domain(uint32_t node) const { return node < nnodes_ ? nodes_[node].domain : 0; }
    /// The node of proximity domain `domain`, or kNoNode.
    uint32_t node_of_domain(uint32_t domain) const;

    /// Number of CPUs given to build() (at most kMaxCpus).
    uint32_t cpus() const { return ncpus_; }
    /// The node of logical CPU `cpu`, or kNoNode for a CPU build() was not given.
    uint32_t cpu_node(uint32_t cpu) const { return cpu < ncpus_ ? cpu_node_[cpu] : kNoNode; }
    /// Running CPUs on `node`.
    uint32_t cpu_count(uint32_t node) const { return node < nnodes_ ? nodes_[node].cpus : 0; }
    /// Usable bytes on `node` (hot-pluggable memory only once it is in the memory map).
    uint64_t memory_bytes(uint32_t node) const {
        return node < nnodes_ ? nodes_[node].memory_bytes : 0;
    }
    /// Bytes of the node's SRAT ranges flagged hot-pluggable, present or not.
    uint64_t hotplug_bytes(uint32_t node) const {
        return node < nnodes_ ? nodes_[node].hotplug_bytes : 0;
    }
    /// A node without usable memory (typically one with CPUs only): its CPUs allocate from
    /// nearest_node_with_memory().
    bool memoryless(uint32_t node) const { return node < nnodes_ && memory_bytes(node) == 0; }
    /// A node without running CPUs (typically one with memory only).
    bool cpuless(uint32_t node) const { return node < nnodes_ && cpu_count(node) == 0; }

    /// Usable memory, sorted by address, each piece in one node; adjacent pieces with the same
    /// node and flags are merged.
    std::span<const NodeRange> ranges() const { return {ranges_, nranges_}; }
    /// The node of physical address `phys`, or kNoNode if it is not usable memory.
    uint32_t node_of_address(uint64_t phys) const;

    /// SLIT distance from `from` (where the CPU is) to `to` (where the memory is), as validated
    /// by build(); kUnreachable for nodes that do not exist.
    uint8_t distance(uint32_t from, uint32_t to) const {
        return from < nnodes_ && to < nnodes_ ? distance_[from][to] : kUnreachable;
    }

    /// The nodes to allocate from for a CPU of `node`, best first: nodes with memory by
    /// increasing distance(node, n), equal distances by node id. `node` itself comes first when
    /// it has memory; unreachable nodes are left out. Empty for an unknown node.
    std::span<const uint8_t> nearest_nodes_with_memory(uint32_t node) const {
        if (node >= nnodes_) return {};
        return {order_[node], order_len_[node]};
    }
    /// The first of nearest_nodes_with_memory(node): `node` itself unless it is memory-less;
    /// kNoNode if no reachable node has memory.
    uint32_t nearest_node_with_memory(uint32_t node) const {
        const auto order = nearest_nodes_with_memory(node);
        return order.empty() ? kNoNode : order[0];
    }

    /// The distinct distances between any two nodes, from every node's view (so asymmetric
    /// tables and long chains give all their levels), in increasing order, 10 first;
    /// unreachable pairs are left out. Writes the first out.size() of them and returns how many
    /// there are.
    size_t distance_levels(std::span<uint8_t> out) const;
    /// The nodes at distance <= `distance` from `node` (distance(node, n)); 0 for an unknown
    /// node. Unreachable nodes are never included.
    NodeMask nodes_within(uint32_t node, uint32_t distance) const;

    /// One line for the boot log, e.g. "node 0 (domain 0): CPUs 0-3, 255 MiB, distances 10 21".
    /// NUL-terminated within `size`; returns the length the whole line has (as format does).
    size_t describe_node(uint32_t node, char* buf, size_t size) const;

    const NodeMapNotes& notes() const { return notes_; }

  private:
    struct Node {
        uint32_t domain;
        uint32_t cpus;
        uint64_t memory_bytes;
        uint64_t hotplug_bytes;
    };

    void collect_domains(const acpi::SratInfo& srat);
    void place_cpus(const acpi::SratInfo* srat, std::span<const uint32_t> apic_ids);
    void place_memory(const acpi::SratInfo* srat, std::span<const MemRegion> memory);
    void add_piece(uint64_t base, uint64_t end, uint32_t node, bool hot, bool outside);
    void sort_and_merge_ranges();
    void set_distances(const acpi::Slit* slit);
    void build_fallback_orders();

    uint32_t nnodes_ = 0;
    uint32_t ncpus_ = 0;
    uint32_t nranges_ = 0;
    Node nodes_[kMaxNodes] = {};
    uint8_t cpu_node_[kMaxCpus] = {};
    NodeRange ranges_[kMaxRanges] = {};
    uint8_t distance_[kMaxNodes][kMaxNodes] = {};
    uint8_t order_[kMaxNodes][kMaxNodes] = {};
    uint8_t order_len_[kMaxNodes] = {};
    NodeMapNotes notes_;
};

} // namespace cohort::numa
