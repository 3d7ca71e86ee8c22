// Bringing up the application processors (APs).
#pragma once

#include <cstdint>
#include <span>

#include "smp/cpu.h"

namespace cohort {

/// A CPU to start, as firmware describes it.
struct ApTarget {
    uint32_t apic_id;
    uint32_t acpi_uid;
};

struct SmpBootReport {
    uint32_t present;     // CPUs described (enabled) including the boot CPU
    uint32_t slots;       // CPU ids kept for CPUs plugged in later (ACPI hot-add)
    uint32_t started;     // APs we tried to start
    uint32_t online;      // CPUs online at the end, including the boot CPU
    uint32_t failed;      // APs that did not come online
    uint64_t duration_us; // first INIT to last AP online
    bool aborted;         // bring-up refused before sending anything (reason logged)
};

/// First half of bring-up: makes every AP's per-CPU data and stacks and the trampoline, then
/// publishes the CPU table (cpu_count() is final; the APs are not online yet). On failure
/// (logged) nothing is published and the boot CPU runs alone. Options come from the command
/// line (smp.max_cpus, smp.inject_stall, ...). `slots` are CPUs that may be plugged in later
/// (ACPI hot-add): they get their CPU ids and per-CPU data now, after the APs, in the Absent
/// stage (none when smp.max_cpus leaves APs out).
bool smp_prepare(std::span<const ApTarget> targets, std::span<const ApTarget> slots = {});

/// Second half: starts the prepared APs in parallel (INIT to all, SIPI to all, one timeout for
/// all, smp.timeout_ms) and waits for them. Each AP sets up its own scheduler as soon as it is
/// online (sched_enter_ap), so the scheduler's global state must exist before this is called.
/// Never returns with an AP executing the trampoline: the page is wiped and the low identity
/// mapping removed before this returns.
SmpBootReport smp_start();

/// Called by an AP (and by the boot CPU for it) as bring-up moves it to `stage`: stages only
/// move forward, and smp.inject_stall stops the AP there for the tests.
void smp_ap_reached(CpuData* cpu, BootStage stage);
/// The AP's last bring-up step: it counts as online and becomes its idle task.
[[noreturn]] void smp_ap_online(CpuData* cpu);

/// The report of the bring-up that happened at boot.
const SmpBootReport& smp_boot_report();
/// CPU hotplug: starts an offline CPU again through the bring-up path of the boot (trampoline,
/// INIT-SIPI-SIPI, the feature, TSC and LAPIC steps, sched_enter_ap). Waits up to
/// `timeout_ms`; false (logged, the CPU sent INIT again) if it did not come online.
bool smp_restart_cpu(CpuData* cpu, uint64_t timeout_ms, uint64_t* duration_us);

/// A per-CPU variable each CPU sets to its own logical id during bring-up (tests read it).
extern uint32_t g_cpu_probe;

/// Physical page used for the trampoline code (0 if none was needed), for tests.
uint64_t smp_trampoline_page();

} // namespace cohort
