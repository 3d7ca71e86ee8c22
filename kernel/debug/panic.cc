#include "debug/panic.h"

#include <atomic>
#include <cstdarg>

#include "arch/x86/cpu.h"
#include "arch/x86/interrupts.h"
#include "arch/x86/machine.h"
#include "arch/x86/paging.h"
#include "debug/log.h"
#include "debug/symbols.h"
#include "lib/assert.h"
#include "lib/format.h"
#include "sched/sched.h"
#include "smp/cpu.h"
#include "smp/ipi.h"
#include "smp/percpu.h"
#include "sync/park.h"

namespace cohort {

namespace {
std::atomic<int32_t> g_panicking_cpu{-1};
std::atomic<uint32_t> g_stopped{0};
uint32_t g_stop_sent = 0;
bool g_halt_only = false;
std::atomic<void (*)(const char*)> g_context_hook{nullptr};

// Why another CPU asked this one for a backtrace (request_backtrace), or nullptr.
COHORT_PERCPU(std::atomic<const char*>, g_backtrace_reason);

/// Stops every other online CPU with an NMI (it cannot be masked, so even a CPU spinning with
/// interrupts off stops) and waits briefly for each to print its line, so the panicking CPU's
/// report comes last and stays readable.
void stop_other_cpus() {
    const uint32_t me = this_cpu()->cpu_id;
    for (uint32_t i = 0; i < cpu_count(); ++i) {
        CpuData* c = cpu_by_id(i);
        if (i == me || !c->online.load(std::memory_order_acquire)) continue;
        if (ipi_send(c, IpiKind::Stop)) ++g_stop_sent;
    }
    for (int spins = 0; spins < 100000 && g_stopped.load() < g_stop_sent; ++spins) {
        for (int k = 0; k < 100; ++k) x86::pause();
    }
}

void print_reason(const char* fmt, va_list ap) {
    char msg[384];
    vformat(msg, sizeof(msg), fmt, ap);
    const CpuData* cpu = this_cpu();
    console_printf("\n*** PANIC on cpu%u: %s\n", cpu != nullptr ? cpu->cpu_id : 0, msg);
    if (g_stop_sent != 0)
        console_printf("*** %u other CPUs stopped (%u reported)\n", g_stop_sent, g_stopped.load());
    // Before the registers and backtrace: if walking them faults, the nested panic stops the
    // report, and what was running must already be on the console.
    if (auto hook = g_context_hook.load(std::memory_order_acquire)) hook(msg);
}

/// Only the first CPU to panic reports; a nested panic on that CPU prints one line and stops.
void enter_panic() {
    x86::cli();
    console_enter_panic_mode();
    const int32_t me = static_cast<int32_t>(this_cpu()->cpu_id);
    int32_t expected = -1;
    if (!g_panicking_cpu.compare_exchange_strong(expected, me)) {
        if (expected == me) {
            console_printf("*** nested PANIC on cpu%d while reporting; stopping\n", me);
            x86::machine_exit(x86::ExitStatus::Panic);
        }
        x86::halt_forever(); // another CPU is reporting
    }
    stop_other_cpus();
}

[[noreturn]] void finish_panic() {
    console_printf("*** end of panic report\n");
    if (g_halt_only) x86::halt_forever();
    x86::machine_exit(x86::ExitStatus::Panic);
}
} // namespace

void panic_set_halt_only(bool halt_only) { g_halt_only = halt_only; }

void panic_set_context_hook(void (*hook)(const char*)) {
    g_context_hook.store(hook, std::memory_order_release);
}

bool request_backtrace(CpuData* cpu, const char* why) {
    if (cpu == nullptr || cpu == this_cpu()) return false;
    std::atomic<const char*>& reason = per_cpu_on(cpu, g_backtrace_reason);
    const char* none = nullptr;
    // One request at a time per CPU: NMIs do not queue, and a second would print the same.
    if (!reason.compare_exchange_strong(none, why)) return false;
    if (ipi_send(cpu, IpiKind::Backtrace)) return true;
    reason.store(nullptr);
    return false;
}

void handle_nmi(const x86::InterruptFrame& frame) {
    CpuData* cpu = this_cpu();
    // A parked lock waiter's wake-up may have been merged into this NMI, or be all it is.
    const bool kicked = park::consume_kick_nmis();
    // Several NMIs may have been merged into this one: a stop wins over a backtrace request.
    if (g_panicking_cpu.load() < 0) {
        if (const char* why = per_cpu(g_backtrace_reason).exchange(nullptr)) {
            ipi_count_received(IpiKind::Backtrace);
            console_printf("*** cpu%u: backtrace on request (%s)%s\n", cpu->cpu_id, why,
                           cpu->irq_depth > 0 ? ", in an interrupt handler" : "");
            print_backtrace(frame.rip, frame.rbp, frame.rsp);
            return;
        }
    }
    ipi_count_received(IpiKind::Stop);
    if (g_panicking_cpu.load() >= 0 && g_panicking_cpu.load() != static_cast<int32_t>(cpu->cpu_id)) {
        uint64_t off = 0;
        const char* fn = symbolize(frame.rip, &off);
        console_printf("*** cpu%u: stopped by NMI at rip %#lx (%s+%#lx)%s\n", cpu->cpu_id, frame.rip,
                       fn != nullptr ? fn : "?", off,
                       cpu->irq_depth > 0 ? ", in an interrupt handler" : "");
        g_stopped.fetch_add(1);
        x86::halt_forever();
    }
    if (kicked) return; // it woke a parked lock waiter; nothing else to do
    // Not ours: on hardware this is a parity/IO error or a watchdog. Say so and carry on.
    log_error("nmi: unexpected NMI on cpu%u at rip %#lx", cpu->cpu_id, frame.rip);
}

namespace {
// Where the return address sits when `rip` is where a function compiled with frame pointers
// has no frame of its own: in its prologue (push %rbp; mov %rsp,%rbp), at rsp before the push
// and at rsp + 8 between the two; at its final ret (after pop %rbp or leave), at rsp. In
// between (or in anything else) rbp is the function's own frame and the normal walk works.
uint64_t return_slot_outside_frame(uint64_t rip, uint64_t rsp) {
    uint64_t off = 0;
    if (rsp == 0 || symbolize(rip, &off) == nullptr) return 0;
    const auto* at = reinterpret_cast<const uint8_t*>(rip);
    if (at[0] == 0xc3 || (at[0] == 0xf3 && at[1] == 0xc3)) return rsp; // ret, rep ret
    if (off > 3) return 0;
    const auto* code = reinterpret_cast<const uint8_t*>(rip - off);
    if (code[0] != 0x55) return 0; // push %rbp
    if (off == 0) return rsp;
    if (code[1] == 0x48 && code[2] == 0x89 && code[3] == 0xe5) return rsp + 8; // mov %rsp,%rbp
    return 0;
}
} // namespace

void print_backtrace(uint64_t rip, uint64_t rbp, uint64_t rsp) {
    console_printf("backtrace:\n");
    auto line = [](int n, uint64_t addr) {
        uint64_t off = 0;
        const char* name = symbolize(addr, &off);
        if (name != nullptr) console_printf("  #%-2d 0x%016lx %s+%#lx\n", n, addr, name, off);
        else console_printf("  #%-2d 0x%016lx ?\n", n, addr);
    };
    line(0, rip);
    uint64_t previous = 0, repeats = 0;
    int printed = 1;
    if (const uint64_t slot = return_slot_outside_frame(rip, rsp);
        slot != 0 && (slot & 7) == 0 && x86::is_kernel_address_mapped(slot)) {
        // rbp still belongs to the caller, whose own return address the walk below prints.
        line(printed++, *reinterpret_cast<const uint64_t*>(slot) - 1);
    }
    for (int depth = 1; depth < 64 && printed < 24 && rbp != 0; ++depth) {
        // A corrupt frame pointer must not fault inside the panic path: check it first.
        if ((rbp & 7) != 0 || rbp < 0xffff800000000000 || !x86::is_kernel_address_mapped(rbp) ||
            !x86::is_kernel_address_mapped(rbp + 8)) {
            console_printf("  (frame pointer %#lx is not a valid stack address; stopping)\n", rbp);
            break;
        }
        const uint64_t* frame = reinterpret_cast<const uint64_t*>(rbp);
        const uint64_t ret = frame[1];
        if (ret == 0) break;
        // Deep recursion would fill the screen with one line: count repeats instead.
        if (ret == previous) {
            ++repeats;
        } else {
            if (repeats != 0) console_printf("      (previous frame repeated %lu more times)\n", repeats);
            repeats = 0;
            // The return address points after the call; -1 lands inside the calling line.
            line(printed++, ret - 1);
            previous = ret;
        }
        if (frame[0] <= rbp) break; // stacks grow down: callers' frames are at higher addresses
        rbp = frame[0];
    }
    if (repeats != 0) console_printf("      (previous frame repeated %lu more times)\n", repeats);
}

void print_registers(const x86::InterruptFrame& f) {
    console_printf("  rip 0x%016lx  cs %#lx  rflags %#lx\n", f.rip, f.cs, f.rflags);
    console_printf("  rsp 0x%016lx  ss %#lx  cr2 0x%016lx  cr3 0x%016lx\n", f.rsp, f.ss,
                   x86::read_cr2(), x86::read_cr3());
    console_printf("  rax 0x%016lx  rbx 0x%016lx  rcx 0x%016lx  rdx 0x%016lx\n", f.rax, f.rbx, f.rcx,
                   f.rdx);
    console_printf("  rsi 0x%016lx  rdi 0x%016lx  rbp 0x%016lx  r8  0x%016lx\n", f.rsi, f.rdi, f.rbp,
                   f.r8);
    console_printf("  r9  0x%016lx  r10 0x%016lx  r11 0x%016lx  r12 0x%016lx\n", f.r9, f.r10, f.r11,
                   f.r12);
    console_printf("  r13 0x%016lx  r14 0x%016lx  r15 0x%016lx\n", f.r13, f.r14, f.r15);
}

void panic(const char* fmt, ...) {
    enter_panic();
    va_list ap;
    va_start(ap, fmt);
    print_reason(fmt, ap);
    va_end(ap);
    x86::InterruptFrame f{};
    asm volatile("movq %%rbx, %0; movq %%r12, %1; movq %%r13, %2; movq %%r14, %3; movq %%r15, %4;"
                 "movq %%rsp, %5; movq %%rbp, %6; leaq 0(%%rip), %%rax; movq %%rax, %7"
                 : "=m"(f.rbx), "=m"(f.r12), "=m"(f.r13), "=m"(f.r14), "=m"(f.r15), "=m"(f.rsp),
                   "=m"(f.rbp), "=m"(f.rip)
                 :
                 : "rax");
    f.rflags = x86::read_rflags();
    print_registers(f);
    print_backtrace(f.rip, f.rbp);
    finish_panic();
}

void panic_with_frame(const x86::InterruptFrame& frame, const char* fmt, ...) {
    enter_panic();
    va_list ap;
    va_start(ap, fmt);
    print_reason(fmt, ap);
    va_end(ap);
    print_registers(frame);
    print_backtrace(frame.rip, frame.rbp, frame.rsp);
    finish_panic();
}

[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const char* func) {
    panic("assertion failed: %s\n    at %s:%d in %s", expr, file, line, func);
}

} // namespace cohort

// The compiler's stack protector calls this from a function whose canary (at the top of its
// frame, copied from %gs:kStackCanaryOffset on entry) changed before it returned: something
// wrote past a buffer on the stack. The return address is in that function.
extern "C" [[noreturn]] COHORT_NO_STACK_PROTECTOR void __stack_chk_fail() {
    using namespace cohort;
    // The call is the checking function's last instruction (this never returns), so its return
    // address may already be past the function's end: look up the byte before it.
    uint64_t off = 0;
    const char* fn = symbolize(reinterpret_cast<uint64_t>(__builtin_return_address(0)) - 1, &off);
    const Task* t = current_task();
    panic("stack protector: a stack buffer was overrun in %s+%#lx (task %s): its canary changed",
          fn != nullptr ? fn : "?", off + 1, t != nullptr ? t->name : "(none)");
}
