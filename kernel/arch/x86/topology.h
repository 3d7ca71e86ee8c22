// The APIC-id layout of packages, cores and SMT threads as CPUID reports it (Intel SDM vol. 3A
// "Identifying topology" / leaves 0x1F and 0xB; leaves 1 and 4 on CPUs without them).
// Portable: the caller passes a CPUID function, so host tests replay what real and emulated
// CPUs report.
#pragma once

#include <cstdint>


namespace cohort::x86 {

struct CpuidRegs {
    uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};
using CpuidQuery = CpuidRegs (*)(uint32_t leaf, uint32_t subleaf, void* ctx);

/// Where the widths came from, for the boot log.
enum class TopologySource : uint8_t { Leaf1F, Leaf0B, Legacy, None };
const char* topology_source_name(TopologySource s);

/// Bits [0, smt_bits) of an APIC id number the thread within its core, bits
/// [smt_bits, package_shift) the core within its package, the bits above the package.
struct TopologyInfo {
    uint32_t smt_bits = 0;
    uint32_t package_shift = 0;
    TopologySource source = TopologySource::None;
};

/// Decodes the widths of the calling CPU's APIC id fields from `query` (CPUID).
TopologyInfo decode_topology(CpuidQuery query, void* ctx);

} // namespace cohort::x86
