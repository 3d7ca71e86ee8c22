// Lock debugging (debug builds): recursive-acquisition and lock-order (rank) checks.
//
// Every owner (CPU in the kernel, thread on the host) has a stack of the locks it holds, with
// the site each was taken at. Before a lock waits, the checks compare the new acquisition
// against that stack and report a problem with both sites through an injected reporter. The
// default reporter stops the system (assert_fail); a test installs one that records and returns
// ("report mode"): a recursive acquisition is then not performed but counted, and the matching
// release is skipped, so the test keeps running instead of deadlocking on itself.
#pragma once

#include <atomic>
#include <cstdint>

#include "lib/assert.h"
#include "sync/lock_class.h"

/// Lock debugging follows the assertion setting unless a build says otherwise.
#ifndef COHORT_LOCK_DEBUG
#define COHORT_LOCK_DEBUG COHORT_ASSERTS
#endif

namespace cohort {

/// One lock the current owner holds (or is waiting for).
struct HeldLock {
    const void* lock;
    const LockClass* cls;
    LockSite site;
    uint32_t recursion; // report-mode re-acquisitions that were skipped
};

/// The per-owner stack of held locks. Zero-initialised means empty.
struct HeldLockStack {
    static constexpr uint32_t kCapacity = 16;
    HeldLock entries[kCapacity];
    uint32_t depth;
    uint32_t overflow; // acquisitions past kCapacity, not tracked
};

/// The caller's held-lock stack, or nullptr while none is available (early boot, or a host
/// thread that opted out): checks are skipped then. Defined by the kernel (per-CPU) and by
/// host/support (thread-local).
HeldLockStack* current_held_locks();

enum class LockReportKind : uint8_t {
    Recursion,      // taking a lock the owner already holds (or waits for)
    OrderViolation, // taking a lock whose class rank is <= that of a held lock
    ReleaseNotHeld, // releasing a lock the owner does not hold
    TooManyHeld,    // the held-lock stack is full; later locks are not checked
    LongWait,       // spun on a lock longer than the limit (set_lock_wait_limit); `holder` has it
    IrqUnsafe,      // a lock taken in interrupt context is also taken with interrupts enabled
};

/// Where the caller runs, as far as interrupt safety is concerned.
struct LockContext {
    bool in_irq;       // inside an interrupt handler (not NMI)
    bool irqs_enabled; // interrupts can arrive right now
};

/// The caller's context. Defined by the kernel (irq depth, RFLAGS.IF) and by host/support
/// (thread-local values that tests set).
LockContext current_lock_context();

/// How one lock has been used, for the interrupt-safety check: a lock that an interrupt handler
/// waits for must never be held with interrupts enabled, or the handler can interrupt the holder
/// on its own CPU and spin forever. Lives in each lock (debug builds), zero-initialised.
struct LockIrqUsage {
    static constexpr uint8_t kInIrq = 1, kIrqsOn = 2, kReported = 4;
    std::atomic<uint8_t> seen{0};
    LockSite in_irq_site;  // the first acquisition in an interrupt handler
    LockSite irqs_on_site; // the first acquisition with interrupts enabled
};

/// What went wrong, with both sites: `site` is the new operation, `held_site` the acquisition
/// of `held_lock` it conflicts with (the same lock for Recursion and IrqUnsafe: there
/// `held_site` is the earlier of the two conflicting acquisitions).
struct LockReport {
    LockReportKind kind;
    uint32_t owner;
    const void* lock;
    const LockClass* cls;
    LockSite site;
    const void* held_lock;
    const LockClass* held_cls;
    LockSite held_site;
    uint32_t holder = UINT32_MAX; // LongWait: owner id of the lock's holder at the time
    uint64_t waited = 0;          // LongWait: lock_clock_now() ticks waited so far
};

/// Spinning longer than `ticks` (lock_clock_now() units; 0 = never) on a lock is reported once
/// per wait as LongWait. Checked every 1024 spins (a TSC read per ~100 us of spinning).
void set_lock_wait_limit(uint64_t ticks);

/// Receives reports. Returning means "report mode": the lock operation continues as described
/// at the top of this file.
using LockReporter = void (*)(const LockReport&);

/// Installs `r` (nullptr restores the default, which calls assert_fail); returns the previous.
LockReporter set_lock_reporter(LockReporter r);

/// Installs the kernel's reporter (log both sites and the owner CPU, then panic). Kernel only.
void lock_debug_init();
/// Long waits the kernel's reporter logged so far (warnings, not failures). Kernel only.
uint64_t lock_long_waits_reported();
/// Lets the next long wait be printed (and its holder asked for a backtrace) at once, whatever
/// was reported in the last seconds. For tests that look for that report. Kernel only.
void lock_report_reset_rate_limits();
/// Starts reporting waits longer than 2 s (needs the TSC frequency). Kernel only.
void lock_debug_start_wait_limit();

/// A short name for `k` ("recursion", "order", ...).
const char* lock_report_kind_name(LockReportKind k);

/// The hook points every lock calls in debug builds. `lock` is the lock's address (its
/// identity), `shared` marks read acquisitions of reader-writer locks.
namespace lock_debug {
/// Before a blocking acquisition waits. False: recursion was reported in report mode; the
/// caller must not acquire (the release that pairs with this call is skipped too).
/// `usage` (may be nullptr) is the lock's interrupt-usage record.
bool before_acquire(const void* lock, const LockClass* cls, LockSite site,
                    LockIrqUsage* usage = nullptr);
/// Before a try-acquisition. False: the try must fail. (Always true: a try never waits, so it
/// cannot deadlock; see the definition.)
bool before_try(const void* lock, const LockClass* cls, LockSite site);
/// After a try-acquisition succeeded.
void after_try_acquired(const void* lock, const LockClass* cls, LockSite site,
                        LockIrqUsage* usage = nullptr);
/// Before a release. False: the release pairs with a skipped recursive acquisition.
bool before_release(const void* lock);
/// Called from a wait loop every 1024 spins; `wait_begin` and `reported` are the loop's state.
void check_long_wait(const void* lock, const LockClass* cls, LockSite site, uint32_t holder,
                     uint64_t& wait_begin, bool& reported);
} // namespace lock_debug

/// Watches one wait loop for the long-wait report: call tick() once per spin. Compiles to
/// nothing without lock debugging, so the lock algorithms need no #if around their loops.
class LockWaitWatch {
  public:
#if COHORT_LOCK_DEBUG
    void tick(const void* lock, const LockClass* cls, LockSite site, uint32_t holder) {
        // A clock read every 1024 spins keeps the check off the spinning's critical path.
        if ((++spins_ & 0x3ff) == 0)
            lock_debug::check_long_wait(lock, cls, site, holder, begin_, reported_);
    }

  private:
    uint32_t spins_ = 0;
    uint64_t begin_ = 0;
    bool reported_ = false;
#else
    void tick(const void*, const LockClass*, LockSite, uint32_t) {}
#endif
};

} // namespace cohort
