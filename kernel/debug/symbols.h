// Function names for addresses, from the symbol table embedded by the second link
// (tools/gensyms.py writes the .ksymtab section).
#pragma once

#include <cstdint>

namespace cohort {

struct KsymHeader {
    uint64_t magic; // kKsymMagic
    uint64_t count;
};
struct KsymEntry {
    uint64_t address;
    uint32_t name_offset; // into the string table that follows the entries
    uint32_t size;        // 0 when unknown: then the symbol extends to the next one
};
constexpr uint64_t kKsymMagic = 0x31'4d'59'53'4b'48'4f'43; // "COHKSYM1"

/// Name of the function containing `address`, and the offset into it; nullptr if unknown.
const char* symbolize(uint64_t address, uint64_t* offset);
/// Address of a symbol by exact name, or 0.
uint64_t symbol_address(const char* name);
/// Number of symbols embedded (0 in the first link stage).
uint64_t symbol_count();

} // namespace cohort
