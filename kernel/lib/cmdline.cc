#include "lib/cmdline.h"

namespace cohort {
namespace {

bool is_separator(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

char ascii_lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool equals_ignore_case(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    return true;
}

int digit_value(char c, unsigned base) {
    int d = -1;
    if (c >= '0' && c <= '9')
        d = c - '0';
    else if (c >= 'a' && c <= 'f')
        d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
        d = c - 'A' + 10;
    return d >= 0 && static_cast<unsigned>(d) < base ? d : -1;
}

bool parse_u64(std::string_view s, uint64_t& out) {
    unsigned base = 10;
    if (s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s.remove_prefix(2);
    }
    unsigned shift = 0;
    if (!s.empty()) {
        switch (s.back()) {
        case 'K':
        case 'k':
            shift = 10;
            break;
        case 'M':
        case 'm':
            shift = 20;
            break;
        case 'G':
        case 'g':
            shift = 30;
            break;
        default:
            break;
        }
        if (shift != 0) s.remove_suffix(1);
    }
    if (s.empty()) return false;
    uint64_t v = 0;
    for (char c : s) {
        const int d = digit_value(c, base);
        if (d < 0) return false;
        if (v > (UINT64_MAX - static_cast<uint64_t>(d)) / base) return false;
        v = v * base + static_cast<uint64_t>(d);
    }
    if (shift != 0 && v > (UINT64_MAX >> shift)) return false;
    out = v << shift;
    return true;
}

} // namespace

bool CommandLine::parse(std::string_view text) {
    count_ = 0;
    error_ = "";
    if (text.size() > kMaxText) {
        fail("command line too long; ignored entirely");
        return false;
    }
    // The builtin avoids needing a libc header; an empty view may have a null data().
    if (!text.empty()) __builtin_memcpy(text_, text.data(), text.size());
    const char* const buf = text_;
    const size_t n = text.size();
    size_t i = 0;
    while (i < n) {
        if (is_separator(buf[i])) {
            ++i;
            continue;
        }
        const size_t key_begin = i;
        while (i < n && !is_separator(buf[i]) && buf[i] != '=')
            ++i;
        CmdlineArg arg{std::string_view(buf + key_begin, i - key_begin), {}, false};
        bool ok = true;
        if (i < n && buf[i] == '=') {
            ++i;
            arg.has_value = true;
            if (i < n && buf[i] == '"') {
                const size_t value_begin = ++i;
                while (i < n && buf[i] != '"')
                    ++i;
                if (i == n) {
                    fail("unterminated quote");
                    ok = false;
                } else {
                    arg.value = std::string_view(buf + value_begin, i - value_begin);
                    ++i;
                    if (i < n && !is_separator(buf[i])) {
                        fail("unexpected text after closing quote");
                        ok = false;
                    }
                }
            } else {
                const size_t value_begin = i;
                while (i < n && !is_separator(buf[i]))
                    ++i;
                arg.value = std::string_view(buf + value_begin, i - value_begin);
            }
        }
        if (arg.key.empty()) {
            fail("empty key");
            ok = false;
        }
        // Skip whatever remains of a rejected word so its tail is not read as new arguments.
        if (!ok) {
            while (i < n && !is_separator(buf[i]))
                ++i;
            continue;
        }
        if (count_ == kMaxArgs) {
            fail("too many arguments; the rest are ignored");
            break;
        }
        args_[count_++] = arg;
    }
    return error_[0] == '\0';
}

const CmdlineArg* CommandLine::find(std::string_view key) const {
    for (size_t i = count_; i > 0; --i)
        if (args_[i - 1].key == key) return &args_[i - 1];
    return nullptr;
}

std::optional<std::string_view> CommandLine::get(std::string_view key) const {
    const CmdlineArg* arg = find(key);
    if (arg == nullptr) return std::nullopt;
    return arg->value;
}

CommandLine::Status CommandLine::get_u64(std::string_view key, uint64_t& out) const {
    const CmdlineArg* arg = find(key);
    if (arg == nullptr) return Status::Absent;
    if (!arg->has_value) return Status::Invalid;
    uint64_t v = 0;
    if (!parse_u64(arg->value, v)) return Status::Invalid;
    out = v;
    return Status::Ok;
}

CommandLine::Status CommandLine::get_bool(std::string_view key, bool& out) const {
    const CmdlineArg* arg = find(key);
    if (arg == nullptr) return Status::Absent;
    if (!arg->has_value) {
        out = true;
        return Status::Ok;
    }
    static constexpr std::string_view kTrue[] = {"1", "true", "yes", "on"};
    static constexpr std::string_view kFalse[] = {"0", "false", "no", "off"};
    for (std::string_view t : kTrue)
        if (equals_ignore_case(arg->value, t)) {
            out = true;
            return Status::Ok;
        }
    for (std::string_view f : kFalse)
        if (equals_ignore_case(arg->value, f)) {
            out = false;
            return Status::Ok;
        }
    return Status::Invalid;
}

} // namespace cohort
