#include "arch/x86/tsc.h"

#include <atomic>

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
std::atomic<bool> g_synchronized{true};
} // namespace

bool clock_ready() { return g_tsc_hz != 0; }
uint64_t tsc_hz() { return g_tsc_hz; }
uint64_t tsc_to_ns(uint64_t ticks) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(ticks) * g_mult) >> 32);
}
uint64_t tsc_at_ns(uint64_t ns) {
    // The inverse of tsc_to_ns, rounded up: tsc_to_ns(result - base) >= ns.
    // ceil(ns * 2^32 / g_mult) = floor((ns * 2^32 + g_mult - 1) / g_mult), the addition split
    // so that it cannot overflow: (ns * 2^32 - 1) / g_mult + 1 for ns > 0.
    if (ns == 0) return g_tsc_base;
    const uint64_t q = mul_div(ns, uint64_t{1} << 32, g_mult);
    return g_tsc_base + q + 1; // at most one tick late, never early
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

bool tsc_synchronized() { return g_synchronized.load(std::memory_order_acquire); }

void tsc_mark_unsynchronized(uint64_t max_warp_ns) {
    if (!g_synchronized.exchange(false, std::memory_order_acq_rel)) return;
    // Nothing else to fall back to yet (no HPET or ACPI PM timer driver): keep the TSC, and
    // say what that costs.
    log_warn("time: the CPUs' TSCs are not synchronised (up to %lu ns apart): monotonic time "
             "read on different CPUs may be skewed, and timers may fire early or late",
             max_warp_ns);
}

namespace {
/// Latches and reads PIT channel 2's current count (it counts down).
uint16_t pit_read_count() {
    outb(0x43, 0x80); // latch channel 2
    const uint8_t lo = inb(0x42);
    const uint8_t hi = inb(0x42);
    return static_cast<uint16_t>(lo | (hi << 8));
}
} // namespace

uint64_t pit_measure_tsc(uint32_t pit_ticks, uint64_t* uncertainty) {
    if (pit_ticks == 0 || pit_ticks > 0xff00) return 0;
    // Channel 2 counts down from 0xffff (mode 0); we read the counter itself at both ends of
    // the window, bracketed by TSC reads. Whatever delays us (an SMI, a descheduled vCPU, an
    // emulator that starts counting late) then changes the window's length, not its accuracy:
    // the PIT ticks that elapsed are counted, not assumed. Gate is bit 0 of port 0x61; the
    // speaker (bit 1) stays off.
    outb(0x61, (inb(0x61) & ~0x02) | 0x01);
    outb(0x43, 0xb0); // channel 2, lobyte/hibyte, mode 0, binary
    outb(0x42, 0xff);
    outb(0x42, 0xff);
    // Let it take the count before the first read.
    const uint64_t settle_start = rdtsc();
    uint16_t c0 = pit_read_count();
    while (c0 == 0xffff || c0 < 0x100) {
        if (rdtsc() - settle_start > 1'000'000'000ull) return 0; // not counting: no PIT here
        c0 = pit_read_count();
    }
    const uint64_t t0a = rdtsc();
    c0 = pit_read_count();
    const uint64_t t0b = rdtsc();
    uint16_t c1 = c0;
    uint64_t t1a = t0b, t1b = t0b;
    const uint64_t limit_start = rdtsc();
    while (static_cast<uint16_t>(c0 - c1) < pit_ticks) {
        t1a = rdtsc();
        c1 = pit_read_count();
        t1b = rdtsc();
        if (c1 > c0) return 0;                              // wrapped: cannot happen if counting
        if (t1b - limit_start > 100'000'000'000ull) return 0; // ~30 s at any plausible rate
    }
    outb(0x61, inb(0x61) & ~0x01);
    const uint64_t elapsed = static_cast<uint16_t>(c0 - c1);
    // TSC between the midpoints of the two bracketing reads, scaled to exactly pit_ticks.
    const uint64_t tsc = ((t1a + t1b) / 2) - ((t0a + t0b) / 2);
    if (uncertainty != nullptr) *uncertainty = (t0b - t0a) + (t1b - t1a);
    return tsc * pit_ticks / elapsed;
}

namespace {

uint64_t calibrate_with_pit() {
    // 5 ms windows; a window whose bracketing counter reads took too long (an SMI or a
    // descheduled vCPU landed on a read) is discarded, and the shortest clean one wins.
    // (Polling the OUT pin instead was off by up to 60% under OVMF.)
    constexpr uint32_t kTicks = kPitHz / 200;
    uint64_t best = 0, fallback = 0;
    int clean = 0;
    for (int i = 0; i < 16 && clean < 3; ++i) {
        uint64_t uncertainty = 0;
        const uint64_t t = pit_measure_tsc(kTicks, &uncertainty);
        if (t == 0) return 0;
        if (fallback == 0 || t < fallback) fallback = t;
        if (uncertainty * 1000 > t) continue; // a read took > 0.1% of the window
        ++clean;
        if (best == 0 || t < best) best = t;
    }
    if (best == 0) {
        log_warn("time: every PIT window was disturbed; the TSC calibration may be off");
        best = fallback;
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
