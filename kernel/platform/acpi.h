// ACPI in the running kernel: finds the tables through the loader's RSDP, parses the MADT
// (and SRAT/SLIT when present) with the portable parser in acpi/, and keeps the result.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "acpi/fadt.h"
#include "acpi/madt.h"
#include "acpi/srat.h"
#include "acpi/tables.h"
#include "smp/smp.h"

namespace cohort {

struct PlatformTopology {
    bool valid = false;            // false: no usable MADT, boot with the boot CPU only
    uint8_t madt_revision = 0;
    acpi::MadtTopology madt;       // spans point into heap storage owned by this module
    std::span<const ApTarget> aps; // CPUs to start (enabled, not the BSP)
    uint32_t not_started = 0;      // CPUs left alone: online-capable, disabled or over_limit
    // CPUs that may be plugged in later (ACPI hot-add), in MADT order: they get per-CPU data at
    // boot, after the started ones (smp.hotplug_slots=N caps them; 0: none).
    std::span<const ApTarget> hotplug_slots;
    uint32_t over_limit = 0;       // startable CPUs beyond kMaxCpus (the first ones are kept)
    uint64_t lapic_address = 0;
    acpi::RootKind root_kind = acpi::RootKind::Rsdt;
    uint8_t rsdp_revision = 0;
    const char* rsdp_source = "none"; // where the RSDP came from, for the log and tests

    bool has_fadt = false;
    acpi::Fadt fadt;
    // QEMU's CPU hotplug register block (platform/cpu_hotplug_acpi.cc), from its DSDT
    // (OperationRegion PRST) when the tables are QEMU's ("BOCHS" OEM id); port 0: none.
    uint16_t qemu_cpuhp_port = 0;
    uint16_t qemu_cpuhp_length = 0;

    bool has_srat = false;            // NUMA information, when the firmware provides it
    acpi::SratInfo srat;
    bool has_slit = false;
    acpi::Slit slit;
};

/// Parses the firmware tables. Never fails hard: on any problem it logs what and where, and
/// returns a topology with valid == false (the kernel then runs on the boot CPU alone).
const PlatformTopology& platform_acpi_init(uint32_t bsp_apic_id);
const PlatformTopology& platform_topology();

} // namespace cohort
