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
#include "sync/lock_ranks.h"

namespace cohort {

namespace {

x86::Uart16550 g_uart;
LockClass g_console_class{"console", rank::kConsole, LockScope::MachineWide};
SpinLock g_console_lock{&g_console_class};
std::atomic<LogLevel> g_level{LogLevel::Info};
std::atomic<bool> g_panic_mode{false};

// History ring: everything written to the console, so tests can check that a report appeared.
constexpr size_t kHistorySize = 64 * 1024;
char g_history[kHistorySize] COHORT_GUARDED_BY(g_console_lock);
uint64_t g_history_total COHORT_GUARDED_BY(g_console_lock) = 0; // bytes ever written

void history_append(const char* s, size_t n) COHORT_REQUIRES(g_console_lock) {
    for (size_t i = 0; i < n; ++i) g_history[(g_history_total + i) % kHistorySize] = s[i];
    g_history_total += n;
}

/// Console critical section. Two callers may not wait for the lock: the panicking CPU (a CPU
/// it stopped may hold it) and an NMI handler (it may have interrupted this very CPU inside
/// it). They wait a bounded time, then write without it: a garbled line beats a hang. The
/// analysis is told the lock is held so every access to the console state is still checked;
/// the unlocked fallback is the one deliberate exception.
class COHORT_SCOPED_CAPABILITY ConsoleLock {
  public:
    ConsoleLock() COHORT_ACQUIRE(g_console_lock) COHORT_NO_THREAD_SAFETY_ANALYSIS
        : irq_(IrqSave::save()) {
        const CpuData* cpu = this_cpu();
        const bool in_nmi = cpu != nullptr && cpu->nmi_depth > 0;
        if (!g_panic_mode.load(std::memory_order_relaxed) && !in_nmi) {
            g_console_lock.lock();
            locked_ = true;
            return;
        }
        if (in_nmi && g_console_lock.owner() == cpu->cpu_id) return; // we interrupted ourselves
        // A panic waits long for the others to finish their lines; an NMI handler (a backtrace
        // on request) only briefly, since the CPU it interrupted may hold a lock others need.
        const int spins = in_nmi && !g_panic_mode.load(std::memory_order_relaxed) ? 20000 : 1000000;
        for (int i = 0; i < spins && !locked_; ++i) {
            locked_ = g_console_lock.try_lock();
            if (!locked_) x86::pause();
        }
    }
    ~ConsoleLock() COHORT_RELEASE() COHORT_NO_THREAD_SAFETY_ANALYSIS {
        if (locked_) g_console_lock.unlock();
        IrqSave::restore(irq_);
    }
    ConsoleLock(const ConsoleLock&) = delete;
    ConsoleLock& operator=(const ConsoleLock&) = delete;

  private:
    IrqSave::State irq_;
    bool locked_ = false;
};

void emit_locked(const char* s, size_t n) COHORT_REQUIRES(g_console_lock) {
    g_uart.write(s, n);
    history_append(s, n);
}

} // namespace

void log_init_console() { g_uart.init(0x3f8); }

} // namespace cohort

cohort::x86::Uart16550& cohort::x86::com1() { return g_uart; }

namespace cohort {
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
