// Kernel implementations of the hooks the portable lock code needs: the IrqSave guard policy,
// the owner id (this CPU) and the per-CPU held-lock stack for lock debugging.
#include <cstddef>

#include "smp/cpu.h"
#include "arch/arch.h"
#include "smp/percpu.h"
#include "sync/guard.h"
#include "sync/lock_debug.h"
#include "sync/owner.h"

namespace cohort {
IrqSave::State IrqSave::save() {
    const bool enabled = arch::irqs_enabled();
    arch::irq_disable();
    return {enabled};
}
void IrqSave::restore(State s) {
    if (s.enabled) arch::irq_enable();
}

LockContext current_lock_context() {
    // The interrupt depth in one load (see lock_holds_on_this_cpu): with interrupts on, the
    // task may move between finding its CPU and reading a field of it.
    const bool in_irq = this_cpu() != nullptr &&
                        arch::cpu_base_load32<offsetof(CpuData, irq_depth)>() > 0;
    return {in_irq, arch::irqs_enabled()};
}

// One instruction relative to the CPU base each: an interrupt (and with it a switch to another CPU) cannot
// fall between finding this CPU's data and changing the count, as it could in a C++ `++`.
void lock_hold_enter() {
    arch::cpu_base_add32<offsetof(CpuData, locks_held)>(1);
}
void lock_hold_exit() {
    arch::cpu_base_add32<offsetof(CpuData, locks_held)>(-1);
}
// One load relative to the CPU base too: `this_cpu()->locks_held` is two, and a task preempted
// between them (it holds nothing, so it may be) and moved reads the count of the CPU it left,
// which that CPU's next task may have raised. sched_block, which checks it with interrupts on,
// then panicked with a lock "held" by somebody else (the false alarm that kept the hotplug
// torture manual).
uint32_t lock_holds_on_this_cpu() {
    return arch::cpu_base_load32<offsetof(CpuData, locks_held)>();
}

uint32_t current_owner_id() {
    return this_cpu()->cpu_id;
}

namespace {
// Before percpu_init_boot_cpu the boot CPU uses the template copy itself; every lock taken then
// is released again before the template is snapshotted, so each CPU starts with an empty stack.
COHORT_PERCPU(HeldLockStack, g_held_locks);
} // namespace

HeldLockStack* current_held_locks() {
    return &per_cpu(g_held_locks);
}
} // namespace cohort
