#include "debug/symbols.h"

#include <cstring>

extern "C" const char __ksymtab_start[];
extern "C" const char __ksymtab_end[];

namespace cohort {

namespace {
const KsymHeader* header() {
    if (static_cast<size_t>(__ksymtab_end - __ksymtab_start) < sizeof(KsymHeader)) return nullptr;
    const auto* h = reinterpret_cast<const KsymHeader*>(__ksymtab_start);
    return h->magic == kKsymMagic ? h : nullptr;
}
const KsymEntry* entries(const KsymHeader* h) { return reinterpret_cast<const KsymEntry*>(h + 1); }
const char* strings(const KsymHeader* h) {
    return reinterpret_cast<const char*>(entries(h) + h->count);
}
} // namespace

uint64_t symbol_count() {
    const KsymHeader* h = header();
    return h != nullptr ? h->count : 0;
}

const char* symbolize(uint64_t address, uint64_t* offset) {
    const KsymHeader* h = header();
    if (h == nullptr || h->count == 0) return nullptr;
    const KsymEntry* e = entries(h);
    // Entries are sorted by address: find the last one at or below `address`.
    uint64_t lo = 0, hi = h->count;
    while (hi - lo > 1) {
        const uint64_t mid = lo + (hi - lo) / 2;
        if (e[mid].address <= address) lo = mid;
        else hi = mid;
    }
    if (e[lo].address > address) return nullptr;
    const uint64_t off = address - e[lo].address;
    if (e[lo].size != 0 && off >= e[lo].size) return nullptr;
    if (e[lo].size == 0 && lo + 1 == h->count) return nullptr;
    if (offset != nullptr) *offset = off;
    return strings(h) + e[lo].name_offset;
}

uint64_t symbol_address(const char* name) {
    const KsymHeader* h = header();
    if (h == nullptr) return 0;
    for (uint64_t i = 0; i < h->count; ++i)
        if (strcmp(strings(h) + entries(h)[i].name_offset, name) == 0) return entries(h)[i].address;
    return 0;
}

} // namespace cohort
