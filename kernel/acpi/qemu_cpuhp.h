// QEMU's ACPI CPU hotplug register block ("modern" interface, QEMU docs/specs/
// acpi_cpu_hotplug.rst; docs/hotplug-qemu-notes.md has what was measured): the protocol QEMU's
// own AML runs (\_SB.CPUS.CSCN), done natively. Portable: the registers are reached through
// CpuHotplugRegs, which the kernel implements with port I/O and the host tests with a model.
#pragma once

#include <cstdint>

namespace cohort::acpi {

/// The block's registers; every sequence starts by writing the selector, so callers hold one
/// lock around each.
class CpuHotplugRegs {
  public:
    virtual void write_selector(uint32_t slot) = 0; // offset 0, dword
    virtual uint32_t read_data2() = 0;              // offset 0, dword (upper arch-id half)
    virtual uint8_t read_flags() = 0;               // offset 4, byte
    virtual void write_control(uint8_t bits) = 0;   // offset 4, byte
    virtual void write_command(uint8_t cmd) = 0;    // offset 5, byte
    virtual uint32_t read_data() = 0;               // offset 8, dword
    virtual void write_data(uint32_t v) = 0;        // offset 8, dword
    virtual void write_byte0(uint8_t v) = 0;        // offset 0, one byte (the legacy switch)

  protected:
    ~CpuHotplugRegs() = default;
};

namespace cpuhp {
inline constexpr uint8_t kFlagEnabled = 1 << 0;
inline constexpr uint8_t kFlagInsert = 1 << 1;
inline constexpr uint8_t kFlagRemove = 1 << 2;
inline constexpr uint8_t kCtlClearInsert = 1 << 1;
inline constexpr uint8_t kCtlClearRemove = 1 << 2;
inline constexpr uint8_t kCtlEject = 1 << 3;
inline constexpr uint8_t kCmdNextWithEvent = 0;
inline constexpr uint8_t kCmdOstEvent = 1;
inline constexpr uint8_t kCmdOstStatus = 2;
inline constexpr uint8_t kCmdGetArchId = 3;
// _OST source events and status codes (ACPI 6.5, 6.3.5).
inline constexpr uint32_t kOstInsert = 1;
inline constexpr uint32_t kOstEjectRequest = 3;
inline constexpr uint32_t kOstEjectDone = 0x103;
inline constexpr uint32_t kOstSuccess = 0;
inline constexpr uint32_t kOstFailure = 1;
inline constexpr uint32_t kOstInProgress = 0x80;
} // namespace cpuhp

/// Switches the block from the legacy bitmap to the modern interface (a one-byte write of 0 at
/// offset 0: a wider write is dropped by some QEMU versions under TCG) and checks the switch
/// with the documented detect sequence: the modern block answers 0 to "command data 2" after
/// command 0, the legacy one its first bitmap bytes, never 0 (the boot CPU's bit is set).
bool cpuhp_switch_to_modern(CpuHotplugRegs& regs);

struct CpuHotplugSlot {
    bool present = false; // a CPU is plugged in the slot
    uint64_t arch_id = 0; // x86: its APIC id
};
/// Reads slot `slot`'s presence and arch id (command 3; the selector does not move).
CpuHotplugSlot cpuhp_read_slot(CpuHotplugRegs& regs, uint32_t slot);

struct CpuHotplugEvent {
    enum class Kind : uint8_t { None, Insert, Remove } kind = Kind::None;
    uint32_t slot = 0;
    uint64_t arch_id = 0;
};
/// The next slot at or after `cursor` with an insert or remove event (an insert first when a
/// slot has both), advancing `cursor` past it; Kind::None when none is left. The event stays
/// pending: clear it with cpuhp_clear.
CpuHotplugEvent cpuhp_next_event(CpuHotplugRegs& regs, uint32_t& cursor, uint32_t slots);
/// Clears the event just handled (the device stays as it is).
void cpuhp_clear(CpuHotplugRegs& regs, const CpuHotplugEvent& ev);
/// Ejects the CPU in `slot` (the guest must have stopped it: QEMU does not check).
void cpuhp_eject(CpuHotplugRegs& regs, uint32_t slot);
/// The _OST report for `slot` (QEMU turns it into a QMP ACPI_DEVICE_OST event).
void cpuhp_report(CpuHotplugRegs& regs, uint32_t slot, uint32_t event, uint32_t status);

} // namespace cohort::acpi
