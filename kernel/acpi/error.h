// Error records for ACPI parsing. Firmware tables are untrusted input: every problem becomes a
// record naming the table, byte offset and reason, and the parser carries on or stops safely.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace cohort::acpi {

enum class ErrorCode : uint8_t {
    BadSignature,        ///< Signature is not the one expected here.
    BadChecksum,         ///< Byte sum over the structure is not 0.
    BadExtendedChecksum, ///< RSDP revision >= 2: the 36-byte checksum is not 0.
    Truncated,           ///< Length field smaller than the fixed part of the table.
    LengthBeyondMapping, ///< Length field runs past the bytes that could be read.
    Unreadable,          ///< Physical memory at the address could not be read at all.
    SubtableZeroLength,  ///< Subtable length 0 (or below 2): walking stops to avoid a loop.
    SubtablePastEnd,     ///< Subtable runs past the end of the table: walking stops.
    SubtableTooShort,    ///< Known subtable type shorter than its layout: entry skipped.
    NullEntry,           ///< RSDT/XSDT entry is 0.
    RootFallback,        ///< Warning: XSDT missing or invalid, the RSDT is used instead.
    NoRootTable,         ///< Neither XSDT nor RSDT is usable.
    BufferTooSmall,      ///< Caller's buffer cannot hold the table; `detail` = length needed.
    OutputTruncated,     ///< Caller's output array was full; `detail` = entries dropped.
    DuplicateApicId,     ///< Warning: APIC id already listed; `detail` = the id.
    InvalidApicId,       ///< Warning: enabled CPU with a broadcast/placeholder id.
    BspNotFound,         ///< Warning: the running CPU's APIC id is not in the MADT.
    BadSlitSize,         ///< SLIT locality count does not fit the table length.
    ImplausibleLength,   ///< Root table length beyond any real firmware; `detail` = length.
};

enum class Severity : uint8_t { Warning, Error };

/// One problem found while parsing.
struct Error {
    char table[5]; ///< Signature of the table (NUL-terminated), e.g. "APIC", "RSD ".
    Severity severity;
    ErrorCode code;
    uint32_t offset;  ///< Byte offset inside the table where the problem is.
    uint64_t address; ///< Physical address of the table (0 when parsing a bare buffer).
    uint64_t detail;  ///< Code-specific value (needed length, duplicate id, ...).
};

/// Short human-readable reason for logs and JSON.
const char* error_reason(ErrorCode code);

/// Collects errors into caller-provided storage. When full, further errors are counted but not
/// stored, so a hostile table cannot make the log grow without bound.
class ErrorLog {
  public:
    ErrorLog() = default;
    explicit ErrorLog(std::span<Error> storage) : storage_(storage) {}

    void add(std::string_view table, Severity severity, ErrorCode code, uint32_t offset,
             uint64_t address = 0, uint64_t detail = 0);
    void error(std::string_view table, ErrorCode code, uint32_t offset, uint64_t address = 0,
               uint64_t detail = 0) {
        add(table, Severity::Error, code, offset, address, detail);
    }
    void warn(std::string_view table, ErrorCode code, uint32_t offset, uint64_t address = 0,
              uint64_t detail = 0) {
        add(table, Severity::Warning, code, offset, address, detail);
    }

    std::span<const Error> errors() const { return storage_.first(stored_); }
    size_t total() const { return total_; }
    size_t dropped() const { return total_ - stored_; }
    size_t count(Severity severity) const;
    size_t count(ErrorCode code) const;

  private:
    std::span<Error> storage_;
    size_t stored_ = 0;
    size_t total_ = 0;
    size_t errors_ = 0;
    size_t warnings_ = 0;
};

} // namespace cohort::acpi
