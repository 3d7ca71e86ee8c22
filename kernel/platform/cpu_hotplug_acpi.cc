#include "platform/cpu_hotplug_acpi.h"

#include <atomic>

#include "acpi/qemu_cpuhp.h"
#include "arch/arch.h"
#include "boot/params.h"
#include "debug/log.h"
#include "irq/irq.h"
#include "lib/format.h"
#include "platform/acpi.h"
#include "sched/sched.h"
#include "sched/wait.h"
#include "smp/cpu.h"
#include "smp/hotplug.h"
#include "time/clock.h"

namespace cohort {
namespace {

using acpi::CpuHotplugEvent;

// The block's registers through port I/O at `base` (the layout is QEMU's: acpi/qemu_cpuhp.h).
class PortRegs final : public acpi::CpuHotplugRegs {
  public:
    uint16_t base = 0;
    void write_selector(uint32_t slot) override { arch::io_out32(base, slot); }
    uint32_t read_data2() override { return arch::io_in32(base); }
    uint8_t read_flags() override { return arch::io_in8(base + 4); }
    void write_control(uint8_t bits) override { arch::io_out8(base + 4, bits); }
    void write_command(uint8_t cmd) override { arch::io_out8(base + 5, cmd); }
    uint32_t read_data() override { return arch::io_in32(base + 8); }
    void write_data(uint32_t v) override { arch::io_out32(base + 8, v); }
    void write_byte0(uint8_t v) override { arch::io_out8(base, v); }
};

constexpr uint8_t kGpeCpuHotplug = 1 << 2; // GPE0 bit 2: QEMU's ACPI_CPU_HOTPLUG_STATUS

PortRegs g_regs;
Mutex g_regs_lock; // every register sequence starts by writing the selector
uint32_t g_slots = 0;
uint16_t g_gpe_status = 0, g_gpe_enable = 0;
WaitQueue g_wait;
std::atomic<bool> g_pending{false};
std::atomic<uint64_t> g_sci_ns{0}; // when the last CPU hotplug SCI came
std::atomic<uint64_t> g_scis{0}, g_plugged{0}, g_removed{0}, g_refused{0}, g_foreign{0};
bool g_active = false;

// The kernel's CPU for an arch id (APIC id) the block reports; nullptr when it has none.
CpuData* cpu_for(uint64_t arch_id) {
    for (uint32_t c = 0; c < cpu_count(); ++c)
        if (CpuData* cpu = cpu_by_id(c); cpu != nullptr && cpu->apic_id == arch_id) return cpu;
    return nullptr;
}

void report(uint32_t slot, uint32_t event, uint32_t status) {
    g_regs_lock.lock();
    acpi::cpuhp_report(g_regs, slot, event, status);
    g_regs_lock.unlock();
}

// The line the host-side test compares with QMP's query-cpus-fast: the ACPI processor ids
// (QEMU's CPU indexes) of the CPUs online now.
void log_online(const char* what) {
    char list[512];
    size_t len = 0;
    list[0] = 0;
    for (uint32_t c = 0; c < cpu_count() && len < sizeof(list) - 12; ++c) {
        const CpuData* cpu = cpu_by_id(c);
        if (cpu != nullptr && cpu->online.load(std::memory_order_acquire))
            len += format(list + len, sizeof(list) - len, "%s%u", len ? "," : "", cpu->acpi_uid);
    }
    log_info("acpi-cpuhp: %s; online: %s", what, list);
}

void handle_insert(const CpuHotplugEvent& ev) {
    char what[160];
    CpuData* cpu = cpu_for(ev.arch_id);
    if (cpu == nullptr) {
        g_refused.fetch_add(1, std::memory_order_relaxed);
        log_error("acpi-cpuhp: slot %u (APIC id %lu) was plugged in, but no CPU id was kept for "
                  "it (not in the MADT, or beyond smp.hotplug_slots); it stays stopped",
                  ev.slot, ev.arch_id);
        report(ev.slot, acpi::cpuhp::kOstInsert, acpi::cpuhp::kOstFailure);
        return;
    }
    if (cpu->online.load(std::memory_order_acquire)) return; // started at boot: nothing new
    HotplugReport r;
    const HotplugError e = cpu_plugged(cpu->cpu_id, &r);
    if (e != HotplugError::None) {
        g_refused.fetch_add(1, std::memory_order_relaxed);
        format(what, sizeof(what), "slot %u plugged in, cpu%u did not start: %s", ev.slot,
               cpu->cpu_id, hotplug_error_name(e));
        log_error("acpi-cpuhp: %s", what);
        report(ev.slot, acpi::cpuhp::kOstInsert, acpi::cpuhp::kOstFailure);
        return;
    }
    g_plugged.fetch_add(1, std::memory_order_relaxed);
    report(ev.slot, acpi::cpuhp::kOstInsert, acpi::cpuhp::kOstSuccess);
    // From the SCI: what device_add costs the guest (QEMU raises it within device_add).
    const uint64_t sci = g_sci_ns.load(std::memory_order_relaxed);
    const uint64_t now = monotonic_ns();
    format(what, sizeof(what), "slot %u plugged in: cpu%u (APIC id %u) online in %lu us, %lu us "
           "after the SCI", ev.slot, cpu->cpu_id, cpu->apic_id, r.duration_us,
           sci != 0 && now > sci ? (now - sci) / 1000 : 0);
    log_online(what);
}

void handle_remove(const CpuHotplugEvent& ev) {
    char what[160];
    CpuData* cpu = cpu_for(ev.arch_id);
    if (cpu == nullptr) {
        log_warn("acpi-cpuhp: removal asked for slot %u (APIC id %lu), which no CPU id names",
                 ev.slot, ev.arch_id);
        return;
    }
    report(ev.slot, acpi::cpuhp::kOstEjectRequest, acpi::cpuhp::kOstInProgress);
    HotplugReport r;
    HotplugError e = cpu_offline(cpu->cpu_id, &r);
    if (e == HotplugError::AlreadyOffline &&
        cpu->boot_stage.load(std::memory_order_acquire) == BootStage::Offline)
        e = HotplugError::None; // offline already (the console, cpu.offline=): eject it
    if (e != HotplugError::None) {
        // Not ejecting is the refusal: QEMU keeps the CPU and the event is cleared.
        g_refused.fetch_add(1, std::memory_order_relaxed);
        log_error("acpi-cpuhp: removal of slot %u (cpu%u) refused: %s%s%s", ev.slot, cpu->cpu_id,
                  hotplug_error_name(e), r.task_name[0] ? ": " : "", r.task_name);
        report(ev.slot, acpi::cpuhp::kOstEjectRequest, acpi::cpuhp::kOstFailure);
        return;
    }
    g_regs_lock.lock();
    acpi::cpuhp_eject(g_regs, ev.slot);
    g_regs_lock.unlock();
    cpu_unplugged(cpu->cpu_id);
    g_removed.fetch_add(1, std::memory_order_relaxed);
    format(what, sizeof(what), "slot %u removed: cpu%u offline in %lu us and ejected", ev.slot,
           cpu->cpu_id, r.duration_us);
    log_online(what);
}

// One pass over the block, as QEMU's CSCN method does it: every slot with an event, in order.
// Each event is cleared before it is handled, so one that cannot be handled is not found again;
// the bound keeps a block that never clears from holding the task forever.
void scan() {
    uint32_t cursor = 0;
    for (uint32_t n = 0; n < 4 * g_slots + 4; ++n) {
        g_regs_lock.lock();
        const CpuHotplugEvent ev = acpi::cpuhp_next_event(g_regs, cursor, g_slots);
        acpi::cpuhp_clear(g_regs, ev);
        g_regs_lock.unlock();
        if (ev.kind == CpuHotplugEvent::Kind::None) return;
        if (ev.kind == CpuHotplugEvent::Kind::Insert) handle_insert(ev);
        else handle_remove(ev);
    }
    log_error("acpi-cpuhp: the register block keeps reporting events; stopped this pass");
}

void hotplug_task(void*) {
    for (;;) {
        g_wait.wait([] { return g_pending.exchange(false, std::memory_order_acq_rel); });
        scan();
        if (const uint64_t f = g_foreign.exchange(0, std::memory_order_relaxed); f != 0)
            log_warn("acpi-cpuhp: %lu SCIs from other GPEs, which were disabled", f);
    }
}

// The SCI (a level-triggered line: it stays up until the status bit is cleared). The status
// bit is cleared before the scan, as for an edge GPE, so an event during the scan raises it
// again.
void sci_handler(void*) {
    const uint8_t status = arch::io_in8(g_gpe_status);
    const uint8_t enable = arch::io_in8(g_gpe_enable);
    if ((status & kGpeCpuHotplug) != 0) {
        arch::io_out8(g_gpe_status, kGpeCpuHotplug);
        g_sci_ns.store(monotonic_ns(), std::memory_order_relaxed);
        g_scis.fetch_add(1, std::memory_order_relaxed);
        g_pending.store(true, std::memory_order_release);
        g_wait.wake_one();
    }
    // Nobody handles the others: off, or the level would hold the line up for good.
    if (const uint8_t other = status & enable & ~kGpeCpuHotplug; other != 0) {
        arch::io_out8(g_gpe_enable, enable & ~other);
        arch::io_out8(g_gpe_status, other);
        g_foreign.fetch_add(1, std::memory_order_relaxed);
    }
}

// ACPI mode (SCI_EN in PM1a_CNT): firmware hands the SCI to the OS when asked through SMI_CMD.
bool enable_acpi_mode(const acpi::Fadt& f) {
    uint16_t pm1a_cnt = 0;
    if (f.x_pm1a_control_block && f.x_pm1a_control_block->address != 0 &&
        f.x_pm1a_control_block->space == acpi::kSpaceSystemIo &&
        f.x_pm1a_control_block->address <= 0xffff)
        pm1a_cnt = static_cast<uint16_t>(f.x_pm1a_control_block->address);
    else if (f.pm1a_control_block && *f.pm1a_control_block != 0 && *f.pm1a_control_block <= 0xffff)
        pm1a_cnt = static_cast<uint16_t>(*f.pm1a_control_block);
    if (pm1a_cnt == 0) {
        log_error("acpi-cpuhp: the FADT has no PM1a control block; no CPU hotplug");
        return false;
    }
    if ((arch::io_in16(pm1a_cnt) & 1) != 0) return true;
    if (!f.smi_command || *f.smi_command == 0 || *f.smi_command > 0xffff || !f.acpi_enable ||
        *f.acpi_enable == 0) {
        log_error("acpi-cpuhp: not in ACPI mode and the FADT gives no way to enter it");
        return false;
    }
    arch::io_out8(static_cast<uint16_t>(*f.smi_command), *f.acpi_enable);
    // The ACPI spec lets firmware take its time; 300 ms is generous and still bounded.
    const uint64_t deadline = monotonic_ns() + 300'000'000;
    while ((arch::io_in16(pm1a_cnt) & 1) == 0) {
        if (monotonic_ns() > deadline) {
            log_error("acpi-cpuhp: SCI_EN did not come on after writing %#x to SMI_CMD %#x",
                      *f.acpi_enable, *f.smi_command);
            return false;
        }
        sleep_for(1'000'000);
    }
    return true;
}

// The block must say what the MADT says: the same APIC id in every slot (slot = ACPI processor
// id), present where a CPU runs. A CPU present but not known was plugged in before the switch,
// which leaves no event for it: it is returned for handling as an insert.
bool check_against_madt(uint32_t* late, uint32_t& nlate) {
    const PlatformTopology& t = platform_topology();
    nlate = 0;
    for (uint32_t slot = 0; slot < g_slots; ++slot) {
        g_regs_lock.lock();
        const acpi::CpuHotplugSlot s = acpi::cpuhp_read_slot(g_regs, slot);
        g_regs_lock.unlock();
        const acpi::CpuEntry* entry = nullptr;
        for (const acpi::CpuEntry& e : t.madt.cpus.items())
            if (e.uid == slot) entry = &e;
        if (entry == nullptr || entry->apic_id != s.arch_id) {
            log_error("acpi-cpuhp: slot %u holds APIC id %lu, the MADT's processor %u says %ld; "
                      "the register block is not what it seems, no CPU hotplug", slot, s.arch_id,
                      slot, entry != nullptr ? long(entry->apic_id) : -1l);
            return false;
        }
        const CpuData* cpu = cpu_for(s.arch_id);
        const bool running = cpu != nullptr && cpu->online.load(std::memory_order_acquire);
        if (s.present && !running && cpu != nullptr &&
            cpu->boot_stage.load(std::memory_order_acquire) == BootStage::Absent)
            late[nlate++] = slot;
        else if (!s.present && running)
            log_warn("acpi-cpuhp: slot %u (cpu%u) runs but the block says it is empty", slot,
                     cpu->cpu_id);
    }
    return true;
}

} // namespace

void acpi_cpu_hotplug_init() {
    const PlatformTopology& t = platform_topology();
    const auto mode = params().get("cpu.hotplug");
    const bool forced = mode && *mode == "on";
    if (mode && *mode == "off") return;
    if (mode && !forced && *mode != "auto")
        log_error("acpi-cpuhp: cpu.hotplug=%.*s is not auto, on or off; using auto",
                  static_cast<int>(mode->size()), mode->data());
    if (t.qemu_cpuhp_port == 0 || !t.has_fadt) {
        if (forced) log_error("acpi-cpuhp: no QEMU CPU hotplug block in the ACPI tables");
        return;
    }
    if (t.hotplug_slots.empty() && !forced) return; // nothing can be plugged in: stay out
    const auto gpe = acpi::fadt_gpe0_io(t.fadt);
    if (!gpe || gpe->length < 2 || !t.fadt.sci_interrupt || *t.fadt.sci_interrupt > 255) {
        log_error("acpi-cpuhp: the FADT has no usable GPE0 block or SCI; no CPU hotplug");
        return;
    }
    g_regs.base = t.qemu_cpuhp_port;
    g_slots = static_cast<uint32_t>(t.madt.cpus.size());
    if (!acpi::cpuhp_switch_to_modern(g_regs)) {
        log_error("acpi-cpuhp: the block at %#x did not switch to the modern interface; no CPU "
                  "hotplug", g_regs.base);
        return;
    }
    static uint32_t late[kMaxCpus];
    uint32_t nlate = 0;
    if (!check_against_madt(late, nlate)) return;
    if (!enable_acpi_mode(t.fadt)) return;
    g_gpe_status = gpe->port;
    g_gpe_enable = static_cast<uint16_t>(gpe->port + gpe->length / 2);
    IrqError err = IrqError::None;
    const uint8_t sci = static_cast<uint8_t>(*t.fadt.sci_interrupt);
    if (irq_request_isa(sci, "acpi sci", sci_handler, nullptr, &err) < 0) {
        log_error("acpi-cpuhp: cannot route the SCI (IRQ %u): %s", sci, irq_error_name(err));
        return;
    }
    TaskOptions o;
    o.name = "acpi-cpuhp";
    Task* task = task_create(hotplug_task, nullptr, o);
    if (task == nullptr) {
        log_error("acpi-cpuhp: cannot start its task; no CPU hotplug");
        return;
    }
    task_detach(task);
    g_active = true;
    // Clear what was raised before anyone listened, then listen; CPUs plugged in before the
    // switch are handled as inserts by the first scan.
    arch::io_out8(g_gpe_status, kGpeCpuHotplug);
    arch::io_out8(g_gpe_enable, arch::io_in8(g_gpe_enable) | kGpeCpuHotplug);
    log_info("acpi-cpuhp: listening: register block at %#x (%u slots, %lu free), SCI IRQ %u, "
             "GPE0 bit 2 at %#x", g_regs.base, g_slots, t.hotplug_slots.size(), sci, g_gpe_status);
    for (uint32_t i = 0; i < nlate; ++i) {
        CpuHotplugEvent ev;
        ev.kind = CpuHotplugEvent::Kind::Insert;
        ev.slot = late[i];
        g_regs_lock.lock();
        ev.arch_id = acpi::cpuhp_read_slot(g_regs, late[i]).arch_id;
        g_regs_lock.unlock();
        handle_insert(ev);
    }
}

AcpiCpuHotplugStats acpi_cpu_hotplug_stats() {
    AcpiCpuHotplugStats s;
    s.active = g_active;
    s.slots = g_slots;
    s.scis = g_scis.load(std::memory_order_relaxed);
    s.plugged = g_plugged.load(std::memory_order_relaxed);
    s.removed = g_removed.load(std::memory_order_relaxed);
    s.refused = g_refused.load(std::memory_order_relaxed);
    return s;
}

} // namespace cohort
