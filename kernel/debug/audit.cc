#include "debug/audit.h"

#include "arch/arch.h"
#include "boot/params.h"
#include "smp/cpu.h"

namespace cohort {

namespace {
// Read once, on the first record (the command line is parsed before any audited write that
// matters; earlier ones are recorded).
int g_enabled = -1;
} // namespace

const char* audit_kind_name(AuditKind k) {
    switch (k) {
    case AuditKind::Msr: return "MSR";
    case AuditKind::Cr: return "CR";
    case AuditKind::Xcr: return "XCR";
    case AuditKind::Idt: return "IDT";
    case AuditKind::Gdt: return "GDT";
    case AuditKind::Tss: return "TSS";
    }
    return "?";
}

void audit_record(AuditKind kind, uint32_t reg, uint64_t old_value, uint64_t new_value,
                  uint64_t caller) {
    if (!arch::cpu_base_valid()) return;
    if (g_enabled < 0 && params_ready()) g_enabled = param_bool("security.audit", true) ? 1 : 0;
    if (g_enabled == 0) return;
    arch::IrqOff irq; // an interrupt's own audited write must not interleave with this one
    AuditLog& log = this_cpu()->audit;
    const uint64_t n = log.next.load(std::memory_order_relaxed);
    AuditLog::Slot& s = log.slots[n % AuditLog::kSize];
    const uint64_t seq = s.seq.load(std::memory_order_relaxed);
    s.seq.store(seq + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    s.e = AuditEntry{arch::cycles(), caller, old_value, new_value, reg, kind};
    s.seq.store(seq + 2, std::memory_order_release);
    log.next.store(n + 1, std::memory_order_release);
}

size_t audit_snapshot(uint32_t cpu, AuditEntry* out, size_t max) {
    const CpuData* c = cpu_lookup(cpu);
    if (c == nullptr || max == 0) return 0;
    const AuditLog& log = c->audit;
    const uint64_t end = log.next.load(std::memory_order_acquire);
    const uint64_t count = end < AuditLog::kSize ? end : AuditLog::kSize;
    const uint64_t first = end - (count < max ? count : max);
    size_t n = 0;
    for (uint64_t i = first; i < end; ++i) {
        const AuditLog::Slot& s = log.slots[i % AuditLog::kSize];
        const uint64_t before = s.seq.load(std::memory_order_acquire);
        if (before % 2 != 0) continue;
        AuditEntry e = s.e;
        std::atomic_thread_fence(std::memory_order_acquire);
        if (s.seq.load(std::memory_order_relaxed) != before) continue;
        out[n++] = e;
    }
    return n;
}

uint64_t audit_count(uint32_t cpu) {
    const CpuData* c = cpu_lookup(cpu);
    return c != nullptr ? c->audit.next.load(std::memory_order_acquire) : 0;
}

} // namespace cohort
