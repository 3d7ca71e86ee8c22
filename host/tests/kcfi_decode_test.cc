// The KCFI check decoder on sequences clang 16 emitted into the kernel image.
#include "arch/x86/kcfi_decode.h"

#include <gtest/gtest.h>

namespace cohort::x86 {
namespace {

using Bytes = uint8_t[kKcfiCheckBytes];

TEST(KcfiDecode, CallThroughR11) {
    // kernel_main's static-constructor loop: mov $0x5abf98f4,%r10d; add -4(%r11),%r10d; je
    const Bytes b = {0x41, 0xba, 0xf4, 0x98, 0xbf, 0x5a, 0x45, 0x03, 0x53, 0xfc, 0x74, 0x02};
    KcfiCheck c{};
    ASSERT_TRUE(kcfi_decode_check(b, &c));
    EXPECT_EQ(c.expected_type, 0u - 0x5abf98f4u);
    EXPECT_EQ(c.target_reg, 11);
    EXPECT_STREQ(reg_name(c.target_reg), "r11");
}

TEST(KcfiDecode, LowRegistersHaveNoRexB) {
    // interrupt_dispatch: add -4(%rcx); decode_topology: add -4(%rbx); another: -4(%rax)
    const Bytes rcx = {0x41, 0xba, 0x43, 0x54, 0x1f, 0x9e, 0x44, 0x03, 0x51, 0xfc, 0x74, 0x02};
    const Bytes rbx = {0x41, 0xba, 0x12, 0x97, 0x2d, 0x3c, 0x44, 0x03, 0x53, 0xfc, 0x74, 0x02};
    const Bytes rax = {0x41, 0xba, 0x12, 0x97, 0x2d, 0x3c, 0x44, 0x03, 0x50, 0xfc, 0x74, 0x02};
    KcfiCheck c{};
    ASSERT_TRUE(kcfi_decode_check(rcx, &c));
    EXPECT_EQ(c.target_reg, 1);
    EXPECT_EQ(c.expected_type, 0x61e0abbdu); // -0x9e1f5443
    ASSERT_TRUE(kcfi_decode_check(rbx, &c));
    EXPECT_EQ(c.target_reg, 3);
    ASSERT_TRUE(kcfi_decode_check(rax, &c));
    EXPECT_EQ(c.target_reg, 0);
}

TEST(KcfiDecode, HighRegisterR13) {
    const Bytes b = {0x41, 0xba, 0x12, 0x97, 0x2d, 0x3c, 0x45, 0x03, 0x55, 0xfc, 0x74, 0x02};
    KcfiCheck c{};
    ASSERT_TRUE(kcfi_decode_check(b, &c));
    EXPECT_EQ(c.target_reg, 13);
    EXPECT_EQ(c.expected_type, 0xc3d268eeu);
}

TEST(KcfiDecode, RefusesWhatIsNotTheCheck) {
    const Bytes good = {0x41, 0xba, 0x12, 0x97, 0x2d, 0x3c, 0x45, 0x03, 0x55, 0xfc, 0x74, 0x02};
    KcfiCheck c{};
    // Each byte that identifies the sequence, changed, makes it not a check.
    for (int i : {0, 1, 6, 7, 8, 9, 10, 11}) {
        Bytes b;
        for (int j = 0; j < kKcfiCheckBytes; ++j) b[j] = good[j];
        b[i] ^= 0x20;
        EXPECT_FALSE(kcfi_decode_check(b, &c)) << "byte " << i;
    }
    // A SIB-addressed operand (rm 100) is not a register target.
    Bytes sib;
    for (int j = 0; j < kKcfiCheckBytes; ++j) sib[j] = good[j];
    sib[8] = 0x54;
    EXPECT_FALSE(kcfi_decode_check(sib, &c));
    const Bytes zeros = {};
    EXPECT_FALSE(kcfi_decode_check(zeros, &c));
}

} // namespace
} // namespace cohort::x86
