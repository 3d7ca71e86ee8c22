// Little-endian byte builder for crafted ACPI tables in host tests, with the SDT header and the
// length-and-checksum fix-up every table needs.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace cohort::host {

struct TableBuilder {
    std::vector<uint8_t> b;
    TableBuilder& put(uint64_t v, int n) {
        for (int i = 0; i < n; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
        return *this;
    }
    TableBuilder& u8(uint64_t v) { return put(v, 1); }
    TableBuilder& u16(uint64_t v) { return put(v, 2); }
    TableBuilder& u32(uint64_t v) { return put(v, 4); }
    TableBuilder& u64(uint64_t v) { return put(v, 8); }
    /// `n` bytes of `s`, padded with spaces (as ACPI identifiers are).
    TableBuilder& str(const char* s, size_t n) {
        for (size_t i = 0; i < n; ++i)
            b.push_back(i < std::strlen(s) ? static_cast<uint8_t>(s[i]) : ' ');
        return *this;
    }
};

/// The 36-byte SDT header with the given identifiers; length and checksum are set by
/// finish_table().
inline TableBuilder sdt_header(const char* sig, uint8_t revision, const char* oem,
                               const char* table_id, const char* creator) {
    TableBuilder t;
    t.str(sig, 4).u32(0).u8(revision).u8(0).str(oem, 6).str(table_id, 8).u32(1);
    t.str(creator, 4).u32(1);
    return t;
}

/// Fills in the length and the checksum (off by `checksum_delta`, to craft a bad one).
inline std::vector<uint8_t> finish_table(TableBuilder t, int checksum_delta = 0) {
    const uint32_t len = static_cast<uint32_t>(t.b.size());
    for (int i = 0; i < 4; ++i) t.b[4 + i] = static_cast<uint8_t>(len >> (8 * i));
    t.b[9] = 0;
    uint8_t sum = 0;
    for (uint8_t x : t.b) sum = static_cast<uint8_t>(sum + x);
    t.b[9] = static_cast<uint8_t>(-sum + checksum_delta);
    return t.b;
}

} // namespace cohort::host
