// Which of the MADT's CPUs the kernel starts: the portable half of bring-up planning, shared by
// the kernel (platform/acpi.cc) and the host tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "acpi/madt.h"
#include "smp/smp.h"

namespace cohort {

struct CpuListResult {
    size_t aps = 0;         ///< Entries written to the output span.
    size_t startable = 0;   ///< CPUs the MADT would have us run, the boot CPU included.
    size_t left_alone = 0;  ///< Online-capable (unless asked for) or disabled CPUs.
    size_t over_limit = 0;  ///< Startable APs dropped because of `max_cpus`.
    size_t no_room = 0;     ///< Startable APs dropped because `out` was too small.
};

/// Picks the APs to start from `topo.cpus`, in table order: enabled CPUs, plus online-capable
/// ones when `start_online_capable`, never the boot CPU (`bsp_apic_id`). The boot CPU always
/// runs, listed or not, so at most `max_cpus - 1` APs are chosen; a `max_cpus` of 0 counts as
/// 1. The kernel passes kMaxCpus: CPU ids at or above it would overflow every CpuMask.
CpuListResult select_cpus_to_start(const acpi::MadtTopology& topo, uint32_t bsp_apic_id,
                                   bool start_online_capable, size_t max_cpus,
                                   std::span<ApTarget> out);

struct HotplugSlotsResult {
    size_t slots = 0;     ///< Entries written to the output span.
    size_t dropped = 0;   ///< Candidates beyond `max_slots` or the room in `out`.
};

/// The CPUs that may be plugged in later (ACPI hot-add): those the MADT lists but
/// select_cpus_to_start left alone. Online-capable entries always qualify. Disabled ones
/// qualify in MADTs older than revision 5, which had no other way to say "not yet" (QEMU lists
/// every possible CPU so, and Linux counts them as possible); from revision 5 on a disabled,
/// not online-capable entry is unusable. The boot CPU never qualifies (placeholder APIC ids
/// never reach `topo.cpus`: parse_madt drops them).
/// In table order, at most `max_slots`.
HotplugSlotsResult select_hotplug_slots(const acpi::MadtTopology& topo, uint8_t madt_revision,
                                        uint32_t bsp_apic_id, bool online_capable_started,
                                        size_t max_slots, std::span<ApTarget> out);

} // namespace cohort
