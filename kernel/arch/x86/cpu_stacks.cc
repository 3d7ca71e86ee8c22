#include "arch/x86/cpu_stacks.h"

#include "arch/x86/gdt.h"
#include "mm/kstack.h"

namespace cohort::x86 {

bool alloc_cpu_stacks(CpuData& cpu) {
    KernelStack stacks[1 + kIstCount];
    for (int i = 0; i <= kIstCount; ++i) {
        const size_t kernel = cpu.cpu_id == 0 ? kBootCpuStackSize : kApStackSize;
        // On the CPU's node (set by smp_prepare before this; 0 for the boot CPU, whose stacks
        // are made before NUMA is known).
        stacks[i] = kstack_alloc_node(i == 0 ? kernel : kIstStackSize, cpu.node);
        if (stacks[i].valid()) continue;
        for (int j = 0; j < i; ++j) kstack_free(stacks[j]);
        return false;
    }
    cpu.kernel_stack_top = stacks[0].top;
    cpu.kernel_stack_bottom = stacks[0].bottom;
    for (int i = 0; i < kIstCount; ++i) cpu.ist_tops[i] = stacks[1 + i].top;
    return true;
}

} // namespace cohort::x86
