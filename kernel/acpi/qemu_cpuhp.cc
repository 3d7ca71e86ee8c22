#include "acpi/qemu_cpuhp.h"

namespace cohort::acpi {

using namespace cpuhp;

bool cpuhp_switch_to_modern(CpuHotplugRegs& regs) {
    regs.write_byte0(0);
    regs.write_selector(0);
    regs.write_command(kCmdNextWithEvent);
    return regs.read_data2() == 0;
}

CpuHotplugSlot cpuhp_read_slot(CpuHotplugRegs& regs, uint32_t slot) {
    CpuHotplugSlot s;
    regs.write_selector(slot);
    s.present = (regs.read_flags() & kFlagEnabled) != 0;
    regs.write_command(kCmdGetArchId);
    s.arch_id = regs.read_data() | uint64_t(regs.read_data2()) << 32;
    return s;
}

CpuHotplugEvent cpuhp_next_event(CpuHotplugRegs& regs, uint32_t& cursor, uint32_t slots) {
    CpuHotplugEvent ev;
    if (cursor >= slots) return ev;
    // Command 0 moves the selector to the first slot at or after it with an event, wrapping
    // around; with none it leaves it alone. So a slot before the cursor means "none after it",
    // and no event bit on the selected slot means "none at all".
    regs.write_selector(cursor);
    regs.write_command(kCmdNextWithEvent);
    const uint32_t slot = regs.read_data();
    if (slot < cursor || slot >= slots) return ev;
    const uint8_t flags = regs.read_flags();
    if ((flags & (kFlagInsert | kFlagRemove)) == 0) return ev;
    ev.slot = slot;
    ev.kind = (flags & kFlagInsert) != 0 ? CpuHotplugEvent::Kind::Insert
                                          : CpuHotplugEvent::Kind::Remove;
    regs.write_command(kCmdGetArchId);
    ev.arch_id = regs.read_data() | uint64_t(regs.read_data2()) << 32;
    // An insert and a remove on one slot (added, then removed before we looked): the remove
    // is found on the next pass, as QEMU's AML does it.
    cursor = ev.kind == CpuHotplugEvent::Kind::Insert && (flags & kFlagRemove) != 0 ? slot
                                                                                    : slot + 1;
    return ev;
}

void cpuhp_clear(CpuHotplugRegs& regs, const CpuHotplugEvent& ev) {
    if (ev.kind == CpuHotplugEvent::Kind::None) return;
    regs.write_selector(ev.slot);
    regs.write_control(ev.kind == CpuHotplugEvent::Kind::Insert ? kCtlClearInsert : kCtlClearRemove);
}

void cpuhp_eject(CpuHotplugRegs& regs, uint32_t slot) {
    regs.write_selector(slot);
    regs.write_control(kCtlEject);
}

void cpuhp_report(CpuHotplugRegs& regs, uint32_t slot, uint32_t event, uint32_t status) {
    regs.write_selector(slot);
    regs.write_command(kCmdOstEvent);
    regs.write_data(event);
    regs.write_command(kCmdOstStatus);
    regs.write_data(status);
}

} // namespace cohort::acpi
