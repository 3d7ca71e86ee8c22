// In-kernel benchmarks, selected with `bench=NAME[,NAME]`. Each prints machine-readable lines:
//   bench: {"name":"ipi.round_trip","cpus":4,"median_cycles":1234,...}
// (tools/bench turns them into tables and plots; nothing parses free text).
#pragma once

#include <cstdint>

namespace cohort::kbench {

struct Benchmark {
    const char* name;
    void (*fn)();
};

/// Runs the benchmarks whose name matches one of the comma-separated globs.
bool run(const char* selection);

/// Median and 99th percentile of `n` samples (sorts them in place).
void summarize(uint64_t* samples, uint32_t n, uint64_t* median, uint64_t* p99);

} // namespace cohort::kbench

#define KBENCH(name)                                                                               \
    static void kbench_fn_##name();                                                                \
    [[gnu::used, gnu::section(".kbench." #name)]] static const ::cohort::kbench::Benchmark         \
        kbench_##name{#name, kbench_fn_##name};                                                    \
    static void kbench_fn_##name()
