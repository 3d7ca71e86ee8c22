// I/O APIC chips (Intel 82093AA and compatibles): register access and redirection entries.
// Which entry to write is decided by the interrupt table (irq/irq.cc) and irq/routing.h.
#pragma once

#include <cstdint>
#include <span>

#include "acpi/madt.h"
#include "irq/routing.h"

namespace cohort::x86 {

/// Maps every I/O APIC the MADT lists, reads how many pins each has and masks every pin (so
/// nothing the firmware left armed fires before it is routed). Chips that do not answer (a
/// version register of all ones) or overlap another's GSIs are left out with an error. Returns
/// the number of chips in use.
uint32_t ioapic_init(std::span<const acpi::IoApic> chips);
uint32_t ioapic_count();
/// The chips' GSI ranges, in MADT order (for irq::pin_of_gsi).
std::span<const irq::Chip> ioapic_chips();
struct IoApicInfo {
    uint8_t id;
    uint8_t version;
    uint32_t address;
    uint32_t gsi_base;
    uint32_t pins;
};
IoApicInfo ioapic_info(uint32_t chip);

/// Writes a whole redirection entry. The low half (with the mask bit) goes last when unmasking
/// and first when masking, so the pin is never live with half an entry.
void ioapic_write(irq::Pin pin, uint64_t entry);
uint64_t ioapic_read(irq::Pin pin);
/// Changes only the destination (the high half: one 32-bit write, so the pin never points
/// anywhere in between and an edge arriving meanwhile goes to the old or the new CPU, not
/// nowhere).
void ioapic_set_destination(irq::Pin pin, uint8_t apic_id);

} // namespace cohort::x86
