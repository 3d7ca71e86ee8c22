// What generic kernel code (scheduler, SMP, memory, time, locks) may ask of the architecture,
// in one place, after Zircon's arch_* interface: interrupt state, the cycle counter, interrupt
// vectors and handlers, the context switch and FPU state, IPIs, the per-CPU timer and TLB
// flushes. Generic code includes this header, never arch/x86/ ones; bring-up (main.cc,
// smp/ and arch/x86/ap_boot.cc), the tests of x86 features and the benchmarks of x86
// mechanisms still use arch/x86 directly. The x86-64 definitions are in arch/x86/arch_impl.h.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

#include "acpi/madt.h"
#include "arch/x86/arch_impl.h"
#include "irq/routing.h"

namespace cohort {
struct CpuData;
}

namespace cohort::arch {

// The functions a context switch or every interrupt calls are inline (arch_impl.h): no call
// through a wrapper on those paths.

// --- Interrupt state --------------------------------------------------------------------------
/// Masks maskable interrupts on this CPU.
inline void irq_disable();
/// Unmasks them.
inline void irq_enable();
inline bool irqs_enabled();
/// Unmasks interrupts and waits for one, as one step: an interrupt that arrives between the two
/// still ends the wait (how an idle CPU sleeps without missing a wake-up).
inline void irq_enable_and_wait();
/// Stops this CPU for good, interrupts masked.
[[noreturn]] inline void halt_forever();
// IrqOff: RAII, interrupts masked in its scope and restored to what they were (arch_impl.h).

// --- This CPU's data ----------------------------------------------------------------------------
// Every CPU keeps a base register pointing at its CpuData (x86: GSBASE), so a field of it is one
// instruction away and no interrupt or migration can fall between finding the CPU and using
// the field. From arch_impl.h: cpu_base_load<kOffset>() (the 64-bit word at that offset),
// cpu_base_load32<kOffset>() (the 32-bit one) and cpu_base_add32<kOffset>(delta) (adds to the 32-bit word at that offset, as one
// instruction). CpuTables and kIstCount: the per-CPU architecture state CpuData embeds.
/// Points this CPU's base register at `base`.
inline void set_cpu_base(const void* base);
/// The base register is set (this_cpu() may be used).
inline bool cpu_base_valid();

// --- Time -------------------------------------------------------------------------------------
/// This CPU's cycle counter (the TSC): monotonic on the CPU, the base of time/clock.h.
inline uint64_t cycles();

// --- Interrupt vectors and handlers -------------------------------------------------------------
// IrqFrame (the saved state a handler gets) and the vector numbers kVecTimer, kVecCall,
// kVecReschedule, kVecKick (wakes a parked lock waiter), kVecDeviceFirst..kVecDeviceLast come
// from arch_impl.h.
using IrqHandler = void (*)(IrqFrame& frame);
/// Installs `handler` for `vector` on every CPU (the vector table is shared).
void set_irq_handler(uint8_t vector, IrqHandler handler);
/// Acknowledges the interrupt being handled on this CPU.
inline void irq_eoi();
/// An interrupt on `vector` is requested on this CPU and not yet delivered.
bool irq_pending(uint8_t vector);
/// The name of a CPU exception vector ("page fault"), for reports.
const char* exception_name(uint64_t vector);

// --- Context switch and FPU ---------------------------------------------------------------------
/// Saves the callee-saved registers on the current stack, stores the stack pointer in
/// *save_sp, and resumes the context whose stack pointer is new_sp.
inline void context_switch(uint64_t* save_sp, uint64_t new_sp);
/// Bytes a switched-out context keeps at its saved stack pointer (kSwitchFrameBytes, from
/// arch_impl.h), and the address the switch will resume it at: for the scheduler's check that a
/// saved context is intact before switching to it.
uint64_t switch_resume_address(uint64_t saved_sp);
/// Builds on a new task's stack the frame context_switch resumes: the first switch to it calls
/// the scheduler's sched_task_first_run(task). Returns the stack pointer to resume.
uint64_t initial_task_frame(uint64_t stack_top, void* task);
/// Size of a task's FPU/SIMD save area (64-byte aligned by the caller).
size_t fpu_state_size();
void fpu_init_state(void* area);
inline void fpu_save(void* area);
inline void fpu_restore(const void* area);

// --- IPIs (to hardware CPU ids: CpuData::apic_id) ----------------------------------------------
void send_ipi(uint32_t hw_id, uint8_t vector);
/// One IPI to every other processor (a destination shorthand).
void send_ipi_all_but_self(uint8_t vector);
/// Where the hardware can (x2APIC): one IPI to the CPUs of one cluster named in `destination`
/// (cluster << 16 | bits, smp/ipi_clusters.h). Nothing otherwise.
void send_ipi_cluster(uint32_t destination, uint8_t vector);
/// This CPU's cluster destination (0 where clusters do not exist).
uint32_t cluster_id();
bool cluster_ipis_available();
/// A non-maskable interrupt to one CPU.
void send_nmi(uint32_t hw_id);

// --- Parking a lock waiter (sync/park.h) -----------------------------------------------------
/// Halts until an interrupt, unless `flag` is already true, with no window between the check
/// and the halt: with `irqs_on`, interrupts are disabled around the check and re-enabled with
/// the halt (kVecKick ends it); without, an NMI ends it, and an NMI that lands between the
/// check and the halt makes the halt return at once (park_nmi_fixup).
void park_halt(const std::atomic<bool>& flag, bool irqs_on);

// --- Topology ---------------------------------------------------------------------------------
/// How a hardware CPU id (CpuData::apic_id) splits into thread, core and package: bits
/// [0, smt_bits) number the thread in its core, [smt_bits, package_shift) the core in its
/// package, the bits above the package. `source` names where that came from (boot log).
struct CpuTopology {
    uint32_t smt_bits = 0;
    uint32_t package_shift = 0;
    const char* source = "";
};
/// The calling CPU's topology (the boot CPU's stands for all: CPUs of one machine share it).
CpuTopology cpu_topology();

// --- Device interrupt lines (x86: the I/O APICs) -------------------------------------------------
// Lines are numbered by global system interrupt (GSI, ACPI's numbering); irq/irq.h decides
// which line goes to which vector and CPU, these only program the hardware.
/// Sets up every controller the firmware lists (`chips`: the MADT's I/O APICs), every line
/// masked. Returns how many are in use.
uint32_t irqchip_init(std::span<const acpi::IoApic> chips);
/// A controller has line `gsi`.
bool irqchip_has_line(uint32_t gsi);
/// Sends line `gsi` to `vector` on the CPU with hardware id `hw_id` (unmasked), or as an NMI
/// when `nmi`.
void irqchip_route(uint32_t gsi, uint8_t vector, irq::Signal signal, uint32_t hw_id, bool nmi);
/// Moves line `gsi` to another CPU, in one write (no window where it is masked or half-set).
void irqchip_retarget(uint32_t gsi, uint32_t hw_id);
void irqchip_mask(uint32_t gsi);
/// The controller can address the CPU with hardware id `hw_id` (x2APIC ids above 254 cannot
/// be named by an I/O APIC without interrupt remapping).
bool irqchip_reachable(uint32_t hw_id);
/// The line's current programming, for listings.
irq::EntryFields irqchip_entry(uint32_t gsi);

// --- The console's serial port, and leaving the machine -----------------------------------------
/// The ISA IRQ of the serial port the console reads (x86: COM1, IRQ 4).
uint8_t console_serial_irq();
/// Takes a received byte from it, if one is waiting.
bool console_serial_read(uint8_t& byte);
/// Its "received data" interrupt on or off.
void console_serial_rx_interrupt(bool on);
/// Ends the run: under QEMU the exit status says success (0) or failure; on hardware it halts.
[[noreturn]] void machine_poweroff(bool success);

/// 64 unpredictable bits (x86: RDRAND where the CPU has it, mixed with the cycle counter), for
/// stack-protector canaries. Usable from the first instruction of boot.
uint64_t random_u64();

/// Functions that run before the CPU's base register is set (the compiler's stack protector
/// reads the canary through it): the boot CPU's first steps and an AP's entry.
#define COHORT_NO_STACK_PROTECTOR __attribute__((no_stack_protector))
/// Functions whose indirect calls go to targets that carry no KCFI type id: code the compiler
/// generates (static constructors). Each use says why; everything else is checked.
#if defined(__clang__) && __clang_major__ >= 16
#define COHORT_NO_KCFI __attribute__((no_sanitize("kcfi")))
#else
#define COHORT_NO_KCFI
#endif

// --- I/O space (x86 port I/O), where ACPI's SystemIO registers live -------------------------------
inline uint8_t io_in8(uint16_t port);
inline uint16_t io_in16(uint16_t port);
inline uint32_t io_in32(uint16_t port);
inline void io_out8(uint16_t port, uint8_t v);
inline void io_out16(uint16_t port, uint16_t v);
inline void io_out32(uint16_t port, uint32_t v);

// --- The per-CPU timer --------------------------------------------------------------------------
/// An interrupt on `vector` after `ns` nanoseconds.
void timer_oneshot(uint64_t ns, uint8_t vector);
/// The timer can fire at a cycle-counter value (timer_at) rather than after a delay.
bool timer_has_deadline();
void timer_at(uint64_t cycles, uint8_t vector);
void timer_stop();
/// Raises `vector` on the CPU with APIC id `hw_id` now, as its own timer would: for a queue
/// another CPU changed (CPU hotplug moves timers) and only its owner can program the timer for.
void timer_kick(uint32_t hw_id, uint8_t vector);

// --- TLB --------------------------------------------------------------------------------------
/// Drops this CPU's translation of the page at `va`.
inline void tlb_flush_page(uint64_t va);
/// Drops every translation that is not global (those of the lower half and of other address
/// spaces; the kernel half's are global where the CPU supports it).
inline void tlb_flush_nonglobal();
/// Drops every translation, global ones included.
inline void tlb_flush_all();

// --- AP bring-up: the mechanics (smp/bringup.cc has the policy) ------------------------------
/// What `cpu` needs of the architecture before it starts (x86: its guarded kernel and IST
/// stacks). False when out of memory.
bool ap_prepare_cpu(CpuData& cpu);
/// Gets ready to start `aps` (x86: the trampoline, its page tables and APIC-id table, what each
/// AP must offer). nullptr, or why they cannot be started (then nothing is left behind).
const char* ap_prepare(std::span<CpuData* const> aps);
/// Wakes them all at once (x86: INIT, SIPI, SIPI). Each reports its progress with
/// smp_ap_reached and ends in smp_ap_online (smp/smp.h).
void ap_start(std::span<CpuData* const> aps);
/// Sends a CPU that never identified itself back to waiting (x86: INIT), so it cannot run
/// bring-up code after it is gone.
void ap_recall(CpuData& cpu);
/// Bring-up is over: removes what only starting CPUs used (x86: wipes the trampoline, frees
/// its page tables and table). `failed`: some CPU did not come online (say what is known).
void ap_finish(std::span<CpuData* const> aps, bool failed);

} // namespace cohort::arch
