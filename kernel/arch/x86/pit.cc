#include "arch/x86/pit.h"

#include "arch/x86/cpu.h"

namespace cohort::x86 {

namespace {
constexpr uint16_t kChannel0 = 0x40;
constexpr uint16_t kCommand = 0x43;
} // namespace

void pit_start_periodic(uint32_t hz) {
    if (hz < 19) hz = 19; // the divider is 16 bits
    if (hz > kPitHz) hz = kPitHz;
    const uint32_t divisor = (kPitHz + hz / 2) / hz;
    outb(kCommand, 0x34); // channel 0, lobyte/hibyte, mode 2 (rate generator), binary
    outb(kChannel0, static_cast<uint8_t>(divisor & 0xff));
    outb(kChannel0, static_cast<uint8_t>(divisor >> 8));
}

void pit_stop() {
    outb(kCommand, 0x30); // channel 0, lobyte/hibyte, mode 0 (one shot on terminal count)
    outb(kChannel0, 0xff);
    outb(kChannel0, 0xff);
}

} // namespace cohort::x86
