#include "arch/x86/kcfi.h"

#include "arch/x86/interrupts.h"
#include "arch/x86/kcfi_decode.h"
#include "debug/symbols.h"
#include "lib/format.h"

// The linker script collects the compiler's .kcfi_traps: one 32-bit offset per check, relative
// to the entry itself, to the check's ud2.
extern "C" const int32_t __kcfi_traps_start[], __kcfi_traps_end[];
extern "C" const char __text_start[], __text_end[];

namespace cohort::x86 {

namespace {

uint64_t frame_reg(const InterruptFrame& f, uint8_t reg) {
    switch (reg) {
    case 0: return f.rax;
    case 1: return f.rcx;
    case 2: return f.rdx;
    case 3: return f.rbx;
    case 4: return f.rsp;
    case 5: return f.rbp;
    case 6: return f.rsi;
    case 7: return f.rdi;
    case 8: return f.r8;
    case 9: return f.r9;
    case 10: return f.r10;
    case 11: return f.r11;
    case 12: return f.r12;
    case 13: return f.r13;
    case 14: return f.r14;
    default: return f.r15;
    }
}

bool in_text(uint64_t a, uint64_t len) {
    return a >= reinterpret_cast<uint64_t>(__text_start) &&
           a + len <= reinterpret_cast<uint64_t>(__text_end);
}

} // namespace

bool kcfi_enabled() {
#ifdef COHORT_KCFI
    return true;
#else
    return false;
#endif
}

bool kcfi_is_trap(uint64_t rip) {
    for (const int32_t* e = __kcfi_traps_start; e != __kcfi_traps_end; ++e)
        if (reinterpret_cast<uint64_t>(e) + static_cast<int64_t>(*e) == rip) return true;
    return false;
}

bool kcfi_describe(const InterruptFrame& f, char* buf, size_t len) {
    if (f.vector != kVecInvalidOpcode || !kcfi_is_trap(f.rip)) return false;
    uint64_t off = 0;
    const char* site = symbolize(f.rip, &off);
    if (len == 0) return true;
    size_t n = format(buf, len, "KCFI: an indirect call in %s+%#lx", site ? site : "?", off);
    if (n >= len) n = len - 1; // format returns the untruncated length
    if (!in_text(f.rip - kKcfiCheckBytes, kKcfiCheckBytes)) return true;
    uint8_t before[kKcfiCheckBytes];
    for (int i = 0; i < kKcfiCheckBytes; ++i)
        before[i] = reinterpret_cast<const uint8_t*>(f.rip - kKcfiCheckBytes)[i];
    KcfiCheck check{};
    if (!kcfi_decode_check(before, &check)) {
        format(buf + n, len - n, " failed its type check (not decoded)");
        return true;
    }
    const uint64_t target = frame_reg(f, check.target_reg);
    uint64_t toff = 0;
    const char* tname = symbolize(target, &toff);
    if (!in_text(target - 4, 4)) {
        format(buf + n, len - n, " to %#lx (%s), outside kernel code, expected type %#x", target,
               reg_name(check.target_reg), check.expected_type);
        return true;
    }
    const uint32_t found = *reinterpret_cast<const uint32_t*>(target - 4);
    format(buf + n, len - n, " to %s+%#lx (%#lx, in %s) with type %#x; the call expects type %#x",
           tname ? tname : "?", toff, target, reg_name(check.target_reg), found,
           check.expected_type);
    return true;
}

} // namespace cohort::x86
