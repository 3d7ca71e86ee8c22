#include "bench/bench.h"

#include <string_view>

#include "debug/log.h"
#include "lib/glob.h"

extern "C" const cohort::kbench::Benchmark __kbench_start[];
extern "C" const cohort::kbench::Benchmark __kbench_end[];

namespace cohort::kbench {

namespace {
bool selected(const char* name, const char* selection) {
    const char* p = selection;
    while (*p != 0) {
        const char* end = p;
        while (*end != 0 && *end != ',') ++end;
        const std::string_view pattern(p, static_cast<size_t>(end - p));
        if (pattern == "all" || glob_match(pattern, name)) return true;
        // "ipi" selects "ipi.*" too.
        const std::string_view n(name);
        if (n.size() > pattern.size() && n.substr(0, pattern.size()) == pattern &&
            n[pattern.size()] == '_')
            return true;
        p = *end == ',' ? end + 1 : end;
    }
    return false;
}
} // namespace

void summarize(uint64_t* s, uint32_t n, uint64_t* median, uint64_t* p99) {
    for (uint32_t i = 1; i < n; ++i) // insertion sort: n is small
        for (uint32_t j = i; j > 0 && s[j - 1] > s[j]; --j) {
            const uint64_t t = s[j];
            s[j] = s[j - 1];
            s[j - 1] = t;
        }
    *median = n ? s[n / 2] : 0;
    *p99 = n ? s[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] : 0;
}

bool run(const char* selection) {
    uint32_t count = 0;
    for (const Benchmark* b = __kbench_start; b != __kbench_end; ++b) {
        if (!selected(b->name, selection)) continue;
        log_info("bench: running %s", b->name);
        b->fn();
        ++count;
    }
    if (count == 0) log_error("bench: nothing matches bench=%s", selection);
    console_printf("bench: done (%u benchmarks)\n", count);
    return count != 0;
}

} // namespace cohort::kbench
