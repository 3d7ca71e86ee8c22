// Host implementations of the hooks the portable lock code needs: user space has no interrupts
// to mask, the owner id is a per-thread number, and each thread has its own held-lock stack.
#include <atomic>

#include "sync/guard.h"
#include "sync/lock_debug.h"
#include "sync/owner.h"

namespace cohort {
IrqSave::State IrqSave::save() {
    return {false};
}
void IrqSave::restore(State) {}

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
