#include "arch/x86/cpu_stacks.h"

#include "arch/x86/cpu_private.h"
#include "arch/x86/gdt.h"
#include "mm/kstack.h"

namespace cohort::x86 {

bool alloc_cpu_stacks(CpuData& cpu) {
    // On the CPU's node (set by smp_prepare before this; 0 for the boot CPU, whose stacks are
    // made before NUMA is known).
    const KernelStack stack =
        kstack_alloc_node(cpu.cpu_id == 0 ? kBootCpuStackSize : kApStackSize, cpu.node);
    if (!stack.valid()) return false;
    cpu.kernel_stack_top = stack.top;
    cpu.kernel_stack_bottom = stack.bottom;
    // The IST stacks are in the CPU's private region (cpu_private_setup made them): the same
    // addresses on every CPU, reachable by no other.
    for (int i = 0; i < kIstCount; ++i) cpu.ist_tops[i] = cpu_private_ist_top(i);
    return true;
}

} // namespace cohort::x86
