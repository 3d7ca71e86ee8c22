#include "sync/lock_debug.h"

#include <atomic>

#include "sync/owner.h"

namespace cohort {

namespace {

std::atomic<LockReporter> g_reporter{nullptr};

void report(LockReportKind kind, const void* lock, const LockClass* cls, LockSite site,
            const HeldLock* held) {
    LockReport r{};
    r.kind = kind;
    r.owner = current_owner_id();
    r.lock = lock;
    r.cls = cls;
    r.site = site;
    if (held != nullptr) {
        r.held_lock = held->lock;
        r.held_cls = held->cls;
        r.held_site = held->site;
    }
    if (LockReporter rep = g_reporter.load(std::memory_order_acquire)) {
        rep(r);
        return;
    }
    assert_fail(lock_report_kind_name(kind), site.file != nullptr ? site.file : "?",
                static_cast<int>(site.line), "lock debugging");
}

// The topmost entry for `lock`, or nullptr.
HeldLock* find(HeldLockStack& s, const void* lock) {
    for (uint32_t i = s.depth; i-- > 0;)
        if (s.entries[i].lock == lock) return &s.entries[i];
    return nullptr;
}

// Interrupt handlers on the same CPU push and pop on this stack between any two of our
// instructions. The slot is claimed (depth bumped) while it reads as empty, and filled only
// afterwards, so a handler never overwrites it and never mistakes stale contents for a lock.
void push(HeldLockStack& s, const void* lock, const LockClass* cls, LockSite site) {
    if (s.depth == HeldLockStack::kCapacity) {
        if (s.overflow++ == 0) report(LockReportKind::TooManyHeld, lock, cls, site, nullptr);
        return;
    }
    HeldLock& e = s.entries[s.depth];
    e.lock = nullptr;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    ++s.depth;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    e.cls = cls;
    e.site = site;
    e.recursion = 0;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    e.lock = lock;
}

// Rank rule: every ranked lock held must rank strictly below the new one. Reports the first
// (oldest) conflicting lock.
void check_order(HeldLockStack& s, const void* lock, const LockClass* cls, LockSite site) {
    if (cls == nullptr || cls->rank() == 0) return;
    for (uint32_t i = 0; i < s.depth; ++i) {
        const HeldLock& h = s.entries[i];
        if (h.lock == nullptr || h.cls == nullptr || h.cls->rank() == 0) continue;
        if (h.cls->rank() >= cls->rank()) {
            report(LockReportKind::OrderViolation, lock, cls, site, &h);
            return;
        }
    }
}

// Records how `usage`'s lock is being taken and reports the first time it has been taken both
// in an interrupt handler (waiting) and elsewhere with interrupts enabled. Lock-free: shared
// holders and waiters race here. Each site is written once, by whoever claims it, before its
// bit is published; a side claimed but not yet published is seen on a later acquisition.
constexpr uint8_t kInIrqClaim = 8, kIrqsOnClaim = 16;

void note_irq_usage(LockIrqUsage& usage, const void* lock, const LockClass* cls, LockSite site,
                    bool waiting) {
    const LockContext ctx = current_lock_context();
    uint8_t mine, claim, other;
    if (ctx.in_irq && waiting) {
        // Only a waiting acquisition can deadlock against its own CPU; a try just fails.
        mine = LockIrqUsage::kInIrq, claim = kInIrqClaim, other = LockIrqUsage::kIrqsOn;
    } else if (!ctx.in_irq && ctx.irqs_enabled) {
        mine = LockIrqUsage::kIrqsOn, claim = kIrqsOnClaim, other = LockIrqUsage::kInIrq;
    } else {
        return;
    }
    uint8_t seen = usage.seen.load(std::memory_order_acquire);
    if ((seen & (mine | claim)) == 0 && (usage.seen.fetch_or(claim) & claim) == 0) {
        (mine == LockIrqUsage::kInIrq ? usage.in_irq_site : usage.irqs_on_site) = site;
        seen = usage.seen.fetch_or(mine, std::memory_order_acq_rel) | mine;
    }
    if ((seen & other) == 0 || (seen & LockIrqUsage::kReported) != 0) return;
    if ((usage.seen.fetch_or(LockIrqUsage::kReported) & LockIrqUsage::kReported) != 0) return;
    HeldLock earlier{lock, cls,
                     mine == LockIrqUsage::kInIrq ? usage.irqs_on_site : usage.in_irq_site, 0};
    report(LockReportKind::IrqUnsafe, lock, cls, site, &earlier);
}

} // namespace

LockReporter set_lock_reporter(LockReporter r) {
    return g_reporter.exchange(r, std::memory_order_acq_rel);
}

const char* lock_report_kind_name(LockReportKind k) {
    switch (k) {
    case LockReportKind::Recursion:
        return "lock recursion";
    case LockReportKind::OrderViolation:
        return "lock order violation";
    case LockReportKind::ReleaseNotHeld:
        return "release of a lock not held";
    case LockReportKind::TooManyHeld:
        return "too many locks held";
    case LockReportKind::LongWait:
        return "lock held too long";
    case LockReportKind::IrqUnsafe:
        return "lock taken in an interrupt handler is also taken with interrupts enabled";
    }
    return "lock error";
}

namespace {
std::atomic<uint64_t> g_wait_limit{0};
} // namespace

void set_lock_wait_limit(uint64_t ticks) { g_wait_limit.store(ticks, std::memory_order_relaxed); }

namespace lock_debug {

void check_long_wait(const void* lock, const LockClass* cls, LockSite site, uint32_t holder,
                     uint64_t& wait_begin, bool& reported) {
    const uint64_t limit = g_wait_limit.load(std::memory_order_relaxed);
    if (limit == 0 || reported) return;
    const uint64_t now = lock_clock_now();
    if (wait_begin == 0) {
        wait_begin = now;
        return;
    }
    if (now - wait_begin < limit) return;
    reported = true;
    LockReport r{};
    r.kind = LockReportKind::LongWait;
    r.owner = current_owner_id();
    r.lock = lock;
    r.cls = cls;
    r.site = site;
    r.holder = holder;
    r.waited = now - wait_begin;
    const LockReporter rep = g_reporter.load(std::memory_order_acquire);
    if (rep != nullptr) rep(r);
    // No reporter: a long wait is not a bug by itself, so the default stays silent.
}


bool before_acquire(const void* lock, const LockClass* cls, LockSite site, LockIrqUsage* usage) {
    if (usage != nullptr) note_irq_usage(*usage, lock, cls, site, true);
    HeldLockStack* s = current_held_locks();
    if (s == nullptr) return true;
    if (HeldLock* h = find(*s, lock)) {
        report(LockReportKind::Recursion, lock, cls, site, h);
        ++h->recursion;
        return false;
    }
    check_order(*s, lock, cls, site);
    // Pushed before waiting, so an interrupt handler on this CPU that wants the same lock is
    // reported as recursion instead of spinning forever.
    push(*s, lock, cls, site);
    return true;
}

bool before_try(const void*, const LockClass*, LockSite) {
    // Nothing to report: a try of a lock the owner holds fails (or, for a shared lock, nests)
    // without waiting, so it cannot deadlock, and "is it free?" probes are legitimate. No
    // order check either: a try cannot close a deadlock cycle.
    return true;
}

void after_try_acquired(const void* lock, const LockClass* cls, LockSite site,
                        LockIrqUsage* usage) {
    if (usage != nullptr) note_irq_usage(*usage, lock, cls, site, false);
    if (HeldLockStack* s = current_held_locks()) push(*s, lock, cls, site);
}

bool before_release(const void* lock) {
    HeldLockStack* s = current_held_locks();
    if (s == nullptr) return true;
    HeldLock* h = find(*s, lock);
    if (h == nullptr) {
        if (s->overflow > 0) {
            --s->overflow;
        } else {
            report(LockReportKind::ReleaseNotHeld, lock, nullptr, LockSite{}, nullptr);
        }
        return true;
    }
    if (h->recursion > 0) {
        --h->recursion;
        return false;
    }
    // Releases are usually in reverse order; close the gap when they are not.
    const uint32_t top = s->depth - 1;
    for (HeldLock* p = h; p < &s->entries[top]; ++p)
        *p = *(p + 1);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    s->depth = top;
    return true;
}

} // namespace lock_debug

} // namespace cohort
