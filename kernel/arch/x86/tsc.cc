#include "arch/x86/tsc.h"

#include "arch/x86/cpu.h"
#include "debug/log.h"
#include "lib/muldiv.h"
#include "time/clock.h"

namespace cohort {

namespace {
uint64_t g_tsc_hz = 0;
uint64_t g_tsc_base = 0;
// ns = (ticks * g_mult) >> 32; 128-bit product so long uptimes cannot overflow.
uint64_t g_mult = 0;
x86::TscSource g_source = x86::TscSource::Pit;
} // namespace

bool clock_ready() { return g_tsc_hz != 0; }
uint64_t tsc_hz() { return g_tsc_hz; }
uint64_t tsc_to_ns(uint64_t ticks) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(ticks) * g_mult) >> 32);
}
uint64_t monotonic_ns() { return tsc_to_ns(x86::rdtsc() - g_tsc_base); }

void delay_ns(uint64_t ns) {
    const uint64_t start = x86::rdtsc();
    const uint64_t ticks = mul_div(ns, g_tsc_hz, 1000000000) + 1;
    while (x86::rdtsc() - start < ticks) x86::pause();
}

namespace x86 {

const char* tsc_source_name(TscSource s) {
    switch (s) {
    case TscSource::Cpuid15: return "CPUID.15h";
    case TscSource::Cpuid16Verified: return "CPUID.16h (checked against the PIT)";
    case TscSource::Pit: return "PIT calibration";
    }
    return "?";
}

TscSource tsc_source() { return g_source; }

uint64_t pit_measure_tsc(uint32_t pit_ticks) {
    if (pit_ticks == 0 || pit_ticks > 0xffff) return 0;
    // Channel 2's gate is bit 0 of port 0x61 and its output is readable at bit 5, so we can
    // poll for the terminal count without interrupts. Speaker (bit 1) stays off.
    uint8_t ctl = inb(0x61);
    outb(0x61, (ctl & ~0x02) & ~0x01);
    outb(0x43, 0xb0); // channel 2, lobyte/hibyte, mode 0 (interrupt on terminal count)
    outb(0x42, pit_ticks & 0xff);
    outb(0x42, (pit_ticks >> 8) & 0xff);
    ctl = inb(0x61);
    outb(0x61, (ctl & ~0x02) | 0x01); // gate on: counting starts
    const uint64_t start = rdtsc();
    // Generous bound: 100x the expected time at 10 GHz, so a missing PIT ends the loop.
    const uint64_t limit = uint64_t(pit_ticks) * 1000000;
    uint64_t end = start;
    while ((inb(0x61) & 0x20) == 0) {
        end = rdtsc();
        if (end - start > limit) return 0;
    }
    end = rdtsc();
    outb(0x61, inb(0x61) & ~0x01);
    return end - start;
}

namespace {

uint64_t calibrate_with_pit() {
    // Three 5 ms windows; the smallest is the one least inflated by anything that delayed our
    // polling (an SMI on hardware, a descheduled vCPU under emulation).
    constexpr uint32_t kTicks = kPitHz / 200;
    uint64_t best = 0;
    for (int i = 0; i < 3; ++i) {
        const uint64_t t = pit_measure_tsc(kTicks);
        if (t != 0 && (best == 0 || t < best)) best = t;
    }
    return best * kPitHz / kTicks;
}

} // namespace

void tsc_init() {
    uint64_t hz = 0;
    const uint32_t max_leaf = cpuid(0).eax;
    if (max_leaf >= 0x15) {
        // TSC = crystal * EBX / EAX. Only trust it when the crystal frequency is given.
        const CpuidResult r = cpuid(0x15);
        if (r.eax != 0 && r.ebx != 0 && r.ecx != 0) {
            hz = uint64_t(r.ecx) * r.ebx / r.eax;
            g_source = TscSource::Cpuid15;
        }
    }
    if (hz == 0 && max_leaf >= 0x16) {
        // The base frequency is nominal; accept it only if the PIT agrees within 1%.
        const uint64_t nominal = uint64_t(cpuid(0x16).eax & 0xffff) * 1000000;
        if (nominal != 0) {
            const uint64_t measured = calibrate_with_pit();
            const uint64_t diff = measured > nominal ? measured - nominal : nominal - measured;
            if (measured != 0 && diff * 100 <= nominal) {
                hz = nominal;
                g_source = TscSource::Cpuid16Verified;
            } else if (measured != 0) {
                hz = measured;
                g_source = TscSource::Pit;
            }
        }
    }
    if (hz == 0) {
        hz = calibrate_with_pit();
        g_source = TscSource::Pit;
    }
    if (hz == 0) {
        // No PIT and no CPUID answer: keep going with a plausible guess rather than dividing by
        // zero, and say loudly that timestamps are wrong.
        hz = 1000000000;
        log_error("time: cannot determine the TSC frequency; assuming 1 GHz, times are wrong");
    }
    g_mult = mul_div(1000000000, uint64_t{1} << 32, hz);
    g_tsc_base = rdtsc();
    g_tsc_hz = hz;
}

} // namespace x86
} // namespace cohort
