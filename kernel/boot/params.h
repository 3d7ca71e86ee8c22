// The kernel command line: parsed once, with every known option listed in one table so that
// unknown options are reported instead of silently ignored.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "lib/cmdline.h"

namespace cohort {

struct ParamInfo {
    const char* key;
    const char* help;
};

/// Parses `text`, logs syntax errors and warns about every unknown key.
void params_init(const char* text);
const CommandLine& params();
/// params_init has run (before, every option reads as absent).
bool params_ready();
/// Warns about every key in `cmdline` that the kernel does not know. Returns how many.
size_t params_warn_unknown(const CommandLine& cmdline);
/// Known options (for diagnostics and documentation).
const ParamInfo* params_known(size_t* count);

/// Value of `key`, or `fallback` if absent; an invalid value is logged and replaced.
uint64_t param_u64(std::string_view key, uint64_t fallback);
bool param_bool(std::string_view key, bool fallback);

} // namespace cohort
