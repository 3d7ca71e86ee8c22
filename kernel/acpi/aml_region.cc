#include "acpi/aml_region.h"

namespace cohort::acpi {
namespace {

constexpr uint8_t kExtOpPrefix = 0x5B;
constexpr uint8_t kOpRegionOp = 0x80;

bool lead_char(uint8_t c) { return (c >= 'A' && c <= 'Z') || c == '_'; }
bool name_char(uint8_t c) { return lead_char(c) || (c >= '0' && c <= '9'); }

bool name_seg(Bytes b, size_t at) {
    if (at + 4 > b.size() || !lead_char(b[at])) return false;
    for (size_t i = 1; i < 4; ++i)
        if (!name_char(b[at + i])) return false;
    return true;
}

// A NameString (ACPI 6.5, 20.2.2): root or parent prefixes, then one segment, a dual-name
// prefix and two, or a multi-name prefix, a count and that many. Sets `last` to the offset of
// the last segment and returns the offset after the string, or 0 when it is not one.
size_t name_string(Bytes b, size_t at, size_t& last) {
    if (at < b.size() && b[at] == '\\') ++at;
    else
        while (at < b.size() && b[at] == '^') ++at;
    if (at >= b.size()) return 0;
    size_t segs = 1;
    if (b[at] == 0x2E) segs = 2, ++at;
    else if (b[at] == 0x2F) {
        if (at + 1 >= b.size()) return 0;
        segs = b[at + 1];
        at += 2;
    }
    if (segs == 0) return 0;
    for (size_t i = 0; i < segs; ++i, at += 4) {
        if (!name_seg(b, at)) return 0;
        last = at;
    }
    return at;
}

// An integer constant as a TermArg: Zero, One, Ones, or a Byte/Word/DWord/QWord prefix.
// Returns the offset after it, or 0 when the operand is anything else (computed at run time).
size_t constant(Bytes b, size_t at, uint64_t& value) {
    if (at >= b.size()) return 0;
    switch (b[at]) {
    case 0x00: value = 0; return at + 1;
    case 0x01: value = 1; return at + 1;
    case 0xFF: value = ~0ull; return at + 1;
    case 0x0A: return at + 2 <= b.size() ? (value = load_le<uint8_t>(b, at + 1), at + 2) : 0;
    case 0x0B: return at + 3 <= b.size() ? (value = load_le<uint16_t>(b, at + 1), at + 3) : 0;
    case 0x0C: return at + 5 <= b.size() ? (value = load_le<uint32_t>(b, at + 1), at + 5) : 0;
    case 0x0E: return at + 9 <= b.size() ? (value = load_le<uint64_t>(b, at + 1), at + 9) : 0;
    default: return 0;
    }
}

} // namespace

AmlRegionResult find_operation_region(Bytes aml, const char (&name)[5], AmlRegion& out) {
    AmlRegionResult result = AmlRegionResult::NotFound;
    for (size_t i = 0; i + 2 < aml.size(); ++i) {
        if (aml[i] != kExtOpPrefix || aml[i + 1] != kOpRegionOp) continue;
        size_t last = 0;
        size_t at = name_string(aml, i + 2, last);
        if (at == 0) continue;
        bool same = true;
        for (size_t k = 0; k < 4; ++k) same = same && aml[last + k] == static_cast<uint8_t>(name[k]);
        if (!same || at >= aml.size()) continue;
        AmlRegion r;
        r.space = aml[at++];
        size_t next = constant(aml, at, r.address);
        next = next != 0 ? constant(aml, next, r.length) : 0;
        if (next == 0) {
            if (result == AmlRegionResult::NotFound) result = AmlRegionResult::NotConstant;
            continue;
        }
        if (result == AmlRegionResult::Found) {
            if (r.space != out.space || r.address != out.address || r.length != out.length)
                return AmlRegionResult::Ambiguous;
            continue;
        }
        out = r;
        result = AmlRegionResult::Found;
    }
    return result;
}

} // namespace cohort::acpi
