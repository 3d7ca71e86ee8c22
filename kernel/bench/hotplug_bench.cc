// bench=hotplug: what taking CPUs offline and back costs, on an otherwise idle machine.
//   bench: {"name":"hotplug.cycle","cpus":N,"median_us":M,"p99_us":P,"offline_median_us":..,
//           "online_median_us":..,"runs":R}
//     offline+online of the last CPU, R times (bench.hotplug_cycles, default 200).
//   bench: {"name":"hotplug.disturbed","cpus":N,"max_cpus":D,"runs":R}
//     the most CPUs besides cpu0, the CPU itself and its timers' heir that took an interrupt
//     during one offline or online (no machine-wide stop: 0 at any N).
//   bench: {"name":"hotplug.all_but_one","cpus":N,"offline_us":T,"online_us":U,"runs":N-1}
//     every CPU but cpu0 offline one after another, then back (target: 63 of 64 in <= 1 s).
#include "bench/bench.h"
#include "boot/params.h"
#include "debug/log.h"
#include "smp/cpu.h"
#include "smp/cpumask.h"
#include "smp/hotplug.h"
#include "time/clock.h"

namespace cohort {
namespace {

constexpr uint32_t kMaxRuns = 2000;
uint64_t g_cycle[kMaxRuns], g_off[kMaxRuns], g_on[kMaxRuns];
uint64_t g_irqs[kMaxCpus];

void snapshot_irqs() {
    for (uint32_t c = 0; c < cpu_count(); ++c) g_irqs[c] = cpu_by_id(c)->counters.interrupts.load();
}

// CPUs other than cpu0, `k` and `heir` whose interrupt count moved since snapshot_irqs().
uint32_t disturbed(uint32_t k, uint32_t heir) {
    uint32_t n = 0;
    for (uint32_t c = 1; c < cpu_count(); ++c)
        if (c != k && c != heir && cpu_by_id(c)->counters.interrupts.load() != g_irqs[c]) ++n;
    return n;
}

} // namespace

KBENCH(hotplug) {
    if (cpu_count() < 2 || cpus_online() != cpu_count()) {
        log_warn("bench: hotplug needs two CPUs or more, all online");
        return;
    }
    const uint32_t k = cpu_count() - 1;
    uint64_t runs = param_u64("bench.hotplug_cycles", 200);
    if (runs == 0) runs = 1;
    if (runs > kMaxRuns) runs = kMaxRuns;
    uint32_t done = 0, worst_disturbed = 0;
    for (uint32_t i = 0; i < runs; ++i) {
        HotplugReport off, on;
        snapshot_irqs();
        const uint64_t t0 = monotonic_ns();
        if (cpu_offline(k, &off) != HotplugError::None) break;
        const uint64_t t1 = monotonic_ns();
        uint32_t d = disturbed(k, off.timer_cpu);
        snapshot_irqs();
        if (cpu_online(k, &on) != HotplugError::None) break;
        const uint64_t t2 = monotonic_ns();
        const uint32_t d_on = disturbed(k, kMaxCpus);
        if (d_on > d) d = d_on;
        if (d > worst_disturbed) worst_disturbed = d;
        g_off[done] = (t1 - t0) / 1000;
        g_on[done] = (t2 - t1) / 1000;
        g_cycle[done] = (t2 - t0) / 1000;
        ++done;
    }
    if (done == 0) {
        log_error("bench: hotplug: cpu%u could not be taken offline and back", k);
        return;
    }
    uint64_t median, p99, off_median, off_p99, on_median, on_p99;
    kbench::summarize(g_cycle, done, &median, &p99);
    kbench::summarize(g_off, done, &off_median, &off_p99);
    kbench::summarize(g_on, done, &on_median, &on_p99);
    console_printf("bench: {\"name\":\"hotplug.cycle\",\"cpus\":%u,\"median_us\":%lu,\"p99_us\":%lu,"
                   "\"offline_median_us\":%lu,\"online_median_us\":%lu,\"runs\":%u}\n",
                   cpu_count(), median, p99, off_median, on_median, done);
    console_printf("bench: {\"name\":\"hotplug.disturbed\",\"cpus\":%u,\"max_cpus\":%u,\"runs\":%u}\n",
                   cpu_count(), worst_disturbed, done);

    // Every CPU but cpu0, one after another, then back.
    const uint64_t t0 = monotonic_ns();
    uint32_t taken = 0;
    for (uint32_t c = cpu_count() - 1; c >= 1; --c)
        taken += cpu_offline(c) == HotplugError::None;
    const uint64_t t1 = monotonic_ns();
    for (uint32_t c = 1; c < cpu_count(); ++c)
        if (!cpu_by_id(c)->online.load()) (void)cpu_online(c);
    const uint64_t t2 = monotonic_ns();
    if (cpus_online() != cpu_count())
        log_error("bench: hotplug: only %u of %u CPUs came back", cpus_online(), cpu_count());
    console_printf("bench: {\"name\":\"hotplug.all_but_one\",\"cpus\":%u,\"offline_us\":%lu,"
                   "\"online_us\":%lu,\"runs\":%u}\n",
                   cpu_count(), (t1 - t0) / 1000, (t2 - t1) / 1000, taken);
}

} // namespace cohort
