// Clocks: the TSC calibration agrees with an independent timer, and the LAPIC timer fires on
// time. Bounds are generous upward (an emulator may be descheduled) but strict downward.
#include "arch/x86/cpu.h"
#include "arch/x86/interrupts.h"
#include "arch/x86/lapic.h"
#include "arch/x86/tsc.h"
#include "test/ktest.h"
#include "time/clock.h"

namespace cohort {
namespace {

KTEST(time, tsc_calibration_agrees_with_pit) {
    // 50 ms of PIT time measured in TSC ticks, converted with our calibration.
    constexpr uint32_t kTicks = x86::kPitHz / 20;
    const uint64_t tsc = x86::pit_measure_tsc(kTicks);
    if (tsc == 0) return ktest::skip("no PIT");
    const uint64_t ns = tsc_to_ns(tsc);
    ktest::note("50 ms of PIT = %lu us by the TSC clock (TSC %lu Hz)", ns / 1000, tsc_hz());
    KEXPECT(ns >= 49'000'000);  // within 2% below...
    KEXPECT(ns <= 60'000'000);  // ...and a descheduled vCPU may stretch it a little above
}

KTEST(time, monotonic_clock_advances) {
    const uint64_t a = monotonic_ns();
    delay_ns(2'000'000);
    const uint64_t b = monotonic_ns();
    KEXPECT(b - a >= 2'000'000);
    KEXPECT(b - a < 500'000'000);
}

volatile uint64_t g_fired_at = 0;
void timer_fired(x86::InterruptFrame&) {
    g_fired_at = monotonic_ns();
    x86::lapic_eoi();
}

KTEST(time, lapic_oneshot_fires_on_time) {
    constexpr uint8_t kTestVector = 0xe0;
    x86::set_irq_handler(kTestVector, timer_fired);
    constexpr uint64_t kDelaysMs[] = {1, 5, 20};
    for (uint64_t ms : kDelaysMs) {
        g_fired_at = 0;
        const uint64_t start = monotonic_ns();
        x86::lapic_timer_oneshot(ms * 1'000'000, kTestVector);
        // Check with interrupts off, then enable-and-halt atomically, so the interrupt cannot
        // slip in between the check and the HLT (the classic lost wake-up).
        for (;;) {
            x86::cli();
            if (g_fired_at != 0 || monotonic_ns() - start > 2'000'000'000) break;
            x86::sti_halt();
        }
        x86::sti();
        const uint64_t elapsed = g_fired_at - start;
        ktest::note("one-shot of %lu ms fired after %lu us", ms, elapsed / 1000);
        KEXPECT(g_fired_at != 0);
        // The LAPIC calibration may be off by a fraction of a percent; never more.
        KEXPECT(elapsed >= ms * 990'000);
        KEXPECT(elapsed < ms * 1'000'000 + 200'000'000);
    }
    x86::lapic_timer_stop();
    x86::set_irq_handler(kTestVector, nullptr);
}

} // namespace
} // namespace cohort
