// Scheduling domains: which CPUs are near each other (SMT siblings of one core, the cores of
// one package, the machine), built from each CPU's APIC id and the topology widths CPUID
// reports. Placement and stealing look at the nearest domain first.
//
// CPUs are numbered in topology order ("positions": by package, then core, then thread), so
// every domain is a contiguous range of positions and the per-position masks of idle and
// overloaded CPUs (PositionMask) answer "an idle CPU near me" with a few word reads. Portable:
// host tests build machines of any shape.
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
};

/// The place an APIC id denotes under `w`.
CpuPlace place_of(uint32_t apic_id, TopologyWidths w);

enum class DomainKind : uint8_t { Smt, Package, Machine };
const char* domain_kind_name(DomainKind k);

/// The domain hierarchy of one machine. Levels run from the smallest (SMT siblings) to the
/// machine; a level that would group every CPU exactly as the level below it does is left out,
/// so a flat machine (QEMU's `-smp N`: one package of N single-thread cores) has the machine
/// level only.
class Topology {
  public:
    static constexpr uint32_t kMaxLevels = 3;
    /// Positions [lo, hi).
    struct Span {
        uint16_t lo = 0, hi = 0;
        uint32_t size() const { return hi - lo; }
        bool contains(uint32_t pos) const { return pos >= lo && pos < hi; }
    };

    /// Builds the domains of CPUs 0 .. ncpus-1 from their places (indexed by CPU id).
    void build(const CpuPlace* places, uint32_t ncpus);

    uint32_t ncpus() const { return ncpus_; }
    uint32_t levels() const { return levels_; }
    DomainKind kind(uint32_t level) const { return kinds_[level]; }
    /// The CPUs that share `cpu`'s domain at `level`.
    Span span(uint32_t cpu, uint32_t level) const { return spans_[cpu][level]; }
    uint32_t pos(uint32_t cpu) const { return pos_[cpu]; }
    uint32_t cpu_at(uint32_t pos) const { return cpu_[pos]; }
    /// Counts for the boot log: packages, the largest number of cores in one package and of
    /// threads in one core.
    uint32_t packages() const { return packages_; }
    uint32_t max_cores() const { return max_cores_; }
    uint32_t max_threads() const { return max_threads_; }
    /// The largest span at `level`.
    uint32_t max_span(uint32_t level) const { return max_span_[level]; }

  private:
    uint32_t ncpus_ = 0, levels_ = 0;
    uint32_t packages_ = 0, max_cores_ = 0, max_threads_ = 0;
    DomainKind kinds_[kMaxLevels] = {};
    uint32_t max_span_[kMaxLevels] = {};
    uint16_t pos_[kMaxCpus] = {};
    uint16_t cpu_[kMaxCpus] = {};
    Span spans_[kMaxCpus][kMaxLevels] = {};
};

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

/// probe_words over one PositionMask.
template <typename Visit>
uint32_t probe_span(const PositionMask& mask, const Topology& topo, Topology::Span span,
                    uint32_t from, ProbeCost& cost, Visit&& visit) {
    return probe_words([&](uint32_t w) { return mask.word(w); }, 1, topo, span, from, cost,
                       visit);
}

} // namespace cohort::sched
