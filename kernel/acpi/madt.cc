#include "acpi/madt.h"

namespace cohort::acpi {
namespace {

bool is_type(const Subtable& s, MadtType t) {
    return s.type == static_cast<uint8_t>(t) && s.bytes.size() >= madt_min_length(s.type);
}

// Finds an already listed CPU with this APIC id. Quadratic, but 4096 CPUs cost a few million
// compares once at boot, and no hash table needs to be sized up front.
bool already_listed(const OutputArray<CpuEntry>& cpus, uint32_t apic_id) {
    for (const CpuEntry& c : cpus.items())
        if (c.apic_id == apic_id) return true;
    return false;
}

void add_cpu(MadtTopology& out, ErrorLog& log, uint64_t phys, uint32_t apic_id, uint32_t uid,
             uint32_t flags, MadtType source, uint32_t offset, bool placeholder) {
    const bool enabled = cpu_flags_enabled(flags);
    if (placeholder) {
        ++out.placeholders;
        // Firmware uses the id as an "unused slot" marker; one that claims to be enabled
        // cannot be addressed by IPIs, so it is reported rather than started.
        if (enabled) log.warn("APIC", ErrorCode::InvalidApicId, offset, phys, apic_id);
        return;
    }
    if (already_listed(out.cpus, apic_id)) {
        ++out.duplicates;
        log.warn("APIC", ErrorCode::DuplicateApicId, offset, phys, apic_id);
        return;
    }
    CpuState state = CpuState::Disabled;
    if (enabled)
        state = CpuState::Enabled;
    else if (out.header.revision >= 5 && cpu_flags_online_capable(flags))
        state = CpuState::OnlineCapable;
    switch (state) {
    case CpuState::Enabled:
        ++out.enabled;
        break;
    case CpuState::OnlineCapable:
        ++out.online_capable;
        break;
    case CpuState::Disabled:
        ++out.disabled;
        break;
    }
    if (!out.cpus.push(CpuEntry{apic_id, uid, state, source, offset}) && out.cpus.dropped() == 1)
        log.error("APIC", ErrorCode::OutputTruncated, offset, phys);
}

template <typename T>
void push_logged(OutputArray<T>& arr, const T& item, ErrorLog& log, uint64_t phys) {
    if (!arr.push(item) && arr.dropped() == 1)
        log.error("APIC", ErrorCode::OutputTruncated, item.offset, phys);
}

} // namespace

const char* madt_type_name(uint8_t type) {
    static constexpr const char* kNames[] = {
        "Processor Local APIC",
        "I/O APIC",
        "Interrupt Source Override",
        "NMI Source",
        "Local APIC NMI",
        "Local APIC Address Override",
        "I/O SAPIC",
        "Local SAPIC",
        "Platform Interrupt Sources",
        "Processor Local x2APIC",
        "Local x2APIC NMI",
        "Generic Interrupt Controller",
        "Generic Interrupt Distributor",
        "Generic MSI Frame",
        "Generic Interrupt Redistributor",
        "Generic Interrupt Translator",
    };
    return type < sizeof(kNames) / sizeof(kNames[0]) ? kNames[type] : "Unknown Subtable Type";
}

uint8_t madt_min_length(uint8_t type) {
    switch (static_cast<MadtType>(type)) {
    case MadtType::LocalApic:
        return 8;
    case MadtType::IoApic:
        return 12;
    case MadtType::InterruptOverride:
        return 10;
    case MadtType::NmiSource:
        return 8;
    case MadtType::LocalApicNmi:
        return 6;
    case MadtType::LocalApicAddressOverride:
        return 12;
    case MadtType::LocalX2apic:
        return 16;
    case MadtType::LocalX2apicNmi:
        return 12;
    }
    return 0;
}

std::optional<MadtHeader> madt_header(Bytes table) {
    if (table.size() < kMadtHeaderSize) return std::nullopt;
    return MadtHeader{load_le<uint8_t>(table, 8), load_le<uint32_t>(table, 36),
                      load_le<uint32_t>(table, 40)};
}

std::optional<LocalApic> decode_local_apic(const Subtable& s) {
    if (!is_type(s, MadtType::LocalApic)) return std::nullopt;
    return LocalApic{s.offset, load_le<uint8_t>(s.bytes, 2), load_le<uint8_t>(s.bytes, 3),
                     load_le<uint32_t>(s.bytes, 4)};
}

std::optional<IoApic> decode_io_apic(const Subtable& s) {
    if (!is_type(s, MadtType::IoApic)) return std::nullopt;
    return IoApic{s.offset, load_le<uint8_t>(s.bytes, 2), load_le<uint32_t>(s.bytes, 4),
                  load_le<uint32_t>(s.bytes, 8)};
}

std::optional<InterruptOverride> decode_interrupt_override(const Subtable& s) {
    if (!is_type(s, MadtType::InterruptOverride)) return std::nullopt;
    return InterruptOverride{s.offset, load_le<uint8_t>(s.bytes, 2), load_le<uint8_t>(s.bytes, 3),
                             load_le<uint32_t>(s.bytes, 4), load_le<uint16_t>(s.bytes, 8)};
}

std::optional<NmiSource> decode_nmi_source(const Subtable& s) {
    if (!is_type(s, MadtType::NmiSource)) return std::nullopt;
    return NmiSource{s.offset, load_le<uint16_t>(s.bytes, 2), load_le<uint32_t>(s.bytes, 4)};
}

std::optional<LocalApicNmi> decode_local_apic_nmi(const Subtable& s) {
    if (!is_type(s, MadtType::LocalApicNmi)) return std::nullopt;
    return LocalApicNmi{s.offset, load_le<uint8_t>(s.bytes, 2), load_le<uint16_t>(s.bytes, 3),
                        load_le<uint8_t>(s.bytes, 5)};
}

std::optional<LocalApicAddressOverride> decode_lapic_address_override(const Subtable& s) {
    if (!is_type(s, MadtType::LocalApicAddressOverride)) return std::nullopt;
    return LocalApicAddressOverride{s.offset, load_le<uint64_t>(s.bytes, 4)};
}

std::optional<LocalX2apic> decode_local_x2apic(const Subtable& s) {
    if (!is_type(s, MadtType::LocalX2apic)) return std::nullopt;
    return LocalX2apic{s.offset, load_le<uint32_t>(s.bytes, 4), load_le<uint32_t>(s.bytes, 8),
                       load_le<uint32_t>(s.bytes, 12)};
}

std::optional<LocalX2apicNmi> decode_local_x2apic_nmi(const Subtable& s) {
    if (!is_type(s, MadtType::LocalX2apicNmi)) return std::nullopt;
    return LocalX2apicNmi{s.offset, load_le<uint16_t>(s.bytes, 2), load_le<uint32_t>(s.bytes, 4),
                          load_le<uint8_t>(s.bytes, 8)};
}

bool parse_madt(Bytes table, uint32_t bsp_apic_id, const MadtStorage& storage, MadtTopology& out,
                ErrorLog& log, uint64_t phys) {
    out = MadtTopology{};
    out.cpus = OutputArray<CpuEntry>(storage.cpus);
    out.io_apics = OutputArray<IoApic>(storage.io_apics);
    out.overrides = OutputArray<InterruptOverride>(storage.overrides);
    out.nmi_sources = OutputArray<NmiSource>(storage.nmi_sources);
    out.local_apic_nmis = OutputArray<LocalApicNmi>(storage.local_apic_nmis);
    out.local_x2apic_nmis = OutputArray<LocalX2apicNmi>(storage.local_x2apic_nmis);

    const auto header = madt_header(table);
    if (!header) {
        log.error("APIC", ErrorCode::Truncated, 0, phys, table.size());
        return false;
    }
    out.header = *header;
    out.local_apic_address = header->local_apic_address;

    SubtableWalker walker = madt_subtables(table, &log, phys);
    Subtable s;
    while (walker.next(s)) {
        ++out.subtables;
        const uint8_t min = madt_min_length(s.type);
        if (min == 0) {
            ++out.skipped;
            continue;
        }
        if (s.length < min) {
            ++out.too_short;
            log.error("APIC", ErrorCode::SubtableTooShort, s.offset, phys, s.length);
            continue;
        }
        switch (static_cast<MadtType>(s.type)) {
        case MadtType::LocalApic: {
            const LocalApic e = *decode_local_apic(s);
            add_cpu(out, log, phys, e.apic_id, e.processor_id, e.flags, MadtType::LocalApic,
                    e.offset, e.apic_id == 0xFF);
            break;
        }
        case MadtType::LocalX2apic: {
            const LocalX2apic e = *decode_local_x2apic(s);
            add_cpu(out, log, phys, e.x2apic_id, e.uid, e.flags, MadtType::LocalX2apic, e.offset,
                    e.x2apic_id == 0xFFFFFFFF);
            break;
        }
        case MadtType::IoApic:
            push_logged(out.io_apics, *decode_io_apic(s), log, phys);
            break;
        case MadtType::InterruptOverride:
            push_logged(out.overrides, *decode_interrupt_override(s), log, phys);
            break;
        case MadtType::NmiSource:
            push_logged(out.nmi_sources, *decode_nmi_source(s), log, phys);
            break;
        case MadtType::LocalApicNmi:
            push_logged(out.local_apic_nmis, *decode_local_apic_nmi(s), log, phys);
            break;
        case MadtType::LocalX2apicNmi:
            push_logged(out.local_x2apic_nmis, *decode_local_x2apic_nmi(s), log, phys);
            break;
        case MadtType::LocalApicAddressOverride:
            // ACPI allows only one; if firmware repeats it, the first one is used, as by ACPICA
            // based systems.
            if (!out.local_apic_address_overridden) {
                out.local_apic_address = decode_lapic_address_override(s)->address;
                out.local_apic_address_overridden = true;
            }
            break;
        }
    }
    out.complete = !walker.failed();

    if (bsp_apic_id != kNoBsp) {
        const auto cpus = out.cpus.items();
        for (size_t i = 0; i < cpus.size(); ++i) {
            if (cpus[i].apic_id == bsp_apic_id) {
                out.bsp = i;
                break;
            }
        }
        if (!out.bsp) log.warn("APIC", ErrorCode::BspNotFound, 0, phys, bsp_apic_id);
    }
    return true;
}

} // namespace cohort::acpi
