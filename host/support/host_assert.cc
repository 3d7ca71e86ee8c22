// Host implementation of the portable assertion hook: print and abort so the test fails loudly.
#include "lib/assert.h"

#include <cstdio>
#include <cstdlib>

namespace cohort {
[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const char* func) {
    std::fprintf(stderr, "assertion failed: %s at %s:%d in %s\n", expr, file, line, func);
    std::abort();
}
} // namespace cohort
