// 16550-compatible UART. Output is polled (usable before the IDT and inside panics); input can
// raise the receive interrupt (the console, irq/irq.h routes it).
#pragma once

#include <cstddef>
#include <cstdint>

namespace cohort::x86 {

class Uart16550 {
  public:
    /// Programs 115200 8N1 and checks the UART answers in loopback. Returns false (and stays
    /// silent afterwards) when no UART is present, so a missing COM1 cannot hang the kernel.
    bool init(uint16_t port);
    void write(const char* s, size_t n);
    bool present() const { return present_; }
    uint16_t port() const { return port_; }

    /// Writes one byte as is (no newline translation), waiting a bounded time for room.
    void put_raw(uint8_t c) { put(static_cast<char>(c)); }
    /// A received byte is waiting.
    bool rx_ready() const;
    /// Takes a received byte, if one is waiting.
    bool read(uint8_t& byte);
    /// The "received data available" interrupt on or off (IER bit 0).
    void set_rx_interrupt(bool on);
    /// Internal loopback (MCR bit 4): what is sent comes back as received (tests).
    void set_loopback(bool on);
    /// Overrun errors seen (LSR bit 1: a byte arrived with the receive FIFO full, and was lost).
    uint64_t overruns() const { return overruns_; }

  private:
    void put(char c);
    uint16_t port_ = 0;
    bool present_ = false;
    uint64_t overruns_ = 0;
};

/// COM1, the log's and the console's port (debug/log.cc owns it).
Uart16550& com1();

} // namespace cohort::x86
