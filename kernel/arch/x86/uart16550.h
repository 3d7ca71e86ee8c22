// 16550-compatible UART, polled (no interrupts): usable before the IDT and inside panics.
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

  private:
    void put(char c);
    uint16_t port_ = 0;
    bool present_ = false;
};

} // namespace cohort::x86
