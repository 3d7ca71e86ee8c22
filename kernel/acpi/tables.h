// RSDP, system description table headers and the RSDT/XSDT table directory.
#pragma once

#include "acpi/bytes.h"
#include "acpi/error.h"
#include "acpi/phys.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace cohort::acpi {

inline constexpr size_t kSdtHeaderSize = 36;
inline constexpr size_t kRsdpV1Size = 20;
inline constexpr size_t kRsdpV2Size = 36;

/// Fixed-size text field copied out of a table; `text()` stops at the first NUL, as iasl does.
template <size_t N>
struct FixedString {
    char bytes[N] = {};
    std::string_view text() const {
        size_t n = 0;
        while (n < N && bytes[n] != '\0')
            ++n;
        return {bytes, n};
    }
    bool operator==(std::string_view s) const { return text() == s; }
};

/// The 36-byte header shared by every table except the RSDP (and the FACS).
struct SdtHeader {
    FixedString<4> signature;
    uint32_t length;
    uint8_t revision;
    uint8_t checksum;
    FixedString<6> oem_id;
    FixedString<8> oem_table_id;
    uint32_t oem_revision;
    FixedString<4> creator_id;
    uint32_t creator_revision;
};

/// Decodes the header fields without judging them; nullopt if fewer than 36 bytes are given.
std::optional<SdtHeader> parse_sdt_header(Bytes bytes);

/// Checks a table held in memory: at least a header, a length field no smaller than the
/// header and no larger than `bytes`, the expected signature (if `signature` is non-empty) and
/// a zero byte sum. Returns exactly the table's own bytes (`bytes` trimmed to the length
/// field) or nullopt after logging why. `phys` only labels the error records.
std::optional<Bytes> validate_table(Bytes bytes, std::string_view signature, ErrorLog& log,
                                    uint64_t phys = 0);

/// Root System Description Pointer.
struct Rsdp {
    FixedString<6> oem_id;
    uint8_t revision;
    uint8_t checksum;
    uint32_t rsdt_address;
    // Valid only when revision >= 2 and the 36-byte structure was available.
    bool has_extended;
    uint32_t length;
    uint64_t xsdt_address;
    uint8_t extended_checksum;
    bool checksum_valid;
    bool extended_checksum_valid;
};

/// Decodes an RSDP from memory. Returns nullopt (logged) for a wrong signature or fewer than
/// 20 bytes; checksum results are reported in the fields (and logged) but do not reject it, so
/// a caller can still show what is there. find_root() decides what to trust.
std::optional<Rsdp> parse_rsdp(Bytes bytes, ErrorLog& log, uint64_t phys = 0);

/// The entries of an RSDT (32-bit addresses) or XSDT (64-bit addresses) held in memory.
class RootEntries {
  public:
    RootEntries() = default;
    RootEntries(Bytes table, size_t entry_size) : table_(table), entry_size_(entry_size) {}

    size_t size() const {
        return table_.size() < kSdtHeaderSize ? 0 : (table_.size() - kSdtHeaderSize) / entry_size_;
    }
    /// Entry `i`; 0 when out of range.
    uint64_t operator[](size_t i) const;
    size_t entry_size() const { return entry_size_; }

  private:
    Bytes table_;
    size_t entry_size_ = 8;
};

/// Interprets a validated RSDT or XSDT (decided by its signature). Trailing bytes that do not
/// make a whole entry are ignored, as ACPICA does.
std::optional<RootEntries> root_entries(Bytes table);

enum class RootKind : uint8_t { Xsdt, Rsdt };

/// Reads a table header from physical memory; nullopt (logged as Unreadable) if it cannot.
std::optional<SdtHeader> read_table_header(const PhysReader& reader, uint64_t phys, ErrorLog& log);

/// Copies the table at `phys` into `buffer` and validates it (see validate_table). A table
/// longer than `buffer` gives BufferTooSmall with the needed length as `detail`: the kernel
/// can size the buffer from read_table_header() first.
std::optional<Bytes> load_table(const PhysReader& reader, uint64_t phys, std::span<uint8_t> buffer,
                                std::string_view signature, ErrorLog& log);

/// The set of tables reachable from the RSDP. Holds no table bytes: entries and headers are
/// read through the PhysReader on demand, so any number of tables can be enumerated without
/// allocation. The reader must outlive the directory.
class TableDirectory {
  public:
    /// Reads the RSDP at `rsdp_phys` and picks the root table: the XSDT when the RSDP has
    /// revision >= 2, a valid extended checksum and an XSDT that validates; otherwise the RSDT,
    /// with a RootFallback warning when an XSDT was advertised but unusable. Every root entry
    /// is probed once: null entries and entries whose header cannot be read are logged here
    /// (not on every lookup). nullopt if no root table is usable.
    static std::optional<TableDirectory> open(const PhysReader& reader, uint64_t rsdp_phys,
                                              ErrorLog& log);

    RootKind kind() const { return kind_; }
    uint64_t root_address() const { return root_phys_; }
    const Rsdp& rsdp() const { return rsdp_; }
    size_t entry_count() const { return entries_; }

    /// Physical address stored in root entry `i` (0 if it cannot be read).
    uint64_t entry(size_t i) const;

    /// Address of the `instance`-th (0-based, in root-table order) table whose signature is
    /// `signature`; unreadable entries are skipped. nullopt when there is no such table.
    std::optional<uint64_t> find(std::string_view signature, size_t instance = 0) const;

    /// Number of tables with this signature.
    size_t count(std::string_view signature) const;

    /// Loads the first instance of `signature`, in root-table order, that validates (length
    /// and checksum). Firmware that lists two MADTs (some Apple, Acer, Toshiba machines) is
    /// handled the way ACPICA's AcpiGetTable(sig, 1) handles it for Linux and Windows: the
    /// first one wins, so Cohort sees the same CPUs as those systems. A later instance is used
    /// only if the earlier ones fail validation (each failure is logged).
    std::optional<Bytes> load_first_valid(std::string_view signature, std::span<uint8_t> buffer,
                                          ErrorLog& log, uint64_t* phys_out = nullptr) const;

  private:
    TableDirectory() = default;

    const PhysReader* reader_ = nullptr;
    Rsdp rsdp_{};
    RootKind kind_ = RootKind::Rsdt;
    uint64_t root_phys_ = 0;
    size_t entries_ = 0;
};

} // namespace cohort::acpi
