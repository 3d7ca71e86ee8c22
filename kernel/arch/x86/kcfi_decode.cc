#include "arch/x86/kcfi_decode.h"

namespace cohort::x86 {

bool kcfi_decode_check(const uint8_t (&b)[kKcfiCheckBytes], KcfiCheck* out) {
    // mov $imm32, %r10d: REX.B (r10), opcode b8+2.
    if (b[0] != 0x41 || b[1] != 0xba) return false;
    const uint32_t imm = uint32_t{b[2]} | uint32_t{b[3]} << 8 | uint32_t{b[4]} << 16 |
                         uint32_t{b[5]} << 24;
    // add disp8(%reg), %r10d: REX.R (r10 in ModRM.reg) and maybe REX.B, opcode 03, ModRM with
    // mod 01 (disp8), reg 010. rm 100 (a target in rsp or r12) takes a SIB byte, which shifts
    // the sequence: not decoded, and the report says so.
    const uint8_t rex = b[6], modrm = b[8];
    if ((rex & 0xfe) != 0x44 || b[7] != 0x03 || (modrm & 0xf8) != 0x50 || (modrm & 7) == 4)
        return false;
    if (b[9] != 0xfc) return false; // -4: the id right before the target
    if (b[10] != 0x74 || b[11] != 0x02) return false; // je over the ud2
    out->expected_type = 0u - imm; // the check adds the target's id to -expected
    out->target_reg = static_cast<uint8_t>((rex & 1) << 3 | (modrm & 7));
    return true;
}

const char* reg_name(uint8_t reg) {
    static const char* const kNames[16] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                           "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
    return reg < 16 ? kNames[reg] : "?";
}

} // namespace cohort::x86
