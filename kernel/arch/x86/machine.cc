#include "arch/x86/machine.h"

#include "arch/x86/cpu.h"

namespace cohort::x86 {

void machine_exit(ExitStatus status) {
    cli();
    // QEMU with -device isa-debug-exit,iobase=0xf4: exits immediately.
    outl(0xf4, static_cast<uint32_t>(status));
    if (status == ExitStatus::Success) {
        // Bochs magic breakpoint: the runner's debugger script quits with status 0. A no-op
        // everywhere else.
        asm volatile("xchgw %bx, %bx");
    } else {
        // Bochs shutdown port: exits with status 1.
        for (const char* p = "Shutdown"; *p != 0; ++p) outb(0x8900, static_cast<uint8_t>(*p));
    }
    halt_forever();
}

} // namespace cohort::x86
