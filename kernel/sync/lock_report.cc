// The kernel's lock-debugging reporter: both sites, the owner CPU, then a panic. Long waits
// are only warnings, with the holder's backtrace fetched by NMI.
#include "debug/log.h"
#include "debug/panic.h"
#include "smp/cpu.h"
#include "smp/percpu.h"
#include "sync/lock_class.h"
#include "sync/lock_debug.h"
#include "sync/lock_ranks.h"
#include "time/clock.h"

namespace cohort {

namespace {
// A report about the console lock itself (or any lock the logging path takes) would recurse
// through log_write forever: a nested report on the same CPU goes straight to panic, whose
// console path never waits for a lock.
COHORT_PERCPU(uint32_t, g_reporting);
std::atomic<uint64_t> g_long_waits{0};
std::atomic<uint64_t> g_long_waits_quiet{0};
std::atomic<uint64_t> g_last_long_wait_ns{0};
std::atomic<uint64_t> g_last_backtrace_ns{0};

void kernel_lock_reporter(const LockReport& r) {
    if (per_cpu(g_reporting) != 0 && r.kind == LockReportKind::LongWait) return; // one is enough
    if (per_cpu(g_reporting)++ != 0) {
        console_enter_panic_mode();
        panic("lock debugging: %s on cpu%u for lock %p (%s) at %s:%u, while reporting another",
              lock_report_kind_name(r.kind), r.owner, r.lock,
              r.cls != nullptr ? r.cls->name() : "no class", r.site.file, r.site.line);
    }
    struct Done {
        ~Done() { --per_cpu(g_reporting); }
    } done;
    if (r.kind == LockReportKind::LongWait) {
        // Not necessarily a bug (an emulator may deschedule the holder), so report and wait on.
        g_long_waits.fetch_add(1, std::memory_order_relaxed);
        // A wait for the console lock cannot be reported through the console: the report would
        // take the lock it waits for. Counted only.
        if (r.cls != nullptr && r.cls->rank() == rank::kConsole) return;
        // One line a second for the whole machine. With many more vCPUs than host cores, every
        // waiter of a convoy reaches the limit at once; printing (and asking for backtraces)
        // for each of them through one serial port would stall the very lock holders they wait
        // for, and the machine with them.
        const uint64_t now = monotonic_ns();
        uint64_t last = g_last_long_wait_ns.load(std::memory_order_relaxed);
        if ((last != 0 && now - last < 1'000'000'000) ||
            !g_last_long_wait_ns.compare_exchange_strong(last, now)) {
            g_long_waits_quiet.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        if (const uint64_t quiet = g_long_waits_quiet.exchange(0); quiet != 0)
            log_warn("lock: %lu more long wait(s) in the last second(s), not shown", quiet);
        log_warn("lock: cpu%u has waited %lu ms for lock %p (%s) at %s:%u, held by cpu%d",
                 r.owner, tsc_to_ns(r.waited) / 1000000, r.lock,
                 r.cls != nullptr ? r.cls->name() : "no class", r.site.file, r.site.line,
                 r.holder == UINT32_MAX ? -1 : static_cast<int>(r.holder));
        // The holder may spin with interrupts off: only an NMI reaches it for sure. At most
        // one such request every 10 s: the holder prints its backtrace while it still holds
        // the lock, and on a machine where vCPUs far outnumber host cores printing is slow.
        uint64_t last_bt = g_last_backtrace_ns.load(std::memory_order_relaxed);
        if (r.holder != UINT32_MAX && r.holder != r.owner && r.holder < cpu_count() &&
            (last_bt == 0 || now - last_bt >= 10'000'000'000) &&
            g_last_backtrace_ns.compare_exchange_strong(last_bt, now))
            request_backtrace(cpu_lookup(r.holder), "holding the lock above");
        return;
    }
    if (r.kind == LockReportKind::IrqUnsafe) {
        log_error("lock: lock %p (%s) is taken in an interrupt handler and with interrupts enabled: "
                  "a handler can interrupt the holder on its CPU and spin forever",
                  r.lock, r.cls != nullptr ? r.cls->name() : "no class");
        const bool now_in_irq = this_cpu()->irq_depth > 0;
        log_error("lock:   %s at %s:%u", now_in_irq ? "in a handler" : "interrupts on", r.site.file,
                  r.site.line);
        log_error("lock:   %s at %s:%u", now_in_irq ? "interrupts on" : "in a handler",
                  r.held_site.file, r.held_site.line);
        panic("lock debugging: %s (see the lines above; use an IrqSave guard)",
              lock_report_kind_name(r.kind));
    }
    log_error("lock: %s on cpu%u: lock %p (%s) at %s:%u", lock_report_kind_name(r.kind), r.owner,
              r.lock, r.cls != nullptr ? r.cls->name() : "no class", r.site.file, r.site.line);
    if (r.held_lock != nullptr)
        log_error("lock:   conflicts with lock %p (%s) taken at %s:%u", r.held_lock,
                  r.held_cls != nullptr ? r.held_cls->name() : "no class", r.held_site.file,
                  r.held_site.line);
    panic("lock debugging: %s (see the two lines above)", lock_report_kind_name(r.kind));
}
} // namespace

void lock_debug_init() { set_lock_reporter(kernel_lock_reporter); }

uint64_t lock_long_waits_reported() { return g_long_waits.load(std::memory_order_relaxed); }

void lock_report_reset_rate_limits() {
    g_last_long_wait_ns.store(0, std::memory_order_relaxed);
    g_last_backtrace_ns.store(0, std::memory_order_relaxed);
}

void lock_debug_start_wait_limit() { set_lock_wait_limit(tsc_hz() * 2); }

} // namespace cohort
