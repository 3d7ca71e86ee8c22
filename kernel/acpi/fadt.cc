#include "acpi/fadt.h"

namespace cohort::acpi {
namespace {

template <typename T>
std::optional<T> field(Bytes table, size_t offset) {
    T v{};
    if (!read_le(table, offset, v)) return std::nullopt;
    return v;
}

std::optional<GenericAddress> gas(Bytes table, size_t offset) {
    if (offset > table.size() || table.size() - offset < 12) return std::nullopt;
    GenericAddress g;
    g.space = load_le<uint8_t>(table, offset);
    g.bit_width = load_le<uint8_t>(table, offset + 1);
    g.bit_offset = load_le<uint8_t>(table, offset + 2);
    g.access_size = load_le<uint8_t>(table, offset + 3);
    g.address = load_le<uint64_t>(table, offset + 4);
    return g;
}

} // namespace

std::optional<IoBlock> fadt_gpe0_io(const Fadt& f) {
    if (f.x_gpe0_block && f.x_gpe0_block->address != 0) {
        const GenericAddress& g = *f.x_gpe0_block;
        // The X_ form's length is its bit width (ACPI 6.5, 5.2.9, X_GPE0_BLK).
        if (g.space != kSpaceSystemIo || g.address > 0xffff || g.bit_width == 0) return std::nullopt;
        return IoBlock{static_cast<uint16_t>(g.address), static_cast<uint16_t>(g.bit_width / 8)};
    }
    if (!f.gpe0_block || *f.gpe0_block == 0 || *f.gpe0_block > 0xffff || !f.gpe0_block_length ||
        *f.gpe0_block_length == 0)
        return std::nullopt;
    return IoBlock{static_cast<uint16_t>(*f.gpe0_block), *f.gpe0_block_length};
}

uint64_t fadt_dsdt(const Fadt& f) {
    if (f.x_dsdt_address && *f.x_dsdt_address != 0) return *f.x_dsdt_address;
    return f.dsdt_address ? *f.dsdt_address : 0;
}

Fadt parse_fadt(Bytes table) {
    Fadt f;
    f.facs_address = field<uint32_t>(table, 0x24);
    f.dsdt_address = field<uint32_t>(table, 0x28);
    f.model = field<uint8_t>(table, 0x2C);
    f.pm_profile = field<uint8_t>(table, 0x2D);
    f.sci_interrupt = field<uint16_t>(table, 0x2E);
    f.smi_command = field<uint32_t>(table, 0x30);
    f.acpi_enable = field<uint8_t>(table, 0x34);
    f.pm1a_event_block = field<uint32_t>(table, 0x38);
    f.pm1a_control_block = field<uint32_t>(table, 0x40);
    f.gpe0_block = field<uint32_t>(table, 0x50);
    f.pm1_event_length = field<uint8_t>(table, 0x58);
    f.gpe0_block_length = field<uint8_t>(table, 0x5C);
    f.boot_architecture_flags = field<uint16_t>(table, 0x6D);
    f.flags = field<uint32_t>(table, 0x70);
    f.minor_revision = field<uint8_t>(table, 0x83);
    f.x_facs_address = field<uint64_t>(table, 0x84);
    f.x_dsdt_address = field<uint64_t>(table, 0x8C);
    f.x_pm1a_control_block = gas(table, 0xAC);
    f.x_gpe0_block = gas(table, 0xDC);
    return f;
}

} // namespace cohort::acpi
