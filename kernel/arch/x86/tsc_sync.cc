#include "arch/x86/tsc_sync.h"

#include <atomic>

#include "arch/x86/cpu.h"
#include "arch/x86/tsc.h"
#include "boot/params.h"
#include "debug/log.h"
#include "smp/call.h"
#include "smp/cpu.h"
#include "smp/percpu.h"
#include "time/clock.h"
#include "time/tsc_warp.h"

namespace cohort::x86 {

namespace {

// Turns each side takes per AP: a few hundred already catch any warp larger than the round
// trip between two CPUs (a few hundred cycles on hardware); more add chances to land on a
// moment the CPUs disagree.
constexpr uint32_t kTurns = 1000;
// Turns taken even when duration_cycles() has run out (a slow partner's first turn can take
// that long under an emulator).
constexpr uint32_t kMinTurns = 8;
// APs tested when there are more: spread evenly over the logical ids, the last one included.
// Under TCG on a busy two-core host one AP takes 2 to 6 ms (mostly waiting for the emulator to
// schedule the partner's thread), so testing all 254 APs of a 255-CPU guest one after the
// other would add about a second to the boot. TSCs drift apart per package (sockets reset and
// powered separately), and every CPU's IA32_TSC_ADJUST is aligned regardless, so a sample
// that spans the ids still sees a package that is off.
constexpr uint32_t kMaxTested = 32;

// Per AP, so that an AP that answers too late can only disturb its own test. The handshake
// words hold the attempt number they belong to. (No alignas: per-CPU copies keep only the
// alignment the heap gives them.)
struct SyncState {
    TscSyncStatus status;
    TscWarpResult ap_side;                 // valid once `exited` holds the attempt
    std::atomic<uint32_t> ready, go, exited;
    std::atomic<bool> stop;                // the boot CPU's side has ended
    uint64_t read_offset;                  // smp.inject_tsc_warp where the TSC ignores writes
    std::atomic<uint64_t> shared;          // the word the two sides take turns on
};
COHORT_PERCPU(SyncState, g_sync);

bool g_bsp_has_adjust = false;
int64_t g_bsp_adjust = 0;

// LFENCE keeps RDTSC from running before the load of the other side's reading completes
// (SDM Vol. 2B, RDTSC): otherwise a correct TSC could read "before" a value it follows.
uint64_t rdtsc_ordered() {
    asm volatile("lfence" ::: "memory");
    return rdtsc();
}

// How long one side waits for the other. A virtual CPU can be descheduled by its host for tens
// of milliseconds (seen under TCG on a loaded two-core host): a partner that is merely not
// running must not look dead there.
uint64_t patience_cycles() {
    return boot_cpu_features().hypervisor ? tsc_hz() : tsc_hz() / 10;
}

// The boot CPU ends a pair after this long even if kTurns were not reached. Hardware does
// 1000 turns in well under a millisecond; under TCG on an oversubscribed host every turn can
// cost a host time slice (both vCPUs spin, and the one waiting keeps the other off the core),
// and 2 x 1000 of those took up to 2 s per AP.
uint64_t duration_cycles() { return tsc_hz() / 500; } // 2 ms

bool wait_for(const std::atomic<uint32_t>& word, uint32_t value, uint64_t cycles) {
    const uint64_t start = rdtsc();
    while (word.load(std::memory_order_acquire) != value) {
        if (rdtsc() - start > cycles) return false;
        pause();
    }
    return true;
}

// Runs on the AP being checked, as an asynchronous remote call (interrupts off).
void ap_side(void* arg) {
    const auto attempt = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(arg));
    SyncState& s = per_cpu(g_sync);
    s.ready.store(attempt, std::memory_order_release);
    if (wait_for(s.go, attempt, patience_cycles()))
        s.ap_side = tsc_warp_side(s.shared, 1, {kTurns, 0, 0, patience_cycles(), &s.stop},
                                  [&s] { return rdtsc_ordered() + s.read_offset; });
    s.exited.store(attempt, std::memory_order_release);
}

enum class PairOutcome { Done, Retry, NoAnswer };

/// One attempt at the test with AP `id` (attempts count from 1).
PairOutcome test_pair(uint32_t id, SyncState& s, uint32_t attempt, TscWarpResult& mine) {
    s.shared.store(0, std::memory_order_relaxed);
    s.stop.store(false, std::memory_order_relaxed);
    const CallStatus cs = call_on(id, ap_side, reinterpret_cast<void*>(uintptr_t{attempt}),
                                  /*wait=*/false);
    if (cs != CallStatus::Ok || !wait_for(s.ready, attempt, patience_cycles())) {
        log_warn("time: cpu%u did not join the TSC warp test (%s)", id,
                 cs != CallStatus::Ok ? call_status_name(cs) : "no answer");
        return PairOutcome::NoAnswer;
    }
    {
        // Both sides with interrupts off: a tick in the middle would only delay a turn, but
        // there is no reason to stretch the test.
        InterruptGuard irq;
        s.go.store(attempt, std::memory_order_release);
        mine = tsc_warp_side(s.shared, 0,
                             {kTurns, kMinTurns, duration_cycles(), patience_cycles(), nullptr},
                             rdtsc_ordered);
        s.stop.store(true, std::memory_order_release);
    }
    // The AP's side ends at most one patience after ours; until it has, a new attempt could
    // meet its stale turns on `shared`.
    if (!wait_for(s.exited, attempt, 2 * patience_cycles())) {
        log_warn("time: cpu%u did not finish the TSC warp test", id);
        return PairOutcome::NoAnswer;
    }
    return mine.timed_out || s.ap_side.timed_out ? PairOutcome::Retry : PairOutcome::Done;
}

void inject_warp(uint32_t cpu_id, const CpuFeatures& mine, SyncState& s) {
    // Try IA32_TSC_ADJUST first (it is what firmware gets wrong), then a plain TSC write. An
    // emulator may accept either MSR and still not move the counter (QEMU's TCG does): then
    // the warp test adds the offset to this CPU's readings instead, which checks the detection
    // and the reporting, though not the hardware.
    const uint64_t before = rdtsc();
    if (mine.tsc_adjust) wrmsr(msr::kTscAdjust, rdmsr(msr::kTscAdjust) + kInjectedTscWarp);
    const char* how = "IA32_TSC_ADJUST";
    if (rdtsc() - before < kInjectedTscWarp / 2) {
        wrmsr(msr::kTsc, rdtsc() + kInjectedTscWarp);
        how = "a write to IA32_TSC";
    }
    s.status.injected = true;
    if (rdtsc() - before >= kInjectedTscWarp / 2) {
        log_warn("smp: cpu%u: TSC moved ahead by %lu cycles through %s (smp.inject_tsc_warp)",
                 cpu_id, kInjectedTscWarp, how);
        return;
    }
    s.status.injected_in_readings = true;
    s.read_offset = kInjectedTscWarp;
    log_warn("smp: cpu%u: this CPU ignores writes to %sIA32_TSC; smp.inject_tsc_warp adds %lu "
             "cycles to its readings in the warp test instead",
             cpu_id, mine.tsc_adjust ? "IA32_TSC_ADJUST and " : "", kInjectedTscWarp);
}

} // namespace

void tsc_sync_prepare() {
    g_bsp_has_adjust = boot_cpu_features().tsc_adjust;
    if (g_bsp_has_adjust) g_bsp_adjust = static_cast<int64_t>(rdmsr(msr::kTscAdjust));
    if (g_bsp_adjust != 0)
        log_info("time: the boot CPU's IA32_TSC_ADJUST is %ld; every AP gets the same",
                 g_bsp_adjust);
}

void tsc_sync_ap_early(uint32_t cpu_id, const CpuFeatures& mine) {
    SyncState& s = per_cpu(g_sync);
    if (g_bsp_has_adjust && mine.tsc_adjust) {
        // Firmware (or an OS before us) may have written this CPU's TSC: TSC_ADJUST holds how
        // far, and copying the boot CPU's value undoes it (SDM Vol. 3B 18.17.3).
        s.status.adjust_found = static_cast<int64_t>(rdmsr(msr::kTscAdjust));
        if (s.status.adjust_found != g_bsp_adjust) {
            wrmsr(msr::kTscAdjust, static_cast<uint64_t>(g_bsp_adjust));
            s.status.adjust_rewritten = true;
            log_warn("smp: cpu%u: IA32_TSC_ADJUST was %ld, the boot CPU's is %ld: set to match",
                     cpu_id, s.status.adjust_found, g_bsp_adjust);
        }
    }
    uint64_t victim = 0;
    if (params().get_u64("smp.inject_tsc_warp", victim) == CommandLine::Status::Ok &&
        victim == cpu_id)
        inject_warp(cpu_id, mine, s);
}

uint32_t tsc_sync_check_all() {
    const uint64_t start = rdtsc();
    // All pairs together may take this long (an AP that does not answer costs a few
    // patiences); the rest are reported untested rather than holding up the boot.
    const uint64_t budget = 5 * patience_cycles();
    uint32_t checked = 0, bad = 0, untested = 0, skipped = 0;
    uint64_t worst = 0;
    const uint32_t aps = cpus_online() - 1;
    uint32_t seen = 0; // online APs so far, including this one
    for (uint32_t id = 1; id < cpu_count(); ++id) {
        CpuData* cpu = cpu_by_id(id);
        if (!cpu->online.load(std::memory_order_acquire)) continue;
        SyncState& s = per_cpu_on(cpu, g_sync);
        ++seen;
        // The k-th of kMaxTested picks is the AP at ceil(k * aps / kMaxTested): evenly
        // spread, the last AP always among them.
        if (aps > kMaxTested &&
            (uint64_t{seen} * kMaxTested / aps == uint64_t{seen - 1} * kMaxTested / aps)) {
            s.status.sampled_out = true;
            ++skipped;
            continue;
        }
        if (rdtsc() - start > budget) {
            ++untested;
            continue;
        }
        TscWarpResult mine;
        PairOutcome outcome = test_pair(id, s, 1, mine);
        if (outcome == PairOutcome::Retry) {
            log_info("time: cpu%u stopped taking turns in the TSC warp test; trying again", id);
            outcome = test_pair(id, s, 2, mine);
        }
        if (outcome == PairOutcome::NoAnswer) {
            ++untested;
            continue;
        }
        const bool complete = outcome == PairOutcome::Done;
        s.status.warp = mine.max_warp > s.ap_side.max_warp ? mine.max_warp : s.ap_side.max_warp;
        s.status.turns = mine.turns + s.ap_side.turns;
        s.status.tested = complete;
        if (!complete) {
            log_warn("time: cpu%u stopped taking turns in the TSC warp test twice (%u readings "
                     "compared)", id, s.status.turns);
            ++untested;
        } else {
            ++checked;
        }
        if (s.status.warp != 0) {
            ++bad;
            if (s.status.warp > worst) worst = s.status.warp;
            log_error("time: cpu%u's TSC is not synchronised with cpu0's: warp of %lu cycles "
                      "(%lu ns)", id, s.status.warp, tsc_to_ns(s.status.warp));
        }
    }
    if (bad != 0) tsc_mark_unsynchronized(tsc_to_ns(worst));
    if (checked != 0 || untested != 0)
        log_info("time: TSC warp test: %u APs against cpu0 (%u not sampled), up to %u turns "
                 "each, in %lu us: %u out of step, %u untested",
                 checked, skipped, kTurns, tsc_to_ns(rdtsc() - start) / 1000, bad, untested);
    return bad;
}

TscSyncStatus tsc_sync_status(uint32_t cpu_id) {
    if (cpu_id == 0 || cpu_id >= cpu_count()) return {};
    return per_cpu_on(cpu_by_id(cpu_id), g_sync).status;
}

} // namespace cohort::x86
