#include "acpi/fadt.h"

namespace cohort::acpi {
namespace {

template <typename T>
std::optional<T> field(Bytes table, size_t offset) {
    T v{};
    if (!read_le(table, offset, v)) return std::nullopt;
    return v;
}

} // namespace

Fadt parse_fadt(Bytes table) {
    Fadt f;
    f.facs_address = field<uint32_t>(table, 0x24);
    f.dsdt_address = field<uint32_t>(table, 0x28);
    f.model = field<uint8_t>(table, 0x2C);
    f.pm_profile = field<uint8_t>(table, 0x2D);
    f.sci_interrupt = field<uint16_t>(table, 0x2E);
    f.boot_architecture_flags = field<uint16_t>(table, 0x6D);
    f.flags = field<uint32_t>(table, 0x70);
    f.minor_revision = field<uint8_t>(table, 0x83);
    f.x_facs_address = field<uint64_t>(table, 0x84);
    f.x_dsdt_address = field<uint64_t>(table, 0x8C);
    return f;
}

} // namespace cohort::acpi
