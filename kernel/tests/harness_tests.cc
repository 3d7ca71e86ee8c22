// Tests of the test harness itself.
#include "debug/fault_catcher.h"
#include "debug/log.h"
#include "debug/panic.h"
#include "test/ktest.h"

namespace cohort {
namespace {

// Fails on purpose, so anyone can watch the harness report a failure and the runner exit
// non-zero: `tools/run -- test=harness.expected_failure`. Never part of `all`.
KTEST_MANUAL(harness, expected_failure) {
    const int two = 1 + 1;
    KEXPECT_EQ(two, 3);
}

void no_fault(void* arg) { *static_cast<int*>(arg) = 42; }

KTEST(harness, catcher_passes_through_normal_return) {
    int value = 0;
    FaultInfo info{};
    KEXPECT(!run_catching_faults(no_fault, &value, &info));
    KEXPECT_EQ(value, 42);
}

void nested_fault(void*) { asm volatile("ud2"); }
void outer(void* arg) {
    FaultInfo inner{};
    *static_cast<bool*>(arg) = run_catching_faults(nested_fault, nullptr, &inner);
}

KTEST(harness, catchers_nest) {
    bool inner_caught = false;
    FaultInfo info{};
    KEXPECT(!run_catching_faults(outer, &inner_caught, &info));
    KEXPECT(inner_caught);
}

KTEST(harness, log_history_is_searchable) {
    const uint64_t mark = log_mark();
    log_info("harness: marker %d", 7357);
    KEXPECT(log_contains_since(mark, "[cpu0] harness: marker 7357"));
    KEXPECT(!log_contains_since(mark, "harness: marker 7358"));
}

} // namespace
} // namespace cohort

namespace cohort {
namespace {
// Panics on purpose, so ctest can check the panic report and the runner's exit status.
KTEST_MANUAL(harness, panic) { panic("harness.panic asked for a panic"); }
} // namespace
} // namespace cohort
