// Bringing up the application processors (APs).
#pragma once

#include <cstdint>
#include <span>

namespace cohort {

/// A CPU to start, as firmware describes it.
struct ApTarget {
    uint32_t apic_id;
    uint32_t acpi_uid;
};

struct SmpBootReport {
    uint32_t present;     // CPUs described (enabled) including the boot CPU
    uint32_t started;     // APs we tried to start
    uint32_t online;      // CPUs online at the end, including the boot CPU
    uint32_t failed;      // APs that did not come online
    uint64_t duration_us; // first INIT to last AP online
    bool aborted;         // bring-up refused before sending anything (reason logged)
};

/// Starts the given APs in parallel (INIT to all, SIPI to all, one timeout for all) and waits
/// for them. Never returns with an AP executing the trampoline: the page is wiped and the low
/// identity mapping removed before this returns. Options come from the command line
/// (smp.max_cpus, smp.timeout_ms, smp.inject_stall, ...).
SmpBootReport smp_boot(std::span<const ApTarget> targets);

/// The report of the bring-up that happened at boot.
const SmpBootReport& smp_boot_report();

/// A per-CPU variable each CPU sets to its own logical id during bring-up (tests read it).
extern uint32_t g_cpu_probe;

/// Physical page used for the trampoline code (0 if none was needed), for tests.
uint64_t smp_trampoline_page();

} // namespace cohort
