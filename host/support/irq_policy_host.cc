// Host implementation of the IrqSave guard policy: user space has no interrupts to mask.
#include "sync/spinlock.h"

namespace cohort {
IrqSave::State IrqSave::save() {
    return {false};
}
void IrqSave::restore(State) {}
} // namespace cohort
