#include "irq/routing.h"

namespace cohort::irq {

namespace {
constexpr uint8_t kIsaBus = 0;
} // namespace

Signal signal_from_flags(uint16_t flags, bool isa) {
    Signal s;
    switch (acpi::inti_polarity(flags)) {
    case acpi::Polarity::ActiveHigh: s.active_low = false; break;
    case acpi::Polarity::ActiveLow: s.active_low = true; break;
    default: s.active_low = !isa; break; // conforms (or reserved): the bus's default
    }
    switch (acpi::inti_trigger(flags)) {
    case acpi::Trigger::Edge: s.level = false; break;
    case acpi::Trigger::Level: s.level = true; break;
    default: s.level = !isa; break;
    }
    return s;
}

IsaRoute isa_route(uint8_t isa_irq, std::span<const acpi::InterruptOverride> overrides) {
    for (const acpi::InterruptOverride& o : overrides) {
        if (o.bus != kIsaBus || o.source_irq != isa_irq) continue;
        return {o.gsi, signal_from_flags(o.flags, true), true};
    }
    return {isa_irq, Signal{}, false};
}

std::optional<uint8_t> isa_irq_of_gsi(uint32_t gsi,
                                      std::span<const acpi::InterruptOverride> overrides) {
    for (const acpi::InterruptOverride& o : overrides)
        if (o.bus == kIsaBus && o.gsi == gsi) return o.source_irq;
    if (gsi >= 16) return std::nullopt;
    const uint8_t irq = static_cast<uint8_t>(gsi);
    if (isa_route(irq, overrides).gsi != gsi) return std::nullopt; // moved elsewhere
    return irq;
}

std::optional<Pin> pin_of_gsi(uint32_t gsi, std::span<const Chip> chips) {
    for (uint32_t i = 0; i < chips.size(); ++i) {
        const Chip& c = chips[i];
        if (gsi >= c.gsi_base && gsi - c.gsi_base < c.pins) return Pin{i, gsi - c.gsi_base};
    }
    return std::nullopt;
}

std::optional<uint32_t> find_overlap(std::span<const Chip> chips) {
    for (uint32_t j = 1; j < chips.size(); ++j)
        for (uint32_t i = 0; i < j; ++i) {
            const Chip& a = chips[i];
            const Chip& b = chips[j];
            if (a.pins == 0 || b.pins == 0) continue;
            if (a.gsi_base < b.gsi_base + b.pins && b.gsi_base < a.gsi_base + a.pins) return j;
        }
    return std::nullopt;
}

uint64_t redirection_entry(uint8_t vector, Delivery delivery, Signal signal, bool masked,
                           uint8_t dest_apic_id) {
    uint64_t e = vector;
    e |= uint64_t{static_cast<uint8_t>(delivery)} << 8; // bits 8-10; bit 11 = 0: physical
    if (signal.active_low) e |= 1ull << 13;
    if (signal.level) e |= 1ull << 15;
    if (masked) e |= 1ull << 16;
    e |= uint64_t{dest_apic_id} << 56;
    return e;
}

EntryFields decode_entry(uint64_t e) {
    EntryFields f;
    f.vector = static_cast<uint8_t>(e & 0xff);
    f.delivery = static_cast<Delivery>((e >> 8) & 7);
    f.signal.active_low = (e >> 13) & 1;
    f.signal.level = (e >> 15) & 1;
    f.masked = (e >> 16) & 1;
    f.dest = static_cast<uint8_t>(e >> 56);
    return f;
}

std::optional<uint32_t> spread_target(std::span<const uint32_t> routed,
                                      std::span<const bool> eligible) {
    std::optional<uint32_t> best;
    const size_t n = routed.size() < eligible.size() ? routed.size() : eligible.size();
    for (uint32_t i = 0; i < n; ++i) {
        if (!eligible[i]) continue;
        if (!best) {
            best = i;
            continue;
        }
        // CPU 0 loses ties: compare as if it had half an interrupt more.
        const uint64_t mine = uint64_t{routed[i]} * 2 + (i == 0 ? 1 : 0);
        const uint64_t theirs = uint64_t{routed[*best]} * 2 + (*best == 0 ? 1 : 0);
        if (mine < theirs) best = i;
    }
    return best;
}

} // namespace cohort::irq
