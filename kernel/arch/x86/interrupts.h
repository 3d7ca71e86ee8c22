// IDT, interrupt entry and dispatch.
#pragma once

#include <cstdint>

#include "arch/x86/vectors.h"

namespace cohort::x86 {

/// Register state saved by the interrupt entry stubs (isr.S), lowest address first.
struct InterruptFrame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error_code;
    // Pushed by the CPU:
    uint64_t rip, cs, rflags, rsp, ss;
};
static_assert(sizeof(InterruptFrame) == 22 * 8, "isr.S pushes 22 quadwords");

enum Vector : uint8_t {
    kVecDivide = 0,
    kVecDebug = 1,
    kVecNmi = 2,
    kVecBreakpoint = 3,
    kVecInvalidOpcode = 6,
    kVecDoubleFault = 8,
    kVecGeneralProtection = 13,
    kVecPageFault = 14,
    kVecMachineCheck = 18,
    kVecFirstIrq = 32,
};

using IrqHandler = void (*)(InterruptFrame& frame);

/// Builds the IDT (once) and loads it on the calling CPU.
void idt_init();
void idt_load();
/// Routes `vector` (>= 32) to `handler`. The handler must send the EOI if the source needs one.
void set_irq_handler(uint8_t vector, IrqHandler handler);

const char* exception_name(uint64_t vector);

} // namespace cohort::x86
