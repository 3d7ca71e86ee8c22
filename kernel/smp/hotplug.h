// CPU hotplug: taking a CPU offline and bringing it back at run time, with no machine-wide
// stop: only the initiator, the CPU itself and the CPUs that receive its tasks, timers and
// interrupts take part (docs/hotplug.md has the sequences step by step).
#pragma once

#include <cstdint>

namespace cohort {

enum class HotplugError : uint8_t {
    None,
    NoSuchCpu,
    BootCpu,        // cpu0 keeps the machine's timekeeping, console and NMI sources
    AlreadyOffline,
    AlreadyOnline,
    NotParked,      // never started, or stopped elsewhere than by cpu_offline: not restartable
    PinnedTask,     // a task may run only there (its name is in the report)
    NotFromTask,    // from interrupt context or with interrupts off
    Stuck,          // the CPU did not park in time (logged)
    StartFailed,    // bring-up did not finish (logged; the CPU was sent INIT again)
    NotPresent,     // an empty hot-add slot: no CPU is plugged in there
    NotAbsent,      // cpu_plugged for a slot that has a CPU already
};
const char* hotplug_error_name(HotplugError e);

/// What one offline or online did, for the log, the console and the tests.
struct HotplugReport {
    uint32_t cpu = 0;
    uint32_t tasks_moved = 0;  // queued tasks handed to other CPUs
    uint32_t timers_moved = 0; // pending timers, to `timer_cpu`
    uint32_t timer_cpu = 0;
    uint32_t irqs_moved = 0;   // device interrupt lines routed elsewhere
    uint64_t frames_drained = 0, objects_drained = 0, stacks_drained = 0; // per-CPU caches
    uint64_t duration_us = 0;
    // Where an offline's time went (us): until k's worker started its part, moving its tasks,
    // draining its caches, closing its call queue (running what was queued), moving its
    // timers, and from the worker's return until k parked.
    uint64_t step_us[6] = {};
    char task_name[24] = {}; // PinnedTask: the first such task
};

/// Takes CPU `cpu` offline: no new work goes there, its interrupts, queued tasks and timers
/// move to other CPUs, calls queued to it run there first (later ones return
/// CallStatus::Offline), its caches drain, it leaves every address space's active set, and it
/// halts with interrupts off until cpu_online starts it again with INIT-SIPI-SIPI. Refused for
/// cpu0 and while a task other than its own worker may run only there. From a task, interrupts
/// on; one hotplug operation at a time (others wait).
HotplugError cpu_offline(uint32_t cpu, HotplugReport* report = nullptr);
/// Starts an offline CPU again through the boot's bring-up path (the trampoline, INIT-SIPI-
/// SIPI, the CPUID and TSC checks, the local APIC): it rejoins placement, balancing, remote
/// calls, shootdowns and interrupt spreading with an empty TLB.
HotplugError cpu_online(uint32_t cpu, HotplugReport* report = nullptr);

/// ACPI hot-add: a CPU was plugged into the empty slot `cpu` (BootStage::Absent, per-CPU data
/// made at boot); starts it as cpu_online does, through the boot's bring-up path.
HotplugError cpu_plugged(uint32_t cpu, HotplugReport* report = nullptr);
/// ACPI hot-remove: the platform ejected `cpu`, which cpu_offline had parked; its slot is empty
/// again (cpu_plugged can fill it).
void cpu_unplugged(uint32_t cpu);

/// `cpu.offline=LIST` on the command line (CPU numbers and ranges: 2,5-7): takes those CPUs
/// offline once the scheduler runs. Logs what it could not do.
void hotplug_apply_boot_param();

/// Offline/online cycles completed since boot (tests, the console).
uint64_t hotplug_cycles();

/// The end of cpu_offline, on the CPU itself, from its idle loop with nothing left to run:
/// reports it parked and halts with interrupts off.
[[noreturn]] void smp_cpu_parked();

} // namespace cohort
