#include "arch/x86/ioapic.h"

#include "debug/log.h"
#include "mm/vmm.h"
#include "sync/guard.h"
#include "sync/lock_ranks.h"
#include "sync/spinlock.h"

namespace cohort::x86 {

namespace {

// The chip is reached through an index register and a data window (82093AA 3.1): the pair
// must not be interleaved by two CPUs, hence a lock per chip.
constexpr uint32_t kRegSelect = 0x00 / 4;
constexpr uint32_t kWindow = 0x10 / 4;
constexpr uint32_t kRegVersion = 0x01;
constexpr uint32_t kRegTableBase = 0x10;
constexpr uint32_t kMaxChips = 16;

LockClass g_ioapic_class{"I/O APIC", rank::kIoApic, LockScope::MachineWide};

struct ChipState {
    volatile uint32_t* mmio = nullptr;
    SpinLock lock{&g_ioapic_class};
    IoApicInfo info{};
};

ChipState g_chips[kMaxChips];
irq::Chip g_ranges[kMaxChips];
uint32_t g_count = 0;

uint32_t read_reg(ChipState& c, uint32_t reg) COHORT_REQUIRES(c.lock) {
    c.mmio[kRegSelect] = reg;
    return c.mmio[kWindow];
}
void write_reg(ChipState& c, uint32_t reg, uint32_t value) COHORT_REQUIRES(c.lock) {
    c.mmio[kRegSelect] = reg;
    c.mmio[kWindow] = value;
}

} // namespace

uint32_t ioapic_init(std::span<const acpi::IoApic> chips) {
    for (const acpi::IoApic& a : chips) {
        if (g_count == kMaxChips) {
            log_error("ioapic: more than %u I/O APICs; the rest are not used", kMaxChips);
            break;
        }
        auto* mmio = static_cast<volatile uint32_t*>(vmm::map_device(a.address, 0x20));
        if (mmio == nullptr) {
            log_error("ioapic: cannot map I/O APIC %u at %#x", a.id, a.address);
            continue;
        }
        ChipState& c = g_chips[g_count];
        c.mmio = mmio;
        uint32_t version;
        {
            Guard<SpinLock, IrqSave> g(c.lock);
            version = read_reg(c, kRegVersion);
        }
        if (version == 0xffffffffu) {
            log_error("ioapic: I/O APIC %u at %#x does not answer (version register all ones); "
                      "not used", a.id, a.address);
            continue;
        }
        const uint32_t pins = ((version >> 16) & 0xff) + 1;
        g_ranges[g_count] = irq::Chip{a.gsi_base, pins};
        if (auto bad = irq::find_overlap(std::span(g_ranges, g_count + 1))) {
            log_error("ioapic: I/O APIC %u (GSIs %u-%u) overlaps another chip's GSIs; not used",
                      a.id, a.gsi_base, a.gsi_base + pins - 1);
            continue;
        }
        c.info = IoApicInfo{a.id, static_cast<uint8_t>(version & 0xff), a.address, a.gsi_base, pins};
        {
            Guard<SpinLock, IrqSave> g(c.lock);
            for (uint32_t p = 0; p < pins; ++p) {
                // Masked, with a harmless vector: the entry's other bits are not trusted.
                write_reg(c, kRegTableBase + 2 * p, 1u << 16);
                write_reg(c, kRegTableBase + 2 * p + 1, 0);
            }
        }
        log_info("ioapic: I/O APIC %u at %#x, version %#x, GSIs %u-%u, all masked", a.id,
                 a.address, version & 0xff, a.gsi_base, a.gsi_base + pins - 1);
        ++g_count;
    }
    return g_count;
}

uint32_t ioapic_count() { return g_count; }
std::span<const irq::Chip> ioapic_chips() { return std::span(g_ranges, g_count); }
IoApicInfo ioapic_info(uint32_t chip) { return chip < g_count ? g_chips[chip].info : IoApicInfo{}; }

void ioapic_write(irq::Pin pin, uint64_t entry) {
    if (pin.chip >= g_count) return;
    ChipState& c = g_chips[pin.chip];
    const uint32_t reg = kRegTableBase + 2 * pin.pin;
    const uint32_t low = static_cast<uint32_t>(entry);
    const uint32_t high = static_cast<uint32_t>(entry >> 32);
    Guard<SpinLock, IrqSave> g(c.lock);
    if ((low & (1u << 16)) != 0) {
        write_reg(c, reg, low);
        write_reg(c, reg + 1, high);
    } else {
        write_reg(c, reg, low | (1u << 16));
        write_reg(c, reg + 1, high);
        write_reg(c, reg, low);
    }
}

uint64_t ioapic_read(irq::Pin pin) {
    if (pin.chip >= g_count) return 0;
    ChipState& c = g_chips[pin.chip];
    const uint32_t reg = kRegTableBase + 2 * pin.pin;
    Guard<SpinLock, IrqSave> g(c.lock);
    const uint64_t low = read_reg(c, reg);
    return low | uint64_t{read_reg(c, reg + 1)} << 32;
}

void ioapic_set_destination(irq::Pin pin, uint8_t apic_id) {
    if (pin.chip >= g_count) return;
    ChipState& c = g_chips[pin.chip];
    Guard<SpinLock, IrqSave> g(c.lock);
    write_reg(c, kRegTableBase + 2 * pin.pin + 1, uint32_t{apic_id} << 24);
}

} // namespace cohort::x86
