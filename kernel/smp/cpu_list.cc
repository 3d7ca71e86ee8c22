#include "smp/cpu_list.h"

namespace cohort {

CpuListResult select_cpus_to_start(const acpi::MadtTopology& topo, uint32_t bsp_apic_id,
                                   bool start_online_capable, size_t max_cpus,
                                   std::span<ApTarget> out) {
    CpuListResult r;
    const size_t max_aps = max_cpus > 1 ? max_cpus - 1 : 0;
    r.startable = 1;
    for (const acpi::CpuEntry& c : topo.cpus.items()) {
        if (c.apic_id == bsp_apic_id) continue;
        const bool start = c.state == acpi::CpuState::Enabled ||
                           (c.state == acpi::CpuState::OnlineCapable && start_online_capable);
        if (!start) {
            ++r.left_alone;
            continue;
        }
        ++r.startable;
        if (r.aps >= max_aps) ++r.over_limit;
        else if (r.aps >= out.size()) ++r.no_room;
        else out[r.aps++] = {c.apic_id, c.uid};
    }
    return r;
}

HotplugSlotsResult select_hotplug_slots(const acpi::MadtTopology& topo, uint8_t madt_revision,
                                        uint32_t bsp_apic_id, bool online_capable_started,
                                        size_t max_slots, std::span<ApTarget> out) {
    HotplugSlotsResult r;
    for (const acpi::CpuEntry& c : topo.cpus.items()) {
        if (c.apic_id == bsp_apic_id) continue;
        const bool candidate =
            (c.state == acpi::CpuState::OnlineCapable && !online_capable_started) ||
            (c.state == acpi::CpuState::Disabled && madt_revision < 5);
        if (!candidate) continue;
        if (r.slots >= max_slots || r.slots >= out.size()) {
            ++r.dropped;
            continue;
        }
        out[r.slots++] = {c.apic_id, c.uid};
    }
    return r;
}

} // namespace cohort
