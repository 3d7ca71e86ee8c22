// Per-CPU GDT and TSS. Each CPU owns its tables because the TSS (and its busy bit) is per CPU.
#pragma once

#include <cstdint>

namespace cohort::x86 {

constexpr uint16_t kKernelCs = 0x08;
constexpr uint16_t kKernelDs = 0x10;
constexpr uint16_t kUserDs = 0x18 | 3;
constexpr uint16_t kUserCs = 0x20 | 3;
constexpr uint16_t kTssSelector = 0x28;

/// Interrupt stack table slots (1-based, as in the IDT gate's IST field).
enum IstSlot : uint8_t {
    kIstDoubleFault = 1,
    kIstNmi = 2,
    kIstMachineCheck = 3,
    kIstDebug = 4,
};
/// Slots 1..kIstCount get a stack on every CPU; the TSS has 7, the rest stay 0 (no gate uses
/// them). A new slot above raises this, or its gate would switch to stack address 0.
inline constexpr int kIstCount = kIstDebug;
static_assert(kIstCount <= 7, "the TSS has seven IST slots");

struct [[gnu::packed]] Tss {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
};
static_assert(sizeof(Tss) == 104);

struct alignas(16) CpuTables {
    uint64_t gdt[7]; // null, kcode, kdata, udata, ucode, tss (2 slots)
    Tss tss;
};

/// Fills and loads this CPU's GDT and TSS; `ist_tops[i]` is the top of IST stack i+1 (slots
/// above kIstCount are left 0).
void load_cpu_tables(CpuTables& t, const uint64_t (&ist_tops)[kIstCount]);
/// Replaces one IST stack of an already-loaded TSS (used when guarded stacks become available).
void set_ist(CpuTables& t, IstSlot slot, uint64_t top);

} // namespace cohort::x86
