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
    case DomainKind::Machine: return "machine";
    }
    return "?";
}

namespace {

bool before(const CpuPlace* places, uint32_t a, uint32_t b) {
    const CpuPlace& x = places[a];
    const CpuPlace& y = places[b];
    if (x.package != y.package) return x.package < y.package;
    if (x.core != y.core) return x.core < y.core;
    if (x.thread != y.thread) return x.thread < y.thread;
    return a < b;
}

// Heap sort of CPU ids by place: no allocation, O(n log n) even at 4096 CPUs.
void sort_by_place(uint16_t* ids, uint32_t n, const CpuPlace* places) {
    auto sift = [&](uint32_t root, uint32_t end) {
        for (;;) {
            uint32_t child = 2 * root + 1;
            if (child >= end) return;
            if (child + 1 < end && before(places, ids[child], ids[child + 1])) ++child;
            if (!before(places, ids[root], ids[child])) return;
            const uint16_t t = ids[root];
            ids[root] = ids[child];
            ids[child] = t;
            root = child;
        }
    };
    for (uint32_t i = n / 2; i-- > 0;) sift(i, n);
    for (uint32_t end = n; end > 1; --end) {
        const uint16_t t = ids[0];
        ids[0] = ids[end - 1];
        ids[end - 1] = t;
        sift(0, end - 1);
    }
}

} // namespace

void Topology::build(const CpuPlace* places, uint32_t ncpus) {
    COHORT_ASSERT(ncpus >= 1 && ncpus <= kMaxCpus);
    ncpus_ = ncpus;
    for (uint32_t c = 0; c < ncpus; ++c) cpu_[c] = static_cast<uint16_t>(c);
    sort_by_place(cpu_, ncpus, places);
    for (uint32_t p = 0; p < ncpus; ++p) pos_[cpu_[p]] = static_cast<uint16_t>(p);

    // The candidate levels' spans, each a run of positions with the same core or package.
    constexpr uint32_t kCandidates = 3;
    const DomainKind kind_of[kCandidates] = {DomainKind::Smt, DomainKind::Package,
                                             DomainKind::Machine};
    auto same = [&](uint32_t level, uint32_t a, uint32_t b) {
        const CpuPlace& x = places[a];
        const CpuPlace& y = places[b];
        if (level == 0) return x.package == y.package && x.core == y.core;
        if (level == 1) return x.package == y.package;
        return true;
    };
    packages_ = max_cores_ = max_threads_ = 0;
    levels_ = 0;
    for (uint32_t cand = 0; cand < kCandidates; ++cand) {
        // Spans of this candidate, written into slot `levels_` (kept only if it adds a grouping).
        bool differs = false;
        uint32_t run_start = 0;
        for (uint32_t p = 1; p <= ncpus; ++p) {
            if (p < ncpus && same(cand, cpu_[run_start], cpu_[p])) continue;
            const Span s{static_cast<uint16_t>(run_start), static_cast<uint16_t>(p)};
            for (uint32_t q = run_start; q < p; ++q) {
                Span& slot = spans_[cpu_[q]][levels_];
                const Span below = levels_ == 0 ? Span{static_cast<uint16_t>(q),
                                                       static_cast<uint16_t>(q + 1)}
                                                : spans_[cpu_[q]][levels_ - 1];
                if (below.lo != s.lo || below.hi != s.hi) differs = true;
                slot = s;
            }
            if (cand == 0 && s.size() > max_threads_) max_threads_ = s.size();
            if (cand == 1) ++packages_;
            run_start = p;
        }
        if (differs || cand == kCandidates - 1) {
            kinds_[levels_] = kind_of[cand];
            if (!differs && levels_ > 0) kinds_[levels_ - 1] = kind_of[cand]; // the machine
            else ++levels_;
        }
    }
    // Cores per package: distinct cores among each package's positions.
    for (uint32_t p = 0; p < ncpus;) {
        uint32_t cores = 0, q = p;
        const uint32_t pkg = places[cpu_[p]].package;
        for (; q < ncpus && places[cpu_[q]].package == pkg; ++q)
            if (q == p || !same(0, cpu_[q - 1], cpu_[q])) ++cores;
        if (cores > max_cores_) max_cores_ = cores;
        p = q;
    }
    if (max_threads_ == 0) max_threads_ = 1;
    for (uint32_t l = 0; l < levels_; ++l) {
        max_span_[l] = 0;
        for (uint32_t c = 0; c < ncpus; ++c)
            if (spans_[c][l].size() > max_span_[l]) max_span_[l] = spans_[c][l].size();
    }
}

} // namespace cohort::sched
