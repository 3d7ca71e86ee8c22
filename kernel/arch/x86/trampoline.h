// The AP start-up trampoline (trampoline.S): what the BSP shares with it.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" const char trampoline_code_start[], trampoline_code_end[];
extern "C" const char trampoline_data_start[], trampoline_data_end[];

namespace cohort::x86 {

/// One entry per AP to start: the AP looks itself up by APIC id in 64-bit mode, so no AP waits
/// for another and nothing is handed out in arrival order.
struct ApBootEntry {
    uint32_t apic_id;
    uint32_t reserved;
    uint64_t cpu_data; // CpuData*
    uint64_t stack_top;
};
static_assert(sizeof(ApBootEntry) == 24, "trampoline.S walks the table in 24-byte steps");

/// The trampoline's data page (a copy of trampoline_data_start..end with these fields filled
/// in). Layout is fixed by trampoline.S; offsets are pinned below.
struct [[gnu::packed]] TrampolineData {
    uint64_t gdt[4];         // null, 32-bit code (0x08), data (0x10), 64-bit code (0x18)
    uint16_t gdt_limit;      // lgdt operand: limit, then 32-bit base
    uint32_t gdt_base;
    uint16_t pad0;
    uint32_t far32_offset;   // m16:32 far pointer to the 32-bit code
    uint16_t far32_selector;
    uint16_t pad1;
    uint32_t far64_offset;   // m16:32 far pointer to the 64-bit code
    uint16_t far64_selector;
    uint16_t pad2;
    uint32_t cr3;            // kernel page tables (must be below 4 GiB)
    uint32_t cr4;
    uint32_t efer;           // EFER bits to set (LME, NXE)
    uint32_t flags;          // kFlagX2apicId: take the APIC id from CPUID 0xB
    uint64_t entry64;        // ap_entry (higher half)
    uint64_t table;          // ApBootEntry[] (higher half)
    uint64_t table_count;
    // Written by APs (lock inc), read by the BSP to tell where unidentified APs stopped.
    uint32_t reached16;
    uint32_t reached32;
    uint32_t reached64;
    uint32_t unknown_apic_id; // an AP whose id was not in the table (0xffffffff: none)
};
constexpr uint32_t kFlagX2apicId = 1;

static_assert(offsetof(TrampolineData, gdt_limit) == 32);
static_assert(offsetof(TrampolineData, far32_offset) == 40);
static_assert(offsetof(TrampolineData, far64_offset) == 48);
static_assert(offsetof(TrampolineData, cr3) == 56);
static_assert(offsetof(TrampolineData, cr4) == 60);
static_assert(offsetof(TrampolineData, efer) == 64);
static_assert(offsetof(TrampolineData, flags) == 68);
static_assert(offsetof(TrampolineData, entry64) == 72);
static_assert(offsetof(TrampolineData, table) == 80);
static_assert(offsetof(TrampolineData, table_count) == 88);
static_assert(offsetof(TrampolineData, reached16) == 96);
static_assert(offsetof(TrampolineData, unknown_apic_id) == 108);

} // namespace cohort::x86
