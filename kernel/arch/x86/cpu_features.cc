#include "arch/x86/cpu_features.h"

#include <atomic>
#include <cstring>

#include "arch/x86/cpu.h"
#include "arch/x86/fpu.h"
#include "boot/params.h"

namespace cohort::x86 {

namespace {
CpuFeatures g_boot_features;
char g_enabled_list[224];
bool g_pcid = false;

bool bit(uint32_t reg, unsigned n) { return (reg >> n) & 1u; }
} // namespace

CpuFeatures detect_cpu_features() {
    CpuFeatures f{};
    CpuidResult r = cpuid(0);
    f.max_leaf = r.eax;
    memcpy(f.vendor + 0, &r.ebx, 4);
    memcpy(f.vendor + 4, &r.edx, 4);
    memcpy(f.vendor + 8, &r.ecx, 4);
    f.vendor[12] = 0;

    r = cpuid(1);
    f.stepping = r.eax & 0xf;
    f.model = (r.eax >> 4) & 0xf;
    f.family = (r.eax >> 8) & 0xf;
    if (f.family == 0xf) f.family += (r.eax >> 20) & 0xff;
    if (f.family >= 6) f.model |= ((r.eax >> 16) & 0xf) << 4;
    f.fxsr = bit(r.edx, 24);
    f.sse2 = bit(r.edx, 26);
    f.apic = bit(r.edx, 9);
    f.mce = bit(r.edx, 7);
    f.pge = bit(r.edx, 13);
    f.pcid = bit(r.ecx, 17);
    f.x2apic = bit(r.ecx, 21);
    f.tsc_deadline = bit(r.ecx, 24);
    f.xsave = bit(r.ecx, 26);
    f.avx = bit(r.ecx, 28);
    f.hypervisor = bit(r.ecx, 31);

    if (f.max_leaf >= 7) {
        r = cpuid(7, 0);
        f.fsgsbase = bit(r.ebx, 0);
        f.tsc_adjust = bit(r.ebx, 1);
        f.smep = bit(r.ebx, 7);
        f.invpcid = bit(r.ebx, 10);
        f.smap = bit(r.ebx, 20);
        f.umip = bit(r.ecx, 2);
    }

    if (f.xsave && f.max_leaf >= 0xd) {
        r = cpuid(0xd, 0);
        f.xsave_components = r.eax | (static_cast<uint64_t>(r.edx) << 32);
        f.xsaveopt = bit(cpuid(0xd, 1).eax, 0);
    }

    f.max_ext_leaf = cpuid(0x80000000).eax;
    if (f.max_ext_leaf >= 0x80000001) {
        r = cpuid(0x80000001);
        f.nx = bit(r.edx, 20);
        f.pdpe1gb = bit(r.edx, 26);
    }
    if (f.max_ext_leaf >= 0x80000004) {
        for (uint32_t i = 0; i < 3; ++i) {
            r = cpuid(0x80000002 + i);
            memcpy(f.brand + i * 16 + 0, &r.eax, 4);
            memcpy(f.brand + i * 16 + 4, &r.ebx, 4);
            memcpy(f.brand + i * 16 + 8, &r.ecx, 4);
            memcpy(f.brand + i * 16 + 12, &r.edx, 4);
        }
    }
    f.brand[48] = 0;
    if (f.max_ext_leaf >= 0x80000007) f.invariant_tsc = bit(cpuid(0x80000007).edx, 8);
    return f;
}

void cpu_features_init() { g_boot_features = detect_cpu_features(); }
const CpuFeatures& boot_cpu_features() { return g_boot_features; }

bool pcid_enabled() { return g_pcid; }

const char* enable_security_features() {
    const CpuFeatures& f = g_boot_features;
    // The boot CPU writes the list for the log; APs, which start in parallel, make the same
    // choices and leave it alone.
    static std::atomic<bool> listed{false};
    const bool list = !listed.exchange(true);
    char* out = g_enabled_list;
    auto append = [&out, list](const char* text) {
        if (!list) return;
        const size_t n = strlen(text);
        memcpy(out, text, n);
        out += n;
        *out = 0;
    };
    auto add = [&out, &append](const char* name) {
        if (out != g_enabled_list) append(" ");
        append(name);
    };
    // Every CPU gets the same, fully defined control registers: firmware leaves different
    // bits on the boot CPU (OVMF sets CR0.NE/MP, CR4.OSFXSR...) than INIT leaves on an AP,
    // and inheriting them would make CPUs differ in ways nobody chose.
    uint64_t efer = rdmsr(msr::kEfer) | efer::kLme;
    if (f.nx) {
        efer |= efer::kNxe;
        add("NX");
    }
    wrmsr(msr::kEfer, efer);
    // PE, MP, ET, NE, WP, PG on; EM, TS, NW, CD, AM off (caches enabled, x87 errors native).
    write_cr0(cr0::kPe | cr0::kMp | cr0::kEt | cr0::kNe | cr0::kWp | cr0::kPg);
    add("WP");
    uint64_t cr4v = cr4::kPae;
    if (f.fxsr) cr4v |= cr4::kOsfxsr | cr4::kOsxmmexcpt;
    if (f.mce) cr4v |= cr4::kMce, add("MCE");
    if (f.pge) cr4v |= cr4::kPge, add("PGE");
    if (f.smep) cr4v |= cr4::kSmep, add("SMEP");
    if (f.smap) cr4v |= cr4::kSmap, add("SMAP");
    if (f.umip) cr4v |= cr4::kUmip, add("UMIP");
    // PCIDs (mm/pcid_cache.h) need global pages, so that kernel mappings are shared by every
    // PCID and one INVLPG still removes them everywhere. Setting PCIDE needs CR3[11:0] = 0,
    // which holds here: boot and trampoline page tables carry no PCID.
    static const bool want_pcid = param_bool("pcid", true);
    g_pcid = f.pcid && f.pge && want_pcid;
    if (g_pcid) cr4v |= cr4::kPcide, add("PCID");
    write_cr4(cr4v);
    // Task SIMD state (arch/x86/fpu.h): XSAVE components the scheduler saves on every switch.
    const uint64_t xcr0 = fpu_enable_on_this_cpu();
    if (xcr0 != 0) add((xcr0 & 0xe0) != 0 ? "XSAVE(AVX-512)" : (xcr0 & 4) != 0 ? "XSAVE(AVX)" : "XSAVE");
    else if (f.fxsr) add("FXSAVE");
    // What the kernel would use but this CPU lacks, so that a log from an older machine says
    // what ran without it (the local APIC lines say which APIC and timer mode were chosen).
    struct Optional {
        bool has;
        const char* name;
    };
    const Optional kOptional[] = {
        {f.nx, "NX"},       {f.pge, "PGE"},       {f.mce, "MCE"},
        {f.smep, "SMEP"},   {f.smap, "SMAP"},     {f.umip, "UMIP"},
        {f.pcid, "PCID"},   {f.xsave, "XSAVE"},   {f.pdpe1gb, "1GiB-pages"},
        {f.x2apic, "x2APIC"}, {f.tsc_deadline, "TSC-deadline"},
    };
    const char* lead = "; not on this CPU: ";
    for (const Optional& o : kOptional) {
        if (o.has) continue;
        append(lead);
        append(o.name);
        lead = " ";
    }
    return g_enabled_list;
}

} // namespace cohort::x86
