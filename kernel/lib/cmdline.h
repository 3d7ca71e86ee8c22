// Kernel command line: `key=value key="quoted value" flag ...`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace cohort {

/// One word of the command line. For a bare `key`, value is empty and has_value is false.
struct CmdlineArg {
    std::string_view key;
    std::string_view value;
    bool has_value;
};

/// Parsed command line. Holds its own copy of the text, so the views it hands out stay valid
/// after the bootloader's memory is reclaimed, for as long as this object lives and is not
/// re-parsed.
class CommandLine {
  public:
    static constexpr size_t kMaxArgs = 64;
    static constexpr size_t kMaxText = 1024;

    /// Result of a typed lookup: the key may be missing, or present with an unusable value.
    enum class Status { Ok, Absent, Invalid };

    /// Replaces any previous contents with `text`. Words are separated by spaces, tabs or line
    /// breaks. A word is `key`, `key=value` or `key="value with spaces"`; a quoted value must be
    /// followed by a separator or the end. On a malformed word (empty key, unterminated quote,
    /// text after a closing quote) the word is skipped and parsing continues. Returns false if
    /// anything was rejected, with error() describing the first problem:
    ///  - text longer than kMaxText: nothing is parsed at all;
    ///  - more than kMaxArgs words: the first kMaxArgs are kept.
    bool parse(std::string_view text);

    /// Description of the first problem found by the last parse(), or "" if there was none.
    const char* error() const { return error_; }

    /// All arguments in command-line order, duplicates included.
    std::span<const CmdlineArg> args() const { return {args_, count_}; }

    /// Value of `key`; for a bare key, an empty string. When a key is given more than once, the
    /// last occurrence wins, so appended arguments override earlier ones.
    std::optional<std::string_view> get(std::string_view key) const;
    bool has(std::string_view key) const { return find(key) != nullptr; }

    /// Unsigned integer: decimal or 0x-prefixed hex, optionally followed by K, M or G (x 2^10,
    /// 2^20, 2^30; either case). Invalid for a bare key, junk, or a value that overflows.
    /// `out` is written only on Ok.
    Status get_u64(std::string_view key, uint64_t& out) const;

    /// Boolean: 1/0, true/false, yes/no, on/off (any case); a bare key means true.
    /// `out` is written only on Ok.
    Status get_bool(std::string_view key, bool& out) const;

  private:
    const CmdlineArg* find(std::string_view key) const;
    void fail(const char* message) {
        if (error_[0] == '\0') error_ = message;
    }

    char text_[kMaxText] = {};
    CmdlineArg args_[kMaxArgs] = {};
    size_t count_ = 0;
    const char* error_ = "";
};

} // namespace cohort
