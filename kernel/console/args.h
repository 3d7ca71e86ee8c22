// Splitting a console command line into words, and reading numbers from them. Portable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace cohort::console {

/// Up to `max` words of `line` separated by spaces or tabs. Returns how many there were (which
/// may exceed `max`: the caller reports "too many arguments").
size_t split_words(std::string_view line, std::string_view* words, size_t max);

/// A decimal number that fits in 32 bits, nothing else (no sign, no spaces, no trailing text).
std::optional<uint32_t> parse_u32(std::string_view word);

} // namespace cohort::console
