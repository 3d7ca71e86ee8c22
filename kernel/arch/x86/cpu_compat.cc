#include "arch/x86/cpu_compat.h"

#include <cstring>

#include "lib/format.h"

namespace cohort::x86 {

namespace {

// XCR0 state components (SDM Vol. 1, 13.1).
constexpr const char* kXcr0Names[] = {
    "XCR0 x87 (bit 0)",         "XCR0 SSE (bit 1)",          "XCR0 AVX (bit 2)",
    "XCR0 BNDREGS (bit 3)",     "XCR0 BNDCSR (bit 4)",       "XCR0 AVX-512 opmask (bit 5)",
    "XCR0 AVX-512 ZMM_Hi256 (bit 6)", "XCR0 AVX-512 Hi16_ZMM (bit 7)",
};

} // namespace

bool MissingFeatures::has(const char* name) const {
    for (size_t i = 0; i < count; ++i)
        if (strcmp(names[i], name) == 0) return true;
    return false;
}

MissingFeatures missing_features(const CpuRequirements& need, const CpuFeatures& ap) {
    MissingFeatures m;
    auto add = [&m](const char* name) {
        if (m.count < kMaxMissingFeatures) m.names[m.count++] = name;
    };
    const CpuFeatures& b = need.features;
    // Microcode, errata and model-specific paths are chosen by vendor: mixing is not supported.
    if (memcmp(b.vendor, ap.vendor, 12) != 0) add("vendor");
    struct Flag {
        bool CpuFeatures::*field;
        const char* name;
    };
    static constexpr Flag kFlags[] = {
        {&CpuFeatures::apic, "APIC"},
        {&CpuFeatures::x2apic, "x2APIC"},
        {&CpuFeatures::tsc_deadline, "TSC-deadline"},
        {&CpuFeatures::mce, "MCE"},             // CR4.MCE
        {&CpuFeatures::nx, "NX"},               // EFER.NXE, NX in every PTE
        {&CpuFeatures::pdpe1gb, "1 GiB pages"}, // the direct map
        {&CpuFeatures::pge, "PGE"},             // CR4.PGE, G in kernel PTEs
        {&CpuFeatures::pcid, "PCID"},           // CR4.PCIDE
        {&CpuFeatures::invpcid, "INVPCID"},
        {&CpuFeatures::smep, "SMEP"},
        {&CpuFeatures::smap, "SMAP"},
        {&CpuFeatures::umip, "UMIP"},
        {&CpuFeatures::fsgsbase, "FSGSBASE"},
        {&CpuFeatures::fxsr, "FXSR"},           // CR4.OSFXSR, FXSAVE without XSAVE
        {&CpuFeatures::sse2, "SSE2"},
        {&CpuFeatures::xsave, "XSAVE"},         // CR4.OSXSAVE, task FPU areas
        {&CpuFeatures::xsaveopt, "XSAVEOPT"},   // the save instruction picked at boot
        {&CpuFeatures::avx, "AVX"},
    };
    for (const Flag& f : kFlags)
        if (b.*f.field && !(ap.*f.field)) add(f.name);
    // Every CPU loads the boot CPU's XCR0 so that task save areas have one size and layout;
    // XSETBV with a component this CPU lacks would #GP.
    const uint64_t lacking = need.xcr0 & ~(ap.xsave ? ap.xsave_components : 0);
    for (unsigned bit = 0; bit < 64; ++bit) {
        if (!((lacking >> bit) & 1)) continue;
        add(bit < sizeof(kXcr0Names) / sizeof(kXcr0Names[0]) ? kXcr0Names[bit]
                                                             : "XCR0 component (bit >= 8)");
    }
    return m;
}

size_t describe_missing(const MissingFeatures& m, char* buf, size_t len) {
    size_t n = 0;
    if (len > 0) buf[0] = 0;
    for (size_t i = 0; i < m.count; ++i) {
        const size_t at = n < len ? n : len;
        n += format(buf + at, len - at, "%s%s", i == 0 ? "" : ", ", m.names[i]);
    }
    return n;
}

} // namespace cohort::x86
