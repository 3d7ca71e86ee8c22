// MADT ("APIC") decoding: per-entry views over the table bytes, and the CPU/interrupt topology
// the kernel boots from.
#pragma once

#include "acpi/bytes.h"
#include "acpi/error.h"
#include "acpi/subtable.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace cohort::acpi {

/// Fixed part of the MADT: SDT header, local APIC address, flags.
inline constexpr size_t kMadtHeaderSize = 44;

/// x86 MADT subtable types Cohort decodes. Everything else (SAPIC, GIC, hidden IOAPICs
/// rewritten to 0x7F/0xFF, future types) is skipped by its length.
enum class MadtType : uint8_t {
    LocalApic = 0,
    IoApic = 1,
    InterruptOverride = 2,
    NmiSource = 3,
    LocalApicNmi = 4,
    LocalApicAddressOverride = 5,
    LocalX2apic = 9,
    LocalX2apicNmi = 10,
};

/// ACPICA's name for a subtable type (as iasl 20200925 prints it), for logs and acpi-inspect.
const char* madt_type_name(uint8_t type);

/// MPS INTI flags, bits 0-1.
enum class Polarity : uint8_t { Conforms = 0, ActiveHigh = 1, Reserved = 2, ActiveLow = 3 };
/// MPS INTI flags, bits 2-3.
enum class Trigger : uint8_t { Conforms = 0, Edge = 1, Reserved = 2, Level = 3 };

constexpr Polarity inti_polarity(uint16_t flags) {
    return static_cast<Polarity>(flags & 3);
}
constexpr Trigger inti_trigger(uint16_t flags) {
    return static_cast<Trigger>((flags >> 2) & 3);
}

inline constexpr uint32_t kCpuEnabled = 1u << 0;
inline constexpr uint32_t kCpuOnlineCapable = 1u << 1;

/// The flags as the corpus reports them: online-capable means bit 1 set and bit 0 clear.
constexpr bool cpu_flags_enabled(uint32_t flags) {
    return (flags & kCpuEnabled) != 0;
}
constexpr bool cpu_flags_online_capable(uint32_t flags) {
    return (flags & kCpuOnlineCapable) != 0 && (flags & kCpuEnabled) == 0;
}

struct MadtHeader {
    uint8_t revision;
    uint32_t local_apic_address;
    uint32_t flags;
    bool pcat_compat() const { return (flags & 1) != 0; }
};

/// Fixed MADT fields; nullopt if `table` is shorter than 44 bytes.
std::optional<MadtHeader> madt_header(Bytes table);

/// Walker over the MADT's subtables (see SubtableWalker for the stopping rules).
inline SubtableWalker madt_subtables(Bytes table, ErrorLog* log, uint64_t phys = 0) {
    return SubtableWalker(table, kMadtHeaderSize, "APIC", log, phys);
}

// Decoded entries. Each decode_* returns nullopt if the subtable has another type or is
// shorter than the type's layout.
struct LocalApic {
    uint32_t offset;
    uint8_t processor_id;
    uint8_t apic_id;
    uint32_t flags;
};
struct IoApic {
    uint32_t offset;
    uint8_t id;
    uint32_t address;
    uint32_t gsi_base;
};
struct InterruptOverride {
    uint32_t offset;
    uint8_t bus;
    uint8_t source_irq;
    uint32_t gsi;
    uint16_t flags;
    Polarity polarity() const { return inti_polarity(flags); }
    Trigger trigger() const { return inti_trigger(flags); }
};
struct NmiSource {
    uint32_t offset;
    uint16_t flags;
    uint32_t gsi;
    Polarity polarity() const { return inti_polarity(flags); }
    Trigger trigger() const { return inti_trigger(flags); }
};
/// Type 4. processor_id 0xFF means all processors.
struct LocalApicNmi {
    uint32_t offset;
    uint8_t processor_id;
    uint16_t flags;
    uint8_t lint;
    Polarity polarity() const { return inti_polarity(flags); }
    Trigger trigger() const { return inti_trigger(flags); }
};
struct LocalApicAddressOverride {
    uint32_t offset;
    uint64_t address;
};
struct LocalX2apic {
    uint32_t offset;
    uint32_t x2apic_id;
    uint32_t flags;
    uint32_t uid;
};
/// Type 10. uid 0xFFFFFFFF means all processors.
struct LocalX2apicNmi {
    uint32_t offset;
    uint16_t flags;
    uint32_t uid;
    uint8_t lint;
    Polarity polarity() const { return inti_polarity(flags); }
    Trigger trigger() const { return inti_trigger(flags); }
};

std::optional<LocalApic> decode_local_apic(const Subtable& s);
std::optional<IoApic> decode_io_apic(const Subtable& s);
std::optional<InterruptOverride> decode_interrupt_override(const Subtable& s);
std::optional<NmiSource> decode_nmi_source(const Subtable& s);
std::optional<LocalApicNmi> decode_local_apic_nmi(const Subtable& s);
std::optional<LocalApicAddressOverride> decode_lapic_address_override(const Subtable& s);
std::optional<LocalX2apic> decode_local_x2apic(const Subtable& s);
std::optional<LocalX2apicNmi> decode_local_x2apic_nmi(const Subtable& s);

/// Minimum length of a known type's subtable; 0 for types Cohort does not decode.
uint8_t madt_min_length(uint8_t type);

enum class CpuState : uint8_t {
    Enabled,       ///< Usable now: start it.
    OnlineCapable, ///< Not running, may be brought online later (MADT revision >= 5 only).
    Disabled,      ///< Neither: the OS must not use it.
};

/// One CPU from a type 0 or type 9 entry.
struct CpuEntry {
    uint32_t apic_id; ///< 8-bit xAPIC id widened, or the 32-bit x2APIC id.
    uint32_t uid;     ///< ACPI processor UID (type 0: the 8-bit processor id).
    CpuState state;
    MadtType source; ///< LocalApic or LocalX2apic.
    uint32_t offset; ///< Of the entry in the MADT.
};

/// Caller-provided output storage. Any span may be empty; overflowing items are counted and
/// an OutputTruncated error is logged. 4096 CpuEntry are 80 KiB.
struct MadtStorage {
    std::span<CpuEntry> cpus;
    std::span<IoApic> io_apics;
    std::span<InterruptOverride> overrides;
    std::span<NmiSource> nmi_sources;
    std::span<LocalApicNmi> local_apic_nmis;
    std::span<LocalX2apicNmi> local_x2apic_nmis;
};

/// The topology the kernel boots from.
struct MadtTopology {
    MadtHeader header{};
    /// Type 5 override if present (the first one), else the 32-bit header value.
    uint64_t local_apic_address = 0;
    bool local_apic_address_overridden = false;

    /// CPUs in table order: every type 0 and type 9 entry except placeholders (xAPIC id 0xFF,
    /// x2APIC id 0xFFFFFFFF) and repeated APIC ids (a CPU listed as both type 0 and type 9, or
    /// twice, is kept once: the first entry wins, as in Linux).
    OutputArray<CpuEntry> cpus;
    OutputArray<IoApic> io_apics;
    OutputArray<InterruptOverride> overrides;
    OutputArray<NmiSource> nmi_sources;
    OutputArray<LocalApicNmi> local_apic_nmis;
    OutputArray<LocalX2apicNmi> local_x2apic_nmis;

    size_t enabled = 0; ///< CPUs (listed or dropped) in each state.
    size_t online_capable = 0;
    size_t disabled = 0;
    size_t placeholders = 0; ///< Entries excluded as placeholders.
    size_t duplicates = 0;   ///< Entries excluded as repeated APIC ids.
    size_t subtables = 0;    ///< Subtables walked.
    size_t skipped = 0;      ///< Unknown or non-x86 subtables skipped by length.
    size_t too_short = 0;    ///< Known types too short to decode, skipped.
    bool complete = false;   ///< The walk reached the end of the table.

    /// Index in cpus of the CPU whose APIC id the caller passed as the BSP's.
    std::optional<size_t> bsp;
};

/// Builds the topology from a validated MADT (see validate_table). `bsp_apic_id` is the
/// running CPU's APIC id, read by the caller from the hardware (table order says nothing about
/// which CPU booted); pass kNoBsp when there is none (host tools). The online-capable bit is
/// honoured only from MADT revision 5, where ACPI 6.3 defined it (older firmware may leave
/// garbage there; Linux does the same). Returns false only if the fixed part is missing;
/// malformed subtables stop the walk (complete == false) with what was found so far kept.
bool parse_madt(Bytes table, uint32_t bsp_apic_id, const MadtStorage& storage, MadtTopology& out,
                ErrorLog& log, uint64_t phys = 0);

inline constexpr uint32_t kNoBsp = 0xFFFFFFFF;

} // namespace cohort::acpi
