#include "lib/format.h"

#include <cstdint>

namespace cohort {
namespace {

/// Bounded output cursor: counts everything, stores what fits.
struct Out {
    char* buf;
    size_t size;
    size_t len = 0;
    void put(char c) {
        if (len + 1 < size) buf[len] = c;
        ++len;
    }
    void repeat(char c, int n) {
        for (int i = 0; i < n; ++i) put(c);
    }
};

struct Spec {
    bool left = false, zero = false, alt = false, plus = false, space = false;
    int width = 0;
    int precision = -1;
};

void put_number(Out& out, uint64_t value, bool negative, unsigned base, bool upper, const Spec& s,
                bool is_pointer) {
    char digits[24];
    int n = 0;
    const char* set = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    // Recorded before the digit loop below consumes `value`.
    const bool nonzero = value != 0;
    if (value == 0 && s.precision != 0) digits[n++] = '0';
    while (value != 0) {
        digits[n++] = set[value % base];
        value /= base;
    }
    const int precision_zeros = s.precision > n ? s.precision - n : 0;
    char sign = 0;
    if (negative)
        sign = '-';
    else if (s.plus)
        sign = '+';
    else if (s.space)
        sign = ' ';
    const char* prefix = "";
    if ((s.alt && nonzero && base == 16) || is_pointer)
        prefix = upper ? "0X" : "0x";
    else if (s.alt && base == 8 && precision_zeros == 0 && !(n == 1 && digits[0] == '0'))
        prefix = "0";
    int prefix_len = 0;
    while (prefix[prefix_len] != 0) ++prefix_len;
    const int body = n + precision_zeros + prefix_len + (sign ? 1 : 0);
    int pad = s.width > body ? s.width - body : 0;
    // A precision disables zero padding, as in C.
    const bool zero_pad = s.zero && !s.left && s.precision < 0;
    if (!s.left && !zero_pad) out.repeat(' ', pad);
    if (sign) out.put(sign);
    for (int i = 0; i < prefix_len; ++i) out.put(prefix[i]);
    if (zero_pad) out.repeat('0', pad);
    out.repeat('0', precision_zeros);
    while (n > 0) out.put(digits[--n]);
    if (s.left) out.repeat(' ', pad);
}

void put_string(Out& out, const char* str, const Spec& s) {
    if (str == nullptr) str = "(null)";
    int n = 0;
    while (str[n] != 0 && (s.precision < 0 || n < s.precision)) ++n;
    const int pad = s.width > n ? s.width - n : 0;
    if (!s.left) out.repeat(' ', pad);
    for (int i = 0; i < n; ++i) out.put(str[i]);
    if (s.left) out.repeat(' ', pad);
}

} // namespace

size_t vformat(char* buf, size_t size, const char* fmt, va_list ap) {
    Out out{buf, size};
    for (const char* p = fmt; *p != 0; ++p) {
        if (*p != '%') {
            out.put(*p);
            continue;
        }
        ++p;
        Spec s;
        for (;; ++p) {
            if (*p == '-') s.left = true;
            else if (*p == '0') s.zero = true;
            else if (*p == '#') s.alt = true;
            else if (*p == '+') s.plus = true;
            else if (*p == ' ') s.space = true;
            else break;
        }
        if (*p == '*') {
            s.width = va_arg(ap, int);
            if (s.width < 0) {
                s.left = true;
                s.width = -s.width;
            }
            ++p;
        } else {
            while (*p >= '0' && *p <= '9') s.width = s.width * 10 + (*p++ - '0');
        }
        if (*p == '.') {
            ++p;
            if (*p == '*') {
                s.precision = va_arg(ap, int);
                if (s.precision < 0) s.precision = -1;
                ++p;
            } else {
                s.precision = 0;
                while (*p >= '0' && *p <= '9') s.precision = s.precision * 10 + (*p++ - '0');
            }
        }
        // Length modifier, as a size in bytes of the promoted argument (0 = int).
        int length = 0;
        if (*p == 'h') {
            length = (p[1] == 'h') ? 1 : 2;
            p += (p[1] == 'h') ? 2 : 1;
        } else if (*p == 'l') {
            length = 8;
            p += (p[1] == 'l') ? 2 : 1;
        } else if (*p == 'z' || *p == 'j' || *p == 't') {
            length = 8;
            ++p;
        }
        const char conv = *p;
        switch (conv) {
        case 'd':
        case 'i': {
            int64_t v = length == 8 ? va_arg(ap, int64_t) : va_arg(ap, int);
            if (length == 1) v = static_cast<signed char>(v);
            if (length == 2) v = static_cast<short>(v);
            const bool neg = v < 0;
            const uint64_t mag = neg ? uint64_t(0) - static_cast<uint64_t>(v) : uint64_t(v);
            put_number(out, mag, neg, 10, false, s, false);
            break;
        }
        case 'u':
        case 'x':
        case 'X':
        case 'o': {
            uint64_t v = length == 8 ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
            if (length == 1) v = static_cast<unsigned char>(v);
            if (length == 2) v = static_cast<unsigned short>(v);
            const unsigned base = conv == 'u' ? 10 : conv == 'o' ? 8 : 16;
            put_number(out, v, false, base, conv == 'X', s, false);
            break;
        }
        case 'p': {
            const auto v = reinterpret_cast<uintptr_t>(va_arg(ap, void*));
            put_number(out, v, false, 16, false, s, true);
            break;
        }
        case 'c': {
            const char c = static_cast<char>(va_arg(ap, int));
            const int pad = s.width > 1 ? s.width - 1 : 0;
            if (!s.left) out.repeat(' ', pad);
            out.put(c);
            if (s.left) out.repeat(' ', pad);
            break;
        }
        case 's':
            put_string(out, va_arg(ap, const char*), s);
            break;
        case '%':
            out.put('%');
            break;
        case 0:
            // Lone '%' at the end: print it rather than reading past the string.
            out.put('%');
            --p;
            break;
        default:
            // Unknown conversion: show it verbatim so the bug is visible in the log.
            out.put('%');
            out.put(conv);
            break;
        }
    }
    if (size > 0) buf[out.len < size ? out.len : size - 1] = 0;
    return out.len;
}

size_t format(char* buf, size_t size, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const size_t n = vformat(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

} // namespace cohort
