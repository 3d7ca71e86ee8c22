// Device interrupt routing, the part that needs no hardware: which global system interrupt
// (GSI) an ISA IRQ arrives on and how it is signalled, which I/O APIC pin a GSI is, the
// redirection entry that sends it to a CPU, and the rule that spreads interrupts over CPUs.
// Portable (host-tested); the I/O APIC driver (arch/x86/ioapic.cc) and the interrupt table
// (irq/irq.cc) use it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "acpi/madt.h"

namespace cohort::irq {

/// How an interrupt line signals.
struct Signal {
    bool active_low = false;
    bool level = false;
    friend bool operator==(const Signal&, const Signal&) = default;
};

/// Where an ISA IRQ (0-15) arrives and how. Without an interrupt source override an ISA IRQ is
/// the GSI of the same number, edge-triggered and active high (the ISA bus's own signalling;
/// ACPI 5.2.12.5). An override (bus 0) names the GSI, and its flags replace the bus's default
/// where they do not say "conforms".
struct IsaRoute {
    uint32_t gsi = 0;
    Signal signal;
    bool overridden = false;
};
IsaRoute isa_route(uint8_t isa_irq, std::span<const acpi::InterruptOverride> overrides);

/// The ISA IRQ whose interrupts arrive on `gsi`, if one does: an override's source, or the same
/// number when no override moves that IRQ elsewhere and no override moves another IRQ onto it.
std::optional<uint8_t> isa_irq_of_gsi(uint32_t gsi,
                                      std::span<const acpi::InterruptOverride> overrides);

/// Signalling for an NMI source or override flags outside the ISA bus: "conforms" means the
/// bus default, which for everything but ISA (PCI, the SCI) is level-triggered, active low.
Signal signal_from_flags(uint16_t flags, bool isa);

/// One I/O APIC as the router sees it: its GSIs are [gsi_base, gsi_base + pins).
struct Chip {
    uint32_t gsi_base = 0;
    uint32_t pins = 0;
};
struct Pin {
    uint32_t chip = 0; ///< index into the chip list
    uint32_t pin = 0;
    friend bool operator==(const Pin&, const Pin&) = default;
};
/// The chip and pin of `gsi`, or nullopt if no chip covers it.
std::optional<Pin> pin_of_gsi(uint32_t gsi, std::span<const Chip> chips);
/// Chips whose GSI ranges overlap (a firmware error): the index of the second of the first
/// such pair, or nullopt.
std::optional<uint32_t> find_overlap(std::span<const Chip> chips);

enum class Delivery : uint8_t { Fixed = 0, Nmi = 4 };

/// A 64-bit I/O APIC redirection entry: physical destination mode, the given vector, delivery
/// mode, signalling, mask and 8-bit destination APIC id (82093AA datasheet, section 3.2.4).
uint64_t redirection_entry(uint8_t vector, Delivery delivery, Signal signal, bool masked,
                           uint8_t dest_apic_id);
/// The fields back (for tests and the `irq` console listing).
struct EntryFields {
    uint8_t vector;
    Delivery delivery;
    Signal signal;
    bool masked;
    uint8_t dest;
};
EntryFields decode_entry(uint64_t entry);

/// Physical destinations are 8 bits and 0xFF means every CPU: without interrupt remapping an
/// I/O APIC can send to APIC ids 0-254 only.
constexpr bool reachable_apic_id(uint32_t apic_id) { return apic_id <= 254; }

/// The spreading rule: among the CPUs that may take device interrupts (`eligible[i]`), the one
/// with the fewest interrupts routed to it (`routed[i]`); ties go to the lowest CPU number, but
/// CPU 0 (which runs the boot and the console) loses ties to any other. nullopt if none is
/// eligible.
std::optional<uint32_t> spread_target(std::span<const uint32_t> routed,
                                      std::span<const bool> eligible);

} // namespace cohort::irq
