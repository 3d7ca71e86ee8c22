// Local APIC in xAPIC (MMIO) or x2APIC (MSR) mode behind one interface.
#pragma once

#include <cstdint>

namespace cohort::x86 {

enum class ApicMode { XApic, X2Apic };

/// Brings up the calling CPU's local APIC: x2APIC when the CPU has it (and `allow_x2apic`),
/// else xAPIC through an uncached mapping. Software-enables it with the spurious vector.
void lapic_init_boot_cpu(bool allow_x2apic);
ApicMode lapic_mode();
/// The running CPU's APIC id (full 32 bits in x2APIC mode).
uint32_t lapic_id();
void lapic_eoi();
/// The interrupt `vector` is requested (IRR) on this CPU and not yet delivered.
bool lapic_vector_pending(uint8_t vector);

/// Measures the LAPIC timer against the TSC (timer ticks per second at divide-by-1).
void lapic_timer_calibrate();
uint64_t lapic_timer_hz();
/// Arms a one-shot timer interrupt on `vector` after `ns` nanoseconds (count-down mode).
void lapic_timer_oneshot(uint64_t ns, uint8_t vector);
/// TSC-deadline mode (SDM 10.5.4.1): the CPU has it and `lapic.timer` did not turn it off.
/// Decided once on the boot CPU by lapic_timer_calibrate(); every CPU of a machine agrees (the
/// AP feature check compares the bit).
bool lapic_timer_has_deadline();
/// Arms the timer to interrupt on `vector` once this CPU's TSC reaches `tsc` (at once if it has
/// already). Only when lapic_timer_has_deadline().
void lapic_timer_deadline(uint64_t tsc, uint8_t vector);
/// Disarms the timer, whichever mode it is in.
void lapic_timer_stop();

/// Brings up an AP's local APIC in the boot CPU's mode (x2APIC if the BSP uses it).
void lapic_init_ap();

/// Interrupt command: a fixed-vector IPI to one CPU.
void lapic_send_ipi(uint32_t apic_id, uint8_t vector);
/// One fixed IPI to every other processor on the system bus (destination shorthand "all
/// excluding self", SDM 11.6.1): one ICR write however many CPUs there are.
void lapic_send_ipi_all_but_self(uint8_t vector);
/// x2APIC mode only (nothing is sent otherwise): one fixed IPI in logical destination mode, to
/// every CPU of cluster destination >> 16 whose bit is set in destination & 0xffff.
void lapic_send_ipi_logical(uint32_t destination, uint8_t vector);
/// This CPU's logical ID in x2APIC mode (the read-only LDR: cluster << 16 | 1 << position),
/// 0 in xAPIC mode.
uint32_t lapic_logical_id();
/// Non-maskable interrupt to one CPU (used to stop CPUs on panic).
void lapic_send_nmi(uint32_t apic_id);
/// INIT (assert, then de-assert where the mode allows it) to one CPU.
void lapic_send_init(uint32_t apic_id);
/// Startup IPI: the CPU starts in real mode at physical page `page` (address page << 12).
void lapic_send_sipi(uint32_t apic_id, uint8_t page);

/// Masks the legacy 8259 PICs (after moving their vectors out of the exception range).
void disable_legacy_pic();

} // namespace cohort::x86
