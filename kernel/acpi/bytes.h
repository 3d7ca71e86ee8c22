// Bounds-checked little-endian field reads from byte spans. ACPI tables are byte-packed and
// often misaligned in memory, so fields are assembled byte by byte instead of through casts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

namespace cohort::acpi {

using Bytes = std::span<const uint8_t>;

/// Reads an unsigned little-endian integer at `offset`. Returns false, leaving `out` untouched,
/// if any byte of the field lies outside `bytes`.
template <typename T>
requires std::is_unsigned_v<T>
constexpr bool read_le(Bytes bytes, size_t offset, T& out) {
    if (offset > bytes.size() || bytes.size() - offset < sizeof(T)) return false;
    T value = 0;
    for (size_t i = 0; i < sizeof(T); ++i)
        value =
            static_cast<T>(value | static_cast<T>(static_cast<T>(bytes[offset + i]) << (8 * i)));
    out = value;
    return true;
}

/// Like read_le, for callers that already checked the bounds once for a whole structure; a
/// field outside `bytes` reads as 0 rather than faulting.
template <typename T>
requires std::is_unsigned_v<T>
constexpr T load_le(Bytes bytes, size_t offset) {
    T value = 0;
    read_le(bytes, offset, value);
    return value;
}

/// Byte sum modulo 256; an ACPI structure is valid when the sum over it is 0.
constexpr uint8_t byte_sum(Bytes bytes) {
    uint8_t sum = 0;
    for (uint8_t b : bytes)
        sum = static_cast<uint8_t>(sum + b);
    return sum;
}

/// Sub-span [offset, offset + len), clipped to what exists (possibly empty).
constexpr Bytes sub_bytes(Bytes bytes, size_t offset, size_t len) {
    if (offset >= bytes.size()) return {};
    const size_t avail = bytes.size() - offset;
    return bytes.subspan(offset, len < avail ? len : avail);
}

} // namespace cohort::acpi
