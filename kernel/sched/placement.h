// Where a task should run, and when a CPU should take work from another: pure decisions over
// the scheduling domains (sched/topology.h), the masks of idle and overloaded CPUs and a view
// of single CPUs' loads, so host tests can drive them.
//
// Every search is bounded: it reads at most kProbeWords words of a mask (64 CPUs each) and
// kSampleCpus other CPUs' load lines, nearest domain first, whatever the number of CPUs. It
// may miss an idle CPU further away; balancing (a busy CPU pushing, an idle one stealing)
// corrects that later, as in Linux's bounded select_idle_cpu.
#pragma once

#include <cstdint>

#include "sched/topology.h"
#include "smp/cpumask.h"

namespace cohort::sched {

/// What placement and balancing need to know about one CPU.
struct CpuLoad {
    bool online = false;
    bool idle = false;     // running its idle task with nothing queued
    uint32_t runnable = 0; // running (not idle) plus queued tasks
};

/// The machine-wide hints placement reads, by topology position: `online` has the CPUs that
/// are online and scheduling, `idle` those running their idle task with nothing queued,
/// `overloaded` those with a task waiting behind the running one. An online CPU in neither
/// `idle` nor `overloaded` runs exactly one task: "light", a fine place for one more.
struct Machine {
    const Topology& topo;
    const PositionMask& online;
    const PositionMask& idle;
    const PositionMask& overloaded;
};

inline constexpr uint32_t kProbeWords = 2; // mask words (64 CPUs each) one search reads,
                                           // beyond one per domain level
inline constexpr uint32_t kSampleCpus = 4; // load lines read when no idle CPU was found
inline constexpr uint32_t kStealAttempts = 2; // queues an idle CPU tries to take a task from
inline constexpr uint32_t kPreferenceChecks = 4; // idle CPUs checked for an idle core (spread)
                                                 // or running neighbours (pack)

/// The budget of one search of one mask: nested domains re-read the words of the smaller ones,
/// so each level gets a word, and the largest domains kProbeWords more.
inline ProbeCost probe_budget(const Topology& topo) { return ProbeCost{kProbeWords + topo.levels()}; }

/// The most lines one select_cpu reads on `topo`: the previous CPU's bits, the word budgets of
/// the idle and the light search, the preference checks (a core's words in spread mode, the
/// words of each domain below the machine in pack mode), the sample and the previous CPU's
/// load. It depends on the shape of
/// packages and cores, not on the number of CPUs. (CPUs that are offline add a line each to
/// the sample; they do not exist at boot.)
inline uint32_t max_search_lines(const Topology& topo) {
    uint32_t per_check = 0;
    for (uint32_t l = 0; l + 1 < topo.levels() && topo.contiguous(l); ++l)
        per_check += topo.max_span(l) / 64 + 2;
    const uint32_t words = kProbeWords + topo.levels();
    return 1 + words + kPreferenceChecks * per_check // the previous CPU, idle CPUs
           + 1 + 2 * words                           // light CPUs (two masks a word)
           + kSampleCpus + 1;
}

/// The budget of a search that must see every CPU of the machine: periodic balancing, which
/// is what keeps a CPU from staying idle while another has work waiting (see balance).
inline ProbeCost full_budget(const Topology& topo) { return ProbeCost{topo.walk_words()}; }

/// No home node (a task whose memory came from anywhere, or a one-node machine).
inline constexpr uint32_t kNoHome = 0xFFFF'FFFF;

/// The imbalance (difference in runnable tasks) that justifies moving a task from a CPU
/// `from` to a busy CPU `to`: two within a node, and twice the SLIT distance in tenths across
/// nodes (4 at distance 20, 8 at 40), so tasks leave their node's memory only for a clear
/// gain. Moves to an idle CPU need no such margin: an idle CPU beside waiting work is the
/// waste balancing exists to prevent.
inline uint32_t imbalance_needed(const Topology& topo, uint32_t from, uint32_t to) {
    const uint32_t d = topo.distance(topo.node_of(from), topo.node_of(to));
    return d <= 10 ? 2 : (2 * d + 9) / 10;
}

/// How `select_cpu` chooses between idle CPUs of its search.
enum class Placement : uint8_t {
    Spread, // an idle core first (all its SMT siblings idle): tasks get whole cores
    Pack,   // an idle CPU whose package (or core) already runs something: idle ones stay idle
};

namespace detail {

// Where a search for a task with home node `home` starts instead of `cpu`: `cpu` itself when
// it is on that node (or there is no home, or the node has no CPUs), else a CPU of the home
// node picked by `cpu` (so searches from different CPUs start at different places).
inline uint32_t home_origin(const Topology& topo, uint32_t cpu, uint32_t home) {
    if (home >= topo.nodes() || topo.node_of(cpu) == home) return cpu;
    const Topology::Span s = topo.node_span(home);
    if (s.size() == 0) return cpu;
    return topo.cpu_at(s.lo + cpu % s.size());
}

// Every SMT sibling of `cpu` is idle (reads the words its core covers beyond the one the
// search already holds).
inline bool core_idle(const Machine& m, uint32_t cpu, ProbeCost& cost) {
    if (m.topo.levels() == 0 || m.topo.kind(0) != DomainKind::Smt) return true;
    const Topology::Span core = m.topo.span(cpu, 0);
    for (uint32_t p = core.lo; p < core.hi; ++p) {
        if (p / 64 != m.topo.pos(cpu) / 64) ++cost.lines;
        if (!m.idle.test(p)) return false;
    }
    return true;
}

// Some CPU of `cpu`'s domain at `level`, other than `cpu`, is not idle (a core or package
// that is awake anyway). Reads the span's words: pack mode asks it only of the contiguous
// levels below the machine, so it is bounded by the size of a node, not of the machine.
inline bool domain_busy(const Machine& m, uint32_t cpu, uint32_t level, ProbeCost& cost) {
    const Topology::Span s = m.topo.span(cpu, level);
    const uint32_t me = m.topo.pos(cpu);
    for (uint32_t w = s.lo / 64; w <= (s.hi - 1) / 64; ++w) {
        ++cost.lines;
        uint64_t awake = ~m.idle.word(w);
        const uint32_t base = w * 64;
        if (s.lo > base) awake &= ~((uint64_t{1} << (s.lo - base)) - 1);
        if (s.hi < base + 64) awake &= (uint64_t{1} << (s.hi - base)) - 1;
        if (me / 64 == w) awake &= ~(uint64_t{1} << (me % 64));
        if (awake != 0) return true;
    }
    return false;
}

// The least loaded online CPU among `first` (if allowed) and up to kSampleCpus allowed CPUs
// after it by id, wrapping; an idle one ends the search. kMaxCpus when none is online.
// Offline CPUs do not count towards the sample, so a task whose allowed CPUs are mostly
// offline still finds one (that case alone reads more lines).
template <typename View>
uint32_t least_loaded_sample(uint32_t first, const CpuMask& allowed, uint32_t ncpus, View&& view,
                             ProbeCost& cost, uint32_t* load_out = nullptr) {
    uint32_t best = kMaxCpus, best_load = UINT32_MAX;
    auto consider = [&](uint32_t c) {
        const CpuLoad l = view(c);
        ++cost.lines;
        if (!l.online) return false;
        const uint32_t load = l.idle ? 0 : l.runnable;
        if (load < best_load) best = c, best_load = load;
        return true;
    };
    if (!(first < ncpus && allowed.test(first) && consider(first) && best_load == 0)) {
        uint32_t c = first, cycle_start = kMaxCpus, sampled = 0;
        for (uint32_t steps = 0; steps < ncpus && sampled < kSampleCpus; ++steps) {
            uint32_t next = c + 1 < ncpus ? allowed.next(c + 1) : CpuMask::kNone;
            if (next == CpuMask::kNone || next >= ncpus) next = allowed.first();
            if (next == CpuMask::kNone || next >= ncpus || next == first || next == cycle_start)
                break;
            if (cycle_start == kMaxCpus) cycle_start = next;
            c = next;
            if (!consider(c)) continue;
            ++sampled;
            if (best_load == 0) break;
        }
    }
    if (load_out != nullptr) *load_out = best_load;
    return best;
}

// An allowed CPU running exactly one task, other than `skip`, nearest `self`'s domains first,
// or kMaxCpus.
inline uint32_t find_light(const Machine& m, uint32_t self, const CpuMask& allowed,
                           ProbeCost& cost, uint32_t skip) {
    const Topology& topo = m.topo;
    for (uint32_t level = 0; level < topo.levels() && cost.words_left > 0; ++level) {
        const uint32_t c = probe_domain(
            [&](uint32_t w) { return m.online.word(w) & ~m.idle.word(w) & ~m.overloaded.word(w); },
            2, topo, self, level, cost,
            [&](uint32_t c) { return c != skip && allowed.test(c); });
        if (c != kMaxCpus) return c;
    }
    return kMaxCpus;
}

} // namespace detail

/// Chooses the CPU for a task that becomes runnable (created or woken). `prev` is where it ran
/// last, or for a new task a hint below ncpus that rotates so bursts spread; `allowed` is its
/// affinity; `view(cpu)` returns a CpuLoad; `home` is the NUMA node its memory is on. A task
/// away from its home node searches as if it came from a CPU of that node ("origin" below;
/// otherwise the origin is `prev`). In order:
/// 1. `prev` if it is allowed, idle and on the home node (its caches still hold the task's
///    data);
/// 2. an allowed idle CPU, nearest the origin's domains first: in spread mode one on a wholly
///    idle core if the search finds one, in pack mode one beside running work;
/// 3. `prev` if it is on the home node and runs just one task, else an allowed CPU that does,
///    nearest the origin first (so a burst of wake-ups evens out at two tasks a CPU instead of
///    piling up);
/// 4. the least loaded of the origin (or `sample_from`, when given: new tasks rotate it) and a
///    few allowed CPUs after it.
/// kMaxCpus if no allowed CPU is online.
template <typename View>
uint32_t select_cpu(const Machine& m, uint32_t prev, const CpuMask& allowed, View&& view,
                    ProbeCost& cost, Placement mode = Placement::Spread,
                    uint32_t sample_from = kMaxCpus, uint32_t home = kNoHome) {
    const Topology& topo = m.topo;
    const uint32_t n = topo.ncpus();
    if (prev >= n) prev = 0;
    const uint32_t words = cost.words_left;
    const uint32_t origin = detail::home_origin(topo, prev, home);
    // prev is tried first only on the home node; elsewhere it is one candidate of the search.
    const bool try_prev = origin == prev && allowed.test(prev);
    if (try_prev) {
        ++cost.lines;
        if (m.idle.test(topo.pos(prev))) return prev;
    }
    // Idle CPUs, nearest domain first. The first allowed idle CPU found is the fallback; a
    // better one (an idle core in spread mode, one beside running work in pack mode) is taken
    // as soon as a search sees it, from any level.
    uint32_t fallback = kMaxCpus, checks = 0;
    for (uint32_t level = 0; level < topo.levels() && cost.words_left > 0; ++level) {
        const uint32_t pick = probe_mask(m.idle, topo, origin, level, cost, [&](uint32_t c) {
            if ((try_prev && c == prev) || !allowed.test(c)) return false;
            if (fallback == kMaxCpus) fallback = c;
            // A few candidates are checked for the better choice, then the search settles for
            // this idle one: each check may read lines of its own.
            if (checks++ >= kPreferenceChecks) return true;
            if (mode == Placement::Spread) return detail::core_idle(m, c, cost);
            // Pack: a CPU next to work already running (in its core, else its package or node),
            // so whole packages can stay idle.
            for (uint32_t l = 0; l + 1 < topo.levels() && topo.contiguous(l); ++l)
                if (detail::domain_busy(m, c, l, cost)) return true;
            return false;
        });
        if (pick != kMaxCpus) return pick;
    }
    if (fallback != kMaxCpus) return fallback;
    // No idle CPU: one running a single task.
    if (try_prev) {
        ++cost.lines;
        if (m.online.test(topo.pos(prev)) && !m.overloaded.test(topo.pos(prev))) return prev;
    }
    cost.words_left = words;
    const uint32_t light = detail::find_light(m, origin, allowed, cost, try_prev ? prev : kMaxCpus);
    if (light != kMaxCpus) return light;
    const uint32_t first = sample_from < n ? detail::home_origin(topo, sample_from, home) : origin;
    return detail::least_loaded_sample(first, allowed, n, view, cost);
}

/// An idle CPU (`self`) looking for work: tries queues that have a task waiting, nearest domain
/// first, calling `try_take(cpu)` (true when it took a task) on at most kStealAttempts of
/// them. Returns the CPU it took a task from, or kMaxCpus. Any distance will do: an idle CPU
/// beside waiting work is the waste balancing prevents (imbalance_needed).
template <typename TryTake>
uint32_t steal_nearest(const Machine& m, uint32_t self, ProbeCost& cost, TryTake&& try_take) {
    const Topology& topo = m.topo;
    uint32_t attempts = 0;
    bool took = false;
    for (uint32_t level = 0; level < topo.levels() && attempts < kStealAttempts; ++level) {
        const uint32_t from = probe_mask(m.overloaded, topo, self, level, cost, [&](uint32_t c) {
            if (c == self) return false;
            ++attempts;
            took = try_take(c);
            return took || attempts >= kStealAttempts;
        });
        if (took) return from;
        if (cost.words_left == 0) break;
    }
    return kMaxCpus;
}

/// Periodic balancing from a busy CPU (`self`, with `mine` runnable tasks): the allowed CPU to
/// push one waiting task (whose home node is `home`) to, or kMaxCpus. An idle CPU qualifies
/// from two tasks up, at any distance: one on the task's home node first, then the nearest.
/// Failing that, a busy CPU must leave the move a gain of imbalance_needed (two tasks within a
/// node, more across nodes): one running a single task, nearest first, else the least loaded
/// of a few allowed CPUs. With full_budget, the idle search sees every CPU.
template <typename View>
uint32_t find_push_target(const Machine& m, uint32_t self, uint32_t mine, const CpuMask& allowed,
                          View&& view, ProbeCost& cost, uint32_t home = kNoHome) {
    const Topology& topo = m.topo;
    if (mine < 2) return kMaxCpus;
    const uint32_t words = cost.words_left;
    auto idle_ok = [&](uint32_t c) { return c != self && allowed.test(c); };
    if (home < topo.nodes() && topo.node_of(self) != home) {
        const Topology::Span s = topo.node_span(home);
        const uint32_t c = probe_words([&](uint32_t w) { return m.idle.word(w); }, 1, topo, s,
                                       s.lo, cost, idle_ok);
        if (c != kMaxCpus) return c;
    }
    for (uint32_t level = 0; level < topo.levels() && cost.words_left > 0; ++level) {
        const uint32_t c = probe_mask(m.idle, topo, self, level, cost, idle_ok);
        if (c != kMaxCpus) return c;
    }
    if (mine >= 3) {
        cost.words_left = words;
        const uint32_t light = detail::find_light(m, self, allowed, cost, self);
        if (light != kMaxCpus && 1 + imbalance_needed(topo, self, light) <= mine) return light;
    }
    CpuMask others = allowed;
    others.clear(self);
    uint32_t load = UINT32_MAX;
    const uint32_t best = detail::least_loaded_sample(self, others, topo.ncpus(), view, cost, &load);
    if (best != kMaxCpus && load + imbalance_needed(topo, self, best) <= mine) return best;
    return kMaxCpus;
}

} // namespace cohort::sched
