// cohort::format against the host's snprintf, which serves as the reference implementation.
#include "lib/format.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace {

// Runs both formatters at several buffer sizes so truncation, the return value and NUL
// termination are checked for every case, not just a few.
template <typename Ref, typename Ours>
void check_same(int line, Ref ref, Ours ours) {
    SCOPED_TRACE(testing::Message() << "format case at line " << line);
    char want[512];
    const int want_len = ref(want, sizeof want);
    ASSERT_GE(want_len, 0);
    ASSERT_LT(static_cast<size_t>(want_len), sizeof want);
    for (size_t size : {size_t{0}, size_t{1}, size_t{2}, size_t{5}, size_t{16}, sizeof want}) {
        SCOPED_TRACE(testing::Message() << "buffer size " << size);
        char got[sizeof want + 1];
        memset(got, 'Z', sizeof got);
        const size_t got_len = ours(got, size);
        EXPECT_EQ(got_len, static_cast<size_t>(want_len));
        if (size == 0) {
            EXPECT_EQ(got[0], 'Z') << "size 0 must not write";
            continue;
        }
        const size_t stored = std::min(static_cast<size_t>(want_len), size - 1);
        EXPECT_EQ(std::string(got, stored), std::string(want, stored));
        EXPECT_EQ(got[stored], '\0');
        EXPECT_EQ(got[size], 'Z') << "wrote past the buffer";
    }
}

#define CHECK_FMT(...)                                                                             \
    check_same(                                                                                    \
        __LINE__, [&](char* b, size_t n) { return snprintf(b, n, __VA_ARGS__); },                  \
        [&](char* b, size_t n) { return cohort::format(b, n, __VA_ARGS__); })

// Calls vformat without the printf attribute, for formats the compiler would rightly reject.
size_t format_unchecked(char* buf, size_t size, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const size_t n = cohort::vformat(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

TEST(Format, PlainText) {
    CHECK_FMT("");
    CHECK_FMT("hello, world");
    CHECK_FMT("100%% sure %%%%");
}

TEST(Format, SignedDecimal) {
    CHECK_FMT("%d %i", 0, -0);
    CHECK_FMT("%d|%d|%d", 1, -1, 123456789);
    CHECK_FMT("%d %d", INT_MAX, INT_MIN);
    CHECK_FMT("%ld %ld", static_cast<long>(INT64_MAX), static_cast<long>(INT64_MIN));
    CHECK_FMT("%lld %lld", LLONG_MAX, LLONG_MIN);
    CHECK_FMT("%jd %td %zd", INTMAX_MIN, static_cast<ptrdiff_t>(-5), static_cast<ptrdiff_t>(-7));
    CHECK_FMT("%hd %hd", static_cast<short>(-32768), static_cast<short>(12345));
    CHECK_FMT("%hhd %hhd", static_cast<signed char>(-128), static_cast<signed char>(127));
    // Out-of-range values are converted to the modifier's type, as C requires. The compiler
    // flags the mismatch, which is exactly the point here.
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wformat"
    CHECK_FMT("%hd %hhd", 70000, 300);
    CHECK_FMT("%hx %hhx %hu %hhu", 0x12345u, 0x1ffu, 65536u + 5u, 256u + 7u);
#pragma clang diagnostic pop
}

TEST(Format, UnsignedAndBases) {
    CHECK_FMT("%u %u", 0u, UINT_MAX);
    CHECK_FMT("%lu %llu %zu", ULONG_MAX, ULLONG_MAX, SIZE_MAX);
    CHECK_FMT("%x %X %o", 0xdeadbeefu, 0xdeadbeefu, 0777u);
    CHECK_FMT("%lx %lX %lo", 0x0123456789abcdefUL, 0xfedcba9876543210UL, ULONG_MAX);
    CHECK_FMT("%hx %hhx %hu %hhu", static_cast<unsigned short>(0xbeef),
              static_cast<unsigned char>(0xfe), static_cast<unsigned short>(65535),
              static_cast<unsigned char>(255));
    CHECK_FMT("%x %o %u", 0u, 0u, 0u);
}

TEST(Format, Width) {
    CHECK_FMT("[%5d] [%-5d] [%05d] [%1d]", 42, 42, 42, 12345);
    CHECK_FMT("[%5d] [%-5d] [%05d]", -42, -42, -42);
    CHECK_FMT("[%20lld] [%-20lld] [%020lld]", LLONG_MIN, LLONG_MIN, LLONG_MIN);
    CHECK_FMT("[%8x] [%-8X] [%08o]", 0xabcu, 0xabcu, 0123u);
    CHECK_FMT("[%*d] [%-*d] [%*d]", 6, 7, 6, 7, -6, 7);
    // Redundant flags are legal C; the compiler merely points out that they do nothing.
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wformat"
    CHECK_FMT("[%-05d] [%+ d] [%+ d]", 9, 5, -5);
#pragma clang diagnostic pop
}

TEST(Format, Precision) {
    CHECK_FMT("[%.3d] [%.3d] [%.0d] [%.0d]", 7, -7, 0, 5);
    CHECK_FMT("[%8.3d] [%-8.3d] [%08.3d]", 7, -7, 7);
    CHECK_FMT("[%.5x] [%.0x] [%#.0x] [%#.0o]", 0xabu, 0u, 0u, 0u);
    CHECK_FMT("[%.*d] [%.*d]", 4, 3, -1, 3);
    CHECK_FMT("[%.20llu]", ULLONG_MAX);
}

TEST(Format, Flags) {
    CHECK_FMT("[%+d] [%+d] [%+d] [% d] [% d] [% d]", 5, -5, 0, 5, -5, 0);
    CHECK_FMT("[%+06d] [% 06d] [%+-6d]", 5, 5, 5);
    CHECK_FMT("[%#x] [%#X] [%#o] [%#x] [%#o]", 255u, 255u, 8u, 0u, 0u);
    CHECK_FMT("[%#010x] [%#-10x] [%#10o] [%#.5o] [%#.2o]", 255u, 255u, 8u, 8u, 8u);
    CHECK_FMT("[%#lx]", 0xffffffffffffffffUL);
}

TEST(Format, CharsAndStrings) {
    CHECK_FMT("[%c] [%3c] [%-3c]", 'a', 'b', 'c');
    CHECK_FMT("[%s] [%10s] [%-10s] [%.2s] [%10.2s] [%-10.2s]", "abc", "abc", "abc", "abc", "abc",
              "abc");
    CHECK_FMT("[%s] [%.0s] [%.10s] [%*s] [%.*s]", "", "abc", "abc", 4, "x", 2, "xyz");
    CHECK_FMT("%s and %s", "first", "second");
}

TEST(Format, Pointers) {
    int object = 0;
    void* p = &object;
    CHECK_FMT("%p", p);
    CHECK_FMT("[%20p] [%-20p]", p, p);
    CHECK_FMT("%p", reinterpret_cast<void*>(0xffff800000001000UL));
    // glibc prints "(nil)" for null; we print the value, which is more useful in a kernel log.
    char buf[32];
    EXPECT_EQ(cohort::format(buf, sizeof buf, "%p", static_cast<void*>(nullptr)), 3u);
    EXPECT_STREQ(buf, "0x0");
}

TEST(Format, NullString) {
    char buf[32];
    EXPECT_EQ(cohort::format(buf, sizeof buf, "[%s]", static_cast<const char*>(nullptr)), 8u);
    EXPECT_STREQ(buf, "[(null)]");
}

TEST(Format, TruncationReturnsFullLength) {
    char buf[8];
    EXPECT_EQ(cohort::format(buf, sizeof buf, "%s-%d", "abcdef", 12345), 12u);
    EXPECT_STREQ(buf, "abcdef-");
    EXPECT_EQ(cohort::format(buf, 1, "xyz"), 3u);
    EXPECT_STREQ(buf, "");
    buf[0] = 'Q';
    EXPECT_EQ(cohort::format(buf, 0, "xyz%d", 1), 4u);
    EXPECT_EQ(buf[0], 'Q');
    EXPECT_EQ(cohort::format(nullptr, 0, "%d", -123), 4u);
}

TEST(Format, UnknownConversionShownVerbatim) {
    char buf[32];
    EXPECT_EQ(format_unchecked(buf, sizeof buf, "a%yb"), 4u);
    EXPECT_STREQ(buf, "a%yb");
    EXPECT_EQ(format_unchecked(buf, sizeof buf, "%d %q %d", 1, 2), 6u);
    EXPECT_STREQ(buf, "1 %q 2");
    // A trailing lone '%' is printed, and nothing past the terminator is read.
    EXPECT_EQ(format_unchecked(buf, sizeof buf, "50%"), 3u);
    EXPECT_STREQ(buf, "50%");
}

TEST(Format, LongOutput) {
    std::string want(300, 'x');
    char buf[400];
    EXPECT_EQ(cohort::format(buf, sizeof buf, "%300s", "x"), 300u);
    EXPECT_EQ(std::string(buf), std::string(299, ' ') + "x");
    EXPECT_EQ(cohort::format(buf, sizeof buf, "%s", want.c_str()), 300u);
    EXPECT_EQ(std::string(buf), want);
}

} // namespace
