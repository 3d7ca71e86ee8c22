#include "numa/numa.h"

#include "debug/log.h"
#include "boot/bootinfo.h"
#include "lib/memmap.h"
#include "platform/acpi.h"
#include "smp/cpu.h"

namespace cohort {

namespace {
numa::NodeMap g_map; // 26 KiB: static, built once on the boot CPU before the APs run
uint32_t g_apic_ids[kMaxCpus];
} // namespace

const numa::NodeMap& numa_map() { return g_map; }

namespace {
void build(std::span<const uint32_t> apic_ids) {
    const PlatformTopology& t = platform_topology();
    g_map.build(t.valid && t.has_srat ? &t.srat : nullptr, t.valid && t.has_slit ? &t.slit : nullptr,
                apic_ids, g_memory_map.regions());
}
} // namespace

void numa_bind_cpus() {
    const uint32_t n = cpu_count();
    for (uint32_t c = 0; c < n; ++c) g_apic_ids[c] = cpu_by_id(c)->apic_id;
    build(std::span<const uint32_t>(g_apic_ids, n));
    for (uint32_t c = 0; c < n; ++c) cpu_by_id(c)->node = g_map.cpu_node(c);
}

void numa_init(std::span<const uint32_t> apic_ids) {
    build(apic_ids);
    this_cpu()->node = g_map.cpu_node(0);

    char line[256];
    for (uint32_t node = 0; node < g_map.nodes(); ++node) {
        g_map.describe_node(node, line, sizeof(line));
        log_info("numa: %s", line);
    }
    const numa::NodeMapNotes& w = g_map.notes();
    if (w.cpus_not_in_srat)
        log_warn("numa: %u CPU(s) missing from the SRAT are placed on node 0", w.cpus_not_in_srat);
    if (w.ranges_outside_srat)
        log_warn("numa: %lu MiB of usable memory in %u range(s) outside every SRAT range is "
                 "placed on node 0", w.bytes_outside_srat >> 20, w.ranges_outside_srat);
    if (w.ranges_dropped)
        log_warn("numa: %u memory range(s) (%lu MiB) beyond the map's capacity are in no node",
                 w.ranges_dropped, w.bytes_dropped >> 20);
    if (w.srat_entries_dropped)
        log_warn("numa: %u SRAT entries of domains beyond the %u kept are placed on node 0",
                 w.srat_entries_dropped, numa::kMaxNodes);
    if (w.srat_incomplete) log_warn("numa: the SRAT was not read completely");
    if (w.slit_rejected())
        log_error("numa: SLIT not used (%s: domains %u -> %u, value %u); distances are 10 local, "
                  "20 remote", numa::slit_status_name(w.slit), w.slit_from, w.slit_to,
                  w.slit_value);
}

} // namespace cohort
