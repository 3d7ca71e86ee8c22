#include "acpi/error.h"

namespace cohort::acpi {

const char* error_reason(ErrorCode code) {
    switch (code) {
    case ErrorCode::BadSignature:
        return "bad signature";
    case ErrorCode::BadChecksum:
        return "bad checksum";
    case ErrorCode::BadExtendedChecksum:
        return "bad extended checksum";
    case ErrorCode::Truncated:
        return "length smaller than the fixed header";
    case ErrorCode::LengthBeyondMapping:
        return "length runs past the readable bytes";
    case ErrorCode::Unreadable:
        return "address not readable";
    case ErrorCode::SubtableZeroLength:
        return "subtable length 0";
    case ErrorCode::SubtablePastEnd:
        return "subtable runs past the end of the table";
    case ErrorCode::SubtableTooShort:
        return "subtable shorter than its type requires";
    case ErrorCode::NullEntry:
        return "null table address";
    case ErrorCode::RootFallback:
        return "XSDT unusable, using RSDT";
    case ErrorCode::NoRootTable:
        return "no usable RSDT or XSDT";
    case ErrorCode::BufferTooSmall:
        return "table larger than the buffer";
    case ErrorCode::OutputTruncated:
        return "output array full, entries dropped";
    case ErrorCode::DuplicateApicId:
        return "duplicate APIC id";
    case ErrorCode::InvalidApicId:
        return "enabled CPU with placeholder APIC id";
    case ErrorCode::BspNotFound:
        return "running CPU's APIC id not in MADT";
    case ErrorCode::BadSlitSize:
        return "SLIT locality count does not match its length";
    case ErrorCode::ImplausibleLength:
        return "implausible table length";
    }
    return "unknown error";
}

void ErrorLog::add(std::string_view table, Severity severity, ErrorCode code, uint32_t offset,
                   uint64_t address, uint64_t detail) {
    ++total_;
    if (severity == Severity::Error)
        ++errors_;
    else
        ++warnings_;
    if (stored_ >= storage_.size()) return;
    Error& e = storage_[stored_++];
    for (size_t i = 0; i < 4; ++i) {
        const char c = i < table.size() ? table[i] : ' ';
        // Signatures come from untrusted bytes; keep the record printable.
        e.table[i] = (c >= 0x20 && c < 0x7f) ? c : '?';
    }
    e.table[4] = '\0';
    e.severity = severity;
    e.code = code;
    e.offset = offset;
    e.address = address;
    e.detail = detail;
}

size_t ErrorLog::count(Severity severity) const {
    return severity == Severity::Error ? errors_ : warnings_;
}

size_t ErrorLog::count(ErrorCode code) const {
    size_t n = 0;
    for (const Error& e : errors())
        if (e.code == code) ++n;
    return n;
}

} // namespace cohort::acpi
