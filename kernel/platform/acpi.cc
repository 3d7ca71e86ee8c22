#include "platform/acpi.h"

#include <cstring>

#include "acpi/aml_region.h"
#include "acpi/error.h"
#include "acpi/phys.h"
#include "acpi/tables.h"
#include "boot/bootinfo.h"
#include "boot/params.h"
#include "debug/log.h"
#include "lib/format.h"
#include "mm/heap.h"
#include "mm/layout.h"
#include "mm/phys.h"
#include "mm/vmm.h"
#include "smp/cpu_list.h"
#include "smp/cpumask.h"

namespace cohort {

namespace {

PlatformTopology g_topology;

// Multiboot2 hands over a copy of the RSDP, not its address: the reader serves that copy at
// an address no real memory can have (above the 52-bit physical limit).
constexpr uint64_t kRsdpCopyAddress = 0xfff0'0000'0000'0000ull;

class KernelPhysReader final : public acpi::PhysReader {
  public:
    bool read(uint64_t phys, void* dst, size_t len) const override {
        if (len == 0) return true;
        if (phys + len < phys) return false; // wraps around
        if (phys >= kRsdpCopyAddress) {
            const uint64_t off = phys - kRsdpCopyAddress;
            if (off + len > g_boot_info.rsdp_length) return false;
            memcpy(dst, g_boot_info.rsdp + off, len);
            return true;
        }
        if (phys + len > (1ull << 52)) return false;
        auto* out = static_cast<uint8_t*>(dst);
        // Page by page: RAM comes through the direct map; anything else (tables in "reserved"
        // memory) through a read-only mapping made on demand.
        while (len > 0) {
            const uint64_t page = phys & ~(layout::kPageSize - 1);
            const size_t chunk = static_cast<size_t>(
                len < page + layout::kPageSize - phys ? len : page + layout::kPageSize - phys);
            const uint8_t* src = nullptr;
            if (vmm::translate(layout::kDirectMapBase + page) == page) {
                src = phys_to_virt<uint8_t>(phys);
            } else {
                auto* mapped = static_cast<uint8_t*>(vmm::map_device(page, layout::kPageSize, vmm::kRead));
                if (mapped == nullptr) return false;
                src = mapped + (phys - page);
            }
            memcpy(out, src, chunk);
            out += chunk;
            phys += chunk;
            len -= chunk;
        }
        return true;
    }
};
KernelPhysReader g_reader;

void log_errors(const acpi::ErrorLog& errors) {
    for (const acpi::Error& e : errors.errors())
        log_write(e.severity == acpi::Severity::Error ? LogLevel::Error : LogLevel::Warn,
                  "acpi: %s at %#lx, offset %u: %s (detail %#lx)", e.table, e.address, e.offset,
                  acpi::error_reason(e.code), e.detail);
    if (errors.dropped() != 0) log_warn("acpi: %lu more problems not shown", errors.dropped());
}

template <typename T>
std::span<T> alloc_span(size_t n) {
    if (n == 0) return {};
    auto* p = static_cast<T*>(kzalloc(n * sizeof(T)));
    return p != nullptr ? std::span<T>(p, n) : std::span<T>();
}

/// Checks the standard RSDP locations of a PC BIOS: the first KiB of the EBDA, then
/// 0xE0000-0xFFFFF, on 16-byte boundaries (ACPI 6.4, 5.2.5.1).
uint64_t scan_legacy_rsdp() {
    auto valid_at = [](uint64_t phys) {
        const uint8_t* p = phys_to_virt<uint8_t>(phys);
        if (memcmp(p, "RSD PTR ", 8) != 0) return false;
        uint8_t sum = 0;
        for (int i = 0; i < 20; ++i) sum = static_cast<uint8_t>(sum + p[i]);
        return sum == 0;
    };
    uint16_t ebda_segment;
    memcpy(&ebda_segment, phys_to_virt<uint8_t>(0x40e), 2);
    const uint64_t ebda = uint64_t(ebda_segment) << 4;
    if (ebda >= 0x80000 && ebda < 0xa0000)
        for (uint64_t a = ebda; a < ebda + 1024; a += 16)
            if (valid_at(a)) return a;
    for (uint64_t a = 0xe0000; a < 0x100000; a += 16)
        if (valid_at(a)) return a;
    return 0;
}

std::optional<acpi::Bytes> load_whole(const acpi::TableDirectory& dir, const char* sig,
                                      acpi::ErrorLog& errors) {
    const auto phys = dir.find(sig);
    if (!phys) return std::nullopt;
    const auto header = acpi::read_table_header(g_reader, *phys, errors);
    if (!header || header->length > (16u << 20)) return std::nullopt;
    auto buffer = alloc_span<uint8_t>(header->length);
    if (buffer.empty()) return std::nullopt;
    return dir.load_first_valid(sig, buffer, errors);
}

void load_numa(const acpi::TableDirectory& dir, PlatformTopology& t) {
    static acpi::Error error_storage[16];
    acpi::ErrorLog errors(error_storage);
    if (const auto srat = load_whole(dir, "SRAT", errors)) {
        const size_t max_entries = srat->size() / 16 + 1; // the smallest entry is 16 bytes
        acpi::SratStorage storage{alloc_span<acpi::SratCpu>(max_entries),
                                  alloc_span<acpi::SratMemory>(max_entries),
                                  alloc_span<acpi::NumaNode>(max_entries)};
        t.has_srat = acpi::parse_srat(*srat, storage, t.srat, errors);
        if (t.has_srat) {
            log_info("acpi: SRAT: %lu NUMA node%s, %lu CPU and %lu memory affinity entries",
                     t.srat.nodes.size(), t.srat.nodes.size() == 1 ? "" : "s", t.srat.cpus.size(),
                     t.srat.memory.size());
            for (const acpi::NumaNode& n : t.srat.nodes.items())
                log_info("acpi:   node %u: %u CPUs, %lu MiB in %u ranges", n.domain, n.cpus,
                         n.memory_bytes >> 20, n.memory_ranges);
        }
    }
    if (const auto slit = load_whole(dir, "SLIT", errors)) {
        if (auto parsed = acpi::Slit::parse(*slit, errors)) {
            t.slit = *parsed;
            t.has_slit = true;
            char row[160];
            for (uint64_t i = 0; i < t.slit.localities() && i < 16; ++i) {
                size_t n = 0;
                for (uint64_t j = 0; j < t.slit.localities() && j < 16 && n < sizeof(row) - 8; ++j)
                    n += format(row + n, sizeof(row) - n, " %3u", *t.slit.distance(i, j));
                log_info("acpi: SLIT %lu:%s", i, row);
            }
        }
    }
    log_errors(errors);
}

// The FADT, and from the DSDT where QEMU put its CPU hotplug register block.
void load_fadt(const acpi::TableDirectory& dir, PlatformTopology& t) {
    static acpi::Error error_storage[8];
    acpi::ErrorLog errors(error_storage);
    const auto phys = dir.find("FACP");
    const auto header = phys ? acpi::read_table_header(g_reader, *phys, errors) : std::nullopt;
    const auto fadt = load_whole(dir, "FACP", errors);
    if (!fadt || !header) {
        log_errors(errors);
        return;
    }
    t.fadt = acpi::parse_fadt(*fadt);
    t.has_fadt = true;
    kfree(const_cast<uint8_t*>(fadt->data()));
    // QEMU's tables say "BOCHS"; only there does a region named PRST mean its CPU hotplug block.
    if (!header->oem_id.text().starts_with("BOCHS")) return;
    const uint64_t dsdt = acpi::fadt_dsdt(t.fadt);
    const auto dh = dsdt != 0 ? acpi::read_table_header(g_reader, dsdt, errors) : std::nullopt;
    if (!dh || dh->length > (4u << 20)) {
        log_errors(errors);
        return;
    }
    auto buffer = alloc_span<uint8_t>(dh->length);
    if (buffer.empty()) return;
    if (const auto body = acpi::load_table(g_reader, dsdt, buffer, "DSDT", errors)) {
        acpi::AmlRegion r;
        const auto found = acpi::find_operation_region(acpi::sub_bytes(*body, acpi::kSdtHeaderSize,
                                                                       body->size()),
                                                       "PRST", r);
        if (found == acpi::AmlRegionResult::Found && r.space == acpi::kSpaceSystemIo &&
            r.address != 0 && r.address + r.length <= 0x10000 && r.length >= 12) {
            t.qemu_cpuhp_port = static_cast<uint16_t>(r.address);
            t.qemu_cpuhp_length = static_cast<uint16_t>(r.length);
        } else if (found != acpi::AmlRegionResult::NotFound) {
            log_warn("acpi: QEMU's CPU hotplug region (PRST) is not usable (%s); no CPU hotplug",
                     found == acpi::AmlRegionResult::Found ? "not 12 bytes of port I/O"
                     : found == acpi::AmlRegionResult::NotConstant ? "computed address"
                                                                   : "declared twice");
        }
    }
    log_errors(errors);
    kfree(buffer.data());
}

} // namespace

const PlatformTopology& platform_topology() { return g_topology; }

const PlatformTopology& platform_acpi_init(uint32_t bsp_apic_id) {
    static acpi::Error error_storage[32];
    acpi::ErrorLog errors(error_storage);
    PlatformTopology& t = g_topology;

    // Where the RSDP comes from, in order: the command line (acpi.rsdp=ADDR, for firmware
    // that hides it), the loader (PVH start info or a Multiboot2 tag), the legacy BIOS areas.
    uint64_t rsdp = 0;
    uint64_t forced = 0;
    if (params().get_u64("acpi.rsdp", forced) == CommandLine::Status::Ok && forced != 0) {
        rsdp = forced;
        t.rsdp_source = "command line";
    } else if (g_boot_info.rsdp_phys != 0) {
        rsdp = g_boot_info.rsdp_phys;
        t.rsdp_source = "loader (address)";
    } else if (g_boot_info.rsdp_length != 0) {
        rsdp = kRsdpCopyAddress;
        t.rsdp_source = "loader (copy)";
    } else if ((rsdp = scan_legacy_rsdp()) != 0) {
        t.rsdp_source = "BIOS area scan";
    } else {
        log_error("acpi: no RSDP from the loader or the BIOS areas; booting with one CPU "
                  "(acpi.rsdp=ADDR sets it by hand)");
        return t;
    }
    const auto dir = acpi::TableDirectory::open(g_reader, rsdp, errors);
    if (!dir) {
        log_errors(errors);
        log_error("acpi: no usable RSDT/XSDT; booting with one CPU");
        return t;
    }
    t.root_kind = dir->kind();
    t.rsdp_revision = dir->rsdp().revision;
    log_info("acpi: RSDP rev %u (%.*s) from the %s, %s at %#lx with %lu tables",
             dir->rsdp().revision, static_cast<int>(dir->rsdp().oem_id.text().size()),
             dir->rsdp().oem_id.text().data(), t.rsdp_source,
             dir->kind() == acpi::RootKind::Xsdt ? "XSDT" : "RSDT", dir->root_address(),
             dir->entry_count());

    const auto madt_phys = dir->find("APIC");
    const auto header = madt_phys ? acpi::read_table_header(g_reader, *madt_phys, errors) : std::nullopt;
    if (!header || header->length > (16u << 20)) {
        log_errors(errors);
        log_error("acpi: no usable MADT; booting with one CPU");
        return t;
    }
    auto buffer = alloc_span<uint8_t>(header->length);
    uint64_t used_phys = 0;
    const auto table = dir->load_first_valid("APIC", buffer, errors, &used_phys);
    if (!table) {
        log_errors(errors);
        log_error("acpi: the MADT does not validate; booting with one CPU");
        return t;
    }
    // Every CPU entry is at least 8 bytes: that bounds the storage needed.
    const size_t max_entries = table->size() / 8 + 1;
    acpi::MadtStorage storage{alloc_span<acpi::CpuEntry>(max_entries),
                              alloc_span<acpi::IoApic>(max_entries),
                              alloc_span<acpi::InterruptOverride>(max_entries),
                              alloc_span<acpi::NmiSource>(max_entries),
                              alloc_span<acpi::LocalApicNmi>(max_entries),
                              alloc_span<acpi::LocalX2apicNmi>(max_entries)};
    if (storage.cpus.empty()) {
        log_error("acpi: out of memory for the MADT; booting with one CPU");
        return t;
    }
    if (!acpi::parse_madt(*table, bsp_apic_id, storage, t.madt, errors, used_phys)) {
        log_errors(errors);
        log_error("acpi: the MADT has no usable fixed part; booting with one CPU");
        return t;
    }
    log_errors(errors);
    if (dir->count("APIC") > 1)
        log_info("acpi: firmware lists %lu MADTs; using the first valid one at %#lx (as ACPICA does)",
                 dir->count("APIC"), used_phys);
    t.madt_revision = header->revision;
    t.lapic_address = t.madt.local_apic_address;
    if (!t.madt.bsp)
        log_warn("acpi: the running CPU (APIC id %u) is not in the MADT", bsp_apic_id);

    const bool start_online_capable = param_bool("smp.online_capable", false);
    const size_t room = t.madt.cpus.size() < kMaxCpus ? t.madt.cpus.size() : kMaxCpus - 1;
    auto targets = alloc_span<ApTarget>(room);
    const CpuListResult picked =
        select_cpus_to_start(t.madt, bsp_apic_id, start_online_capable, kMaxCpus, targets);
    t.aps = targets.first(picked.aps);
    t.not_started = static_cast<uint32_t>(picked.left_alone + picked.over_limit + picked.no_room);
    t.over_limit = static_cast<uint32_t>(picked.over_limit);
    if (picked.over_limit != 0)
        log_warn("acpi: MADT lists %lu CPUs; starting the first %u (kMaxCpus), %lu left offline",
                 picked.startable, kMaxCpus, picked.over_limit);
    if (picked.no_room != 0)
        log_error("acpi: out of memory for the CPU list; %lu CPUs left offline", picked.no_room);
    {
        const size_t started = picked.aps + 1;
        const uint64_t cap = param_u64("smp.hotplug_slots", kMaxCpus);
        const size_t max_slots = started >= kMaxCpus ? 0 : (cap < kMaxCpus - started ? cap : kMaxCpus - started);
        auto slots = alloc_span<ApTarget>(t.madt.cpus.size());
        const HotplugSlotsResult hs = select_hotplug_slots(t.madt, header->revision, bsp_apic_id,
                                                           start_online_capable, max_slots, slots);
        t.hotplug_slots = slots.first(hs.slots);
        if (hs.slots != 0 || hs.dropped != 0)
            log_info("acpi: %lu CPU slot%s for hot-add%s", hs.slots, hs.slots == 1 ? "" : "s",
                     hs.dropped != 0 ? " (more beyond smp.hotplug_slots or kMaxCpus)" : "");
    }
    t.valid = true;
    log_info("acpi: MADT rev %u: %lu CPUs (%lu enabled, %lu online-capable), %lu IOAPIC%s, "
             "%lu overrides, LAPIC at %#lx",
             t.madt_revision, t.madt.cpus.size(), t.madt.enabled, t.madt.online_capable,
             t.madt.io_apics.size(), t.madt.io_apics.size() == 1 ? "" : "s", t.madt.overrides.size(),
             t.lapic_address);
    if (t.madt.cpus.truncated()) log_error("acpi: more CPUs than storage; some were dropped");
    load_numa(*dir, t);
    load_fadt(*dir, t);
    if (t.qemu_cpuhp_port != 0)
        log_info("acpi: QEMU CPU hotplug block at port %#x (%u bytes)", t.qemu_cpuhp_port,
                 t.qemu_cpuhp_length);
    return t;
}

} // namespace cohort
