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
inline void wrmsr(uint32_t msr, uint64_t v) {
    asm volatile("wrmsr" : : "c"(msr), "a"(uint32_t(v)), "d"(uint32_t(v >> 32)) : "memory");
}

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

#define COHORT_CR_ACCESSORS(n)                                                                     \
    inline uint64_t read_cr##n() {                                                                 \
        uint64_t v;                                                                                \
        asm volatile("mov %%cr" #n ", %0" : "=r"(v));                                              \
        return v;                                                                                  \
    }                                                                                              \
    inline void write_cr##n(uint64_t v) { asm volatile("mov %0, %%cr" #n : : "r"(v) : "memory"); }
COHORT_CR_ACCESSORS(0)
COHORT_CR_ACCESSORS(2)
COHORT_CR_ACCESSORS(3)
COHORT_CR_ACCESSORS(4)
#undef COHORT_CR_ACCESSORS

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
