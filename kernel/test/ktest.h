// In-kernel tests: registered with KTEST into a linker section, selected with `test=GLOB,...`
// on the command line, reported as KTAP version 1 on the console.
//
//   KTEST(mm, heap_roundtrip) {
//       void* p = kmalloc(32);
//       KASSERT(p != nullptr);          // stops this test on failure
//       KEXPECT_EQ(heap_stats().objects, before + 1); // records a failure, continues
//   }
#pragma once

#include <cstdint>
#include <type_traits>

namespace cohort::ktest {

enum Flags : uint32_t {
    /// Left out of `test=all` and of wildcard selections; runs only when named exactly.
    kManual = 1u << 0,
    /// Left out of `test=all` (long: torture runs), selected by a pattern that names it, such
    /// as `stress.*`.
    kNotInAll = 1u << 1,
    /// Needs a fresh boot or a command-line switch (it checks boot-time state, or expects a
    /// test.* parameter): left out when tests run from the console.
    kFreshBoot = 1u << 2,
};

struct TestCase {
    const char* name;
    void (*fn)();
    uint32_t flags;
    const char* file;
    int line;
};

/// Records a failed check with its location; returns `ok` so macros can branch on it.
bool check(bool ok, const char* expr, const char* file, int line);
bool check_eq_u(bool ok, const char* a_expr, const char* b_expr, uint64_t a, uint64_t b,
                const char* file, int line);
bool check_eq_s(bool ok, const char* a_expr, const char* b_expr, int64_t a, int64_t b,
                const char* file, int line);
/// Adds a `# ...` diagnostic line to the current test's output.
void note(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
/// Marks the current test as skipped (with a reason) instead of passed.
void skip(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
/// Lets the current test trigger UBSan reports on purpose without failing.
void allow_ubsan_reports();

/// Runs fn(arg) on every online CPU at once (in thread context; this CPU's share last) and
/// returns when all have finished.
bool run_on_all_cpus(void (*fn)(void*), void* arg, uint64_t unused = 0);

/// The monotonic time `ns` from now, and one short sleep (1 ms) unless `end` has passed (then
/// false): the parts of wait_for below.
uint64_t deadline_after(uint64_t ns);
bool sleep_before(uint64_t end);

/// Sleeps until `done()` holds or `ns` pass; true if done. The bound turns a condition that
/// never comes into a failed check instead of a hung run.
template <typename F>
bool wait_for(F done, uint64_t ns) {
    const uint64_t end = deadline_after(ns);
    while (!done())
        if (!sleep_before(end)) return false;
    return true;
}

/// Runs the tests selected by a comma-separated list of globs ("all" = every non-manual test),
/// prints KTAP and the `# cohort-tests:` summary. Returns true when every test passed.
bool run(const char* selection);
/// As run(), from the console's `test` command: tests marked kFreshBoot are left out (and a
/// note says how many).
bool run_from_console(const char* selection);

template <typename A, typename B>
bool check_eq(const A& a, const B& b, const char* ae, const char* be, const char* file, int line) {
    if constexpr (std::is_pointer_v<A> || std::is_pointer_v<B>) {
        return check_eq_u(a == b, ae, be, reinterpret_cast<uint64_t>(a), reinterpret_cast<uint64_t>(b),
                          file, line);
    } else if constexpr (std::is_signed_v<A> && std::is_signed_v<B>) {
        return check_eq_s(a == b, ae, be, static_cast<int64_t>(a), static_cast<int64_t>(b), file, line);
    } else {
        return check_eq_u(static_cast<uint64_t>(a) == static_cast<uint64_t>(b), ae, be,
                          static_cast<uint64_t>(a), static_cast<uint64_t>(b), file, line);
    }
}

} // namespace cohort::ktest

#define KTEST_IMPL(suite, name, flags)                                                             \
    static void ktest_fn_##suite##_##name();                                                       \
    [[gnu::used, gnu::section(".ktests." #suite "." #name)]] static const ::cohort::ktest::TestCase \
        ktest_case_##suite##_##name{#suite "." #name, ktest_fn_##suite##_##name, flags, __FILE__,  \
                                    __LINE__};                                                     \
    static void ktest_fn_##suite##_##name()

/// Defines a test named "suite.name".
#define KTEST(suite, name) KTEST_IMPL(suite, name, 0)
/// Defines a test that `test=all` leaves out; a glob naming it selects it (`test=stress.*`).
#define KTEST_NOT_IN_ALL(suite, name) KTEST_IMPL(suite, name, ::cohort::ktest::kNotInAll)
/// Defines a test that runs only when selected by its exact name.
#define KTEST_MANUAL(suite, name) KTEST_IMPL(suite, name, ::cohort::ktest::kManual)
/// Defines a test that needs a fresh boot (it checks boot-time state or a test.* parameter):
/// `test=` runs it, the console's `test` leaves it out.
#define KTEST_FRESH_BOOT(suite, name) KTEST_IMPL(suite, name, ::cohort::ktest::kFreshBoot)

#define KEXPECT(cond) ::cohort::ktest::check(static_cast<bool>(cond), #cond, __FILE__, __LINE__)
#define KEXPECT_EQ(a, b) ::cohort::ktest::check_eq((a), (b), #a, #b, __FILE__, __LINE__)
#define KASSERT(cond)                                                                              \
    do {                                                                                           \
        if (!KEXPECT(cond)) return;                                                                \
    } while (0)
#define KASSERT_EQ(a, b)                                                                           \
    do {                                                                                           \
        if (!KEXPECT_EQ(a, b)) return;                                                             \
    } while (0)
