// FADT ("FACP") fields Cohort reads so far. Old firmware ships short FADTs (116 or 132 bytes,
// sometimes with a revision that does not match the length), so each field is present only if
// the table's own length covers it.
#pragma once

#include "acpi/bytes.h"

#include <cstdint>
#include <optional>

namespace cohort::acpi {

struct Fadt {
    std::optional<uint32_t> facs_address;            // 0x24
    std::optional<uint32_t> dsdt_address;            // 0x28
    std::optional<uint8_t> model;                    // 0x2C
    std::optional<uint8_t> pm_profile;               // 0x2D
    std::optional<uint16_t> sci_interrupt;           // 0x2E
    std::optional<uint16_t> boot_architecture_flags; // 0x6D (IA-PC: bit 1 = has 8042)
    std::optional<uint32_t> flags;                   // 0x70
    std::optional<uint8_t> minor_revision;           // 0x83
    std::optional<uint64_t> x_facs_address;          // 0x84
    std::optional<uint64_t> x_dsdt_address;          // 0x8C
};

/// Decodes a validated FADT; fields beyond the end of `table` are left empty.
Fadt parse_fadt(Bytes table);

} // namespace cohort::acpi
