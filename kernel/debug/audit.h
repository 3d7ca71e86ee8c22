// The audit of privileged configuration writes (docs/security.md): every write that changes how
// a CPU is configured (MSRs but the hot-path ones, CR0/CR4/XCR0, the IDT, GDT and TSS) is
// recorded in a small ring of the CPU that made it: what, old and new value, who, when. The
// console's `audit` shows them.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace cohort {

enum class AuditKind : uint8_t { Msr, Cr, Xcr, Idt, Gdt, Tss };
const char* audit_kind_name(AuditKind k);

struct AuditEntry {
    uint64_t cycles = 0; // arch::cycles() when written
    uint64_t caller = 0; // return address into the code that asked for the write
    uint64_t old_value = 0;
    uint64_t new_value = 0;
    uint32_t reg = 0;    // MSR number, CR/XCR number, TSS field (IST slot), 0 for IDT/GDT
    AuditKind kind = AuditKind::Msr;
};

/// One CPU's ring, in its CpuData; written only by that CPU, with interrupts off.
struct AuditLog {
    static constexpr uint32_t kSize = 32;
    struct Slot {
        std::atomic<uint64_t> seq{0}; // odd while being written
        AuditEntry e;
    };
    Slot slots[kSize];
    std::atomic<uint64_t> next{0}; // entries ever written
};

/// Records a write on this CPU (does nothing before the CPU's base register is set, or with
/// security.audit=0).
void audit_record(AuditKind kind, uint32_t reg, uint64_t old_value, uint64_t new_value,
                  uint64_t caller);
/// Copies up to `max` of `cpu`'s newest entries into `out`, oldest first; returns how many. An
/// entry being rewritten meanwhile is left out.
size_t audit_snapshot(uint32_t cpu, AuditEntry* out, size_t max);
/// Entries ever written on `cpu`.
uint64_t audit_count(uint32_t cpu);

} // namespace cohort
