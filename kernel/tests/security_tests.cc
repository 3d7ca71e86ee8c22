// The security policies of docs/security.md, checked on every CPU.
#include <cstring>

#include "arch/x86/cpu.h"
#include "arch/x86/cpu_private.h"
#include "arch/x86/cr_pin.h"
#include "arch/x86/kcfi.h"
#include "debug/fault_catcher.h"
#include "mm/address_space.h"
#include "mm/layout.h"
#include "mm/phys.h"
#include "mm/pmm.h"
#include "debug/audit.h"
#include "debug/symbols.h"
#include "lib/format.h"
#include "sched/sched.h"
#include "smp/call.h"
#include "smp/cpu.h"
#include "smp/cpu_private.h"
#include "smp/hotplug.h"
#include "test/ktest.h"
#include "time/clock.h"

extern "C" uint64_t kcfi_probe_typed_asm(uint64_t); // kcfi_probe.S: carries its type id
extern "C" uint64_t kcfi_probe_untyped_asm(uint64_t); // kcfi_probe.S: carries none

namespace cohort {
namespace {

using x86::PinnedReg;

struct PinResult {
    uint32_t tried = 0;        // pinned bits this CPU had on and tried to clear
    uint32_t stayed = 0;       // of those, still set right after the write
    uint32_t reported = 0;     // writes counted as refused on this CPU
    uint32_t named_caller = 0; // reports whose caller is this function
    uint64_t first_lost = 0;   // a bit that did not stay (0: none)
    PinnedReg first_lost_reg = PinnedReg::Cr0;
};

uint64_t read_reg(PinnedReg r) {
    switch (r) {
    case PinnedReg::Cr0: return x86::read_cr0();
    case PinnedReg::Cr4: return x86::read_cr4();
    case PinnedReg::Efer: return x86::rdmsr(x86::msr::kEfer);
    }
    return 0;
}
void write_reg(PinnedReg r, uint64_t v) {
    switch (r) {
    case PinnedReg::Cr0: x86::write_cr0(v); break;
    case PinnedReg::Cr4: x86::write_cr4(v); break;
    case PinnedReg::Efer: x86::write_efer(v); break;
    }
}

// On the CPU under test: each security bit it has on, cleared through the one writer of its
// register. The bits come from the registers, not from the pin masks, so that with pinning off
// (security.cr_pinning=0) the test sees them go and fails.
[[gnu::noinline]] void try_clear_pinned(void* arg) {
    auto& r = *static_cast<PinResult*>(arg);
    struct Bit {
        PinnedReg reg;
        uint64_t bit;
    };
    static constexpr Bit kBits[] = {{PinnedReg::Cr0, x86::cr0::kWp},
                                    {PinnedReg::Cr4, x86::cr4::kSmep},
                                    {PinnedReg::Cr4, x86::cr4::kSmap},
                                    {PinnedReg::Cr4, x86::cr4::kUmip},
                                    // With NXE off, data pages' NX bits are reserved bits: only
                                    // tried when pinning is on, or the next access faults.
                                    {PinnedReg::Efer, x86::efer::kNxe}};
    const uint64_t reports_before = x86::cr_pin_violations_here();
    for (const Bit& b : kBits) {
        const uint64_t before = read_reg(b.reg);
        if ((before & b.bit) == 0) continue;
        if (b.reg == PinnedReg::Efer && (x86::cr_pinned(PinnedReg::Efer) & b.bit) == 0) continue;
        ++r.tried;
        arch::IrqOff irq; // nothing else runs here while a bit might be off
        write_reg(b.reg, before & ~b.bit);
        const uint64_t after = read_reg(b.reg);
        if ((after & b.bit) != 0) {
            ++r.stayed;
        } else {
            if (r.first_lost == 0) r.first_lost = b.bit, r.first_lost_reg = b.reg;
            write_reg(b.reg, before); // put it back by hand
        }
        x86::PinViolation v;
        if (x86::cr_pin_last_violation_here(v) && v.reg == b.reg && v.cleared == b.bit) {
            uint64_t off = 0;
            const char* fn = symbolize(v.caller, &off);
            if (fn != nullptr && strstr(fn, "try_clear_pinned") != nullptr) ++r.named_caller;
        }
    }
    r.reported = static_cast<uint32_t>(x86::cr_pin_violations_here() - reports_before);
}

void check_cpu(uint32_t cpu, bool* ok) {
    PinResult r;
    KASSERT(run_on(cpu, try_clear_pinned, &r) == CallStatus::Ok);
    // QEMU's -cpu max has all of them; older CPU models have fewer, but WP always.
    KEXPECT(r.tried >= 1);
    KEXPECT_EQ(r.stayed, r.tried);
    KEXPECT_EQ(r.reported, r.tried);
    KEXPECT_EQ(r.named_caller, r.tried);
    if (r.first_lost != 0) {
        ktest::note("cpu%u: %s bit %#lx stayed clear", cpu, x86::pinned_reg_name(r.first_lost_reg),
                    r.first_lost);
        *ok = false;
    }
    if (r.stayed != r.tried || r.reported != r.tried || r.named_caller != r.tried) *ok = false;
}

KTEST(security, pinned_control_bits_stay_set_on_every_cpu) {
    bool ok = true;
    uint32_t checked = 0;
    for (uint32_t cpu = 0; cpu < cpu_count(); ++cpu) {
        if (!cpu_by_id(cpu)->online.load()) continue;
        check_cpu(cpu, &ok);
        ++checked;
    }
    // A CPU started again (CPU hotplug) is pinned too: bring-up writes its registers through
    // the same checked writers.
    const uint32_t last = cpu_count() - 1;
    if (cpu_count() > 1 && cpu_by_id(last)->online.load() && cpu_offline(last) == HotplugError::None) {
        KASSERT(cpu_online(last) == HotplugError::None);
        check_cpu(last, &ok);
    }
    ktest::note("%u CPUs: pinned CR0 %#lx, CR4 %#lx, EFER %#lx; %lu refused writes in all%s",
                checked, x86::cr_pinned(PinnedReg::Cr0), x86::cr_pinned(PinnedReg::Cr4),
                x86::cr_pinned(PinnedReg::Efer), x86::cr_pin_violations(),
                ok ? "" : " (some bit did not stay set)");
}

struct AuditResult {
    uint32_t recorded = 0; // writes found as the newest entry, with the right values
    uint32_t named = 0;    // of those, naming this test's function as the caller
};

bool newest_is(AuditKind kind, uint32_t reg, uint64_t old_value, uint64_t new_value,
               uint64_t count_before, bool* named) {
    const uint32_t me = this_cpu()->cpu_id;
    AuditEntry e;
    if (audit_count(me) != count_before + 1 || audit_snapshot(me, &e, 1) != 1) return false;
    if (e.kind != kind || e.reg != reg || e.old_value != old_value || e.new_value != new_value)
        return false;
    uint64_t off = 0;
    const char* fn = symbolize(e.caller, &off);
    *named = fn != nullptr && strstr(fn, "make_audited_writes") != nullptr;
    return true;
}

// On the CPU under test: an MSR the kernel does not use (IA32_KERNEL_GS_BASE: no user mode, no
// SWAPGS) and CR4 rewritten with its own value, each then looked up as the ring's newest entry.
[[gnu::noinline]] void make_audited_writes(void* arg) {
    auto& r = *static_cast<AuditResult*>(arg);
    const uint32_t me = this_cpu()->cpu_id;
    arch::IrqOff irq; // no interrupt's own write in between
    bool named = false;
    const uint64_t old = x86::rdmsr(x86::msr::kKernelGsBase);
    // Canonical, as the CPU requires of a base address (Bochs raises #GP otherwise; QEMU does not).
    const uint64_t marker = 0xffff'c0de'0000'0000ull | me;
    uint64_t before = audit_count(me);
    x86::wrmsr(x86::msr::kKernelGsBase, marker);
    if (newest_is(AuditKind::Msr, x86::msr::kKernelGsBase, old, marker, before, &named))
        ++r.recorded, r.named += named;
    x86::wrmsr(x86::msr::kKernelGsBase, old);
    const uint64_t cr4 = x86::read_cr4();
    before = audit_count(me);
    x86::write_cr4(cr4);
    if (newest_is(AuditKind::Cr, 4, cr4, cr4, before, &named)) ++r.recorded, r.named += named;
}

KTEST(security, configuration_writes_are_audited_with_their_caller) {
    uint32_t checked = 0, bad = 0;
    for (uint32_t cpu = 0; cpu < cpu_count(); ++cpu) {
        if (!cpu_by_id(cpu)->online.load()) continue;
        AuditResult r;
        KASSERT(run_on(cpu, make_audited_writes, &r) == CallStatus::Ok);
        KEXPECT_EQ(r.recorded, 2u);
        KEXPECT_EQ(r.named, 2u);
        if (r.recorded != 2 || r.named != 2) {
            if (bad++ == 0) ktest::note("cpu%u: %u of 2 writes recorded, %u naming their caller", cpu,
                                        r.recorded, r.named);
        }
        ++checked;
    }
    // Bring-up's own writes are there too: the boot CPU's GDT and IDT, at least.
    KEXPECT(audit_count(0) >= 2);
    ktest::note("%u CPUs: an MSR and CR4 write recorded with their caller on each%s", checked,
                bad != 0 ? " (not everywhere)" : "");
}

// Validated cross-CPU access: the accessors take what is valid and refuse what is not without
// a wild read. The refusals that panic are shown by the manual tests below, each run by a ctest
// that expects the panic naming its caller (kernel.security.bad_cpu_*).
KTEST(security, cross_cpu_accessors_take_every_cpu_and_refuse_missing_ones) {
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        KEXPECT_EQ(cpu_by_id(c)->cpu_id, c);
        KEXPECT(cpu_lookup(c) == cpu_by_id(c));
        KEXPECT(cpu_validate(cpu_by_id(c)) == cpu_by_id(c));
        if (cpu_by_id(c)->online.load()) KEXPECT(cpu_running(c) == cpu_by_id(c));
    }
    KEXPECT(cpu_lookup(cpu_count()) == nullptr);
    KEXPECT(cpu_lookup(UINT32_MAX) == nullptr);
}

KTEST_MANUAL(security, cross_cpu_access_with_a_bad_id_panics) {
    const CpuData* c = cpu_by_id(cpu_count() + 7);
    ktest::note("not reached: cpu%u", c->cpu_id);
}

KTEST_MANUAL(security, cross_cpu_access_through_a_stale_pointer_panics) {
    // What a pointer kept past the end of what it pointed to finds: memory reused for
    // something else (here zeroes; the magic is what tells).
    alignas(CpuData) static uint8_t reused[sizeof(CpuData)];
    const CpuData* stale = reinterpret_cast<const CpuData*>(reused);
    cpu_validate(stale);
    ktest::note("not reached");
}

KTEST_MANUAL(security, work_for_an_offline_cpu_panics) {
    if (cpu_count() < 2) return ktest::skip("one CPU");
    const uint32_t last = cpu_count() - 1;
    KASSERT(cpu_offline(last) == HotplugError::None);
    const CpuData* c = cpu_running(last);
    ktest::note("not reached: cpu%u", c->cpu_id);
}

// --- IPI sources: a remote call is attributed by the slot it came through --------------------
std::atomic<uint32_t> g_forged_ran{0};
void forged_work(void*) { g_forged_ran.fetch_add(1); }
uint64_t rejected_on(uint32_t c) { return cpu_by_id(c)->counters.calls_rejected.load(); }

// A forged request must come back Rejected, counted once on its target, without running.
bool refused(uint32_t target, CallStatus st, uint64_t before) {
    return st == CallStatus::Rejected && rejected_on(target) == before + 1;
}

KTEST(security, remote_calls_are_attributed_by_their_slot_not_their_word) {
    if (cpu_count() < 2) return ktest::skip("one CPU");
    g_forged_ran = 0;
    // 1. A request in cpu0's slots that says it comes from another CPU, to every other CPU.
    uint32_t tried = 0, rejected = 0;
    for (uint32_t t = 1; t < cpu_count(); ++t) {
        if (!cpu_by_id(t)->online.load()) continue;
        const uint32_t claimed = t + 1 < cpu_count() ? t + 1 : 1;
        const uint64_t before = rejected_on(t);
        ++tried;
        if (refused(t, call_testing::forge_call(t, 0, claimed, forged_work, nullptr), before))
            ++rejected;
    }
    ktest::note("%u of %u requests claiming another sender refused", rejected, tried);
    KEXPECT_EQ(rejected, tried);
    // A leftover: a pointer to a free slot (a finished request) is refused and never runs.
    uint32_t first_other = 0;
    for (uint32_t t = 1; t < cpu_count() && first_other == 0; ++t)
        if (cpu_by_id(t)->online.load()) first_other = t;
    if (first_other != 0)
        KEXPECT(call_testing::forge_stale_call(first_other, 0, forged_work, nullptr));
    // The genuine path through the same slots still works, and runs once.
    for (uint32_t t = 0; t < cpu_count(); ++t)
        if (cpu_by_id(t)->online.load()) KEXPECT(call_on(t, forged_work, nullptr, true) == CallStatus::Ok);
    const uint32_t online = cpus_online();
    KEXPECT_EQ(g_forged_ran.load(), online);

    // 2. From a CPU that is not up: a request in its slots, and a multicast bit of its own.
    uint32_t k = 0;
    for (uint32_t c = cpu_count(); c-- > 2;) {
        if (cpu_by_id(c)->online.load()) {
            k = c;
            break;
        }
    }
    if (k == 0) return ktest::note("no third CPU to take offline: the offline sender is not tried");
    uint32_t t = 0; // the target: another online CPU but cpu0, where this test runs
    for (uint32_t c = 1; c < k && t == 0; ++c)
        if (cpu_by_id(c)->online.load()) t = c;
    if (t == 0) return ktest::note("no CPU between cpu0 and cpu%u to receive the forgeries", k);
    KASSERT(cpu_offline(k) == HotplugError::None);
    g_forged_ran = 0;
    uint64_t before = rejected_on(t);
    const bool call_refused =
        refused(t, call_testing::forge_call(t, k, k, forged_work, nullptr), before);
    before = rejected_on(t);
    const bool multicast_refused =
        refused(t, call_testing::forge_multicast(t, k, forged_work, nullptr), before);
    KASSERT(cpu_online(k) == HotplugError::None);
    ktest::note("from offline cpu%u: request %s, multicast %s", k,
                call_refused ? "refused" : "RAN", multicast_refused ? "refused" : "RAN");
    KEXPECT(call_refused);
    KEXPECT(multicast_refused);
    KEXPECT_EQ(g_forged_ran.load(), 0u);
    // Once back, its own calls are accepted again.
    static CallStatus from_k;
    static uint32_t target;
    from_k = CallStatus::Busy;
    target = t;
    KEXPECT(run_on(k, [](void*) { from_k = call_on(target, forged_work, nullptr, true); },
                   nullptr) == CallStatus::Ok);
    KEXPECT(from_k == CallStatus::Ok);
    KEXPECT_EQ(g_forged_ran.load(), 1u);
}

// --- Indirect calls (KCFI): a call through a pointer of the wrong type traps -----------------
using ProbeFn = uint64_t (*)(uint64_t);
uint64_t add_three(uint64_t x) { return x + 3; }
std::atomic<uint32_t> g_wrong_target_ran{0};
void wrong_target(void*) { g_wrong_target_ran.fetch_add(1); } // not uint64_t (uint64_t)

// Hides where a pointer came from, so the compiler cannot turn the call into a direct one.
template <typename T>
T opaque(T p) {
    asm volatile("" : "+r"(p));
    return p;
}

struct Probe {
    ProbeFn fn;
    uint64_t result;
};
// Out of line, so the failing call site is this function whatever the optimisation level.
[[gnu::noinline]] void call_probe(void* arg) {
    auto& p = *static_cast<Probe*>(arg);
    p.result = opaque(p.fn)(39);
}

struct KcfiSeen {
    std::atomic<uint32_t> typed_ok{0};   // CPUs where both well-typed calls ran and returned
    std::atomic<uint32_t> mismatch{0};   // CPUs where the C++ mismatch trapped at a KCFI trap
    std::atomic<uint32_t> untyped{0};    // CPUs where the call to untyped assembly trapped
};

// One CPU's share: well-typed calls run; a C++ function of another type and an assembly
// function with no type id are refused by the check before the call.
void kcfi_on_this_cpu(void* arg) {
    auto& seen = *static_cast<KcfiSeen*>(arg);
    Probe cxx{&add_three, 0}, asm_typed{&kcfi_probe_typed_asm, 0};
    call_probe(&cxx);
    call_probe(&asm_typed);
    if (cxx.result == 42 && asm_typed.result == 40) seen.typed_ok.fetch_add(1);
    FaultInfo f{};
    Probe wrong{reinterpret_cast<ProbeFn>(&wrong_target), 0};
    if (run_catching_faults(call_probe, &wrong, &f) && f.vector == 6 && x86::kcfi_is_trap(f.rip))
        seen.mismatch.fetch_add(1);
    Probe untyped{&kcfi_probe_untyped_asm, 0};
    if (run_catching_faults(call_probe, &untyped, &f) && f.vector == 6 && x86::kcfi_is_trap(f.rip))
        seen.untyped.fetch_add(1);
}

KTEST(security, indirect_calls_of_the_wrong_type_trap_on_every_cpu) {
    if (!x86::kcfi_enabled()) ktest::note("built without KCFI (COHORT_KCFI=OFF or clang < 16)");
    g_wrong_target_ran = 0;
    static KcfiSeen seen;
    seen.typed_ok = seen.mismatch = seen.untyped = 0;
    KASSERT(ktest::run_on_all_cpus(kcfi_on_this_cpu, &seen));
    const uint32_t online = cpus_online();
    ktest::note("%u CPUs: well-typed calls ran on %u, the wrong C++ type trapped on %u, untyped "
                "assembly on %u; the wrong target ran %u times", online, seen.typed_ok.load(),
                seen.mismatch.load(), seen.untyped.load(), g_wrong_target_ran.load());
    KEXPECT_EQ(seen.typed_ok.load(), online);
    KEXPECT_EQ(seen.mismatch.load(), online);
    KEXPECT_EQ(seen.untyped.load(), online);
    KEXPECT_EQ(g_wrong_target_ran.load(), 0u);
}

KTEST_MANUAL(security, a_mismatched_indirect_call_is_reported) {
    Probe wrong{reinterpret_cast<ProbeFn>(&wrong_target), 0};
    call_probe(&wrong);
    ktest::note("not reached: the wrong target ran");
}

// --- CPU-private mappings --------------------------------------------------------------------
COHORT_CPU_PRIVATE(uint64_t, g_private_probe);

struct PrivateSeen {
    std::atomic<uint32_t> own_value{0};      // CPUs that read back their own value
    std::atomic<uint32_t> stacks_refused{0}; // CPUs whose read-then-write of a neighbour's IST
                                             // stack through the direct map faulted
    std::atomic<uint32_t> tables_refused{0}; // ... whose write of its top-level table faulted
    std::atomic<uint32_t> reported{0};       // faults whose description names the owner
    std::atomic<uint32_t> tables_readable{0};
};

// Reads a word and writes the same value back: harmless if the write goes through (the test
// then fails), and a fault at the first access the alias refuses.
void touch(void* arg) {
    auto* p = static_cast<volatile uint64_t*>(arg);
    const uint64_t v = *p;
    *p = v;
}
void read_only(void* arg) { (void)*static_cast<volatile uint64_t*>(arg); }

bool names_owner(uint64_t addr, uint32_t owner) {
    char what[128], want[16];
    format(want, sizeof(want), "cpu%u's", owner);
    return x86::cpu_private_describe(addr, what, sizeof(what)) && strstr(what, want) != nullptr;
}

uint64_t probe_value(uint32_t cpu) { return 0x9e1f'0000'0000'0000 | cpu; }

void private_write(void*) {
    arch::IrqOff irq; // on the CPU whose region it is
    cpu_private(g_private_probe) = probe_value(this_cpu()->cpu_id);
}

void private_check(void* arg) {
    auto& seen = *static_cast<PrivateSeen*>(arg);
    const uint32_t me = this_cpu()->cpu_id;
    {
        // Every CPU wrote the same address (the previous pass): each finds its own value.
        arch::IrqOff irq;
        if (cpu_private(g_private_probe) == probe_value(me)) seen.own_value.fetch_add(1);
    }
    // A neighbour's private pages, through the direct map: its lowest IST stack word and its
    // top-level table.
    uint32_t other = me;
    for (uint32_t c = 1; c < cpu_count(); ++c) {
        const uint32_t k = (me + c) % cpu_count();
        if (cpu_by_id(k)->online.load() && cpu_by_id(k)->page_root != 0) {
            other = k;
            break;
        }
    }
    if (other == me) return;
    const CpuData* o = cpu_by_id(other);
    auto* stack = phys_to_virt<uint64_t>(o->private_phys);
    auto* root = phys_to_virt<uint64_t>(o->page_root) + 300; // a kernel-half entry
    FaultInfo f{};
    if (run_catching_faults(touch, stack, &f) && f.vector == 14 &&
        f.cr2 == reinterpret_cast<uint64_t>(stack)) {
        seen.stacks_refused.fetch_add(1);
        if (names_owner(f.cr2, other)) seen.reported.fetch_add(1);
    }
    if (!run_catching_faults(read_only, root, &f)) seen.tables_readable.fetch_add(1);
    if (run_catching_faults(touch, root, &f) && f.vector == 14 && (f.error_code & 3) == 3)
        seen.tables_refused.fetch_add(1);
}

KTEST(security, cpu_private_pages_are_reachable_only_by_their_cpu) {
    static PrivateSeen seen;
    seen.own_value = seen.stacks_refused = seen.tables_refused = seen.reported =
        seen.tables_readable = 0;
    const uint32_t online = cpus_online();
    KASSERT(ktest::run_on_all_cpus(private_write, nullptr));
    KASSERT(ktest::run_on_all_cpus(private_check, &seen));
    const uint32_t others = online > 1 ? online : 0;
    ktest::note("%u CPUs: %u read their own value at the shared address; of %u neighbours' IST "
                "stacks %u refused (%u reported with the owner), top-level tables %u readable "
                "and %u refused a write", online, seen.own_value.load(), others,
                seen.stacks_refused.load(), seen.reported.load(), seen.tables_readable.load(),
                seen.tables_refused.load());
    KEXPECT_EQ(seen.own_value.load(), online);
    KEXPECT_EQ(seen.stacks_refused.load(), others);
    KEXPECT_EQ(seen.reported.load(), others);
    KEXPECT_EQ(seen.tables_readable.load(), others);
    KEXPECT_EQ(seen.tables_refused.load(), others);
}

// A space that gets a new top-level entry while other CPUs run it: each copies the entry on its
// first access (lower_half_sync_fault) and reads the right memory.
constexpr uint64_t kGrowVa = 0x60000000, kGrowVa2 = kGrowVa + (1ull << 39); // the next slot
struct Grow {
    std::atomic<uint32_t> phase{0}, running{0}, saw_new{0}, wrong{0};
    uint64_t a = 0, b = 0;
};
void grow_reader(void* arg) {
    auto& g = *static_cast<Grow*>(arg);
    bool counted = false, saw = false;
    for (;;) {
        const uint32_t ph = g.phase.load(std::memory_order_acquire);
        if (ph == 2) break;
        if (*reinterpret_cast<volatile uint64_t*>(kGrowVa) != g.a) g.wrong.fetch_add(1);
        if (!counted) {
            counted = true; // runs the space with only the first entry
            g.running.fetch_add(1);
        }
        if (ph == 1 && !saw) {
            if (*reinterpret_cast<volatile uint64_t*>(kGrowVa2) != g.b) g.wrong.fetch_add(1);
            saw = true;
            g.saw_new.fetch_add(1);
        }
        yield();
    }
}

KTEST(security, a_space_that_grows_is_seen_on_every_cpu_running_it) {
    AddressSpace* as = address_space_create();
    KASSERT(as != nullptr);
    const uint64_t fa = pmm::alloc_zeroed_page(), fb = pmm::alloc_zeroed_page();
    KASSERT(fa != 0 && fb != 0);
    static Grow g;
    g.phase = 0, g.running = 0, g.saw_new = 0, g.wrong = 0;
    g.a = 0x1111'2222'3333'4444;
    g.b = 0x5555'6666'7777'8888;
    *phys_to_virt<uint64_t>(fa) = g.a;
    *phys_to_virt<uint64_t>(fb) = g.b;
    KASSERT(address_space_map(as, kGrowVa, fa, false));
    const uint32_t online = cpus_online();
    const uint32_t readers = online < 2 ? 2 : online > 16 ? 16 : online;
    Task* tasks[16];
    for (uint32_t i = 0; i < readers; ++i) {
        tasks[i] = task_create(grow_reader, &g, {.name = "grow", .address_space = as});
        KASSERT(tasks[i] != nullptr);
    }
    // Every reader runs the space with one top-level entry; then a second one appears.
    // Bounded, so that a reader that never runs fails the test rather than hanging it.
    KEXPECT(ktest::wait_for([&] { return g.running.load() == readers; }, 60'000'000'000));
    const uint64_t syncs_before = x86::lower_half_syncs();
    KASSERT(address_space_map(as, kGrowVa2, fb, false));
    g.phase = 1;
    KEXPECT(ktest::wait_for([&] { return g.saw_new.load() == readers; }, 60'000'000'000));
    g.phase = 2;
    for (uint32_t i = 0; i < readers; ++i) task_join(tasks[i]);
    // Each CPU that ran the space before it grew copied the entry on its first use (a CPU
    // switching spaces in between gets it with the rest instead): at least one such copy.
    const uint64_t syncs = x86::lower_half_syncs() - syncs_before;
    ktest::note("%u readers saw the new entry, %u wrong reads; %lu CPUs copied it on a fault",
                g.saw_new.load(), g.wrong.load(), syncs);
    KEXPECT(syncs >= 1);
    KEXPECT_EQ(g.saw_new.load(), readers);
    KEXPECT_EQ(g.wrong.load(), 0u);
    address_space_unmap(as, kGrowVa, 4096);
    address_space_unmap(as, kGrowVa2, 4096);
    address_space_destroy(as);
    pmm::free_pages(fa);
    pmm::free_pages(fb);
}

// The stack protector's canary is the running task's: each task has its own, and the CPU's copy
// (what compiled code checks against) is switched with the task.
struct CanarySeen {
    uint64_t cpu_copy = 0, task_own = 0;
};
void record_canary(void* arg) {
    auto& c = *static_cast<CanarySeen*>(arg);
    arch::IrqOff irq; // both read on one CPU, with no switch in between
    c.cpu_copy = this_cpu()->stack_canary;
    c.task_own = current_task()->canary;
}

KTEST(security, each_task_runs_with_its_own_stack_canary) {
    constexpr uint32_t kTasks = 8;
    CanarySeen seen[kTasks];
    Task* tasks[kTasks];
    for (uint32_t i = 0; i < kTasks; ++i) {
        TaskOptions o;
        o.name = "canary";
        tasks[i] = task_create(record_canary, &seen[i], o);
        KASSERT(tasks[i] != nullptr);
    }
    for (uint32_t i = 0; i < kTasks; ++i) task_join(tasks[i]);
    CanarySeen mine;
    record_canary(&mine);
    uint32_t distinct = 0;
    for (uint32_t i = 0; i < kTasks; ++i) {
        KEXPECT_EQ(seen[i].cpu_copy, seen[i].task_own);
        KEXPECT(seen[i].task_own != 0);
        bool unique = seen[i].task_own != mine.task_own;
        for (uint32_t j = 0; j < i; ++j) unique = unique && seen[j].task_own != seen[i].task_own;
        distinct += unique;
    }
    KEXPECT_EQ(mine.cpu_copy, mine.task_own);
    KEXPECT_EQ(distinct, kTasks);
}

// Writes past the end of a buffer on its own stack: the stack protector catches it on return
// (kernel.security.stack_overrun_is_caught expects the panic naming this function).
// Everything from the buffer up to the frame pointer: the canary (somewhere above the buffer
// among the locals) is overwritten, the saved frame pointer and return address are not, so the
// panic's backtrace can still walk past this frame.
[[gnu::noinline]] void overrun_the_stack() {
    char buf[16];
    volatile char* p = buf;
    const size_t n = static_cast<size_t>(static_cast<char*>(__builtin_frame_address(0)) - buf);
    for (size_t i = 0; i < n; ++i) p[i] = 'A';
    asm volatile("" : : "r"(buf) : "memory");
}

KTEST_MANUAL(security, a_stack_overrun_is_caught) {
    overrun_the_stack();
    ktest::note("not reached");
}

} // namespace
} // namespace cohort
