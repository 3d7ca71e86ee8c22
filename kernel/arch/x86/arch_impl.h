// x86-64 definitions of the architecture contract (arch/arch.h): the inline ones here, the
// rest in arch/x86/arch.cc. Included only by arch/arch.h.
#pragma once

#include <cstddef>
#include <cstdint>

#include "arch/x86/cpu.h"
#include "arch/x86/fpu.h"
#include "arch/x86/gdt.h"
#include "arch/x86/interrupts.h"
#include "arch/x86/lapic.h"
#include "arch/x86/vectors.h"

extern "C" void x86_context_switch(uint64_t* save_rsp, uint64_t new_rsp);

namespace cohort::arch {

using CpuTables = x86::CpuTables;
inline constexpr int kIstCount = x86::kIstCount;

inline void set_cpu_base(const void* base) {
    x86::wrmsr(x86::msr::kGsBase, reinterpret_cast<uint64_t>(base));
}
// Zero until the CPU's bring-up sets it (INIT clears it).
inline bool cpu_base_valid() { return x86::rdmsr(x86::msr::kGsBase) != 0; }
template <size_t kOffset>
inline uint64_t cpu_base_load() {
    uint64_t v;
    asm volatile("movq %%gs:%c1, %0" : "=r"(v) : "i"(kOffset));
    return v;
}
template <size_t kOffset>
inline uint32_t cpu_base_load32() {
    uint32_t v;
    asm volatile("movl %%gs:%c1, %0" : "=r"(v) : "i"(kOffset) : "memory");
    return v;
}
template <size_t kOffset>
inline void cpu_base_add32(int32_t delta) {
    asm volatile("addl %0, %%gs:%c1" : : "ri"(delta), "i"(kOffset) : "memory");
}

using IrqFrame = x86::InterruptFrame;
using IrqOff = x86::InterruptGuard;

// x86_context_switch's frame: r15, r14, r13, r12, rbx, rbp, return address.
inline constexpr size_t kSwitchFrameBytes = 7 * 8;

inline constexpr uint8_t kVecTimer = x86::kVecLapicTimer;
inline constexpr uint8_t kVecCall = x86::kVecIpiCall;
inline constexpr uint8_t kVecReschedule = x86::kVecIpiReschedule;
inline constexpr uint8_t kVecKick = x86::kVecIpiKick;
inline constexpr uint8_t kVecDeviceFirst = x86::kVecDeviceFirst;
inline constexpr uint8_t kVecDeviceLast = x86::kVecDeviceLast;

inline void irq_disable() { x86::cli(); }
inline void irq_enable() { x86::sti(); }
inline bool irqs_enabled() { return x86::interrupts_enabled(); }
inline void irq_enable_and_wait() { x86::sti_halt(); } // STI's one-instruction shadow covers HLT
[[noreturn]] inline void halt_forever() { x86::halt_forever(); }
inline uint64_t cycles() { return x86::rdtsc(); }

inline void irq_eoi() { x86::lapic_eoi(); }
inline void context_switch(uint64_t* save_sp, uint64_t new_sp) { x86_context_switch(save_sp, new_sp); }
inline void fpu_save(void* area) { x86::fpu_save(area); }
inline void fpu_restore(const void* area) { x86::fpu_restore(area); }

inline void tlb_flush_page(uint64_t va) { x86::invlpg(va); }

inline uint8_t io_in8(uint16_t port) { return x86::inb(port); }
inline uint16_t io_in16(uint16_t port) { return x86::inw(port); }
inline uint32_t io_in32(uint16_t port) { return x86::inl(port); }
inline void io_out8(uint16_t port, uint8_t v) { x86::outb(port, v); }
inline void io_out16(uint16_t port, uint16_t v) { x86::outw(port, v); }
inline void io_out32(uint16_t port, uint32_t v) { x86::outl(port, v); }
inline void tlb_flush_nonglobal() { x86::write_cr3(x86::read_cr3()); }
inline void tlb_flush_all() {
    // Toggling CR4.PGE drops global translations too (SDM 4.10.4.1); without PGE there are
    // none and a CR3 write drops everything.
    const uint64_t cr4 = x86::read_cr4();
    if (cr4 & x86::cr4::kPge) {
        x86::cr4_toggle_pge(cr4); // a flush, not a configuration change: pinned, not audited
        return;
    }
    tlb_flush_nonglobal();
}

} // namespace cohort::arch
