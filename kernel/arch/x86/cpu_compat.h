// Whether an AP can run the way the boot CPU set the machine up: the boot CPU chose control
// register bits, page-table bits, the XSAVE layout and the timer mode from its own CPUID, and
// every other CPU runs the same code with the same choices. Portable (no CPUID here): the
// caller passes both sides, so the host tests can try every mismatch.
#pragma once

#include <cstddef>
#include <cstdint>

#include "arch/x86/cpu_features.h"

namespace cohort::x86 {

/// What every CPU must offer: the boot CPU's features minus those the kernel decided not to
/// use (x2APIC under apic=xapic, PCIDs under pcid=0, TSC-deadline under lapic.timer=oneshot),
/// and the XCR0 the boot CPU enabled (0 without XSAVE), which every CPU loads.
struct CpuRequirements {
    CpuFeatures features;
    uint64_t xcr0;
};

inline constexpr size_t kMaxMissingFeatures = 40;

/// Names of what an AP lacks, in a fixed order; static strings.
struct MissingFeatures {
    const char* names[kMaxMissingFeatures];
    size_t count = 0;
    bool any() const { return count != 0; }
    bool has(const char* name) const;
};

MissingFeatures missing_features(const CpuRequirements& need, const CpuFeatures& ap);

/// "MCE, SMEP, XCR0 AVX (bit 2)": the names joined for a log line. Returns the full length
/// (like snprintf), writes at most len - 1 characters.
size_t describe_missing(const MissingFeatures& m, char* buf, size_t len);

} // namespace cohort::x86
