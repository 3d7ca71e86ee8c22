// CPUID feature detection: what this CPU offers, read once on the boot CPU.
#pragma once

#include <cstdint>

namespace cohort::x86 {

struct CpuFeatures {
    char vendor[13];
    char brand[49];
    uint32_t family, model, stepping;
    uint32_t max_leaf, max_ext_leaf;
    bool apic, x2apic, tsc_deadline, invariant_tsc, tsc_adjust, mce;
    bool nx, pdpe1gb, pge, pcid, invpcid;
    bool smep, smap, umip, fsgsbase;
    bool fxsr, sse2, xsave, xsaveopt, avx;
    bool hypervisor;
    /// XCR0 bits this CPU supports (CPUID.(EAX=0DH,ECX=0):EDX:EAX); 0 without XSAVE.
    uint64_t xsave_components;
};

/// Reads CPUID on the calling CPU.
CpuFeatures detect_cpu_features();

/// The boot CPU's features (valid after cpu_features_init()).
const CpuFeatures& boot_cpu_features();
void cpu_features_init();

/// Sets CR0, CR4 and EFER to the kernel's defined values on the calling CPU: NX, WP, SMEP,
/// SMAP, UMIP, MCE and global pages when the boot CPU has them. Every CPU calls it, so all run
/// with identical control registers. Returns a short list of what was enabled, for the log.
const char* enable_security_features();

/// CR4.PCIDE is set on every CPU: the CPU has PCIDs and `pcid=0` did not turn them off.
/// Decided by the boot CPU's enable_security_features().
bool pcid_enabled();

} // namespace cohort::x86
