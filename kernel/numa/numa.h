// NUMA in the running kernel: the node map built at boot from the firmware's SRAT and SLIT
// (numa/node_map.h), and each CPU's node (CpuData::node). docs/numa.md.
#pragma once

#include <cstdint>
#include <span>

#include "numa/node_map.h"

namespace cohort {

/// Builds the node map from the firmware's tables, for the CPUs whose APIC ids are listed
/// (logical CPU i = apic_ids[i]: the boot CPU, then the MADT's CPUs to start, in the order
/// smp_prepare numbers them), and logs one line per node plus a warning for whatever the
/// firmware left out. Before smp_prepare, so per-CPU memory can be placed on its node.
void numa_init(std::span<const uint32_t> apic_ids);
/// Once the CPU table is final (after smp_prepare): rebuilds the map for exactly those CPUs
/// (the nodes do not change: they come from the SRAT) and sets every CPU's CpuData::node.
void numa_bind_cpus();
/// The node map (one node holding everything until numa_init, or without an SRAT).
const numa::NodeMap& numa_map();

} // namespace cohort
