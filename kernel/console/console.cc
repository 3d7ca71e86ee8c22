// The serial console: input ring fed by the receive interrupt, the line editor, and the commands.
#include "console/console.h"

#include <atomic>
#include <cstring>
#include <string_view>

#include "arch/arch.h"
#include "console/commands.h"
#include "console/line_editor.h"
#include "debug/log.h"
#include "irq/irq.h"
#include "sched/sched.h"
#include "sched/wait.h"
#include "sync/guard.h"
#include "sync/lock_ranks.h"
#include "sync/spinlock.h"
#include "time/clock.h"

namespace cohort {

namespace {

// Bytes the interrupt handler took from the UART and the console has not read yet. When it is
// full the receive interrupt is turned off, so the UART (and behind it QEMU's character device,
// which stops reading its input) holds what comes next: input waits, it is not dropped.
constexpr size_t kRing = 1024;
LockClass g_rx_class{"console input", rank::kConsoleInput, LockScope::MachineWide};
SpinLock g_rx_lock{&g_rx_class};
uint8_t g_ring[kRing] COHORT_GUARDED_BY(g_rx_lock);
size_t g_head COHORT_GUARDED_BY(g_rx_lock) = 0;
std::atomic<size_t> g_count{0}; // written under g_rx_lock, read by the waiting console
bool g_paused COHORT_GUARDED_BY(g_rx_lock) = false;
WaitQueue g_rx_wait;

void rx_interrupt(void*) {
    bool got = false;
    {
        Guard<SpinLock, IrqSave> g(g_rx_lock);
        uint8_t b;
        size_t count = g_count.load(std::memory_order_relaxed);
        while (count < kRing && arch::console_serial_read(b)) {
            g_ring[(g_head + count) % kRing] = b;
            ++count;
            got = true;
        }
        g_count.store(count, std::memory_order_release);
        if (count == kRing && !g_paused) {
            g_paused = true;
            arch::console_serial_rx_interrupt(false);
        }
    }
    if (got) g_rx_wait.wake_one();
}

// One byte, or -1 if none is waiting.
int rx_pop() {
    Guard<SpinLock, IrqSave> g(g_rx_lock);
    size_t count = g_count.load(std::memory_order_relaxed);
    if (count == 0) return -1;
    const uint8_t b = g_ring[g_head];
    g_head = (g_head + 1) % kRing;
    g_count.store(count - 1, std::memory_order_release);
    if (g_paused && count - 1 < kRing / 2) {
        // Turning the interrupt back on with bytes waiting in the UART raises it at once.
        g_paused = false;
        arch::console_serial_rx_interrupt(true);
    }
    return b;
}

struct SerialOut : console::Output {
    void write(const char* s, size_t n) override { console_write(s, n); }
};

constexpr const char* kPrompt = "cohort> ";

} // namespace

namespace console {

bool input_waiting() { return g_count.load(std::memory_order_acquire) != 0; }

int read_byte_timeout(uint64_t ns) {
    const uint64_t end = monotonic_ns() + ns;
    for (;;) {
        const int b = rx_pop();
        if (b >= 0) return b;
        if (monotonic_ns() >= end) return -1;
        sleep_for(10'000'000);
    }
}

} // namespace console

void console_run() {
    IrqError err;
    const int id = irq_request_isa(arch::console_serial_irq(), "console (COM1)", rx_interrupt,
                                   nullptr, &err);
    if (id < 0) {
        log_error("console: cannot route the serial port's interrupt (%s); no console",
                  irq_error_name(err));
        return;
    }
    arch::console_serial_rx_interrupt(true);
    rx_interrupt(nullptr); // whatever arrived before the interrupt was on
    console_printf("\nCohort console: `help` lists the commands.\n");
    console::LineEditor editor;
    SerialOut out;
    for (;;) {
        console_write(kPrompt, strlen(kPrompt));
        for (;;) {
            g_rx_wait.wait([] { return g_count.load(std::memory_order_acquire) != 0; });
            const int b = rx_pop();
            if (b < 0) continue;
            const console::LineEditor::Event e = editor.feed(static_cast<uint8_t>(b), out);
            if (e == console::LineEditor::Event::None) continue;
            if (e == console::LineEditor::Event::TooLong)
                console_printf("error: line too long (the limit is %zu characters)\n",
                               console::LineEditor::kMaxLine);
            else if (e == console::LineEditor::Event::Line)
                console::execute(std::string_view(editor.line(), editor.line_length()));
            break;
        }
    }
}

} // namespace cohort
