// CPUID topology decoding (arch/x86/topology.cc) against what CPUs report.
#include "arch/x86/topology.h"

#include <gtest/gtest.h>

#include <map>
#include <utility>

namespace {

using namespace cohort::x86;

// A CPU's CPUID answers, by (leaf, subleaf); anything not listed reads as zeros.
struct FakeCpu {
    std::map<std::pair<uint32_t, uint32_t>, CpuidRegs> leaves;
    TopologyInfo decode() {
        return decode_topology(
            [](uint32_t leaf, uint32_t sub, void* ctx) {
                auto& l = static_cast<FakeCpu*>(ctx)->leaves;
                const auto it = l.find({leaf, sub});
                return it == l.end() ? CpuidRegs{} : it->second;
            },
            this);
    }
};

TEST(CpuTopology, Leaf0BAsQemuReportsFourSocketsOfEightCoresOfTwoThreads) {
    FakeCpu cpu;
    cpu.leaves[{0, 0}] = {0xd, 0, 0, 0};
    cpu.leaves[{0xb, 0}] = {1, 2, 0x100, 0};    // SMT: shift 1, 2 threads
    cpu.leaves[{0xb, 1}] = {4, 16, 0x201, 0};   // core: shift 4, 16 threads per package
    cpu.leaves[{0xb, 2}] = {0, 0, 0x002, 0};    // end
    const TopologyInfo t = cpu.decode();
    EXPECT_EQ(t.source, TopologySource::Leaf0B);
    EXPECT_EQ(t.smt_bits, 1u);
    EXPECT_EQ(t.package_shift, 4u);
}

TEST(CpuTopology, Leaf1FFoldsDiesAndModulesIntoTheCoreField) {
    FakeCpu cpu;
    cpu.leaves[{0, 0}] = {0x1f, 0, 0, 0};
    cpu.leaves[{0x1f, 0}] = {1, 2, 0x100, 0};   // SMT
    cpu.leaves[{0x1f, 1}] = {5, 32, 0x201, 0};  // core
    cpu.leaves[{0x1f, 2}] = {7, 128, 0x502, 0}; // die: the package is above it
    cpu.leaves[{0xb, 0}] = {1, 2, 0x100, 0};    // leaf 0xB would stop at the core
    cpu.leaves[{0xb, 1}] = {5, 32, 0x201, 0};
    const TopologyInfo t = cpu.decode();
    EXPECT_EQ(t.source, TopologySource::Leaf1F);
    EXPECT_EQ(t.smt_bits, 1u);
    EXPECT_EQ(t.package_shift, 7u);
}

TEST(CpuTopology, WithoutSmtTheThreadFieldIsEmpty) {
    FakeCpu cpu; // QEMU's -smp 255: one socket of 255 single-thread cores
    cpu.leaves[{0, 0}] = {0xd, 0, 0, 0};
    cpu.leaves[{0xb, 0}] = {0, 1, 0x100, 0};
    cpu.leaves[{0xb, 1}] = {8, 255, 0x201, 0};
    const TopologyInfo t = cpu.decode();
    EXPECT_EQ(t.smt_bits, 0u);
    EXPECT_EQ(t.package_shift, 8u);
}

TEST(CpuTopology, OlderCpusUseLeavesOneAndFour) {
    FakeCpu cpu;
    cpu.leaves[{0, 0}] = {0xa, 0, 0, 0};
    cpu.leaves[{0xb, 0}] = {1, 2, 0x100, 0}; // beyond the maximum leaf: must be ignored
    cpu.leaves[{1, 0}] = {0, 16u << 16, 0, 1u << 28}; // HTT, 16 ids per package
    cpu.leaves[{4, 0}] = {7u << 26, 0, 0, 0};          // 8 cores
    const TopologyInfo t = cpu.decode();
    EXPECT_EQ(t.source, TopologySource::Legacy);
    EXPECT_EQ(t.package_shift, 4u);
    EXPECT_EQ(t.smt_bits, 1u);
}

TEST(CpuTopology, NoTopologyAtAllMakesEachCpuItsOwnPackage) {
    FakeCpu cpu;
    cpu.leaves[{0, 0}] = {0x2, 0, 0, 0};
    cpu.leaves[{1, 0}] = {0, 0, 0, 0}; // no HTT
    const TopologyInfo t = cpu.decode();
    EXPECT_EQ(t.source, TopologySource::None);
    EXPECT_EQ(t.smt_bits, 0u);
    EXPECT_EQ(t.package_shift, 0u);
}

TEST(CpuTopology, AnEmptyLeaf0BFallsBackToTheLegacyLeaves) {
    FakeCpu cpu;
    cpu.leaves[{0, 0}] = {0xd, 0, 0, 0};
    cpu.leaves[{0xb, 0}] = {0, 0, 0, 0}; // EBX 0: leaf not really implemented
    cpu.leaves[{1, 0}] = {0, 4u << 16, 0, 1u << 28};
    cpu.leaves[{4, 0}] = {3u << 26, 0, 0, 0};
    const TopologyInfo t = cpu.decode();
    EXPECT_EQ(t.source, TopologySource::Legacy);
    EXPECT_EQ(t.package_shift, 2u);
    EXPECT_EQ(t.smt_bits, 0u);
}

} // namespace
