// printf-style formatting into caller-provided buffers; no allocation, usable anywhere.
#pragma once

#include <cstdarg>
#include <cstddef>

namespace cohort {

/// Formats like vsnprintf: conversions d i u x X o c s p %, length modifiers hh h l ll z j t,
/// flags '-' '0' '#' '+' ' ', width and precision (also '*'). Writes at most size-1 chars and
/// always NUL-terminates when size > 0. Returns the length the full output would have had.
size_t vformat(char* buf, size_t size, const char* fmt, va_list ap);

/// See vformat.
size_t format(char* buf, size_t size, const char* fmt, ...) __attribute__((format(printf, 3, 4)));

} // namespace cohort
