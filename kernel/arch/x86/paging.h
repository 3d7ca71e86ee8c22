// x86-64 4-level paging details shared by the arch code.
#pragma once

#include <cstdint>

namespace cohort::x86 {

namespace pte {
constexpr uint64_t kPresent = 1ull << 0;
constexpr uint64_t kWrite = 1ull << 1;
constexpr uint64_t kUser = 1ull << 2;
constexpr uint64_t kPwt = 1ull << 3;
constexpr uint64_t kPcd = 1ull << 4;
constexpr uint64_t kHuge = 1ull << 7;
constexpr uint64_t kGlobal = 1ull << 8;
constexpr uint64_t kNx = 1ull << 63;
constexpr uint64_t kAddrMask = 0x000ffffffffff000ull;
} // namespace pte

/// The entry for `va` at `level` (1 = PT ... 4 = PML4) under `root`, creating intermediate
/// tables when `create`; nullptr if a table is missing (and not created), memory ran out, or a
/// huge page is in the way. The caller holds the lock that guards these tables.
uint64_t* pt_walk(uint64_t root, uint64_t va, int level, bool create);
/// Frees a page-table page and every table below it (not the pages they map).
void pt_free_tree(uint64_t phys, int level);

/// True when `va` is mapped in the current address space (walks the live tables; safe to call
/// from panic paths as long as the tables themselves are sane).
bool is_kernel_address_mapped(uint64_t va);

} // namespace cohort::x86
