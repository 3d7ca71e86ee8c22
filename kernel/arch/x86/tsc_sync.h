// Checking at SMP bring-up that every CPU's TSC runs in step with the boot CPU's: time
// (monotonic_ns, TSC deadlines) uses one time base for all CPUs, which is only right if they
// agree. IA32_TSC_ADJUST differences are repaired; a remaining warp is reported and clears
// tsc_synchronized() (arch/x86/tsc.h).
#pragma once

#include <cstdint>

#include "arch/x86/cpu_features.h"

namespace cohort::x86 {

/// What smp.inject_tsc_warp=CPU adds to that AP's TSC: ahead, so its own time never goes back,
/// and far enough (about 0.5 s at 2 GHz) that the warp found, which is this less the time a
/// turn takes to reach the other CPU, stays close to it even under a slow emulator.
inline constexpr uint64_t kInjectedTscWarp = 1'000'000'000;

struct TscSyncStatus {
    bool tested;           ///< The warp test against the boot CPU ran to the end.
    bool adjust_rewritten; ///< IA32_TSC_ADJUST differed from the boot CPU's and was set to it.
    int64_t adjust_found;  ///< IA32_TSC_ADJUST as this CPU came up (where it has one).
    uint64_t warp;         ///< Largest warp seen in either direction, in TSC cycles.
    uint32_t turns;        ///< Readings compared (both sides together).
    bool injected;         ///< smp.inject_tsc_warp named this CPU.
    bool injected_in_readings; ///< ... but the TSC ignored writes: only the test's readings moved.
    bool sampled_out;      ///< Not tested: more APs than the test samples (tsc_sync.cc).
};

/// Boot CPU, before any AP starts: records its IA32_TSC_ADJUST for the APs to copy.
void tsc_sync_prepare();
/// Each AP, early in bring-up: copies the boot CPU's IA32_TSC_ADJUST where this one differs
/// (logged), then applies smp.inject_tsc_warp if it names this CPU.
void tsc_sync_ap_early(uint32_t cpu_id, const CpuFeatures& mine);
/// Boot CPU, once the APs run their schedulers (the main task does it first): the warp test
/// against each online AP in turn (its side runs in a remote call), or against
/// 32 of them spread over the ids when there are more (bounded: 1000 turns per side and AP,
/// 0.5 s in all). Returns the number of CPUs found out of step (each logged).
uint32_t tsc_sync_check_all();
/// The result for logical CPU `cpu_id` (all zero for the boot CPU and untested CPUs).
TscSyncStatus tsc_sync_status(uint32_t cpu_id);

} // namespace cohort::x86
