// Thin wrappers over x86 instructions: port I/O, MSRs, control registers, CPUID, interrupts.
#pragma once

#include <cstdint>

namespace cohort::x86 {

inline void outb(uint16_t port, uint8_t v) { asm volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
inline void outw(uint16_t port, uint16_t v) { asm volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
inline void outl(uint16_t port, uint32_t v) { asm volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
inline uint8_t inb(uint16_t port) {
    uint8_t v;
    asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
inline uint16_t inw(uint16_t port) {
    uint16_t v;
    asm volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
inline uint32_t inl(uint16_t port) {
    uint32_t v;
    asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

inline uint64_t rdmsr(uint32_t msr) {
    uint32_t lo, hi;
    asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return (uint64_t(hi) << 32) | lo;
}
inline void wrmsr(uint32_t msr, uint64_t v);

/// Serialising-enough TSC read for interval measurement on one CPU.
inline uint64_t rdtsc() {
    uint32_t lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t(hi) << 32) | lo;
}

struct CpuidResult {
    uint32_t eax, ebx, ecx, edx;
};
inline CpuidResult cpuid(uint32_t leaf, uint32_t subleaf = 0) {
    CpuidResult r;
    asm volatile("cpuid" : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx) : "a"(leaf), "c"(subleaf));
    return r;
}

#define COHORT_CR_READ(n)                                                                          \
    inline uint64_t read_cr##n() {                                                                 \
        uint64_t v;                                                                                \
        asm volatile("mov %%cr" #n ", %0" : "=r"(v));                                              \
        return v;                                                                                  \
    }
COHORT_CR_READ(0)
COHORT_CR_READ(2)
COHORT_CR_READ(3)
COHORT_CR_READ(4)
#undef COHORT_CR_READ
inline void write_cr3(uint64_t v) { asm volatile("mov %0, %%cr3" : : "r"(v) : "memory"); }
/// CR0, CR4 and EFER are written only through these (arch/x86/cr_pin.cc): once pinning is on,
/// none of them can clear a pinned security bit (CR0.WP, CR4.SMEP/SMAP/UMIP, EFER.NXE).
void write_cr0(uint64_t v);
void write_cr4(uint64_t v);
void write_efer(uint64_t v);
/// A full TLB flush's CR4.PGE off-and-on: pinned like write_cr4, not audited (docs/security.md).
void cr4_toggle_pge(uint64_t cr4);
/// XCR0 (XSETBV), audited.
void write_xcr0(uint64_t v);

inline uint64_t read_rflags() {
    uint64_t f;
    asm volatile("pushfq; popq %0" : "=r"(f));
    return f;
}
inline bool interrupts_enabled() { return (read_rflags() & (1u << 9)) != 0; }
inline void cli() { asm volatile("cli" ::: "memory"); }
inline void sti() { asm volatile("sti" ::: "memory"); }
inline void halt() { asm volatile("hlt" ::: "memory"); }
/// Enables interrupts and halts atomically (STI's one-instruction shadow covers the HLT), so a
/// wake-up interrupt cannot slip in between and leave the CPU asleep.
inline void sti_halt() { asm volatile("sti; hlt" ::: "memory"); }
inline void pause() { asm volatile("pause" ::: "memory"); }
inline void invlpg(uint64_t va) { asm volatile("invlpg (%0)" : : "r"(va) : "memory"); }

[[noreturn]] inline void halt_forever() {
    for (;;) {
        cli();
        halt();
    }
}

inline void wrmsr_raw(uint32_t msr, uint64_t v) {
    asm volatile("wrmsr" : : "c"(msr), "a"(uint32_t(v)), "d"(uint32_t(v >> 32)) : "memory");
}

namespace msr {
constexpr uint32_t kApicBase = 0x1b;
constexpr uint32_t kEfer = 0xc0000080;
constexpr uint32_t kFsBase = 0xc0000100;
constexpr uint32_t kGsBase = 0xc0000101;
constexpr uint32_t kKernelGsBase = 0xc0000102;
constexpr uint32_t kTscDeadline = 0x6e0;
constexpr uint32_t kTsc = 0x10;       // IA32_TIME_STAMP_COUNTER
constexpr uint32_t kTscAdjust = 0x3b; // IA32_TSC_ADJUST
} // namespace msr

namespace efer {
constexpr uint64_t kSce = 1u << 0;
constexpr uint64_t kLme = 1u << 8;
constexpr uint64_t kNxe = 1u << 11;
} // namespace efer

/// MSR writes on hot paths, not audited (docs/security.md lists them): the x2APIC ICR and EOI,
/// TSC_DEADLINE, and the LAPIC timer's LVT, initial count and divide registers, which one-shot
/// mode writes on every timer arm.
constexpr bool msr_write_is_hot(uint32_t msr) {
    return msr == 0x830 || msr == 0x80b || msr == msr::kTscDeadline || msr == 0x832 ||
           msr == 0x838 || msr == 0x83e;
}
/// Any other MSR write, recorded in this CPU's audit ring with its caller.
void wrmsr_audited(uint32_t msr, uint64_t v);

/// Every MSR write: EFER goes through its pinning check, hot-path MSRs straight to the CPU,
/// the rest through the audit (the MSR number is a constant almost everywhere, so the tests
/// fold away).
inline void wrmsr(uint32_t msr, uint64_t v) {
    if (msr == msr::kEfer) write_efer(v);
    else if (msr_write_is_hot(msr)) wrmsr_raw(msr, v);
    else wrmsr_audited(msr, v);
}

namespace cr0 {
constexpr uint64_t kPe = 1u << 0;
constexpr uint64_t kMp = 1u << 1;
constexpr uint64_t kEt = 1u << 4;
constexpr uint64_t kNe = 1u << 5;
constexpr uint64_t kWp = 1u << 16;
constexpr uint64_t kPg = 1u << 31;
} // namespace cr0

namespace cr4 {
constexpr uint64_t kMce = 1u << 6;
constexpr uint64_t kPae = 1u << 5;
constexpr uint64_t kPge = 1u << 7;
constexpr uint64_t kOsfxsr = 1u << 9;
constexpr uint64_t kOsxmmexcpt = 1u << 10;
constexpr uint64_t kUmip = 1u << 11;
constexpr uint64_t kFsgsbase = 1u << 16;
constexpr uint64_t kPcide = 1u << 17;
constexpr uint64_t kOsxsave = 1u << 18;
constexpr uint64_t kSmep = 1u << 20;
constexpr uint64_t kSmap = 1u << 21;
} // namespace cr4

/// RAII: disables interrupts and restores the previous state on scope exit.
class InterruptGuard {
  public:
    InterruptGuard() : was_enabled_(interrupts_enabled()) { cli(); }
    ~InterruptGuard() {
        if (was_enabled_) sti();
    }
    InterruptGuard(const InterruptGuard&) = delete;
    InterruptGuard& operator=(const InterruptGuard&) = delete;

  private:
    bool was_enabled_;
};

} // namespace cohort::x86
