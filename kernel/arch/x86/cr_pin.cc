#include "arch/x86/cr_pin.h"

#include <atomic>

#include "arch/x86/cpu.h"
#include "boot/params.h"
#include "debug/audit.h"
#include "debug/log.h"
#include "debug/symbols.h"
#include "smp/percpu.h"

namespace cohort::x86 {
namespace {

// Written once on the boot CPU before any AP runs, then only read. (Memory a stray write
// cannot reach is issue 17's CPU-private mappings; until then they are ordinary data.)
uint64_t g_pinned[3] = {};
std::atomic<uint64_t> g_violations{0};

struct PinState {
    uint64_t count = 0;
    PinViolation last;
};
COHORT_PERCPU(PinState, g_pin_state);

[[gnu::noinline, gnu::cold]] void report(PinnedReg reg, uint64_t cleared, uint64_t caller) {
    PinState& st = per_cpu(g_pin_state);
    ++st.count;
    st.last = {reg, cleared, caller};
    g_violations.fetch_add(1, std::memory_order_relaxed);
    uint64_t off = 0;
    const char* fn = symbolize(caller, &off);
    log_error("security: a write to %s would have cleared pinned bits %#lx on cpu%u, from "
              "%s+%#lx (%#lx); they stay set", pinned_reg_name(reg), cleared, this_cpu()->cpu_id,
              fn != nullptr ? fn : "?", off, caller);
}

} // namespace

const char* pinned_reg_name(PinnedReg r) {
    switch (r) {
    case PinnedReg::Cr0: return "CR0";
    case PinnedReg::Cr4: return "CR4";
    case PinnedReg::Efer: return "EFER";
    }
    return "?";
}

// CR0 and CR4 are checked after the write, as Linux does: code that jumps straight to the MOV
// (past any check before it) still meets the check that follows and puts the bits back.
#define COHORT_CALLER reinterpret_cast<uint64_t>(__builtin_return_address(0))

[[gnu::noinline]] void write_cr0(uint64_t v) {
    const uint64_t old = read_cr0();
    asm volatile("mov %0, %%cr0" : : "r"(v) : "memory");
    const uint64_t pinned = g_pinned[0];
    if ((v & pinned) != pinned) [[unlikely]] {
        asm volatile("mov %0, %%cr0" : : "r"(v | pinned) : "memory");
        report(PinnedReg::Cr0, pinned & ~v, COHORT_CALLER);
    }
    audit_record(AuditKind::Cr, 0, old, read_cr0(), COHORT_CALLER);
}

namespace {
inline void cr4_checked(uint64_t v, uint64_t caller) {
    asm volatile("mov %0, %%cr4" : : "r"(v) : "memory");
    const uint64_t pinned = g_pinned[1];
    if ((v & pinned) == pinned) [[likely]]
        return;
    asm volatile("mov %0, %%cr4" : : "r"(v | pinned) : "memory");
    report(PinnedReg::Cr4, pinned & ~v, caller);
}
} // namespace

[[gnu::noinline]] void write_cr4(uint64_t v) {
    const uint64_t old = read_cr4();
    cr4_checked(v, COHORT_CALLER);
    audit_record(AuditKind::Cr, 4, old, read_cr4(), COHORT_CALLER);
}

void cr4_toggle_pge(uint64_t cr4) {
    cr4_checked(cr4 & ~cr4::kPge, COHORT_CALLER);
    cr4_checked(cr4, COHORT_CALLER);
}

[[gnu::noinline]] void write_xcr0(uint64_t v) {
    uint32_t lo, hi;
    asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    asm volatile("xsetbv" : : "c"(0), "a"(static_cast<uint32_t>(v)),
                 "d"(static_cast<uint32_t>(v >> 32)));
    audit_record(AuditKind::Xcr, 0, uint64_t(hi) << 32 | lo, v, COHORT_CALLER);
}

[[gnu::noinline]] void wrmsr_audited(uint32_t msr, uint64_t v) {
    // x2APIC SELF IPI is write-only: reading it would fault.
    const uint64_t old = msr == 0x83f ? 0 : rdmsr(msr);
    wrmsr_raw(msr, v);
    audit_record(AuditKind::Msr, msr, old, v, COHORT_CALLER);
}

// EFER is checked before: with NXE off, every page-table entry with the NX bit (the stack, all
// data) has a reserved bit set, and the next data access would fault before any check ran.
[[gnu::noinline]] void write_efer(uint64_t v) {
    const uint64_t old = rdmsr(msr::kEfer);
    const uint64_t pinned = g_pinned[2];
    if ((v & pinned) != pinned) [[unlikely]] {
        report(PinnedReg::Efer, pinned & ~v, COHORT_CALLER);
        v |= pinned;
    }
    wrmsr_raw(msr::kEfer, v);
    audit_record(AuditKind::Msr, msr::kEfer, old, v, COHORT_CALLER);
}

void cr_pin_enable() {
    if (!param_bool("security.cr_pinning", true)) {
        log_warn("security: control-register pinning is off (security.cr_pinning=0)");
        return;
    }
    g_pinned[0] = read_cr0() & cr0::kWp;
    g_pinned[1] = read_cr4() & (cr4::kSmep | cr4::kSmap | cr4::kUmip);
    g_pinned[2] = rdmsr(msr::kEfer) & efer::kNxe;
    log_info("security: pinned CR0 %#lx, CR4 %#lx, EFER %#lx on every CPU", g_pinned[0],
             g_pinned[1], g_pinned[2]);
}

uint64_t cr_pinned(PinnedReg r) { return g_pinned[static_cast<int>(r)]; }
uint64_t cr_pin_violations_here() { return per_cpu(g_pin_state).count; }
bool cr_pin_last_violation_here(PinViolation& out) {
    const PinState& st = per_cpu(g_pin_state);
    if (st.count == 0) return false;
    out = st.last;
    return true;
}
uint64_t cr_pin_violations() { return g_violations.load(std::memory_order_relaxed); }

} // namespace cohort::x86
