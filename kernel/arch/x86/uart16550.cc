#include "arch/x86/uart16550.h"

#include "arch/x86/cpu.h"

namespace cohort::x86 {

namespace {
enum Reg : uint16_t { kData = 0, kIer = 1, kFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5 };
constexpr uint8_t kLsrDataReady = 1u << 0;
constexpr uint8_t kLsrOverrun = 1u << 1;
constexpr uint8_t kLsrThrEmpty = 1u << 5;
constexpr uint8_t kMcrNormal = 0x0b; // DTR, RTS, OUT2 (OUT2 gates the IRQ line on PCs)
constexpr uint8_t kMcrLoop = 0x10;
} // namespace

bool Uart16550::init(uint16_t port) {
    port_ = port;
    outb(port + kIer, 0x00);  // no interrupts: we poll
    outb(port + kLcr, 0x80);  // DLAB on to set the divisor
    outb(port + kData, 0x01); // divisor 1 = 115200 baud
    outb(port + kIer, 0x00);
    outb(port + kLcr, 0x03);  // 8N1, DLAB off
    outb(port + kFcr, 0xc7);  // enable and clear FIFOs
    // Loopback self-test: a byte written must come back, else there is no UART here.
    outb(port + kMcr, 0x1e);
    outb(port + kData, 0xa5);
    const bool echoed = inb(port + kData) == 0xa5;
    outb(port + kMcr, kMcrNormal);
    present_ = echoed;
    return present_;
}

void Uart16550::put(char c) {
    // Bounded wait: a wedged UART loses characters instead of hanging the CPU that logs.
    for (int spins = 0; spins < 100000; ++spins) {
        if (inb(port_ + kLsr) & kLsrThrEmpty) break;
        pause();
    }
    outb(port_ + kData, static_cast<uint8_t>(c));
}

void Uart16550::write(const char* s, size_t n) {
    if (!present_) return;
    for (size_t i = 0; i < n; ++i) {
        if (s[i] == '\n') put('\r');
        put(s[i]);
    }
}

bool Uart16550::rx_ready() const {
    return present_ && (inb(port_ + kLsr) & kLsrDataReady) != 0;
}

bool Uart16550::read(uint8_t& byte) {
    if (!present_) return false;
    const uint8_t lsr = inb(port_ + kLsr);
    if ((lsr & kLsrOverrun) != 0) ++overruns_;
    if ((lsr & kLsrDataReady) == 0) return false;
    byte = inb(port_ + kData);
    return true;
}

void Uart16550::set_rx_interrupt(bool on) {
    if (present_) outb(port_ + kIer, on ? 0x01 : 0x00);
}

void Uart16550::set_loopback(bool on) {
    if (present_) outb(port_ + kMcr, on ? (kMcrNormal | kMcrLoop) : kMcrNormal);
}

} // namespace cohort::x86
