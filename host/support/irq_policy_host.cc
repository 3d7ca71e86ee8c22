// Host implementations of the hooks the portable lock code needs: the owner id is a per-thread
// number and each thread has its own held-lock stack. User space has no interrupts, so each
// thread carries a simulated interrupt state (enabled, not in a handler, as a kernel thread
// starts) that IrqSave toggles and tests set through host_irq.h.
#include <atomic>

#include "host_irq.h"

#include "sync/guard.h"
#include "sync/lock_debug.h"
#include "sync/owner.h"

namespace cohort {
namespace {
thread_local LockContext t_context{false, true};
} // namespace

IrqSave::State IrqSave::save() {
    const bool enabled = t_context.irqs_enabled;
    t_context.irqs_enabled = false;
    return {enabled};
}
void IrqSave::restore(State s) {
    if (s.enabled) t_context.irqs_enabled = true;
}

namespace {
thread_local uint32_t t_locks_held = 0;
} // namespace
void lock_hold_enter() { ++t_locks_held; }
void lock_hold_exit() { --t_locks_held; }
uint32_t lock_holds_on_this_cpu() { return t_locks_held; }

LockContext current_lock_context() {
    return t_context;
}

LockContext host_set_lock_context(LockContext c) {
    const LockContext old = t_context;
    t_context = c;
    return old;
}

uint32_t current_owner_id() {
    static std::atomic<uint32_t> next{0};
    thread_local const uint32_t id = next.fetch_add(1, std::memory_order_relaxed);
    return id;
}

HeldLockStack* current_held_locks() {
    thread_local HeldLockStack stack{};
    return &stack;
}
} // namespace cohort
