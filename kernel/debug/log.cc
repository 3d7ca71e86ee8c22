#include "debug/log.h"

#include <atomic>
#include <cstdarg>
#include <cstring>

#include "arch/x86/cpu.h"
#include "arch/x86/uart16550.h"
#include "lib/format.h"
#include "smp/cpu.h"
#include "sync/spinlock.h"
#include "time/clock.h"

namespace cohort {

namespace {

x86::Uart16550 g_uart;
SpinLock g_console_lock;
std::atomic<LogLevel> g_level{LogLevel::Info};
std::atomic<bool> g_panic_mode{false};

// History ring: everything written to the console, so tests can check that a report appeared.
constexpr size_t kHistorySize = 64 * 1024;
char g_history[kHistorySize];
uint64_t g_history_total = 0; // bytes ever written; guarded by g_console_lock

void history_append(const char* s, size_t n) {
    for (size_t i = 0; i < n; ++i) g_history[(g_history_total + i) % kHistorySize] = s[i];
    g_history_total += n;
}

/// Console critical section. In panic mode the panicking CPU must not wait forever for a lock
/// that a stopped CPU may hold, so it gives up waiting after a bounded time and writes anyway.
class ConsoleLock {
  public:
    ConsoleLock() : irq_(IrqSave::save()) {
        if (!g_panic_mode.load(std::memory_order_relaxed)) {
            g_console_lock.lock();
            locked_ = true;
            return;
        }
        for (int i = 0; i < 1000000 && !locked_; ++i) {
            locked_ = g_console_lock.try_lock();
            if (!locked_) x86::pause();
        }
    }
    ~ConsoleLock() {
        if (locked_) g_console_lock.unlock();
        IrqSave::restore(irq_);
    }

  private:
    IrqSave::State irq_;
    bool locked_ = false;
};

void emit_locked(const char* s, size_t n) {
    g_uart.write(s, n);
    history_append(s, n);
}

} // namespace

void log_init_console() { g_uart.init(0x3f8); }
void log_set_level(LogLevel level) { g_level.store(level, std::memory_order_relaxed); }
LogLevel log_level() { return g_level.load(std::memory_order_relaxed); }

bool log_parse_level(const char* text, size_t len, LogLevel& out) {
    struct Name {
        const char* name;
        LogLevel level;
    };
    static constexpr Name kNames[] = {{"error", LogLevel::Error},
                                      {"warn", LogLevel::Warn},
                                      {"info", LogLevel::Info},
                                      {"debug", LogLevel::Debug}};
    for (const Name& n : kNames) {
        if (strlen(n.name) == len && memcmp(n.name, text, len) == 0) {
            out = n.level;
            return true;
        }
    }
    return false;
}

void log_write(LogLevel level, const char* fmt, ...) {
    if (level > log_level()) return;
    char line[512];
    const uint64_t ns = clock_ready() ? monotonic_ns() : 0;
    const CpuData* cpu = this_cpu();
    size_t n = format(line, sizeof(line), "[%4lu.%06lu] [cpu%u] %s", ns / 1000000000,
                      (ns / 1000) % 1000000, cpu != nullptr ? cpu->cpu_id : 0,
                      level == LogLevel::Error  ? "ERROR: "
                      : level == LogLevel::Warn ? "warning: "
                                                : "");
    if (n >= sizeof(line)) n = sizeof(line) - 1;
    va_list ap;
    va_start(ap, fmt);
    size_t m = vformat(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    n += m < sizeof(line) - n - 1 ? m : sizeof(line) - n - 2;
    line[n++] = '\n';
    ConsoleLock lock;
    emit_locked(line, n);
}

void console_write(const char* s, size_t n) {
    ConsoleLock lock;
    emit_locked(s, n);
}

void console_printf(const char* fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    size_t n = vformat(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    console_write(buf, n < sizeof(buf) ? n : sizeof(buf) - 1);
}

uint64_t log_mark() {
    ConsoleLock lock;
    return g_history_total;
}

bool log_contains_since(uint64_t mark, const char* needle) {
    ConsoleLock lock;
    const size_t len = strlen(needle);
    uint64_t start = mark;
    if (g_history_total - start > kHistorySize) start = g_history_total - kHistorySize;
    if (len == 0) return true;
    for (uint64_t i = start; i + len <= g_history_total; ++i) {
        size_t j = 0;
        while (j < len && g_history[(i + j) % kHistorySize] == needle[j]) ++j;
        if (j == len) return true;
    }
    return false;
}

void console_enter_panic_mode() { g_panic_mode.store(true, std::memory_order_relaxed); }

} // namespace cohort
