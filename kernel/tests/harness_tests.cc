// Tests of the test harness itself.
#include <atomic>

#include "debug/fault_catcher.h"
#include "debug/log.h"
#include "debug/panic.h"
#include "sched/sched.h"
#include "smp/cpu.h"
#include "sync/spinlock.h"
#include "time/clock.h"
#include "time/timer.h"
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

// A fault under a spinlock: the lock stays taken (nothing can release it safely), but the
// CPU's count of held locks, which gates preemption, and the lock checker's stack go back to
// what they were when the catcher was set. Otherwise this CPU would never preempt again.
void fault_holding_a_lock(void* arg) COHORT_NO_THREAD_SAFETY_ANALYSIS {
    static_cast<SpinLock*>(arg)->lock();
    asm volatile("ud2");
}

KTEST(harness, unwinding_restores_the_lock_count) {
    // Left taken for good: a fresh one per run (the console's `test` may run this twice).
    SpinLock lock;
    NoPreempt stay; // the counts are this CPU's: stay on it while comparing
    const uint32_t before = this_cpu()->locks_held;
    FaultInfo info{};
    KEXPECT(run_catching_faults(fault_holding_a_lock, &lock, &info));
    KEXPECT_EQ(this_cpu()->locks_held, before);
    KEXPECT_EQ(this_cpu()->irq_depth, 0u);
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

// The test's catcher is the test's: a fault in an interrupt handler that happens to interrupt
// it (here a timer callback on the same CPU while the test spins) is a crash of that handler,
// reported as a panic, never an unwind into the test's frame. (ctest expects the panic.)
KTEST_MANUAL(harness, fault_in_a_handler_is_not_the_tests) {
    static Timer t;
    static std::atomic<bool> fired{false};
    timer_arm(t, monotonic_ns() + 1'000'000, [](Timer&, void*) {
        fired.store(true);
        asm volatile("ud2");
    }, nullptr);
    const uint64_t end = monotonic_ns() + 2'000'000'000;
    while (monotonic_ns() < end) asm volatile("pause");
    KEXPECT(fired.load());
}

// Nor is a fault in another task on the same CPU while the test waits for it.
KTEST_MANUAL(harness, fault_in_another_task_is_not_the_tests) {
    CpuMask here;
    here.set(this_cpu()->cpu_id);
    Task* t = task_create([](void*) { asm volatile("ud2"); }, nullptr,
                          {.name = "faulty", .affinity = &here});
    KASSERT(t != nullptr);
    task_join(t);
}
} // namespace
} // namespace cohort
