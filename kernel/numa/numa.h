// NUMA in the running kernel: the node map built at boot from the firmware's SRAT and SLIT
// (numa/node_map.h), and each CPU's node (CpuData::node). docs/numa.md.
#pragma once

#include <cstdint>

#include "numa/node_map.h"

namespace cohort {

/// Builds the node map once the CPU table is final (after smp_prepare), sets every CPU's node
/// and logs one line per node, plus a warning for whatever the firmware left out.
void numa_init();
/// The node map (one node holding everything until numa_init, or without an SRAT).
const numa::NodeMap& numa_map();

} // namespace cohort
