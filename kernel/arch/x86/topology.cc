#include "arch/x86/topology.h"

namespace cohort::x86 {

const char* topology_source_name(TopologySource s) {
    switch (s) {
    case TopologySource::Leaf1F: return "CPUID leaf 0x1f";
    case TopologySource::Leaf0B: return "CPUID leaf 0xb";
    case TopologySource::Legacy: return "CPUID leaves 1 and 4";
    case TopologySource::None: return "no CPUID topology (every CPU a package)";
    }
    return "?";
}

namespace {

uint32_t ceil_log2(uint32_t v) {
    uint32_t bits = 0;
    while (bits < 32 && (uint64_t{1} << bits) < v) ++bits;
    return bits;
}

// Leaves 0x1F and 0xB list levels from the innermost (SMT) out; each gives the shift that
// takes an x2APIC id to the next level's id. The SMT level's shift is the thread field's
// width; the last valid level's shift is the package's. Levels between (module, tile, die)
// are folded into the core field: the scheduler knows SMT siblings, packages and the machine.
bool decode_extended(CpuidQuery query, void* ctx, uint32_t leaf, TopologyInfo& out) {
    constexpr uint32_t kTypeSmt = 1;
    bool any = false;
    uint32_t smt = 0, package = 0;
    for (uint32_t sub = 0; sub < 8; ++sub) {
        const CpuidRegs r = query(leaf, sub, ctx);
        const uint32_t type = (r.ecx >> 8) & 0xff;
        if (type == 0 || (r.ebx & 0xffff) == 0) break; // end of the list
        const uint32_t shift = r.eax & 0x1f;
        if (type == kTypeSmt) smt = shift;
        package = shift;
        any = true;
    }
    if (!any) return false;
    out.smt_bits = smt;
    out.package_shift = package < smt ? smt : package;
    return true;
}

} // namespace

TopologyInfo decode_topology(CpuidQuery query, void* ctx) {
    TopologyInfo info;
    const uint32_t max_leaf = query(0, 0, ctx).eax;
    if (max_leaf >= 0x1f && decode_extended(query, ctx, 0x1f, info)) {
        info.source = TopologySource::Leaf1F;
        return info;
    }
    if (max_leaf >= 0xb && decode_extended(query, ctx, 0xb, info)) {
        info.source = TopologySource::Leaf0B;
        return info;
    }
    // Leaf 1: with HTT, EBX[23:16] is the number of APIC ids a package spans. Leaf 4 (Intel):
    // EAX[31:26] + 1 ids for cores. Without HTT each CPU is a package of its own.
    if (max_leaf < 1) return info;
    const CpuidRegs l1 = query(1, 0, ctx);
    if ((l1.edx & (1u << 28)) == 0) return info;
    const uint32_t per_package = (l1.ebx >> 16) & 0xff;
    uint32_t cores = 1;
    if (max_leaf >= 4) cores = ((query(4, 0, ctx).eax >> 26) & 0x3f) + 1;
    info.package_shift = ceil_log2(per_package == 0 ? 1 : per_package);
    const uint32_t core_bits = ceil_log2(cores);
    info.smt_bits = info.package_shift > core_bits ? info.package_shift - core_bits : 0;
    info.source = TopologySource::Legacy;
    return info;
}

} // namespace cohort::x86
