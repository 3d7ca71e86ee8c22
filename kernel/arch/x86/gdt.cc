#include "arch/x86/gdt.h"

#include <cstring>

#include "debug/audit.h"

namespace cohort::x86 {

namespace {
struct [[gnu::packed]] Pointer {
    uint16_t limit;
    uint64_t base;
};
} // namespace

[[gnu::noinline]] void load_cpu_tables(CpuTables& t, const uint64_t (&ist_tops)[kIstCount]) {
    Pointer old{};
    asm volatile("sgdt %0" : "=m"(old));
    memset(&t, 0, sizeof(t));
    t.gdt[0] = 0;
    t.gdt[1] = 0x00af9a000000ffff; // kernel code: long mode, DPL 0
    t.gdt[2] = 0x00cf92000000ffff; // kernel data
    t.gdt[3] = 0x00cff2000000ffff; // user data, DPL 3
    t.gdt[4] = 0x00affa000000ffff; // user code, DPL 3
    const uint64_t base = reinterpret_cast<uint64_t>(&t.tss);
    const uint64_t limit = sizeof(Tss) - 1;
    t.gdt[5] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
               (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
    t.gdt[6] = base >> 32;
    for (int i = 0; i < kIstCount; ++i) t.tss.ist[i] = ist_tops[i];
    t.tss.iomap_base = sizeof(Tss); // no I/O permission bitmap

    const Pointer ptr{sizeof(t.gdt) - 1, reinterpret_cast<uint64_t>(t.gdt)};
    asm volatile("lgdt %0\n\t"
                 "pushq %1\n\t"
                 "leaq 1f(%%rip), %%rax\n\t"
                 "pushq %%rax\n\t"
                 "lretq\n"
                 "1:\n\t"
                 "movw %2, %%ax\n\t"
                 "movw %%ax, %%ds\n\t"
                 "movw %%ax, %%es\n\t"
                 "movw %%ax, %%ss\n\t"
                 "ltr %w3\n\t"
                 :
                 : "m"(ptr), "i"(uint64_t(kKernelCs)), "i"(kKernelDs), "r"(kTssSelector)
                 : "rax", "memory");
    // One record for the pair: the GDT's new base, the TSS in it loaded with it.
    audit_record(AuditKind::Gdt, 0, old.base, ptr.base,
                 reinterpret_cast<uint64_t>(__builtin_return_address(0)));
}

[[gnu::noinline]] void set_ist(CpuTables& t, IstSlot slot, uint64_t top) {
    const uint64_t old = t.tss.ist[slot - 1];
    t.tss.ist[slot - 1] = top;
    audit_record(AuditKind::Tss, slot, old, top, reinterpret_cast<uint64_t>(__builtin_return_address(0)));
}

} // namespace cohort::x86
