// x86-64 definitions of the architecture contract (arch/arch.h) that are not inline.
#include "arch/arch.h"
#include "arch/x86/ioapic.h"
#include "arch/x86/machine.h"
#include "arch/x86/uart16550.h"
#include "arch/x86/topology.h"


extern "C" void x86_task_entry();

namespace cohort::arch {

void set_irq_handler(uint8_t vector, IrqHandler handler) { x86::set_irq_handler(vector, handler); }
bool irq_pending(uint8_t vector) { return x86::lapic_vector_pending(vector); }
const char* exception_name(uint64_t vector) { return x86::exception_name(vector); }

uint64_t switch_resume_address(uint64_t saved_sp) {
    return reinterpret_cast<const uint64_t*>(saved_sp)[6]; // above r15-r12, rbx, rbp
}

uint64_t initial_task_frame(uint64_t stack_top, void* task) {
    // The frame x86_context_switch pops: r15, r14, r13, r12, rbx (= the task), rbp (0, ends
    // backtraces), then the "return address", x86_task_entry, which hands rbx to
    // sched_task_first_run.
    auto* sp = reinterpret_cast<uint64_t*>(stack_top);
    *--sp = reinterpret_cast<uint64_t>(&x86_task_entry);
    *--sp = 0;                                 // rbp
    *--sp = reinterpret_cast<uint64_t>(task); // rbx
    for (int i = 0; i < 4; ++i) *--sp = 0;    // r12-r15
    return reinterpret_cast<uint64_t>(sp);
}

size_t fpu_state_size() { return x86::fpu_state_size(); }
void fpu_init_state(void* area) { x86::fpu_init_state(area); }

void send_ipi(uint32_t hw_id, uint8_t vector) { x86::lapic_send_ipi(hw_id, vector); }
void send_ipi_all_but_self(uint8_t vector) { x86::lapic_send_ipi_all_but_self(vector); }
void send_ipi_cluster(uint32_t destination, uint8_t vector) {
    x86::lapic_send_ipi_logical(destination, vector);
}
uint32_t cluster_id() { return x86::lapic_logical_id(); }
bool cluster_ipis_available() { return x86::lapic_mode() == x86::ApicMode::X2Apic; }
void send_nmi(uint32_t hw_id) { x86::lapic_send_nmi(hw_id); }

// The halts of a parked lock waiter (sync/park.h), in assembly so that the NMI handler can
// recognise the one HLT that must not be entered once the NMI has been taken: an NMI landing
// between the flag check and that HLT would otherwise leave the CPU halted with its wake-up
// spent (interrupts are off there, so nothing else ends the halt). x86_park_hlt is that HLT.
asm(R"(
    .text
    .globl x86_park_halt_irqs_off
    .type x86_park_halt_irqs_off, @function
x86_park_halt_irqs_off:
    cmpb $0, (%rdi)
    jne 1f
    .globl x86_park_hlt
x86_park_hlt:
    hlt
1:  ret
    .size x86_park_halt_irqs_off, . - x86_park_halt_irqs_off

    .globl x86_park_halt_irqs_on
    .type x86_park_halt_irqs_on, @function
x86_park_halt_irqs_on:
    cli
    cmpb $0, (%rdi)
    jne 1f
    sti
    hlt
    ret
1:  sti
    ret
    .size x86_park_halt_irqs_on, . - x86_park_halt_irqs_on
)");
extern "C" void x86_park_halt_irqs_off(const std::atomic<bool>* flag);
extern "C" void x86_park_halt_irqs_on(const std::atomic<bool>* flag);

void park_halt(const std::atomic<bool>& flag, bool irqs_on) {
    static_assert(sizeof(std::atomic<bool>) == 1);
    if (irqs_on) x86_park_halt_irqs_on(&flag);
    else x86_park_halt_irqs_off(&flag);
}

CpuTopology cpu_topology() {
    const x86::TopologyInfo t = x86::decode_topology(
        [](uint32_t leaf, uint32_t sub, void*) {
            const x86::CpuidResult r = x86::cpuid(leaf, sub);
            return x86::CpuidRegs{r.eax, r.ebx, r.ecx, r.edx};
        },
        nullptr);
    return CpuTopology{t.smt_bits, t.package_shift, x86::topology_source_name(t.source)};
}

void timer_oneshot(uint64_t ns, uint8_t vector) { x86::lapic_timer_oneshot(ns, vector); }
bool timer_has_deadline() { return x86::lapic_timer_has_deadline(); }
void timer_at(uint64_t cycles, uint8_t vector) { x86::lapic_timer_deadline(cycles, vector); }
void timer_stop() { x86::lapic_timer_stop(); }
void timer_kick(uint32_t hw_id, uint8_t vector) { x86::lapic_send_ipi(hw_id, vector); }

} // namespace cohort::arch

namespace cohort::arch {

uint32_t irqchip_init(std::span<const acpi::IoApic> chips) { return x86::ioapic_init(chips); }

bool irqchip_has_line(uint32_t gsi) {
    return irq::pin_of_gsi(gsi, x86::ioapic_chips()).has_value();
}

void irqchip_route(uint32_t gsi, uint8_t vector, irq::Signal signal, uint32_t hw_id, bool nmi) {
    if (auto pin = irq::pin_of_gsi(gsi, x86::ioapic_chips()))
        x86::ioapic_write(*pin, irq::redirection_entry(nmi ? 0 : vector,
                                                       nmi ? irq::Delivery::Nmi : irq::Delivery::Fixed,
                                                       signal, false, static_cast<uint8_t>(hw_id)));
}

void irqchip_retarget(uint32_t gsi, uint32_t hw_id) {
    if (auto pin = irq::pin_of_gsi(gsi, x86::ioapic_chips()))
        x86::ioapic_set_destination(*pin, static_cast<uint8_t>(hw_id));
}

void irqchip_mask(uint32_t gsi) {
    if (auto pin = irq::pin_of_gsi(gsi, x86::ioapic_chips()))
        x86::ioapic_write(*pin, x86::ioapic_read(*pin) | (1ull << 16));
}

bool irqchip_reachable(uint32_t hw_id) { return irq::reachable_apic_id(hw_id); }

irq::EntryFields irqchip_entry(uint32_t gsi) {
    if (auto pin = irq::pin_of_gsi(gsi, x86::ioapic_chips()))
        return irq::decode_entry(x86::ioapic_read(*pin));
    return irq::decode_entry(1ull << 16);
}

} // namespace cohort::arch

namespace cohort::arch {

uint8_t console_serial_irq() { return 4; }
bool console_serial_read(uint8_t& byte) { return x86::com1().read(byte); }
void console_serial_rx_interrupt(bool on) { x86::com1().set_rx_interrupt(on); }
void machine_poweroff(bool success) {
    x86::machine_exit(success ? x86::ExitStatus::Success : x86::ExitStatus::TestsFailed);
}

COHORT_NO_STACK_PROTECTOR uint64_t random_u64() {
    uint64_t v = x86::rdtsc();
    if ((x86::cpuid(1).ecx & (1u << 30)) != 0) { // RDRAND
        for (int tries = 0; tries < 10; ++tries) {
            uint64_t r;
            bool ok;
            asm volatile("rdrand %0; setc %1" : "=r"(r), "=qm"(ok));
            if (ok) {
                v ^= r;
                break;
            }
        }
    }
    // splitmix64: the cycle counter alone is guessable; mixed, neighbours share no bits.
    v += 0x9e3779b97f4a7c15ull;
    v = (v ^ (v >> 30)) * 0xbf58476d1ce4e5b9ull;
    v = (v ^ (v >> 27)) * 0x94d049bb133111ebull;
    return (v ^ (v >> 31)) & ~uint64_t{0xff}; // a zero low byte stops string overruns
}

} // namespace cohort::arch
