// A simulated machine for the placement and balancing tests: packages x cores x threads, CPU
// ids in APIC-id order (as QEMU numbers them), optionally split into NUMA nodes by blocks of
// CPU ids (as tools/run --numa does), loads settable per CPU, the idle and overloaded masks
// kept as the kernel keeps them.
#pragma once

#include <memory>
#include <vector>

#include "sched/placement.h"
#include "sched/topology.h"

namespace cohort::sched::test {

struct Sim {
    Topology topo;
    PositionMask online, idle, overloaded;
    std::vector<CpuLoad> loads;

    /// `nodes` nodes of equal blocks of CPU ids (the last may be short), with the row-major
    /// distance matrix `dist` (empty: 10 local, 20 remote).
    Sim(uint32_t packages, uint32_t cores, uint32_t threads, uint32_t nodes = 1,
        const std::vector<uint8_t>& dist = {}) {
        const uint32_t n = packages * cores * threads;
        std::vector<CpuPlace> places(n);
        const uint32_t per_node = (n + nodes - 1) / nodes;
        for (uint32_t c = 0; c < n; ++c)
            places[c] = CpuPlace{c / (cores * threads), c / threads % cores, c % threads,
                                 c / per_node};
        topo.build(places.data(), n, nodes, dist.empty() ? nullptr : dist.data());
        loads.resize(n);
        for (uint32_t c = 0; c < n; ++c) online.set(topo.pos(c)), set(c, 1);
    }
    // `runnable` tasks on `cpu` (0 = idle).
    void set(uint32_t cpu, uint32_t runnable) {
        loads[cpu] = CpuLoad{true, runnable == 0, runnable};
        if (runnable == 0) idle.set(topo.pos(cpu));
        else idle.clear(topo.pos(cpu));
        if (runnable >= 2) overloaded.set(topo.pos(cpu));
        else overloaded.clear(topo.pos(cpu));
    }
    void offline(uint32_t cpu) {
        loads[cpu] = CpuLoad{};
        online.clear(topo.pos(cpu));
        idle.clear(topo.pos(cpu));
        overloaded.clear(topo.pos(cpu));
    }
    Machine m() const { return Machine{topo, online, idle, overloaded}; }
    auto view() {
        return [this](uint32_t c) { return loads[c]; };
    }
    uint32_t select(uint32_t prev, const CpuMask& allowed, Placement mode = Placement::Spread,
                    uint32_t home = kNoHome) {
        ProbeCost cost = probe_budget(topo);
        return select_cpu(m(), prev, allowed, view(), cost, mode, kMaxCpus, home);
    }
    uint32_t n() const { return topo.ncpus(); }
    CpuMask all() const { return CpuMask::first_n(n()); }
};

inline std::unique_ptr<Sim> machine(uint32_t p, uint32_t c, uint32_t t, uint32_t nodes = 1,
                                    const std::vector<uint8_t>& dist = {}) {
    return std::make_unique<Sim>(p, c, t, nodes, dist);
}

} // namespace cohort::sched::test
