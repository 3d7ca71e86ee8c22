// Scheduling domains: which CPUs are near each other (SMT siblings of one core, the cores of
// one package, the CPUs of one NUMA node, the nodes within each SLIT distance, the machine),
// built from each CPU's APIC id, the topology widths CPUID reports and the node map.
// Placement and stealing look at the nearest domain first.
//
// CPUs are numbered in topology order ("positions": by node, then package, core and thread),
// so every domain up to the node is a contiguous range of positions, and a NUMA level is the
// ranges of a set of nodes. The per-position masks of idle and overloaded CPUs (PositionMask)
// answer "an idle CPU near me" with a few word reads. Portable: host tests build machines of
// any shape.
#pragma once

#include <atomic>
#include <cstdint>

#include "smp/cpumask.h"

namespace cohort::sched {

/// How an APIC id splits into thread, core and package: bits [0, smt_bits) number the thread
/// within its core, bits [smt_bits, package_shift) the core within its package, the bits above
/// the package (CPUID leaf 0x1F/0xB, or leaves 1 and 4 on older CPUs).
struct TopologyWidths {
    uint32_t smt_bits = 0;
    uint32_t package_shift = 0;
};

/// Where one CPU sits.
struct CpuPlace {
    uint32_t package = 0;
    uint32_t core = 0;   // within the package
    uint32_t thread = 0; // within the core
    uint32_t node = 0;   // NUMA node (numa/node_map.h), below Topology::kMaxNodes
};

/// The place an APIC id denotes under `w` (node 0: the node map says which node it is on).
CpuPlace place_of(uint32_t apic_id, TopologyWidths w);

enum class DomainKind : uint8_t { Smt, Package, Node, Numa, Machine };
const char* domain_kind_name(DomainKind k);

/// A set of NUMA nodes, bit i = node i (as numa::NodeMask).
using NodeSet = uint64_t;

/// The domain hierarchy of one machine. Levels run from the smallest (SMT siblings) to the
/// machine: SMT, package, node (each a run of positions), then one NUMA level per distinct SLIT
/// distance (the nodes at most that far from the CPU's node), then the machine. A level that
/// groups every CPU exactly as the level below it does is left out, so a flat machine (QEMU's
/// `-smp N`: one package of N single-thread cores, one node) has the machine level only.
class Topology {
  public:
    static constexpr uint32_t kMaxNodes = 64;
    /// SLIT distances beyond this many get no level of their own: they fold into the machine.
    static constexpr uint32_t kMaxNumaLevels = 8;
    static constexpr uint32_t kMaxLevels = 3 + kMaxNumaLevels + 1;
    /// Positions [lo, hi).
    struct Span {
        uint16_t lo = 0, hi = 0;
        uint32_t size() const { return hi - lo; }
        bool contains(uint32_t pos) const { return pos >= lo && pos < hi; }
        bool contains(Span s) const { return s.size() == 0 || (s.lo >= lo && s.hi <= hi); }
    };

    /// Builds the domains of CPUs 0 .. ncpus-1 from their places (indexed by CPU id), on
    /// `nodes` NUMA nodes whose distances are the row-major `nodes` x `nodes` matrix
    /// `distance` (row = from; 10 local, 0xFF unreachable), or 10 local / 20 remote when it is
    /// null. A place's node at or beyond `nodes` counts as node 0.
    void build(const CpuPlace* places, uint32_t ncpus, uint32_t nodes = 1,
               const uint8_t* distance = nullptr);

    uint32_t ncpus() const { return ncpus_; }
    uint32_t levels() const { return levels_; }
    DomainKind kind(uint32_t level) const { return kinds_[level]; }
    /// True for the levels whose domains are one run of positions (all but the NUMA levels).
    bool contiguous(uint32_t level) const { return kinds_[level] != DomainKind::Numa; }
    /// The positions of `cpu`'s domain at a contiguous `level`.
    Span span(uint32_t cpu, uint32_t level) const {
        return kinds_[level] == DomainKind::Machine ? Span{0, static_cast<uint16_t>(ncpus_)}
                                                    : spans_[cpu][slot_[level]];
    }
    /// The nodes of `cpu`'s domain at `level`: for a contiguous level, those its CPUs are on.
    NodeSet domain_nodes(uint32_t cpu, uint32_t level) const;
    /// The SLIT distance a NUMA level stands for (10 for the others).
    uint32_t level_distance(uint32_t level) const { return distance_of_level_[level]; }
    /// `pos` lies in `cpu`'s domain at `level`.
    bool in_domain(uint32_t cpu, uint32_t level, uint32_t pos) const {
        if (contiguous(level)) return span(cpu, level).contains(pos);
        return (numa_[node_[cpu]][slot_[level]] >> node_at_[pos] & 1) != 0;
    }
    /// CPUs in `cpu`'s domain at `level`.
    uint32_t domain_size(uint32_t cpu, uint32_t level) const;
    /// Calls f(run) for the runs of positions of `cpu`'s domain at `level` that the domain one
    /// level down does not hold whole, nearest node first (equal distances by node id), until f
    /// returns true. A contiguous level is one run (none if it equals the level below).
    template <typename F>
    void for_each_new_run(uint32_t cpu, uint32_t level, F&& f) const;

    uint32_t pos(uint32_t cpu) const { return pos_[cpu]; }
    uint32_t cpu_at(uint32_t pos) const { return cpu_[pos]; }
    uint32_t nodes() const { return nnodes_; }
    uint32_t node_of(uint32_t cpu) const { return node_[cpu]; }
    /// The positions of `node`'s CPUs (empty for a node without CPUs).
    Span node_span(uint32_t node) const { return node_span_[node]; }
    uint32_t distance(uint32_t from, uint32_t to) const { return distance_[from][to]; }
    /// Counts for the boot log: packages, the largest number of cores in one package and of
    /// threads in one core.
    uint32_t packages() const { return packages_; }
    uint32_t max_cores() const { return max_cores_; }
    uint32_t max_threads() const { return max_threads_; }
    /// The most CPUs one domain at `level` holds.
    uint32_t max_span(uint32_t level) const { return max_span_[level]; }
    /// The mask words a search of every level from any CPU reads at most (each new run's
    /// words): the budget of a search that must see every CPU of the machine.
    uint32_t walk_words() const { return walk_words_; }
    /// Distinct SLIT distances that got no level (more than kMaxNumaLevels).
    uint32_t numa_levels_dropped() const { return numa_dropped_; }

  private:
    void build_numa_levels();
    bool level_adds_grouping(uint32_t level) const;

    uint32_t ncpus_ = 0, levels_ = 0, nnodes_ = 1;
    uint32_t packages_ = 0, max_cores_ = 0, max_threads_ = 0;
    uint32_t walk_words_ = 0, numa_dropped_ = 0;
    DomainKind kinds_[kMaxLevels] = {};
    uint8_t slot_[kMaxLevels] = {};              // spans_ column, or numa_ column
    uint32_t distance_of_level_[kMaxLevels] = {};
    uint32_t max_span_[kMaxLevels] = {};
    uint16_t pos_[kMaxCpus] = {};
    uint16_t cpu_[kMaxCpus] = {};
    uint8_t node_[kMaxCpus] = {};    // by CPU id
    uint8_t node_at_[kMaxCpus] = {}; // by position
    Span spans_[kMaxCpus][3] = {};   // SMT, package, node
    Span node_span_[kMaxNodes] = {};
    NodeSet numa_[kMaxNodes][kMaxNumaLevels] = {};
    uint8_t distance_[kMaxNodes][kMaxNodes] = {};
    uint8_t order_[kMaxNodes][kMaxNodes] = {}; // every node, nearest first from each node
};

template <typename F>
void Topology::for_each_new_run(uint32_t cpu, uint32_t level, F&& f) const {
    const bool has_below = level > 0;
    if (contiguous(level)) {
        const Span s = span(cpu, level);
        if (has_below && domain_size(cpu, level - 1) == s.size()) return;
        f(s);
        return;
    }
    const NodeSet mine = numa_[node_[cpu]][slot_[level]];
    const NodeSet below = has_below ? domain_nodes(cpu, level - 1) : 0;
    const bool below_contiguous = has_below && contiguous(level - 1);
    const Span below_span = below_contiguous ? span(cpu, level - 1) : Span{};
    for (uint32_t i = 0; i < nnodes_; ++i) {
        const uint32_t n = order_[node_[cpu]][i];
        if ((mine >> n & 1) == 0 || node_span_[n].size() == 0) continue;
        // Held whole by the level below: its search saw these CPUs already.
        if (below_contiguous ? below_span.contains(node_span_[n]) : (below >> n & 1) != 0)
            continue;
        if (f(node_span_[n])) return;
    }
}

/// A set of positions that CPUs update concurrently (each its own bit, on transitions only),
/// read by other CPUs as a hint. Each 64-bit word has a cache line of its own, so a CPU going
/// idle writes one line shared with at most 63 others, and a search reads one line per 64
/// CPUs it covers. Relaxed: a stale bit costs a placement that is not the best, never a lost
/// task (the chosen CPU is kicked and its queue is the truth).
class PositionMask {
  public:
    static constexpr uint32_t kWords = kMaxCpus / 64;
    void set(uint32_t pos) { line(pos).fetch_or(bit(pos), std::memory_order_relaxed); }
    void clear(uint32_t pos) { line(pos).fetch_and(~bit(pos), std::memory_order_relaxed); }
    bool test(uint32_t pos) const {
        return (words_[pos / 64].bits.load(std::memory_order_relaxed) & bit(pos)) != 0;
    }
    uint64_t word(uint32_t w) const { return words_[w].bits.load(std::memory_order_relaxed); }
    void clear_all() {
        for (auto& w : words_) w.bits.store(0, std::memory_order_relaxed);
    }

  private:
    static uint64_t bit(uint32_t pos) { return uint64_t{1} << (pos % 64); }
    std::atomic<uint64_t>& line(uint32_t pos) { return words_[pos / 64].bits; }
    struct alignas(64) Word {
        std::atomic<uint64_t> bits{0};
    };
    Word words_[kWords];
};

/// The cost of one search: words of a PositionMask and other CPUs' load lines read. Counted,
/// so a benchmark can show that a wake-up's cost does not grow with the number of CPUs.
struct ProbeCost {
    uint32_t words_left; // budget: mask words a search may still read
    uint32_t lines = 0;  // cache lines of shared or other CPUs' state read so far
};

/// Calls `visit(cpu)` for the CPUs whose bit is set in `words(w)` (word w of a position set:
/// a PositionMask, or a combination of them) within `span`, in position order starting at
/// position `from` and wrapping around inside the span, until `visit` returns true (then
/// returns that CPU) or the budget of words runs out (returns kMaxCpus). Each word costs one
/// unit of `cost.words_left` and `lines_per_word` lines (the masks it reads).
template <typename Words, typename Visit>
uint32_t probe_words(Words&& words, uint32_t lines_per_word, const Topology& topo,
                     Topology::Span span, uint32_t from, ProbeCost& cost, Visit&& visit) {
    if (span.size() == 0) return kMaxCpus;
    if (!span.contains(from)) from = span.lo;
    const uint32_t first_word = span.lo / 64;
    const uint32_t nwords = (span.hi - 1) / 64 - first_word + 1;
    const uint32_t start = from / 64 - first_word;
    const uint64_t below_from = (uint64_t{1} << (from % 64)) - 1;
    uint64_t start_bits = 0;
    // Pass 0 takes the starting word's bits from `from` up, passes 1 .. nwords-1 the words
    // after it (wrapping), and pass nwords the starting word's bits below `from` again, from
    // the copy read in pass 0.
    for (uint32_t i = 0; i <= nwords; ++i) {
        const uint32_t w = first_word + (start + i) % nwords;
        uint64_t bits;
        if (i == nwords) {
            bits = start_bits & below_from;
        } else {
            if (cost.words_left == 0) return kMaxCpus;
            --cost.words_left;
            cost.lines += lines_per_word;
            bits = words(w);
            if (i == 0) {
                start_bits = bits;
                bits &= ~below_from;
            }
        }
        const uint32_t base = w * 64;
        if (span.lo > base) bits &= ~((uint64_t{1} << (span.lo - base)) - 1);
        if (span.hi < base + 64) bits &= (uint64_t{1} << (span.hi - base)) - 1;
        while (bits != 0) {
            const uint32_t p = base + static_cast<uint32_t>(__builtin_ctzll(bits));
            bits &= bits - 1;
            const uint32_t cpu = topo.cpu_at(p);
            if (visit(cpu)) return cpu;
        }
    }
    return kMaxCpus;
}

/// probe_words over the CPUs `cpu`'s domain at `level` adds to the level below (so a search
/// that climbs the levels sees each CPU once), nearest node first; in the run holding `cpu`
/// from the position after it, in the others from their start.
template <typename Words, typename Visit>
uint32_t probe_domain(Words&& words, uint32_t lines_per_word, const Topology& topo, uint32_t cpu,
                      uint32_t level, ProbeCost& cost, Visit&& visit) {
    const uint32_t me = topo.pos(cpu);
    uint32_t found = kMaxCpus;
    topo.for_each_new_run(cpu, level, [&](Topology::Span run) {
        if (cost.words_left == 0) return true;
        found = probe_words(words, lines_per_word, topo, run, run.contains(me) ? me + 1 : run.lo,
                            cost, [&](uint32_t c) {
                                if (level > 0 && topo.in_domain(cpu, level - 1, topo.pos(c)))
                                    return false;
                                return visit(c);
                            });
        return found != kMaxCpus;
    });
    return found;
}

/// probe_domain over one PositionMask.
template <typename Visit>
uint32_t probe_mask(const PositionMask& mask, const Topology& topo, uint32_t cpu, uint32_t level,
                    ProbeCost& cost, Visit&& visit) {
    return probe_domain([&](uint32_t w) { return mask.word(w); }, 1, topo, cpu, level, cost,
                        visit);
}

} // namespace cohort::sched
