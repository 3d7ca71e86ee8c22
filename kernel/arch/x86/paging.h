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

/// True when `va` is mapped in the current address space (walks the live tables; safe to call
/// from panic paths as long as the tables themselves are sane).
bool is_kernel_address_mapped(uint64_t va);

} // namespace cohort::x86
