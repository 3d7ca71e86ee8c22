// Decoding a failed KCFI check (clang's -fsanitize=kcfi on x86-64). Portable: host-tested on
// byte sequences taken from the kernel image.
//
// Before every indirect call clang 16 emits
//     mov  $-type, %r10d        41 ba <imm32>
//     add  -4(%target), %r10d   44|45 03 <modrm> fc      (the target's id sits 4 bytes before it)
//     je   1f                   74 02
//     ud2                       0f 0b                    (listed in .kcfi_traps)
//  1: call *%target
// so a trap says which type the call expected and which register holds the target.
#pragma once

#include <cstdint>

namespace cohort::x86 {

struct KcfiCheck {
    uint32_t expected_type; // the type id the call site wants its target to carry
    uint8_t target_reg;     // 0 rax, 1 rcx, ... 15 r15: the register holding the target
};

/// Bytes of the check before its ud2.
inline constexpr int kKcfiCheckBytes = 12;

/// Decodes the check whose ud2 follows `before` (the kKcfiCheckBytes bytes before the trap).
/// False when they are not the sequence above (another compiler version, or not a KCFI trap).
bool kcfi_decode_check(const uint8_t (&before)[kKcfiCheckBytes], KcfiCheck* out);

/// "rax" ... "r15".
const char* reg_name(uint8_t reg);

} // namespace cohort::x86
