#include "test/ktest.h"

#include <cstdarg>
#include <cstring>

#include "arch/arch.h"
#include "debug/fault_catcher.h"
#include "debug/log.h"
#include "debug/ubsan.h"
#include "lib/format.h"
#include "lib/glob.h"
#include "sched/sched.h"
#include "time/clock.h"
#include "debug/panic.h"
#include "smp/call.h"
#include "smp/cpu.h"

#include <atomic>

extern "C" const cohort::ktest::TestCase __ktests_start[];
extern "C" const cohort::ktest::TestCase __ktests_end[];

namespace cohort::ktest {

namespace {

struct Current {
    uint32_t failures = 0;
    bool skipped = false;
    bool ubsan_allowed = false;
    char skip_reason[160] = {};
};
Current g_current;

// What a panic report names (panic_set_context_hook): a panic on any CPU stops the machine, so
// the loop below never prints the running test's result; the report prints it instead.
std::atomic<const TestCase*> g_running{nullptr};
std::atomic<uint32_t> g_running_number{0};
std::atomic<uint32_t> g_finished{0};
uint32_t g_planned = 0;

void name_running_test(const char* message) {
    // A KTAP result is one line; the rest of the message is in the banner above.
    int len = 0;
    while (message[len] != 0 && message[len] != '\n') ++len;
    const CpuData* cpu = this_cpu();
    const uint32_t id = cpu != nullptr ? cpu->cpu_id : 0;
    if (const TestCase* t = g_running.load(std::memory_order_acquire)) {
        console_printf("not ok %u %s # PANIC on cpu%u: %.*s\n",
                       g_running_number.load(std::memory_order_relaxed), t->name, id, len, message);
    } else {
        // Between two tests (or before the first): blaming the next one would be wrong.
        console_printf("# PANIC on cpu%u while no test was running (%u of %u finished)\n", id,
                       g_finished.load(std::memory_order_relaxed), g_planned);
    }
}

/// Splits the selection into globs; `all` selects everything that is neither manual nor marked
/// not-in-all (torture runs). A manual test is selected only by a pattern equal to its name, so
/// wildcards never pull it in; a not-in-all test by any pattern other than `all`. A
/// pattern starting with `-` takes tests out again, whatever the order: `all,-sched.ping*`.
bool g_from_console = false; // run_from_console: tests that need a fresh boot are left out

bool selected(const TestCase& t, const char* selection) {
    if (g_from_console && (t.flags & kFreshBoot)) return false;
    const std::string_view name(t.name);
    bool in = false;
    const char* p = selection;
    while (*p != 0) {
        const char* end = p;
        while (*end != 0 && *end != ',') ++end;
        std::string_view pattern(p, static_cast<size_t>(end - p));
        p = *end == ',' ? end + 1 : end;
        if (!pattern.empty() && pattern[0] == '-') {
            if (glob_match(pattern.substr(1), name)) return false;
        } else if (t.flags & kManual) {
            in = in || pattern == name;
        } else if (pattern == "all") {
            in = in || !(t.flags & kNotInAll);
        } else if (glob_match(pattern, name)) {
            in = true;
        }
    }
    return in;
}

void trampoline(void* test) { static_cast<const TestCase*>(test)->fn(); }

} // namespace

bool check(bool ok, const char* expr, const char* file, int line) {
    if (!ok) {
        ++g_current.failures;
        console_printf("# %s:%d: check failed: %s\n", file, line, expr);
    }
    return ok;
}

bool check_eq_u(bool ok, const char* ae, const char* be, uint64_t a, uint64_t b, const char* file,
                int line) {
    if (!ok) {
        ++g_current.failures;
        console_printf("# %s:%d: expected %s == %s, got %#lx (%lu) vs %#lx (%lu)\n", file, line,
                       ae, be, a, a, b, b);
    }
    return ok;
}

bool check_eq_s(bool ok, const char* ae, const char* be, int64_t a, int64_t b, const char* file,
                int line) {
    if (!ok) {
        ++g_current.failures;
        console_printf("# %s:%d: expected %s == %s, got %ld vs %ld\n", file, line, ae, be, a, b);
    }
    return ok;
}

void note(const char* fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vformat(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    console_printf("# %s\n", buf);
}

void skip(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vformat(g_current.skip_reason, sizeof(g_current.skip_reason), fmt, ap);
    va_end(ap);
    g_current.skipped = true;
}

void allow_ubsan_reports() { g_current.ubsan_allowed = true; }

uint64_t deadline_after(uint64_t ns) { return monotonic_ns() + ns; }

bool sleep_before(uint64_t end) {
    if (monotonic_ns() > end) return false;
    sleep_for(1'000'000);
    return true;
}

bool run_on_all_cpus(void (*fn)(void*), void* arg, uint64_t) {
    CpuMask all;
    for (uint32_t c = 0; c < cpu_count(); ++c)
        if (cpu_by_id(c)->online.load()) all.set(c);
    return run_on_many(all, fn, arg) == CallStatus::Ok;
}

bool run(const char* selection) {
    const size_t total = static_cast<size_t>(__ktests_end - __ktests_start);
    size_t count = 0;
    for (size_t i = 0; i < total; ++i)
        if (selected(__ktests_start[i], selection)) ++count;

    if (count == 0) {
        // A plan of 0 is a valid KTAP run that passes; a selection that names nothing is a typo
        // that must fail, as a result a KTAP parser counts.
        console_printf("KTAP version 1\n1..1\n");
        console_printf("# test=%s selects none of the %lu tests (see `test=all`, or a name such "
                       "as mm.*)\n",
                       selection, total);
        console_printf("not ok 1 selection # no test matches test=%s\n", selection);
        console_printf("# cohort-tests: 0 passed, 1 failed, 0 skipped\n");
        return false;
    }
    console_printf("KTAP version 1\n1..%lu\n", count);
    g_planned = static_cast<uint32_t>(count);
    g_finished.store(0, std::memory_order_relaxed);
    panic_set_context_hook(name_running_test);
    uint32_t passed = 0, failed = 0, skipped = 0, n = 0;
    for (size_t i = 0; i < total; ++i) {
        const TestCase& t = __ktests_start[i];
        if (!selected(t, selection)) continue;
        ++n;
        g_current = Current{};
        const uint64_t ubsan_before = ubsan_report_count();
        const uint64_t t0 = monotonic_ns();
        FaultInfo fault{};
        g_running_number.store(n, std::memory_order_relaxed);
        g_running.store(&t, std::memory_order_release);
        const bool crashed = run_catching_faults(trampoline, const_cast<TestCase*>(&t), &fault,
                                                 /*quiet=*/false);
        g_running.store(nullptr, std::memory_order_release);
        const uint64_t us = (monotonic_ns() - t0) / 1000;
        const uint64_t ubsan = ubsan_report_count() - ubsan_before;
        char reason[160] = {};
        if (crashed) {
            format(reason, sizeof(reason), "crashed: %s at rip %#lx", arch::exception_name(fault.vector),
                   fault.rip);
        } else if (g_current.failures != 0) {
            format(reason, sizeof(reason), "%u check(s) failed", g_current.failures);
        } else if (ubsan != 0 && !g_current.ubsan_allowed) {
            format(reason, sizeof(reason), "%lu undefined-behaviour report(s)", ubsan);
        }
        if (reason[0] != 0) {
            ++failed;
            console_printf("not ok %u %s # %s\n", n, t.name, reason);
        } else if (g_current.skipped) {
            ++skipped;
            console_printf("ok %u %s # SKIP %s\n", n, t.name, g_current.skip_reason);
        } else {
            ++passed;
            console_printf("ok %u %s # time=%lu.%03lums\n", n, t.name, us / 1000, us % 1000);
        }
        g_finished.store(n, std::memory_order_relaxed);
    }
    panic_set_context_hook(nullptr);
    console_printf("# cohort-tests: %u passed, %u failed, %u skipped\n", passed, failed, skipped);
    return failed == 0;
}

size_t fresh_boot_tests() {
    size_t n = 0;
    for (const TestCase* t = __ktests_start; t != __ktests_end; ++t)
        if (t->flags & kFreshBoot) ++n;
    return n;
}

bool run_from_console(const char* selection) {
    console_printf("# from the console: %zu test(s) marked as needing a fresh boot are left "
                   "out; tests that need a command-line switch skip and name it (tools/test's "
                   "boot configurations run both)\n", fresh_boot_tests());
    g_from_console = true;
    const bool ok = run(selection);
    g_from_console = false;
    return ok;
}

} // namespace cohort::ktest
