// Per-CPU data reached through GSBASE. Every CPU's GSBASE points at its own CpuData, whose
// first field points to itself, so `this_cpu()` is one %gs-relative load (no MSR read).
#pragma once

#include <cstddef>
#include <cstdint>

#include "arch/x86/gdt.h"

namespace cohort {

struct FaultCatcher;

/// Per-CPU state. Grows with the SMP work; fields read by assembly are pinned below.
struct alignas(64) CpuData {
    CpuData* self;            // %gs:0
    uint64_t magic;           // kCpuDataMagic while the structure is live
    uint32_t cpu_id;          // logical id: 0 is the boot CPU
    uint32_t apic_id;         // 32-bit so x2APIC ids fit
    uint64_t kernel_stack_top;
    uint64_t kernel_stack_bottom; // lowest usable address of the current kernel stack
    FaultCatcher* fault_catcher; // innermost active recovery point (tests), or nullptr
    uint32_t exception_depth;    // nested exception reports on this CPU
    uint32_t irq_depth;
    uint64_t interrupts;         // interrupts taken on this CPU
    alignas(64) x86::CpuTables tables; // this CPU's GDT and TSS
};
static_assert(offsetof(CpuData, self) == 0, "this_cpu() loads %gs:0");

constexpr uint64_t kCpuDataMagic = 0xc0407c0d'a7a5e1f0;

/// The running CPU's data. Valid from the first instruction of kernel_main on the BSP.
inline CpuData* this_cpu() {
    CpuData* p;
    asm volatile("movq %%gs:0, %0" : "=r"(p));
    return p;
}

/// The boot CPU's data, statically allocated so it exists before any allocator.
extern CpuData g_bsp_cpu_data;

/// Points GSBASE at `cpu` (writes IA32_GS_BASE).
void install_cpu_data(CpuData* cpu);

} // namespace cohort
