#include "arch/x86/interrupts.h"

#include <atomic>
#include <cstring>

#include "arch/x86/cpu.h"
#include "arch/x86/gdt.h"
#include "arch/x86/lapic.h"
#include "debug/fault_catcher.h"
#include "debug/audit.h"
#include "debug/log.h"
#include "arch/x86/cpu_private.h"
#include "arch/x86/kcfi.h"
#include "debug/panic.h"
#include "lib/format.h"
#include "mm/kstack.h"
#include "sched/sched.h"
#include "smp/cpu.h"

extern "C" const char isr_stubs[]; // 256 entry stubs, 16 bytes apart (isr.S)

extern "C" const char x86_park_hlt[];

namespace cohort::x86 {

namespace {

struct [[gnu::packed]] IdtGate {
    uint16_t offset_low;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attr;
    uint16_t offset_mid;
    uint32_t offset_high;
    uint32_t reserved;
};
static_assert(sizeof(IdtGate) == 16);

alignas(16) IdtGate g_idt[256];
IrqHandler g_handlers[256];

void set_gate(uint8_t vector, uint64_t handler, uint8_t ist) {
    IdtGate& g = g_idt[vector];
    g.offset_low = handler & 0xffff;
    g.selector = kKernelCs;
    g.ist = ist;
    g.type_attr = 0x8e; // present, DPL 0, 64-bit interrupt gate (IF cleared on entry)
    g.offset_mid = (handler >> 16) & 0xffff;
    g.offset_high = static_cast<uint32_t>(handler >> 32);
    g.reserved = 0;
}

const char* const kExceptionNames[32] = {
    "#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
    "#BR bound range exceeded", "#UD invalid opcode", "#NM device not available",
    "#DF double fault", "coprocessor segment overrun", "#TS invalid TSS", "#NP segment not present",
    "#SS stack-segment fault", "#GP general protection fault", "#PF page fault", "reserved (15)",
    "#MF x87 floating-point error", "#AC alignment check", "#MC machine check",
    "#XM SIMD floating-point exception", "#VE virtualization exception",
    "#CP control protection exception", "reserved (22)", "reserved (23)", "reserved (24)",
    "reserved (25)", "reserved (26)", "reserved (27)", "#HV hypervisor injection",
    "#VC VMM communication", "#SX security exception", "reserved (31)"};

/// Spells out a page-fault error code: what was accessed, how, and why it failed.
void describe_page_fault(uint64_t err, uint64_t cr2, char* buf, size_t size) {
    char guard[128];
    const bool is_guard = kstack_describe_guard(cr2, guard, sizeof(guard)) ||
                          cpu_private_describe(cr2, guard, sizeof(guard));
    format(buf, size, "%s %s of %#lx from %s mode: %s%s%s%s%s", (err & 0x10) ? "instruction fetch"
                                                               : (err & 0x2)  ? "write"
                                                                              : "read",
           (err & 0x10) ? "at" : "access", cr2, (err & 0x4) ? "user" : "kernel",
           (err & 0x1) ? "protection violation (page present)" : "page not present",
           (err & 0x8) ? ", reserved bit set in a paging entry" : "",
           (err & 0x20) ? ", protection-key violation" : "", (err & 0x8000) ? ", SGX" : "",
           is_guard ? guard : "");
}

bool recoverable_by_catcher(uint64_t vector) {
    // NMI and #MC leave hardware state (NMI blocking, MCA banks) that only IRET or the MCA
    // handler may clear, so a longjmp out of them would be wrong.
    return vector < 32 && vector != kVecNmi && vector != kVecMachineCheck;
}

void report_exception(const InterruptFrame& f, const char* what) {
    const CpuData* cpu = this_cpu();
    console_printf("\n*** cpu%u: exception %s (vector %lu, error code %#lx) at rip %#lx\n",
                   cpu->cpu_id, what, f.vector, f.error_code, f.rip);
    if (f.vector == kVecPageFault) {
        char why[256];
        describe_page_fault(f.error_code, read_cr2(), why, sizeof(why));
        console_printf("    %s\n", why);
    }
    if (f.vector == kVecDoubleFault) {
        char guard[128];
        if (kstack_describe_guard(f.rsp, guard, sizeof(guard)) ||
            kstack_describe_guard(f.rsp - 8, guard, sizeof(guard)) ||
            cpu_private_describe(f.rsp - 8, guard, sizeof(guard)))
            console_printf("    kernel stack overflow: rsp %#lx%s\n", f.rsp, guard);
    }
    print_registers(f);
    print_backtrace(f.rip, f.rbp, f.rsp);
}

void handle_exception(InterruptFrame& f) {
    CpuData* cpu = this_cpu();
    const char* what = kExceptionNames[f.vector];
    // An address space that grew a top-level entry after this CPU installed its lower half
    // (arch/x86/cpu_private.h): copy the entry and retry, as if it had always been there.
    if (f.vector == kVecPageFault && !(f.error_code & 1) && lower_half_sync_fault(read_cr2()))
        return;
    // A failed KCFI check is a ud2 the compiler placed: say which call and target it was.
    char kcfi[256];
    const bool kcfi_trap = f.vector == kVecInvalidOpcode && kcfi_describe(f, kcfi, sizeof(kcfi));
    if (FaultCatcher* c = active_fault_catcher(); c != nullptr && recoverable_by_catcher(f.vector)) {
        if (c->quiet) {
            log_debug("fault caught as expected: %s at rip %#lx", kcfi_trap ? kcfi : what, f.rip);
        } else {
            if (kcfi_trap) console_printf("\n*** cpu%u: %s\n", cpu->cpu_id, kcfi);
            report_exception(f, what);
            console_printf("    (recovered: the fault ends the current test)\n");
        }
        fault_catcher_unwind(f.vector, f.error_code, f.rip,
                             f.vector == kVecPageFault ? read_cr2() : 0);
    }
    if (++cpu->exception_depth > 2) {
        console_printf("*** cpu%u: exception %s while handling exceptions; stopping\n",
                       cpu->cpu_id, what);
        halt_forever();
    }
    if (f.vector == kVecPageFault) {
        char why[256];
        describe_page_fault(f.error_code, read_cr2(), why, sizeof(why));
        panic_with_frame(f, "unhandled %s at rip %#lx\n    %s", what, f.rip, why);
    }
    if (f.vector == kVecDoubleFault) {
        char guard[128];
        if (kstack_describe_guard(f.rsp, guard, sizeof(guard)) ||
            kstack_describe_guard(f.rsp - 8, guard, sizeof(guard)) ||
            cpu_private_describe(f.rsp - 8, guard, sizeof(guard)))
            panic_with_frame(f, "double fault: kernel stack overflow (rsp %#lx%s)", f.rsp, guard);
    }
    if (kcfi_trap) panic_with_frame(f, "%s", kcfi);
    panic_with_frame(f, "unhandled exception %s (vector %lu, error code %#lx) at rip %#lx", what,
                     f.vector, f.error_code, f.rip);
}

} // namespace

const char* exception_name(uint64_t vector) {
    return vector < 32 ? kExceptionNames[vector] : "interrupt";
}

void idt_init() {
    for (int v = 0; v < 256; ++v) set_gate(static_cast<uint8_t>(v), reinterpret_cast<uint64_t>(isr_stubs) + 16 * v, 0);
    // Faults that can arrive on a broken stack (or at any moment, like NMI) get their own stacks.
    g_idt[kVecDoubleFault].ist = kIstDoubleFault;
    g_idt[kVecNmi].ist = kIstNmi;
    g_idt[kVecMachineCheck].ist = kIstMachineCheck;
    g_idt[kVecDebug].ist = kIstDebug;
}

[[gnu::noinline]] void idt_load() {
    struct [[gnu::packed]] Ptr {
        uint16_t limit;
        uint64_t base;
    };
    Ptr old{};
    asm volatile("sidt %0" : "=m"(old));
    const Ptr ptr{sizeof(g_idt) - 1, reinterpret_cast<uint64_t>(g_idt)};
    asm volatile("lidt %0" : : "m"(ptr));
    audit_record(AuditKind::Idt, 0, old.base, ptr.base,
                 reinterpret_cast<uint64_t>(__builtin_return_address(0)));
}

void set_irq_handler(uint8_t vector, IrqHandler handler) { g_handlers[vector] = handler; }

} // namespace cohort::x86

extern "C" void interrupt_dispatch(cohort::x86::InterruptFrame* frame) {
    using namespace cohort;
    CpuData* cpu = this_cpu();
    cpu->counters.interrupts.fetch_add(1, std::memory_order_relaxed);
    if (frame->vector == x86::kVecNmi) {
        if (cpu->nmi_depth != 0) {
            // An NMI inside the NMI handler: an exception in it returned with IRET, which
            // unblocks NMIs, and this one reused the NMI stack, overwriting the outer frame
            // (Linux's nested-NMI dance avoids this; our handler only prints and never faults on
            // purpose). The outer handler cannot be returned to: stop here, saying why.
            console_printf("*** cpu%u: nested NMI at rip %#lx; the NMI stack was reused, stopping\n",
                           cpu->cpu_id, frame->rip);
            x86::halt_forever();
        }
        // Taken just before the HLT of a parked lock waiter (arch.cc: x86_park_hlt), after its
        // flag check: return past the HLT, or this CPU would halt with its wake-up spent.
        if (frame->rip == reinterpret_cast<uint64_t>(&x86_park_hlt)) frame->rip += 1;
        ++cpu->nmi_depth;
        handle_nmi(*frame);
        --cpu->nmi_depth;
        return;
    }
    if (frame->vector < 32) {
        x86::handle_exception(*frame);
        return;
    }
    const uint64_t start = cpu->irq_depth == 0 ? x86::rdtsc() : 0;
    ++cpu->irq_depth;
    if (x86::IrqHandler h = x86::g_handlers[frame->vector]; h != nullptr) {
        h(*frame);
    } else if (frame->vector != x86::kVecSpurious) {
        // Acknowledge it all the same: an in-service bit never cleared would block this vector's
        // priority class and every class below it (timers, IPIs) on this CPU for good. Only the
        // spurious vector is never acknowledged (SDM 10.9). Logged the first few times only: a
        // misrouted device could send thousands (counted per CPU in unhandled_irqs).
        cpu->counters.unhandled_irqs.fetch_add(1, std::memory_order_relaxed);
        x86::lapic_eoi();
        static std::atomic<uint32_t> logged{0}; // machine-wide: 255 CPUs must not all print
        if (logged.fetch_add(1, std::memory_order_relaxed) < 4)
            log_warn("irq: unexpected interrupt vector %lu on cpu%u (no handler; acknowledged)",
                     frame->vector, cpu->cpu_id);
    }
    --cpu->irq_depth;
    if (start != 0) cpu->counters.irq_cycles.fetch_add(x86::rdtsc() - start, std::memory_order_relaxed);
    // Leaving the outermost handler: a task switch the handler asked for happens here, on the
    // interrupted task's stack, and the IRET later returns into whichever task runs then.
    if (cpu->irq_depth == 0) sched_irq_exit();
}
