// ACPI CPU hot-add and hot-remove, as QEMU offers them (q35; docs/hotplug.md, and
// docs/hotplug-qemu-notes.md for the register-level facts): what QEMU's AML does on the SCI,
// done natively, with no AML interpreter. The event arrives as the SCI with GPE0 status bit 2;
// a task then walks QEMU's CPU hotplug register block: a CPU plugged in is started (cpu_plugged),
// a CPU asked to leave goes offline (cpu_offline) and is ejected.
#pragma once

#include <cstdint>

namespace cohort {

/// Sets up CPU hotplug when the firmware offers QEMU's register block and the MADT has hot-add
/// slots (cpu.hotplug=on: even without slots, off: never): switches the block to its modern
/// interface and checks it against the MADT, enables ACPI mode, routes the SCI, enables the
/// CPU hotplug GPE and starts the task that handles events. Logs why when it does not. From a
/// task (the main task), once.
void acpi_cpu_hotplug_init();

struct AcpiCpuHotplugStats {
    bool active = false;
    uint32_t slots = 0;     // CPUs the register block can name (QEMU's possible CPUs)
    uint64_t scis = 0;      // SCIs with the CPU hotplug GPE set
    uint64_t plugged = 0;   // CPUs plugged in and brought online
    uint64_t removed = 0;   // CPUs taken offline and ejected
    uint64_t refused = 0;   // removals refused (cpu0, a pinned task) or CPUs that did not start
};
AcpiCpuHotplugStats acpi_cpu_hotplug_stats();

} // namespace cohort
