// The console's commands (docs/console.md lists them).
#pragma once

#include <cstdint>
#include <string_view>

namespace cohort::console {

/// Runs one command line; prints its output, or a one-line error.
void execute(std::string_view line);

// From console.cc, for commands that watch the keyboard (`top`).
/// A byte is waiting to be read.
bool input_waiting();
/// The next input byte, waiting at most `ns`; -1 if none came.
int read_byte_timeout(uint64_t ns);

} // namespace cohort::console
