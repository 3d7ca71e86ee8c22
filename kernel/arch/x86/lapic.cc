#include "arch/x86/lapic.h"

#include <atomic>

#include "arch/x86/cpu.h"
#include "arch/x86/cpu_features.h"
#include "arch/x86/interrupts.h"
#include "boot/params.h"
#include "debug/log.h"
#include "debug/panic.h"
#include "lib/muldiv.h"
#include "mm/vmm.h"
#include "time/clock.h"

namespace cohort::x86 {

namespace {

// Register offsets in the xAPIC MMIO page; the x2APIC MSR is 0x800 + offset / 16.
enum Reg : uint32_t {
    kId = 0x20,
    kVersion = 0x30,
    kTpr = 0x80,
    kLdr = 0xd0,
    kIcrLow = 0x300,
    kIcrHigh = 0x310,
    kEoi = 0xb0,
    kIrr = 0x200, // 8 registers, 0x10 apart: vectors 32 at a time
    kSpurious = 0xf0,
    kEsr = 0x280,
    kLvtTimer = 0x320,
    kLvtLint0 = 0x350,
    kLvtLint1 = 0x360,
    kLvtError = 0x370,
    kTimerInitial = 0x380,
    kTimerCurrent = 0x390,
    kTimerDivide = 0x3e0,
};
constexpr uint64_t kApicBaseEnable = 1u << 11;
constexpr uint64_t kApicBaseX2 = 1u << 10;
constexpr uint32_t kLvtMasked = 1u << 16;
constexpr uint32_t kLvtTscDeadline = 2u << 17; // timer mode bits 18:17
constexpr uint32_t kMsrTscDeadline = 0x6e0;
constexpr uint32_t kIcrNmi = 4u << 8;
constexpr uint32_t kIcrInit = 5u << 8;
constexpr uint32_t kIcrStartup = 6u << 8;
constexpr uint32_t kIcrPending = 1u << 12;
constexpr uint32_t kIcrAssert = 1u << 14;
constexpr uint32_t kIcrLevelTrigger = 1u << 15;
constexpr uint32_t kIcrAllButSelf = 3u << 18; // destination shorthand: the destination is ignored
constexpr uint32_t kIcrLogical = 1u << 11;     // destination mode: logical

ApicMode g_mode = ApicMode::XApic;
volatile uint32_t* g_mmio = nullptr;
uint64_t g_phys = 0;
uint64_t g_timer_hz = 0; // at divide-by-1
bool g_deadline = false;  // TSC-deadline mode in use

uint32_t read(Reg r) {
    if (g_mode == ApicMode::X2Apic) return static_cast<uint32_t>(rdmsr(0x800 + r / 16));
    return g_mmio[r / 4];
}
void write(Reg r, uint32_t v) {
    if (g_mode == ApicMode::X2Apic) wrmsr(0x800 + r / 16, v);
    else g_mmio[r / 4] = v;
}

void spurious_handler(InterruptFrame&) {
    // Spurious interrupts must not be acknowledged (SDM 10.9): no EOI here.
}

// WRMSR to the x2APIC registers and to IA32_TSC_DEADLINE is not serializing (Intel SDM Vol. 3A
// 9.3 "Serializing Instructions" and 11.12.3 "MSR Access in x2APIC Mode"): it may take effect
// before earlier stores are globally visible. An IPI or timer interrupt that overtakes the data
// it announces (a queued remote call, a timer entry) finds nothing to do, and nothing sends it
// again. MFENCE drains the stores; LFENCE keeps the WRMSR from executing before the MFENCE has
// completed.
inline void wrmsr_after_stores() { asm volatile("mfence; lfence" ::: "memory"); }

// How many lost-IPI warnings to print: the first few say what happened, more would flood the
// console from a CPU that is already in trouble.
constexpr uint32_t kIcrStuckReports = 4;
std::atomic<uint32_t> g_icr_stuck{0};

void write_icr(uint32_t apic_id, uint32_t low) {
    // Both halves must go out together: no interrupt handler may send its own IPI in between.
    InterruptGuard irq;
    if (g_mode == ApicMode::X2Apic) {
        // One MSR write sends it; x2APIC has no delivery-status bit to wait for.
        wrmsr_after_stores();
        wrmsr(0x800 + kIcrLow / 16, (uint64_t(apic_id) << 32) | low);
        return;
    }
    // xAPIC: wait until the previous IPI has been accepted before reusing the ICR. The MMIO
    // writes below are uncached, hence ordered after earlier stores: no fence needed here.
    constexpr int kIcrSpins = 1000000;
    int i = 0;
    for (; i < kIcrSpins && (g_mmio[kIcrLow / 4] & kIcrPending); ++i) pause();
    if (i == kIcrSpins) {
        // The write below replaces an IPI the APIC never accepted: that IPI is lost.
        const uint32_t n = g_icr_stuck.fetch_add(1, std::memory_order_relaxed);
        if (n < kIcrStuckReports)
            log_error("lapic: previous IPI still pending after %d polls (ICR %#x); overwriting it "
                      "to send %#x to APIC %u%s",
                      kIcrSpins, g_mmio[kIcrLow / 4], low, apic_id,
                      n + 1 == kIcrStuckReports ? " (further reports suppressed)" : "");
    }
    g_mmio[kIcrHigh / 4] = apic_id << 24;
    g_mmio[kIcrLow / 4] = low;
}

void enable_common() {
    set_irq_handler(kVecSpurious, spurious_handler);
    write(kTpr, 0);
    write(kLvtTimer, kLvtMasked);
    write(kLvtError, kLvtMasked);
    write(kEsr, 0);
    write(kSpurious, 0x100 | kVecSpurious); // software enable
}

void enter_x2apic(uint64_t base) {
    // x2APIC must be entered from xAPIC-enabled state (SDM 10.12.5).
    wrmsr(msr::kApicBase, base | kApicBaseEnable);
    wrmsr(msr::kApicBase, base | kApicBaseEnable | kApicBaseX2);
    // The same value once more: x2APIC to x2APIC changes nothing on hardware, but Bochs 2.7
    // derives the logical ID (LDR) only on a write made while already in x2APIC mode, and
    // reads 0 otherwise (cluster IPIs would reach nobody; ipi_note_logical_id checks).
    wrmsr(msr::kApicBase, base | kApicBaseEnable | kApicBaseX2);
}

} // namespace

void lapic_init_ap() {
    const uint64_t base = rdmsr(msr::kApicBase);
    if (g_mode == ApicMode::X2Apic) {
        enter_x2apic(base);
    } else {
        // The xAPIC registers are at the same physical address on every CPU (the BSP's mapping
        // serves all), unless firmware moved this one: then we cannot drive it.
        if ((base & 0x000ffffffffff000ull) != g_phys)
            panic("lapic: this CPU's APIC is at %#lx, the boot CPU's at %#lx",
                  static_cast<uint64_t>(base & 0x000ffffffffff000ull), g_phys);
        wrmsr(msr::kApicBase, (base & ~kApicBaseX2) | kApicBaseEnable);
    }
    enable_common();
}

void lapic_send_ipi(uint32_t apic_id, uint8_t vector) { write_icr(apic_id, vector); }

void lapic_send_ipi_all_but_self(uint8_t vector) { write_icr(0, kIcrAllButSelf | vector); }

void lapic_send_ipi_logical(uint32_t destination, uint8_t vector) {
    if (g_mode == ApicMode::X2Apic) write_icr(destination, kIcrLogical | vector);
}

uint32_t lapic_logical_id() { return g_mode == ApicMode::X2Apic ? read(kLdr) : 0; }

void lapic_send_nmi(uint32_t apic_id) { write_icr(apic_id, kIcrNmi); }

void lapic_send_init(uint32_t apic_id) {
    write_icr(apic_id, kIcrInit | kIcrLevelTrigger | kIcrAssert);
    // The de-assert only matters to pre-Pentium 4 CPUs and does not exist in x2APIC mode.
    if (g_mode == ApicMode::XApic) write_icr(apic_id, kIcrInit | kIcrLevelTrigger);
}

void lapic_send_sipi(uint32_t apic_id, uint8_t page) { write_icr(apic_id, kIcrStartup | page); }

void disable_legacy_pic() {
    // Remap to 0x20-0x2f first: a PIC interrupt raised before the mask takes effect must not
    // arrive looking like a CPU exception.
    outb(0x20, 0x11);
    outb(0xa0, 0x11);
    outb(0x21, 0x20);
    outb(0xa1, 0x28);
    outb(0x21, 0x04);
    outb(0xa1, 0x02);
    outb(0x21, 0x01);
    outb(0xa1, 0x01);
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
}

void lapic_init_boot_cpu(bool allow_x2apic) {
    const CpuFeatures& f = boot_cpu_features();
    if (!f.apic) panic("lapic: this CPU has no local APIC; Cohort needs one");
    uint64_t base = rdmsr(msr::kApicBase);
    const uint64_t phys = base & 0x000ffffffffff000ull;
    if (f.x2apic && allow_x2apic) {
        enter_x2apic(base);
        g_mode = ApicMode::X2Apic;
    } else {
        if (base & kApicBaseX2) {
            // Firmware left x2APIC on but we were told not to use it: leaving x2APIC requires
            // disabling the APIC first (SDM 10.12.5).
            wrmsr(msr::kApicBase, base & ~(kApicBaseEnable | kApicBaseX2));
            base &= ~kApicBaseX2;
        }
        wrmsr(msr::kApicBase, base | kApicBaseEnable);
        g_phys = phys;
        g_mmio = static_cast<volatile uint32_t*>(vmm::map_device(phys, 4096));
        if (g_mmio == nullptr) panic("lapic: cannot map the local APIC registers at %#lx", phys);
        g_mode = ApicMode::XApic;
    }
    enable_common();
    log_info("lapic: %s mode, id %u, version %#x", g_mode == ApicMode::X2Apic ? "x2APIC" : "xAPIC",
             lapic_id(), read(kVersion) & 0xff);
}

ApicMode lapic_mode() { return g_mode; }

uint32_t lapic_id() {
    const uint32_t id = read(kId);
    return g_mode == ApicMode::X2Apic ? id : id >> 24;
}

void lapic_eoi() { write(kEoi, 0); }

bool lapic_vector_pending(uint8_t vector) {
    const uint32_t irr = read(static_cast<Reg>(kIrr + 0x10 * (vector / 32)));
    return (irr >> (vector % 32)) & 1;
}

void lapic_timer_calibrate() {
    // Count down from the maximum over 2 ms of TSC time: the TSC is already calibrated, so the
    // only error is the few reads' latency (under 0.1%; a longer window only delayed boot). All
    // 32 bits of the counters matter: at QEMU's 1 GHz timer clock, 2 ms is 2 million ticks.
    write(kTimerDivide, 0xb); // divide by 1
    write(kLvtTimer, kLvtMasked);
    constexpr uint64_t kWindowNs = 2'000'000;
    const uint64_t t0 = monotonic_ns();
    write(kTimerInitial, 0xffffffff);
    while (monotonic_ns() - t0 < kWindowNs) pause();
    const uint32_t remaining = read(kTimerCurrent);
    const uint64_t elapsed_ns = monotonic_ns() - t0;
    write(kTimerInitial, 0);
    const uint64_t ticks = 0xffffffffull - remaining;
    g_timer_hz = ticks * 1'000'000'000ull / elapsed_ns;
    // TSC-deadline needs no calibration of its own and has no 32-bit range limit, but the count-
    // down timer above is still used by bring-up waits and by CPUs without it.
    const auto choice = params().get("lapic.timer");
    const bool want_deadline = !choice || *choice != "oneshot";
    if (choice && *choice != "oneshot" && *choice != "deadline")
        log_warn("lapic: unknown lapic.timer=%.*s (oneshot or deadline); using the default",
                 static_cast<int>(choice->size()), choice->data());
    g_deadline = want_deadline && boot_cpu_features().tsc_deadline;
    log_info("lapic: timer runs at %lu.%03lu MHz; scheduler timer in %s mode", g_timer_hz / 1000000,
             (g_timer_hz / 1000) % 1000,
             g_deadline ? "TSC-deadline"
                        : boot_cpu_features().tsc_deadline ? "one-shot (TSC-deadline turned off)"
                                                           : "one-shot (no TSC-deadline)");
}

bool lapic_timer_has_deadline() { return g_deadline; }

void lapic_timer_deadline(uint64_t tsc, uint8_t vector) {
    write(kLvtTimer, vector | kLvtTscDeadline);
    // In xAPIC mode the LVT write is an uncached store and WRMSR does not wait for it: without a
    // fence the deadline could reach a timer still in the old mode, where it is ignored.
    // The same fence keeps the deadline write behind the stores that queued the timer
    // (SDM Vol. 3A 9.3: WRMSR to IA32_TSC_DEADLINE is not serializing).
    wrmsr_after_stores();
    wrmsr(kMsrTscDeadline, tsc == 0 ? 1 : tsc); // 0 would disarm
}

uint64_t lapic_timer_hz() { return g_timer_hz; }

void lapic_timer_oneshot(uint64_t ns, uint8_t vector) {
    uint64_t ticks = mul_div(ns, g_timer_hz, 1000000000);
    uint32_t divide_code = 0xb; // /1
    // Longer delays than 32 bits allow: use a larger divider.
    static constexpr struct {
        uint32_t code;
        uint32_t div;
    } kDividers[] = {{0xb, 1}, {0x0, 2}, {0x1, 4}, {0x2, 8}, {0x3, 16}, {0x8, 32}, {0x9, 64}, {0xa, 128}};
    uint32_t div = 1;
    for (const auto& d : kDividers) {
        divide_code = d.code;
        div = d.div;
        if (ticks / d.div <= 0xffffffffull) break;
    }
    ticks /= div;
    if (ticks > 0xffffffffull) ticks = 0xffffffffull;
    if (ticks == 0) ticks = 1;
    write(kTimerDivide, divide_code);
    write(kLvtTimer, vector); // one-shot, unmasked
    write(kTimerInitial, static_cast<uint32_t>(ticks));
}

void lapic_timer_stop() {
    if (g_deadline) wrmsr(kMsrTscDeadline, 0); // disarm before the mode change below
    write(kLvtTimer, kLvtMasked);
    write(kTimerInitial, 0);
}

} // namespace cohort::x86
