// CPU set-up: security features, and exceptions caught with a clear description.
#include "arch/x86/cpu.h"
#include "arch/x86/cpu_features.h"
#include "arch/x86/fpu.h"
#include "arch/x86/interrupts.h"
#include "arch/x86/lapic.h"
#include "boot/params.h"
#include "debug/fault_catcher.h"
#include "debug/log.h"
#include "lib/format.h"
#include "mm/layout.h"
#include "smp/call.h"
#include "smp/cpu.h"
#include "test/ktest.h"

namespace cohort {
namespace {

// Read live on every CPU, not as each recorded them at bring-up: a later write that turned a
// bit off would show here. Each CPU also reads its own CPUID: a bit on where that CPU does not
// report the feature would #GP or #UD at the first use on real hardware of that kind.
struct LiveControl {
    uint64_t cr0, cr4, efer, xcr0, apic_base;
    x86::CpuFeatures cpuid;
};
LiveControl g_live[kMaxCpus];

void read_control(void*) {
    g_live[this_cpu()->cpu_id] = {x86::read_cr0(),          x86::read_cr4(),
                                  x86::rdmsr(x86::msr::kEfer), x86::fpu_live_xcr0(),
                                  x86::rdmsr(x86::msr::kApicBase), x86::detect_cpu_features()};
}

// IA32_APIC_BASE.EXTD (SDM Vol. 3A 11.12.1): the APIC runs in x2APIC mode.
constexpr uint64_t kApicBaseX2 = 1u << 10;

/// `on` must equal `want`; says which CPU and feature when not.
void expect_state(uint32_t cpu, const char* what, bool on, bool want) {
    if (!KEXPECT_EQ(on, want)) ktest::note("cpu%u: %s is %s, expected %s", cpu, what,
                                           on ? "on" : "off", want ? "on" : "off");
}

bool param_is(const char* key, std::string_view value) {
    const auto v = params().get(key);
    return v && *v == value;
}

// Every feature the kernel uses when the CPU has it is on exactly then: on every CPU, as the
// boot CPU's CPUID and the command line decide, and only where that CPU's own CPUID has it.
// Older CPU models (kernel.oldcpu.*) take the other branch of each.
KTEST(cpu, security_features_enabled) {
    const x86::CpuFeatures& f = x86::boot_cpu_features();
    // The decisions made once, from the boot CPU's CPUID and the command line.
    const bool want_pcid = f.pcid && f.pge && !param_is("pcid", "0");
    const bool want_x2apic = f.x2apic && !param_is("apic", "xapic");
    const bool want_deadline = f.tsc_deadline && !param_is("lapic.timer", "oneshot");
    KEXPECT_EQ(x86::pcid_enabled(), want_pcid);
    KEXPECT_EQ(x86::lapic_mode() == x86::ApicMode::X2Apic, want_x2apic);
    KEXPECT_EQ(x86::lapic_timer_has_deadline(), want_deadline);
    // Task SIMD state: XSAVE with every component the CPU has among x87, SSE and AVX (AVX-512
    // only complete), FXSAVE without XSAVE.
    uint64_t want_xcr0 = 0;
    if (f.xsave) {
        want_xcr0 = 3 | (f.xsave_components & 4);
        if ((f.xsave_components & 4) && (f.xsave_components & 0xe0) == 0xe0) want_xcr0 |= 0xe0;
    }
    KEXPECT_EQ(x86::fpu_xcr0(), want_xcr0);
    KEXPECT_EQ(std::string_view(x86::fpu_method()) == "fxsave", !f.xsave);
    KEXPECT_EQ(std::string_view(x86::fpu_method()) == "xsaveopt", f.xsave && f.xsaveopt);

    for (auto& l : g_live) l = {};
    KASSERT(call_on_all(read_control, nullptr, true, true) == CallStatus::Ok);
    uint32_t checked = 0;
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        if (!cpu_by_id(c)->online.load()) continue;
        const LiveControl& l = g_live[c];
        const x86::CpuFeatures& mine = l.cpuid;
        ++checked;
        KEXPECT(l.cr0 & x86::cr0::kWp);
        expect_state(c, "EFER.NXE", l.efer & x86::efer::kNxe, f.nx);
        expect_state(c, "CR4.MCE", l.cr4 & x86::cr4::kMce, f.mce);
        expect_state(c, "CR4.PGE", l.cr4 & x86::cr4::kPge, f.pge);
        expect_state(c, "CR4.SMEP", l.cr4 & x86::cr4::kSmep, f.smep);
        expect_state(c, "CR4.SMAP", l.cr4 & x86::cr4::kSmap, f.smap);
        expect_state(c, "CR4.UMIP", l.cr4 & x86::cr4::kUmip, f.umip);
        expect_state(c, "CR4.PCIDE", l.cr4 & x86::cr4::kPcide, want_pcid);
        expect_state(c, "CR4.OSFXSR", l.cr4 & x86::cr4::kOsfxsr, f.fxsr);
        expect_state(c, "CR4.OSXSAVE", l.cr4 & x86::cr4::kOsxsave, f.xsave);
        expect_state(c, "x2APIC mode", l.apic_base & kApicBaseX2, want_x2apic);
        KEXPECT_EQ(l.xcr0, want_xcr0);
        // What is on, this CPU's CPUID has.
        if (l.efer & x86::efer::kNxe) KEXPECT(mine.nx);
        if (l.cr4 & x86::cr4::kMce) KEXPECT(mine.mce);
        if (l.cr4 & x86::cr4::kPge) KEXPECT(mine.pge);
        if (l.cr4 & x86::cr4::kSmep) KEXPECT(mine.smep);
        if (l.cr4 & x86::cr4::kSmap) KEXPECT(mine.smap);
        if (l.cr4 & x86::cr4::kUmip) KEXPECT(mine.umip);
        if (l.cr4 & x86::cr4::kPcide) KEXPECT(mine.pcid);
        if (l.cr4 & x86::cr4::kOsxsave) KEXPECT(mine.xsave);
        KEXPECT_EQ(l.xcr0 & ~mine.xsave_components, uint64_t{0});
        if (l.apic_base & kApicBaseX2) KEXPECT(mine.x2apic);
        if (want_deadline) KEXPECT(mine.tsc_deadline);
        // Identical everywhere.
        KEXPECT_EQ(l.cr0, g_live[0].cr0);
        KEXPECT_EQ(l.cr4, g_live[0].cr4);
        KEXPECT_EQ(l.efer, g_live[0].efer);
    }
    ktest::note("live CR0/CR4/EFER/XCR0/APIC base checked on %u CPUs: cr4 %#lx, xcr0 %#lx: %s%s%s"
                "%s%s%s%s%s%s",
                checked, g_live[0].cr4, g_live[0].xcr0, f.nx ? "NX " : "no-NX ",
                f.smep ? "SMEP " : "no-SMEP ", f.smap ? "SMAP " : "no-SMAP ",
                f.umip ? "UMIP " : "no-UMIP ", want_pcid ? "PCID " : "no-PCID ",
                f.xsave ? "XSAVE " : "FXSAVE ", want_x2apic ? "x2APIC " : "xAPIC ",
                want_deadline ? "TSC-deadline " : "one-shot-timer ",
                f.pdpe1gb ? "1GiB-pages" : "2MiB-pages");
}

// The ctest configurations with an older QEMU CPU model name what the model must and must not
// offer: a QEMU that changed a model, or a runner that dropped -cpu, would otherwise leave them
// testing a CPU that has everything.
struct NamedFeature {
    const char* name;
    bool x86::CpuFeatures::*field;
};
constexpr NamedFeature kNamedFeatures[] = {
    {"nx", &x86::CpuFeatures::nx},
    {"pge", &x86::CpuFeatures::pge},
    {"mce", &x86::CpuFeatures::mce},
    {"smep", &x86::CpuFeatures::smep},
    {"smap", &x86::CpuFeatures::smap},
    {"umip", &x86::CpuFeatures::umip},
    {"pcid", &x86::CpuFeatures::pcid},
    {"invpcid", &x86::CpuFeatures::invpcid},
    {"xsave", &x86::CpuFeatures::xsave},
    {"xsaveopt", &x86::CpuFeatures::xsaveopt},
    {"avx", &x86::CpuFeatures::avx},
    {"x2apic", &x86::CpuFeatures::x2apic},
    {"tsc_deadline", &x86::CpuFeatures::tsc_deadline},
    {"pdpe1gb", &x86::CpuFeatures::pdpe1gb},
    {"fsgsbase", &x86::CpuFeatures::fsgsbase},
};

/// Checks each comma-separated name in `list` against the boot CPU's CPUID; returns how many.
uint32_t expect_features(std::string_view list, bool want) {
    const x86::CpuFeatures& f = x86::boot_cpu_features();
    uint32_t n = 0;
    while (!list.empty()) {
        const size_t comma = list.find(',');
        const std::string_view name = list.substr(0, comma);
        list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
        if (name.empty()) continue;
        const NamedFeature* found = nullptr;
        for (const NamedFeature& nf : kNamedFeatures)
            if (name == nf.name) found = &nf;
        if (!KEXPECT(found != nullptr)) {
            ktest::note("unknown feature name '%.*s'", static_cast<int>(name.size()), name.data());
            continue;
        }
        ++n;
        if (!KEXPECT_EQ(f.*found->field, want))
            ktest::note("%s: CPUID %s it, the configuration says the model %s it", found->name,
                        f.*found->field ? "has" : "lacks", want ? "has" : "lacks");
    }
    return n;
}

KTEST(cpu, model_offers_the_configured_features) {
    const auto has = params().get("test.expect_cpu_has");
    const auto lacks = params().get("test.expect_cpu_lacks");
    if (!has && !lacks)
        return ktest::skip("needs test.expect_cpu_has=... or test.expect_cpu_lacks=... (names as "
                           "in kernel/tests/cpu_tests.cc)");
    const uint32_t n =
        expect_features(has.value_or(""), true) + expect_features(lacks.value_or(""), false);
    ktest::note("%u CPUID features as configured (%s, family %u model %u)", n,
                x86::boot_cpu_features().brand, x86::boot_cpu_features().family,
                x86::boot_cpu_features().model);
}

// An address in the device-mapping area far beyond anything mapped.
constexpr uint64_t kUnmapped = layout::kMmioAreaBase + layout::kMmioAreaSize - 0x10000;

void read_unmapped(void*) { (void)*reinterpret_cast<volatile uint64_t*>(kUnmapped); }

KTEST(cpu, page_fault_is_caught_with_address) {
    FaultInfo f{};
    KASSERT(run_catching_faults(read_unmapped, nullptr, &f));
    KEXPECT_EQ(f.vector, uint64_t{x86::kVecPageFault});
    KEXPECT_EQ(f.cr2, kUnmapped);
    KEXPECT_EQ(f.error_code & 0x3, uint64_t{0}); // not present, read access
}

const uint64_t kReadOnlyValue = 0x1234;
void write_rodata(void*) {
    *const_cast<volatile uint64_t*>(&kReadOnlyValue) = 1;
}

KTEST(cpu, write_to_rodata_faults) {
    FaultInfo f{};
    KASSERT(run_catching_faults(write_rodata, nullptr, &f));
    KEXPECT_EQ(f.vector, uint64_t{x86::kVecPageFault});
    KEXPECT_EQ(f.error_code & 0x3, uint64_t{0x3}); // present page, write access
    KEXPECT_EQ(kReadOnlyValue, uint64_t{0x1234});
}

// One `ret` instruction in writable data: executing it must fault when NX is on.
uint8_t g_data_code[16] = {0xc3};
void execute_data(void*) { reinterpret_cast<void (*)()>(g_data_code)(); }

KTEST(cpu, executing_data_faults) {
    if (!x86::boot_cpu_features().nx) return ktest::skip("CPU has no NX");
    FaultInfo f{};
    KASSERT(run_catching_faults(execute_data, nullptr, &f));
    KEXPECT_EQ(f.vector, uint64_t{x86::kVecPageFault});
    KEXPECT(f.error_code & 0x10); // instruction fetch
    KEXPECT_EQ(f.rip, reinterpret_cast<uint64_t>(g_data_code));
}

void non_canonical(void*) {
    (void)*reinterpret_cast<volatile uint64_t*>(0x8000000000000000ull);
}

KTEST(cpu, general_protection_is_caught) {
    FaultInfo f{};
    KASSERT(run_catching_faults(non_canonical, nullptr, &f));
    KEXPECT_EQ(f.vector, uint64_t{x86::kVecGeneralProtection});
}

void invalid_opcode(void*) { asm volatile("ud2"); }

KTEST(cpu, invalid_opcode_is_caught) {
    FaultInfo f{};
    KASSERT(run_catching_faults(invalid_opcode, nullptr, &f));
    KEXPECT_EQ(f.vector, uint64_t{x86::kVecInvalidOpcode});
}

void divide_by_zero(void*) {
    volatile uint64_t zero = 0;
    uint64_t q, r;
    asm volatile("divq %4" : "=a"(q), "=d"(r) : "a"(1), "d"(0), "r"(zero));
}

KTEST(cpu, divide_error_is_caught) {
    FaultInfo f{};
    KASSERT(run_catching_faults(divide_by_zero, nullptr, &f));
    KEXPECT_EQ(f.vector, uint64_t{x86::kVecDivide});
}

KTEST(cpu, crash_report_names_the_function) {
    // A non-quiet catcher prints the full report a crashing test gets: check it is useful.
    const uint64_t mark = log_mark();
    FaultInfo f{};
    KASSERT(run_catching_faults(read_unmapped, nullptr, &f, /*quiet=*/false));
    KEXPECT(log_contains_since(mark, "#PF page fault"));
    char expected[64];
    format(expected, sizeof(expected), "read access of %#lx", kUnmapped);
    KEXPECT(log_contains_since(mark, expected));
    KEXPECT(log_contains_since(mark, "page not present"));
    KEXPECT(log_contains_since(mark, "backtrace:"));
    KEXPECT(log_contains_since(mark, "read_unmapped"));
}

} // namespace
} // namespace cohort
