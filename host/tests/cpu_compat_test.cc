// The AP feature check (arch/x86/cpu_compat.h): each thing the boot CPU turned on, taken away
// from an otherwise identical AP on its own, refuses that AP and is named.
#include "arch/x86/cpu_compat.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace {

using namespace cohort::x86;

CpuFeatures everything() {
    CpuFeatures f{};
    std::memcpy(f.vendor, "GenuineIntel", 13);
    f.apic = f.x2apic = f.tsc_deadline = f.invariant_tsc = f.mce = true;
    f.nx = f.pdpe1gb = f.pge = f.pcid = f.invpcid = true;
    f.smep = f.smap = f.umip = f.fsgsbase = true;
    f.fxsr = f.sse2 = f.xsave = f.xsaveopt = f.avx = true;
    f.xsave_components = 0xe7; // x87, SSE, AVX, AVX-512
    return f;
}

CpuRequirements all_in_use() { return {everything(), 0xe7}; }

std::string described(const MissingFeatures& m) {
    char buf[512];
    describe_missing(m, buf, sizeof(buf));
    return buf;
}

TEST(CpuCompat, IdenticalCpuIsAccepted) {
    EXPECT_FALSE(missing_features(all_in_use(), everything()).any());
}

TEST(CpuCompat, EachMissingFlagIsRefusedAndNamed) {
    struct Case {
        bool CpuFeatures::*field;
        const char* name;
    };
    const Case cases[] = {
        {&CpuFeatures::apic, "APIC"},       {&CpuFeatures::x2apic, "x2APIC"},
        {&CpuFeatures::tsc_deadline, "TSC-deadline"},
        {&CpuFeatures::mce, "MCE"},         {&CpuFeatures::nx, "NX"},
        {&CpuFeatures::pdpe1gb, "1 GiB pages"},
        {&CpuFeatures::pge, "PGE"},         {&CpuFeatures::pcid, "PCID"},
        {&CpuFeatures::invpcid, "INVPCID"}, {&CpuFeatures::smep, "SMEP"},
        {&CpuFeatures::smap, "SMAP"},       {&CpuFeatures::umip, "UMIP"},
        {&CpuFeatures::fsgsbase, "FSGSBASE"},
        {&CpuFeatures::fxsr, "FXSR"},       {&CpuFeatures::sse2, "SSE2"},
        {&CpuFeatures::xsaveopt, "XSAVEOPT"},
        {&CpuFeatures::avx, "AVX"},
    };
    for (const Case& c : cases) {
        CpuFeatures ap = everything();
        ap.*c.field = false;
        const MissingFeatures m = missing_features(all_in_use(), ap);
        ASSERT_EQ(m.count, 1u) << c.name << ": " << described(m);
        EXPECT_STREQ(m.names[0], c.name);
        EXPECT_EQ(described(m), c.name);
    }
}

TEST(CpuCompat, MissingXsaveNamesEveryComponent) {
    CpuFeatures ap = everything();
    ap.xsave = false; // the components CPUID reports mean nothing without XSAVE
    const MissingFeatures m = missing_features(all_in_use(), ap);
    EXPECT_TRUE(m.has("XSAVE"));
    EXPECT_TRUE(m.has("XCR0 x87 (bit 0)"));
    EXPECT_TRUE(m.has("XCR0 AVX-512 Hi16_ZMM (bit 7)"));
    EXPECT_EQ(m.count, 7u); // XSAVE and the six components
}

TEST(CpuCompat, EachMissingXcr0ComponentIsRefusedAndNamed) {
    const struct {
        unsigned bit;
        const char* name;
    } cases[] = {{0, "XCR0 x87 (bit 0)"},
                 {1, "XCR0 SSE (bit 1)"},
                 {2, "XCR0 AVX (bit 2)"},
                 {5, "XCR0 AVX-512 opmask (bit 5)"},
                 {6, "XCR0 AVX-512 ZMM_Hi256 (bit 6)"},
                 {7, "XCR0 AVX-512 Hi16_ZMM (bit 7)"}};
    for (const auto& c : cases) {
        CpuFeatures ap = everything();
        ap.xsave_components &= ~(uint64_t{1} << c.bit);
        const MissingFeatures m = missing_features(all_in_use(), ap);
        ASSERT_EQ(m.count, 1u) << c.name;
        EXPECT_STREQ(m.names[0], c.name);
    }
}

TEST(CpuCompat, ComponentsTheBootCpuDidNotEnableAreNotRequired) {
    // The boot CPU stopped at AVX: an AP without AVX-512 serves as well.
    CpuFeatures ap = everything();
    ap.xsave_components = 0x7;
    EXPECT_FALSE(missing_features({everything(), 0x7}, ap).any());
    // Extra features on the AP never matter.
    CpuRequirements none{};
    std::memcpy(none.features.vendor, "GenuineIntel", 13);
    EXPECT_FALSE(missing_features(none, everything()).any());
}

TEST(CpuCompat, FeaturesTheKernelTurnedOffAreNotRequired) {
    // apic=xapic, pcid=0 and lapic.timer=oneshot clear these from the requirements.
    CpuRequirements need = all_in_use();
    need.features.x2apic = need.features.pcid = need.features.tsc_deadline = false;
    CpuFeatures ap = everything();
    ap.x2apic = ap.pcid = ap.tsc_deadline = false;
    EXPECT_FALSE(missing_features(need, ap).any());
}

TEST(CpuCompat, InvariantTscIsNotRequired) {
    CpuFeatures ap = everything();
    ap.invariant_tsc = false;
    EXPECT_FALSE(missing_features(all_in_use(), ap).any());
}

TEST(CpuCompat, OtherVendorIsRefused) {
    CpuFeatures ap = everything();
    std::memcpy(ap.vendor, "AuthenticAMD", 13);
    const MissingFeatures m = missing_features(all_in_use(), ap);
    ASSERT_EQ(m.count, 1u);
    EXPECT_STREQ(m.names[0], "vendor");
}

TEST(CpuCompat, SeveralMissingAreAllListed) {
    CpuFeatures ap = everything();
    ap.mce = ap.smep = false;
    ap.xsave_components &= ~uint64_t{4};
    EXPECT_EQ(described(missing_features(all_in_use(), ap)), "MCE, SMEP, XCR0 AVX (bit 2)");
    char tiny[8];
    EXPECT_EQ(describe_missing(missing_features(all_in_use(), ap), tiny, sizeof(tiny)),
              std::string("MCE, SMEP, XCR0 AVX (bit 2)").size());
    EXPECT_STREQ(tiny, "MCE, SM");
}

} // namespace
