// Shell-style wildcard matching for selecting things by name (e.g. tests: "smp.*").
#pragma once

#include <string_view>

namespace cohort {

/// True if `text` matches `pattern` in full. `*` matches any run of characters (including none),
/// `?` matches exactly one character, everything else matches itself; there is no escaping.
/// Runs in O(|pattern| * |text|) time at worst and constant space.
bool glob_match(std::string_view pattern, std::string_view text);

} // namespace cohort
