// CPUID feature detection: what this CPU offers, read once on the boot CPU.
#pragma once

#include <cstdint>

namespace cohort::x86 {

struct CpuFeatures {
    char vendor[13];
    char brand[49];
    uint32_t family, model, stepping;
    uint32_t max_leaf, max_ext_leaf;
    bool apic, x2apic, tsc_deadline, invariant_tsc;
    bool nx, pdpe1gb, pge, pcid, invpcid;
    bool smep, smap, umip, fsgsbase;
    bool fxsr, sse2, xsave, avx;
    bool hypervisor;
};

/// Reads CPUID on the calling CPU.
CpuFeatures detect_cpu_features();

/// The boot CPU's features (valid after cpu_features_init()).
const CpuFeatures& boot_cpu_features();
void cpu_features_init();

/// Turns on NX, WP, SMEP, SMAP, UMIP and global pages when the CPU has them. Returns a short
/// human-readable list of what was enabled, for the boot log.
const char* enable_security_features();

} // namespace cohort::x86
