// The C memory and string functions the compiler may call implicitly in a freestanding kernel.
// Kernel-only: the host build uses its libc.
#include <cstddef>
#include <cstdint>

extern "C" {

// Quadwords first, then the tail bytes. On hardware with ERMSB a single rep movsb/stosb would
// be as fast, but emulators (QEMU's TCG) run string instructions one iteration at a time, so
// moving 8 bytes per iteration makes zeroing stacks and per-CPU areas 8x faster there.
void* memcpy(void* dst, const void* src, size_t n) {
    void* ret = dst;
    size_t quads = n / 8, tail = n % 8;
    asm volatile("rep movsq" : "+D"(dst), "+S"(src), "+c"(quads) : : "memory");
    asm volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(tail) : : "memory");
    return ret;
}

void* memset(void* dst, int value, size_t n) {
    void* ret = dst;
    const uint64_t pattern = uint64_t{0x0101010101010101} * static_cast<unsigned char>(value);
    size_t quads = n / 8, tail = n % 8;
    asm volatile("rep stosq" : "+D"(dst), "+c"(quads) : "a"(pattern) : "memory");
    asm volatile("rep stosb" : "+D"(dst), "+c"(tail) : "a"(pattern) : "memory");
    return ret;
}

void* memmove(void* dst, const void* src, size_t n) {
    auto* d = static_cast<unsigned char*>(dst);
    const auto* s = static_cast<const unsigned char*>(src);
    if (d == s || n == 0) return dst;
    if (d < s || d >= s + n) return memcpy(dst, src, n);
    // Overlapping with dst above src: copy backwards.
    for (size_t i = n; i > 0; --i) d[i - 1] = s[i - 1];
    return dst;
}

int memcmp(const void* a, const void* b, size_t n) {
    const auto* x = static_cast<const unsigned char*>(a);
    const auto* y = static_cast<const unsigned char*>(b);
    for (size_t i = 0; i < n; ++i)
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
}

size_t strlen(const char* s) {
    size_t n = 0;
    while (s[n] != 0) ++n;
    return n;
}

int strcmp(const char* a, const char* b) {
    while (*a != 0 && *a == *b) ++a, ++b;
    return static_cast<unsigned char>(*a) - static_cast<unsigned char>(*b);
}

int strncmp(const char* a, const char* b, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        if (a[i] != b[i] || a[i] == 0)
            return static_cast<unsigned char>(a[i]) - static_cast<unsigned char>(b[i]);
    }
    return 0;
}

} // extern "C"

extern "C" char* strstr(const char* haystack, const char* needle) {
    const size_t n = strlen(needle);
    for (; *haystack != 0; ++haystack)
        if (strncmp(haystack, needle, n) == 0) return const_cast<char*>(haystack);
    return n == 0 ? const_cast<char*>(haystack) : nullptr;
}

extern "C" void* memchr(const void* s, int c, size_t n) {
    const auto* p = static_cast<const unsigned char*>(s);
    for (size_t i = 0; i < n; ++i)
        if (p[i] == static_cast<unsigned char>(c)) return const_cast<unsigned char*>(p + i);
    return nullptr;
}
