// FADT ("FACP") fields Cohort reads so far. Old firmware ships short FADTs (116 or 132 bytes,
// sometimes with a revision that does not match the length), so each field is present only if
// the table's own length covers it.
#pragma once

#include "acpi/bytes.h"

#include <cstdint>
#include <optional>

namespace cohort::acpi {

/// A Generic Address Structure (ACPI 6.5, 5.2.3.2): where a register lives.
struct GenericAddress {
    uint8_t space = 0;       // 0 system memory, 1 system I/O, ...
    uint8_t bit_width = 0;
    uint8_t bit_offset = 0;
    uint8_t access_size = 0; // 0 undefined, 1 byte .. 4 qword
    uint64_t address = 0;
};
inline constexpr uint8_t kSpaceSystemIo = 1;

struct Fadt {
    std::optional<uint32_t> facs_address;            // 0x24
    std::optional<uint32_t> dsdt_address;            // 0x28
    std::optional<uint8_t> model;                    // 0x2C
    std::optional<uint8_t> pm_profile;               // 0x2D
    std::optional<uint16_t> sci_interrupt;           // 0x2E
    std::optional<uint32_t> smi_command;             // 0x30: port that switches ACPI mode
    std::optional<uint8_t> acpi_enable;              // 0x34: value written there to enable
    std::optional<uint32_t> pm1a_event_block;        // 0x38
    std::optional<uint32_t> pm1a_control_block;      // 0x40 (bit 0 of it: SCI_EN)
    std::optional<uint32_t> gpe0_block;              // 0x50: status half, then enable half
    std::optional<uint8_t> pm1_event_length;         // 0x58
    std::optional<uint8_t> gpe0_block_length;        // 0x5C: bytes, both halves
    std::optional<uint16_t> boot_architecture_flags; // 0x6D (IA-PC: bit 1 = has 8042)
    std::optional<uint32_t> flags;                   // 0x70
    std::optional<uint8_t> minor_revision;           // 0x83
    std::optional<uint64_t> x_facs_address;          // 0x84
    std::optional<uint64_t> x_dsdt_address;          // 0x8C
    std::optional<GenericAddress> x_pm1a_control_block; // 0xAC
    std::optional<GenericAddress> x_gpe0_block;         // 0xDC
};

/// The GPE0 block in I/O space, as ACPI says to choose it: X_GPE0_BLK when it is set (and in
/// I/O space), else GPE0_BLK. Empty when there is none or it is not port I/O.
struct IoBlock {
    uint16_t port = 0;
    uint16_t length = 0;
};
std::optional<IoBlock> fadt_gpe0_io(const Fadt& f);
/// The physical address of the DSDT (X_DSDT when non-zero, else DSDT), or 0.
uint64_t fadt_dsdt(const Fadt& f);

/// Decodes a validated FADT; fields beyond the end of `table` are left empty.
Fadt parse_fadt(Bytes table);

} // namespace cohort::acpi
