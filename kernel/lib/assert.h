// Assertions usable from portable code (kernel and host builds).
#pragma once

namespace cohort {
/// Reports a failed assertion and stops: panics in the kernel, aborts on the host.
[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const char* func);
} // namespace cohort

#ifndef COHORT_ASSERTS
#define COHORT_ASSERTS 1
#endif

/// Always-on check: for invariants whose violation would corrupt state.
#define COHORT_CHECK(cond)                                                                         \
    ((cond) ? (void)0 : ::cohort::assert_fail(#cond, __FILE__, __LINE__, __func__))

/// Debug-build check; compiled out (but still type-checked) in release builds.
#if COHORT_ASSERTS
#define COHORT_ASSERT(cond) COHORT_CHECK(cond)
#else
#define COHORT_ASSERT(cond) ((void)sizeof(!(cond)))
#endif
