// Device interrupts: each line a device raises is routed to one CPU with its own vector, can be
// moved to another CPU at run time, and is counted on the CPU that takes it.
//
// Default placement (the spreading rule, irq/routing.h spread_target): a new line goes to the
// online CPU with the fewest device interrupts already routed to it, CPU 0 losing ties, among
// the CPUs the interrupt controller can address.
#pragma once

#include <cstdint>

#include "irq/routing.h"

namespace cohort {

/// Runs in interrupt context on the CPU the line is routed to, before the EOI.
using DeviceHandler = void (*)(void* ctx);

enum class IrqError : uint8_t {
    None,
    NoController,   // no I/O APIC has the line
    NoVector,       // every device vector is taken
    TableFull,      // kMaxIrqs lines are routed already
    NoSuchIrq,      // not a routed line
    NoSuchCpu,      // CPU number out of range
    CpuOffline,
    CpuUnreachable, // APIC id above 254: an I/O APIC cannot name it without remapping
    InUse,          // the ISA IRQ is routed already
};
const char* irq_error_name(IrqError e);

inline constexpr uint32_t kMaxIrqs = 32;

/// Programs the interrupt controllers from the MADT (every line masked; NMI sources armed,
/// to the boot CPU). Call once, on the boot CPU, after ACPI.
void irq_init();
/// Controllers in use (0: device interrupts are unavailable).
uint32_t irq_controllers();

/// Routes ISA IRQ `isa_irq` (through its MADT override, if any) to a fresh vector on the CPU
/// the spreading rule picks, calling `handler(ctx)` for each interrupt. Returns the line's id
/// (0..kMaxIrqs-1), or -1 with *error set.
int irq_request_isa(uint8_t isa_irq, const char* name, DeviceHandler handler, void* ctx,
                    IrqError* error);
/// Masks the line and frees its vector and slot.
void irq_release(int id);
/// Moves line `id` to `cpu` (a logical CPU number). The change is one write to the
/// controller: an interrupt raised meanwhile reaches the old CPU or the new one.
IrqError irq_set_affinity(int id, uint32_t cpu);

struct IrqInfo {
    const char* name;
    uint8_t isa_irq;
    uint32_t gsi;
    uint8_t vector;
    uint32_t cpu;
    irq::Signal signal;
    bool masked;      // as the controller has it now
    uint8_t hw_dest;  // as the controller has it now
};
/// CPU hotplug: routes every line of `cpu` to other CPUs (by the spreading rule) and keeps new
/// and moved lines off it; irq_evacuate(kMaxCpus) ends that once it is offline (the online
/// flag keeps them off then). Returns the lines moved.
uint32_t irq_evacuate(uint32_t cpu);

/// The line with id `id`, if it is routed.
bool irq_info(int id, IrqInfo* out);
/// Interrupts line `id` delivered to `cpu` since it was routed.
uint64_t irq_count_on(int id, uint32_t cpu);
/// Device interrupts `cpu` handled (every line).
uint64_t irq_total_on(uint32_t cpu);
/// The routed line for ISA IRQ `isa_irq`, or -1.
int irq_find_isa(uint8_t isa_irq);

} // namespace cohort
