#include "boot/boot_trace.h"

#include "arch/arch.h"
#include "boot/params.h"
#include "debug/log.h"
#include "lib/format.h"
#include "time/clock.h"

namespace cohort {

namespace {

struct Step {
    const char* name;
    uint64_t tsc;
};
constexpr int kMaxSteps = 24;
Step g_steps[kMaxSteps];
int g_count = 0;
uint64_t g_entry_tsc = 0;

} // namespace

COHORT_NO_STACK_PROTECTOR void boot_trace_start() { g_entry_tsc = arch::cycles(); }

void boot_step(const char* name) {
    if (g_count < kMaxSteps) g_steps[g_count++] = {name, arch::cycles()};
}

uint64_t boot_elapsed_ms() {
    if (!clock_ready()) return 0;
    return tsc_to_ns(arch::cycles() - g_entry_tsc) / 1000000;
}

void boot_trace_log() {
    // One line, so it costs the boot one line of serial output; steps under 0.1 ms are summed
    // into the next one that is not.
    char line[512];
    size_t len = format(line, sizeof(line), "boot: steps (ms):");
    uint64_t prev = g_entry_tsc;
    for (int i = 0; i < g_count && len < sizeof(line); ++i) {
        const uint64_t us = tsc_to_ns(g_steps[i].tsc - prev) / 1000;
        if (us < 100 && i + 1 < g_count) continue;
        len += format(line + len, sizeof(line) - len, " %s %lu.%lu", g_steps[i].name, us / 1000,
                      (us / 100) % 10);
        prev = g_steps[i].tsc;
    }
    if (param_bool("boot.trace", false)) log_info("%s", line);
    else log_debug("%s", line);
}

} // namespace cohort
