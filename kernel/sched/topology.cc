#include "sched/topology.h"

#include "lib/assert.h"

namespace cohort::sched {

CpuPlace place_of(uint32_t apic_id, TopologyWidths w) {
    // 64-bit arithmetic: widths of 32 (one package, or one core per thread) shift cleanly.
    const uint32_t smt = w.smt_bits < 32 ? w.smt_bits : 32;
    uint32_t pkg = w.package_shift < 32 ? w.package_shift : 32;
    if (pkg < smt) pkg = smt;
    const uint64_t id = apic_id;
    CpuPlace p;
    p.thread = static_cast<uint32_t>(id & ((uint64_t{1} << smt) - 1));
    p.core = static_cast<uint32_t>((id >> smt) & ((uint64_t{1} << (pkg - smt)) - 1));
    p.package = static_cast<uint32_t>(id >> pkg);
    return p;
}

const char* domain_kind_name(DomainKind k) {
    switch (k) {
    case DomainKind::Smt: return "smt";
    case DomainKind::Package: return "package";
    case DomainKind::Node: return "node";
    case DomainKind::Numa: return "numa";
    case DomainKind::Machine: return "machine";
    }
    return "?";
}

namespace {

// Heap sort of `n` items by `less`: no allocation, O(n log n) even at 4096 CPUs.
template <typename T, typename Less>
void heap_sort(T* a, uint32_t n, Less&& less) {
    auto sift = [&](uint32_t root, uint32_t end) {
        for (;;) {
            uint32_t child = 2 * root + 1;
            if (child >= end) return;
            if (child + 1 < end && less(a[child], a[child + 1])) ++child;
            if (!less(a[root], a[child])) return;
            const T t = a[root];
            a[root] = a[child];
            a[child] = t;
            root = child;
        }
    };
    for (uint32_t i = n / 2; i-- > 0;) sift(i, n);
    for (uint32_t end = n; end > 1; --end) {
        const T t = a[0];
        a[0] = a[end - 1];
        a[end - 1] = t;
        sift(0, end - 1);
    }
}

uint32_t words_of(Topology::Span s) { return s.size() == 0 ? 0 : (s.hi - 1) / 64 - s.lo / 64 + 1; }

} // namespace

NodeSet Topology::domain_nodes(uint32_t cpu, uint32_t level) const {
    switch (kinds_[level]) {
    case DomainKind::Numa: return numa_[node_[cpu]][slot_[level]];
    case DomainKind::Machine: return nnodes_ >= 64 ? ~NodeSet{0} : (NodeSet{1} << nnodes_) - 1;
    default: return NodeSet{1} << node_[cpu];
    }
}

uint32_t Topology::domain_size(uint32_t cpu, uint32_t level) const {
    if (contiguous(level)) return span(cpu, level).size();
    uint32_t n = 0;
    for (NodeSet s = numa_[node_[cpu]][slot_[level]]; s != 0; s &= s - 1)
        n += node_span_[__builtin_ctzll(s)].size();
    return n;
}

// The level at `level` (kinds_, slot_ filled in) groups some CPU differently from the level
// below it, or from a CPU alone for the first level. Levels nest, so sizes tell.
bool Topology::level_adds_grouping(uint32_t level) const {
    for (uint32_t c = 0; c < ncpus_; ++c)
        if (domain_size(c, level) != (level == 0 ? 1 : domain_size(c, level - 1))) return true;
    return false;
}

void Topology::build(const CpuPlace* places, uint32_t ncpus, uint32_t nodes,
                     const uint8_t* distance) {
    COHORT_ASSERT(ncpus >= 1 && ncpus <= kMaxCpus);
    ncpus_ = ncpus;
    const uint32_t stride = nodes;
    nnodes_ = nodes == 0 ? 1 : nodes > kMaxNodes ? kMaxNodes : nodes;
    for (uint32_t i = 0; i < nnodes_; ++i)
        for (uint32_t j = 0; j < nnodes_; ++j)
            distance_[i][j] = distance != nullptr ? distance[i * stride + j] : i == j ? 10 : 20;
    for (uint32_t c = 0; c < ncpus; ++c)
        node_[c] = static_cast<uint8_t>(places[c].node < nnodes_ ? places[c].node : 0);

    // Positions: by node, package, core, thread, then CPU id.
    for (uint32_t c = 0; c < ncpus; ++c) cpu_[c] = static_cast<uint16_t>(c);
    heap_sort(cpu_, ncpus, [&](uint16_t a, uint16_t b) {
        const CpuPlace& x = places[a];
        const CpuPlace& y = places[b];
        if (node_[a] != node_[b]) return node_[a] < node_[b];
        if (x.package != y.package) return x.package < y.package;
        if (x.core != y.core) return x.core < y.core;
        if (x.thread != y.thread) return x.thread < y.thread;
        return a < b;
    });
    for (uint32_t p = 0; p < ncpus; ++p) {
        pos_[cpu_[p]] = static_cast<uint16_t>(p);
        node_at_[p] = node_[cpu_[p]];
    }
    for (uint32_t n = 0; n < kMaxNodes; ++n) node_span_[n] = Span{};
    for (uint32_t p = 0; p < ncpus;) {
        uint32_t q = p;
        while (q < ncpus && node_at_[q] == node_at_[p]) ++q;
        node_span_[node_at_[p]] = Span{static_cast<uint16_t>(p), static_cast<uint16_t>(q)};
        p = q;
    }
    // Nodes nearest first from each node (itself first), equal distances by node id.
    for (uint32_t n = 0; n < nnodes_; ++n) {
        for (uint32_t m = 0; m < nnodes_; ++m) order_[n][m] = static_cast<uint8_t>(m);
        heap_sort(order_[n], nnodes_, [&](uint8_t a, uint8_t b) {
            const uint32_t da = a == n ? 0 : distance_[n][a], db = b == n ? 0 : distance_[n][b];
            return da != db ? da < db : a < b;
        });
    }

    // The contiguous candidates: runs of positions with the same core, package or node.
    constexpr uint32_t kCandidates = 3;
    const DomainKind kind_of[kCandidates] = {DomainKind::Smt, DomainKind::Package, DomainKind::Node};
    auto same = [&](uint32_t cand, uint32_t a, uint32_t b) {
        const CpuPlace& x = places[a];
        const CpuPlace& y = places[b];
        if (node_[a] != node_[b]) return false;
        if (cand <= 1 && x.package != y.package) return false;
        return cand != 0 || x.core == y.core;
    };
    levels_ = 0;
    max_threads_ = 0;
    for (uint32_t cand = 0; cand < kCandidates; ++cand) {
        for (uint32_t run_start = 0, p = 1; p <= ncpus; ++p) {
            if (p < ncpus && same(cand, cpu_[run_start], cpu_[p])) continue;
            const Span s{static_cast<uint16_t>(run_start), static_cast<uint16_t>(p)};
            for (uint32_t q = run_start; q < p; ++q) spans_[cpu_[q]][cand] = s;
            if (cand == 0 && s.size() > max_threads_) max_threads_ = s.size();
            run_start = p;
        }
        kinds_[levels_] = kind_of[cand];
        slot_[levels_] = static_cast<uint8_t>(cand);
        distance_of_level_[levels_] = 10;
        if (level_adds_grouping(levels_)) ++levels_;
        // A node that is one package (or a piece of one, which QEMU's -numa makes of its
        // single package) is named for the node: that is what the levels above are built on.
        else if (kind_of[cand] == DomainKind::Node && levels_ > 0 && nnodes_ > 1)
            kinds_[levels_ - 1] = DomainKind::Node;
    }
    build_numa_levels();
    kinds_[levels_] = DomainKind::Machine;
    distance_of_level_[levels_] = 0xFF;
    if (levels_ == 0 || level_adds_grouping(levels_)) ++levels_;
    else kinds_[levels_ - 1] = DomainKind::Machine; // the top level holds every CPU already

    // Counts for the log: distinct packages (one may span nodes), the most cores in one.
    packages_ = 0;
    max_cores_ = 0;
    {
        static uint16_t by_pkg[kMaxCpus]; // boot only: build() runs once, before the APs
        for (uint32_t p = 0; p < ncpus; ++p) by_pkg[p] = cpu_[p];
        heap_sort(by_pkg, ncpus, [&](uint16_t a, uint16_t b) {
            if (places[a].package != places[b].package) return places[a].package < places[b].package;
            return places[a].core < places[b].core;
        });
        for (uint32_t p = 0; p < ncpus;) {
            uint32_t cores = 0, q = p;
            const uint32_t pkg = places[by_pkg[p]].package;
            for (; q < ncpus && places[by_pkg[q]].package == pkg; ++q)
                if (q == p || places[by_pkg[q - 1]].core != places[by_pkg[q]].core) ++cores;
            ++packages_;
            if (cores > max_cores_) max_cores_ = cores;
            p = q;
        }
    }
    if (max_threads_ == 0) max_threads_ = 1;

    for (uint32_t l = 0; l < levels_; ++l) {
        max_span_[l] = 0;
        for (uint32_t c = 0; c < ncpus; ++c)
            if (const uint32_t s = domain_size(c, l); s > max_span_[l]) max_span_[l] = s;
    }
    walk_words_ = 0;
    for (uint32_t c = 0; c < ncpus; ++c) {
        uint32_t words = 0;
        for (uint32_t l = 0; l < levels_; ++l)
            for_each_new_run(c, l, [&](Span run) {
                words += words_of(run);
                return false;
            });
        if (words > walk_words_) walk_words_ = words;
    }
}

// One NUMA level per distinct distance between two nodes, from every node's view (an
// asymmetric table or a long chain gives each of its distances a level), nearest first; a
// level that groups nothing new for any CPU is left out.
void Topology::build_numa_levels() {
    numa_dropped_ = 0;
    if (nnodes_ < 2) return;
    bool seen[256] = {};
    for (uint32_t i = 0; i < nnodes_; ++i)
        for (uint32_t j = 0; j < nnodes_; ++j)
            if (i != j && distance_[i][j] != 0xFF) seen[distance_[i][j]] = true;
    uint32_t slot = 0;
    for (uint32_t d = 0; d < 0xFF; ++d) {
        if (!seen[d]) continue;
        if (slot == kMaxNumaLevels) {
            ++numa_dropped_;
            continue;
        }
        for (uint32_t n = 0; n < nnodes_; ++n) {
            NodeSet s = NodeSet{1} << n;
            for (uint32_t m = 0; m < nnodes_; ++m)
                if (distance_[n][m] <= d) s |= NodeSet{1} << m;
            numa_[n][slot] = s;
        }
        kinds_[levels_] = DomainKind::Numa;
        slot_[levels_] = static_cast<uint8_t>(slot);
        distance_of_level_[levels_] = d;
        if (level_adds_grouping(levels_)) ++levels_, ++slot;
    }
}

} // namespace cohort::sched
