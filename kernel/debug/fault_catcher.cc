#include "debug/fault_catcher.h"

#include "smp/cpu.h"

namespace cohort {

bool run_catching_faults(void (*fn)(void*), void* arg, FaultInfo* out, bool quiet) {
    CpuData* cpu = this_cpu();
    FaultCatcher catcher{};
    catcher.quiet = quiet;
    catcher.previous = cpu->fault_catcher;
    // The catcher lives in this frame; `volatile` keeps the compiler from caching anything
    // across the second return of setjmp.
    FaultCatcher* volatile c = &catcher;
    if (cohort_setjmp(&catcher.jump) == 0) {
        cpu->fault_catcher = c;
        fn(arg);
        this_cpu()->fault_catcher = c->previous;
        return false;
    }
    // Back from the exception handler; it already popped the catcher.
    if (out != nullptr) *out = c->fault;
    return true;
}

FaultCatcher* active_fault_catcher() { return this_cpu()->fault_catcher; }

void fault_catcher_unwind(uint64_t vector, uint64_t error_code, uint64_t rip, uint64_t cr2) {
    CpuData* cpu = this_cpu();
    FaultCatcher* c = cpu->fault_catcher;
    c->fault = FaultInfo{vector, error_code, rip, cr2};
    cpu->fault_catcher = c->previous;
    cpu->exception_depth = 0;
    cohort_longjmp(&c->jump, 1);
}

} // namespace cohort
