#include "arch/x86/uart16550.h"

#include "arch/x86/cpu.h"

namespace cohort::x86 {

namespace {
enum Reg : uint16_t { kData = 0, kIer = 1, kFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5 };
constexpr uint8_t kLsrThrEmpty = 1u << 5;
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
    outb(port + kMcr, 0x0b); // normal operation, DTR/RTS/OUT2
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

} // namespace cohort::x86
