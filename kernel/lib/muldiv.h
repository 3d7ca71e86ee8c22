// a * b / c without overflow in the intermediate product and without a 128-bit division
// library call (the freestanding kernel has no __udivti3).
#pragma once

#include <cstdint>

namespace cohort {

/// floor(a * b / c); saturates at UINT64_MAX when the quotient does not fit. c must be > 0.
inline uint64_t mul_div(uint64_t a, uint64_t b, uint64_t c) {
    const unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
    const uint64_t hi = static_cast<uint64_t>(p >> 64);
    const uint64_t lo = static_cast<uint64_t>(p);
    if (hi >= c) return UINT64_MAX; // quotient would not fit (and divq would fault)
    uint64_t q, r;
    asm("divq %4" : "=a"(q), "=d"(r) : "a"(lo), "d"(hi), "rm"(c));
    return q;
}

} // namespace cohort
