// CPU set-up: security features, and exceptions caught with a clear description.
#include "arch/x86/cpu.h"
#include "arch/x86/cpu_features.h"
#include "arch/x86/interrupts.h"
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
// bit off would show here. Each feature is required only where the CPU has it.
struct LiveControl {
    uint64_t cr0, cr4, efer;
};
LiveControl g_live[kMaxCpus];

void read_control(void*) {
    g_live[this_cpu()->cpu_id] = {x86::read_cr0(), x86::read_cr4(), x86::rdmsr(x86::msr::kEfer)};
}

KTEST(cpu, security_features_enabled) {
    const x86::CpuFeatures& f = x86::boot_cpu_features();
    for (auto& l : g_live) l = {};
    KASSERT(call_on_all(read_control, nullptr, true, true) == CallStatus::Ok);
    uint32_t checked = 0;
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        if (!cpu_by_id(c)->online.load()) continue;
        const LiveControl& l = g_live[c];
        ++checked;
        KEXPECT(l.cr0 & x86::cr0::kWp);
        if (f.nx) KEXPECT(l.efer & x86::efer::kNxe);
        if (f.smep) KEXPECT(l.cr4 & x86::cr4::kSmep);
        if (f.smap) KEXPECT(l.cr4 & x86::cr4::kSmap);
        if (f.umip) KEXPECT(l.cr4 & x86::cr4::kUmip);
        if (f.pge) KEXPECT(l.cr4 & x86::cr4::kPge);
        // Identical everywhere, and the same as at bring-up.
        KEXPECT_EQ(l.cr0, g_live[0].cr0);
        KEXPECT_EQ(l.cr4, g_live[0].cr4);
        KEXPECT_EQ(l.efer, g_live[0].efer);
    }
    ktest::note("live CR0/CR4/EFER checked on %u CPUs: cr4 %#lx (%s%s%s%s)", checked, g_live[0].cr4,
                f.smep ? "SMEP " : "no SMEP ", f.smap ? "SMAP " : "no SMAP ",
                f.umip ? "UMIP " : "no UMIP ", f.nx ? "NX" : "no NX");
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
