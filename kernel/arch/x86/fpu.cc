#include "arch/x86/fpu.h"

#include <cstring>

#include "arch/x86/cpu.h"
#include "arch/x86/cpu_features.h"

namespace cohort::x86 {

namespace {

// XCR0 components (SDM vol. 1, 13.1): x87, SSE, AVX, then AVX-512's opmask, ZMM_Hi256 and
// Hi16_ZMM, which are only valid together.
constexpr uint64_t kX87 = 1, kSse = 2, kAvx = 4, kAvx512 = 0xe0;

enum class Method { FxSave, XSave, XSaveOpt };
Method g_method = Method::FxSave;
uint64_t g_xcr0 = 0;
size_t g_size = 512;

} // namespace

uint64_t fpu_enable_on_this_cpu() {
    const CpuFeatures& f = boot_cpu_features();
    if (!f.xsave) return 0;
    write_cr4(read_cr4() | cr4::kOsxsave);
    if (g_xcr0 != 0) {
        // The boot CPU decided, from its own CPUID; every other CPU loads the same XCR0, so
        // one save-area size and layout serves a task wherever it runs. APs that lack one of
        // these components were refused before getting here (arch/x86/cpu_compat.h).
        write_xcr0(g_xcr0);
        return g_xcr0;
    }
    const uint64_t supported = f.xsave_components;
    uint64_t xcr0 = kX87 | kSse;
    if ((supported & kAvx) != 0) xcr0 |= kAvx;
    if ((supported & kAvx) != 0 && (supported & kAvx512) == kAvx512) xcr0 |= kAvx512;
    write_xcr0(xcr0);
    g_xcr0 = xcr0;
    g_size = (cpuid(0xd, 0).ebx + 63) & ~size_t{63}; // EBX: size for the XCR0 just loaded
    g_method = f.xsaveopt ? Method::XSaveOpt : Method::XSave;
    return xcr0;
}

size_t fpu_state_size() { return g_size; }

uint64_t fpu_live_xcr0() {
    if ((read_cr4() & cr4::kOsxsave) == 0) return 0;
    uint32_t lo, hi;
    asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return lo | (static_cast<uint64_t>(hi) << 32);
}
uint64_t fpu_xcr0() { return g_xcr0; }
const char* fpu_method() {
    switch (g_method) {
    case Method::XSave: return "xsave";
    case Method::XSaveOpt: return "xsaveopt";
    case Method::FxSave: return "fxsave";
    }
    return "?";
}

void fpu_init_state(void* area) {
    memset(area, 0, g_size);
    auto* bytes = static_cast<uint8_t*>(area);
    // Legacy region: FCW 0x37f (all x87 exceptions masked, 64-bit precision) and MXCSR 0x1f80
    // (all SIMD exceptions masked), as after FNINIT and reset. An all-zero XSAVE header means
    // "every component in its initial state" for XRSTOR; FXRSTOR reads the legacy fields.
    const uint16_t fcw = 0x37f;
    const uint32_t mxcsr = 0x1f80;
    memcpy(bytes + 0, &fcw, sizeof(fcw));
    memcpy(bytes + 24, &mxcsr, sizeof(mxcsr));
    if (g_method != Method::FxSave) {
        // XSTATE_BV bit 0/1 set with the legacy values above, so FCW/MXCSR are loaded as given.
        const uint64_t bv = kX87 | kSse;
        memcpy(bytes + 512, &bv, sizeof(bv));
    }
}

void fpu_save(void* area) {
    const uint32_t lo = static_cast<uint32_t>(g_xcr0), hi = static_cast<uint32_t>(g_xcr0 >> 32);
    switch (g_method) {
    case Method::XSaveOpt:
        asm volatile("xsaveopt64 (%0)" : : "r"(area), "a"(lo), "d"(hi) : "memory");
        break;
    case Method::XSave:
        asm volatile("xsave64 (%0)" : : "r"(area), "a"(lo), "d"(hi) : "memory");
        break;
    case Method::FxSave:
        asm volatile("fxsave64 (%0)" : : "r"(area) : "memory");
        break;
    }
}

void fpu_restore(const void* area) {
    const uint32_t lo = static_cast<uint32_t>(g_xcr0), hi = static_cast<uint32_t>(g_xcr0 >> 32);
    if (g_method == Method::FxSave) asm volatile("fxrstor64 (%0)" : : "r"(area) : "memory");
    else asm volatile("xrstor64 (%0)" : : "r"(area), "a"(lo), "d"(hi) : "memory");
}

} // namespace cohort::x86
