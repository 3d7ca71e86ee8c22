// Kernel implementation of the IrqSave guard policy.
#include "arch/x86/cpu.h"
#include "sync/spinlock.h"

namespace cohort {
IrqSave::State IrqSave::save() {
    const bool enabled = x86::interrupts_enabled();
    x86::cli();
    return {enabled};
}
void IrqSave::restore(State s) {
    if (s.enabled) x86::sti();
}
} // namespace cohort
