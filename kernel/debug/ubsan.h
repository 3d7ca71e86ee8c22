// Kernel runtime for Clang's -fsanitize=undefined: each report names the check, file and line.
#pragma once

#include <cstdint>

namespace cohort {

/// Reports so far (tests compare before/after).
uint64_t ubsan_report_count();
/// When true (command line `ubsan=panic`), the first report panics instead of continuing.
void ubsan_set_panic(bool panic_on_report);

} // namespace cohort
