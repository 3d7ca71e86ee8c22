// SRAT (processor/memory affinity) and SLIT (locality distances): the NUMA layout.
#pragma once

#include "acpi/bytes.h"
#include "acpi/error.h"
#include "acpi/subtable.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace cohort::acpi {

/// SDT header, table revision (4 bytes, "1") and 8 reserved bytes.
inline constexpr size_t kSratHeaderSize = 48;

/// Type 0 (xAPIC) or type 2 (x2APIC) processor affinity.
struct SratCpu {
    uint32_t offset;
    uint32_t domain;  ///< Proximity domain (type 0: 8 low bits + 24 high bits combined).
    uint32_t apic_id; ///< Type 0: the 8-bit APIC id.
    uint32_t flags;
    uint32_t clock_domain;
    bool x2apic; ///< True for type 2.
    bool enabled() const { return (flags & 1) != 0; }
};

/// Type 1 memory affinity.
struct SratMemory {
    uint32_t offset;
    uint32_t domain;
    uint64_t base;
    uint64_t length;
    uint32_t flags;
    bool enabled() const { return (flags & 1) != 0; }
    bool hot_pluggable() const { return (flags & 2) != 0; }
    bool non_volatile() const { return (flags & 4) != 0; }
};

/// A proximity domain that has at least one enabled CPU or memory range.
struct NumaNode {
    uint32_t domain;
    uint32_t cpus;
    uint32_t memory_ranges;
    uint64_t memory_bytes;
};

struct SratStorage {
    std::span<SratCpu> cpus;
    std::span<SratMemory> memory;
    std::span<NumaNode> nodes;
};

struct SratInfo {
    uint32_t table_revision = 0;
    OutputArray<SratCpu> cpus;      ///< Enabled entries only: disabled ones are to be ignored.
    OutputArray<SratMemory> memory; ///< Enabled entries only.
    OutputArray<NumaNode> nodes;    ///< In order of first appearance.
    size_t subtables = 0;
    size_t skipped = 0;  ///< Other types (GICC, generic initiator, ...) skipped by length.
    size_t disabled = 0; ///< Entries with the enabled flag clear.
    size_t too_short = 0;
    bool complete = false;
};

/// Parses a validated SRAT. Returns false only if the fixed part is missing.
bool parse_srat(Bytes table, const SratStorage& storage, SratInfo& out, ErrorLog& log,
                uint64_t phys = 0);

/// Distance matrix of a validated SLIT, indexed by proximity domain.
class Slit {
  public:
    /// nullopt (logged as BadSlitSize) if the locality count does not fit the table.
    static std::optional<Slit> parse(Bytes table, ErrorLog& log, uint64_t phys = 0);

    uint64_t localities() const { return n_; }
    /// Relative distance from domain `from` to domain `to` (10 = local, 0xFF = unreachable);
    /// nullopt outside the matrix.
    std::optional<uint8_t> distance(uint64_t from, uint64_t to) const;

  private:
    Bytes matrix_;
    uint64_t n_ = 0;
};

} // namespace cohort::acpi
