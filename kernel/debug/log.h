// Kernel log: levels, a `[seconds] [cpuN]` prefix, whole lines written atomically to the
// console from any CPU or interrupt context, and an in-memory history tests can search.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cohort {

enum class LogLevel : uint8_t { Error = 0, Warn = 1, Info = 2, Debug = 3 };

void log_init_console();
void log_set_level(LogLevel level);
LogLevel log_level();
/// Parses "error|warn|info|debug"; returns false for anything else.
bool log_parse_level(const char* text, size_t len, LogLevel& out);

void log_write(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

/// Writes text as-is (no prefix), still atomically per call: for KTAP output and panics.
void console_write(const char* s, size_t n);
void console_printf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

/// Position in the log history; pass it to log_contains_since() to look at later output.
uint64_t log_mark();
/// True when `needle` occurs in what was logged after `mark` (within the retained history).
bool log_contains_since(uint64_t mark, const char* needle);

/// Panic support: lets the panicking CPU write even if another CPU holds the console lock.
void console_enter_panic_mode();

} // namespace cohort

#define log_error(...) ::cohort::log_write(::cohort::LogLevel::Error, __VA_ARGS__)
#define log_warn(...) ::cohort::log_write(::cohort::LogLevel::Warn, __VA_ARGS__)
#define log_info(...) ::cohort::log_write(::cohort::LogLevel::Info, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (::cohort::log_level() >= ::cohort::LogLevel::Debug)                                    \
            ::cohort::log_write(::cohort::LogLevel::Debug, __VA_ARGS__);                           \
    } while (0)
