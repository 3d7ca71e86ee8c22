#include "boot/params.h"

#include "debug/log.h"

namespace cohort {

namespace {
CommandLine g_cmdline;
bool g_ready = false;

// Every option the kernel understands. Add new ones here (and to README.md).
constexpr ParamInfo kKnown[] = {
    {"test", "run in-kernel tests: comma-separated globs, or `all`"},
    {"bench", "run in-kernel benchmarks (ipi, tlb, locks; globs), print JSON lines, exit"},
    {"exit", "exit the emulator after booting (1) instead of idling"},
    {"loglevel", "error | warn | info | debug"},
    {"boot.trace", "1: log where boot time went, step by step, at info level (debug logs it too)"},
    {"panic", "`halt` keeps a panicked machine alive for a debugger instead of exiting"},
    {"ubsan", "`panic` stops at the first undefined-behaviour report (default: report)"},
    {"apic", "`xapic` forbids x2APIC mode even when the CPU has it"},
    {"heap.poison", "fill freed heap objects with a pattern and check it (default: on)"},
    {"test.mem_mib", "RAM size (MiB) QEMU was given, checked by mm.ram_size_matches"},
    {"test.expect_cpus", "CPUs the machine has (enabled in the MADT), checked by smp tests"},
    {"test.expect_disabled", "CPUs the MADT lists as not enabled, checked by smp tests"},
    {"acpi.rsdp", "physical address of the RSDP, for firmware that does not pass it"},
    {"test.expect_acpi_root", "rsdt | xsdt: the root table the firmware should give (acpi tests)"},
    {"test.expect_acpi_fallback", "the tables are expected to be unusable (acpi tests)"},
    {"test.expect_numa_nodes", "NUMA nodes QEMU was given (acpi tests)"},
    {"test.expect_numa_distance", "SLIT distance between different nodes (acpi tests)"},
    {"test.numa_cpus", "each NUMA node's CPUs as QEMU was told, '/' between nodes (numa tests)"},
    {"test.numa_mem", "each NUMA node's MiB as QEMU was told, '/' between nodes (numa tests)"},
    {"test.numa_dist", "the NUMA distance matrix QEMU was given, rows split by '/' (numa tests)"},
    {"test.expect_topology", "SxCxT: the sockets, cores and threads QEMU was given (sched tests)"},
    {"test.expect_cpu_has", "CPUID features the QEMU CPU model has, e.g. xsave,smep (cpu tests)"},
    {"test.expect_cpu_lacks", "CPUID features the QEMU CPU model lacks, e.g. smap (cpu tests)"},
    {"sched.placement", "spread (default): idle cores first; pack: beside running work"},
    {"tlb.disable_shootdown", "only the initiating CPU flushes (shows the coherency tests fail)"},
    {"tlb.lazy", "0: kernel threads load the kernel's address space instead of keeping the last one"},
    {"tlb.lazy_skip_gen_check", "1: a lazy CPU skips its flush check on return (shows the test fail)"},
    {"ipi.rate_limit", "0 turns off the per-source limit on remote calls (on by default)"},
    {"ipi.budget_pct", "share of each millisecond a CPU may spend running remote calls (50)"},
    {"ipi.source_pct", "share of that budget one sending CPU may use (50)"},
    {"ipi.window_us", "the rate limit's window (default: 1000, longer where interrupts are slow)"},
    {"pcid", "0: do not use PCIDs even where the CPU has them"},
    {"lapic.timer", "oneshot or deadline (TSC-deadline, the default where the CPU has it)"},
    {"sched.stats", "log one line of scheduler statistics per CPU when a test or bench run ends"},
    {"sched.ready_timeout_ms", "how long the boot CPU waits for every AP's scheduler (2000)"},
    {"bench.scale_ms", "bench=scale: time per operation (default 200 + 2 per CPU)"},
    {"bench.scale_ops", "bench=scale: only these operations (comma-separated)"},
    {"bench.numa_ms", "bench=numa: how long each node's task runs (default 300)"},
    {"bench.numa_spread_ms", "bench=numa: how long the two-node spread may take (10000)"},
    {"bench.lock_rounds", "bench=locks: rounds in which the locks take turns (default 5)"},
    {"cpu.offline", "CPUs to take offline once booted, e.g. 2,5-7 (CPU hotplug)"},
    {"hotplug.timeout_ms", "how long an offline or online may take before it is an error (2000)"},
    {"test.hotplug_cycles", "offline/online cycles of one CPU in the hotplug test (200)"},
    {"stress.hotplug_seconds", "how long CPUs go offline and back under load in test=stress.* (10)"},
    {"bench.hotplug_cycles", "bench=hotplug: offline/online cycles measured (default 200)"},
    {"cpu.hotplug", "auto | on | off: ACPI CPU hot-add and hot-remove (auto: with hot-add slots)"},
    {"smp.hotplug_slots", "at most this many CPU ids kept for CPUs plugged in later (ACPI)"},
    {"test.acpi_adds", "CPUs the host adds in hotplug.acpi_cpus_come_and_go_under_load (6)"},
    {"test.acpi_removes", "CPUs the host removes in that test (5)"},
    {"test.acpi_timeout_s", "how long that test waits for the host's steps (300)"},
    {"test.acpi_wait_host", "that test ends only after a '!' from the host on the serial port"},
    {"test.acpi_load", "that test runs its call and scheduler load meanwhile (default 1)"},
    {"security.ipi_source_check", "refuse remote calls whose slot names another sender or a CPU that is not up (default 1; 0 for tests)"},
    {"security.cpu_private", "take each CPU's private pages out of the direct map (default 1; 0 for tests)"},
    {"security.cr_pinning", "pin CR0.WP, CR4.SMEP/SMAP/UMIP and EFER.NXE (default 1; 0 for tests)"},
    {"security.audit", "record configuration writes in each CPU's audit ring (default 1)"},
    {"ipi.broadcast", "0: never use the all-but-self IPI shorthand"},
    {"ipi.cluster", "0: multicasts send one IPI per CPU even in x2APIC mode (not per cluster)"},
    {"smp.max_cpus", "start at most this many CPUs (including the boot CPU)"},
    {"smp.timeout_ms", "one timeout for the whole AP bring-up (default 1000)"},
    {"smp.online_capable", "also start CPUs the MADT marks online-capable"},
    {"smp.inject_stall", "APICID[@longmode|tables|features|lapic]: that AP stops there (tests)"},
    {"smp.inject_feature_mismatch", "APICID: that AP acts as if it lacked MCE and XSAVE (tests)"},
    {"smp.inject_tsc_warp", "CPU: move that AP's TSC ahead to test the warp check (tests)"},
    {"smp.inject_trampoline_corruption", "corrupt the trampoline copy to test the check (tests)"},
};
} // namespace

const ParamInfo* params_known(size_t* count) {
    *count = sizeof(kKnown) / sizeof(kKnown[0]);
    return kKnown;
}

size_t params_warn_unknown(const CommandLine& cmdline) {
    size_t unknown = 0;
    for (const CmdlineArg& a : cmdline.args()) {
        bool known = false;
        for (const ParamInfo& p : kKnown) known = known || a.key == p.key;
        if (!known) {
            ++unknown;
            log_warn("cmdline: unknown option '%.*s' ignored (README.md lists the options)",
                     static_cast<int>(a.key.size()), a.key.data());
        }
    }
    return unknown;
}

void params_init(const char* text) {
    if (!g_cmdline.parse(text)) log_warn("cmdline: %s", g_cmdline.error());
    params_warn_unknown(g_cmdline);
    g_ready = true;
}

const CommandLine& params() { return g_cmdline; }
bool params_ready() { return g_ready; }

uint64_t param_u64(std::string_view key, uint64_t fallback) {
    uint64_t v = 0;
    switch (g_cmdline.get_u64(key, v)) {
    case CommandLine::Status::Ok: return v;
    case CommandLine::Status::Absent: return fallback;
    case CommandLine::Status::Invalid: break;
    }
    log_warn("cmdline: %.*s needs a number (decimal, 0x hex, K/M/G suffix); using %lu",
             static_cast<int>(key.size()), key.data(), fallback);
    return fallback;
}

bool param_bool(std::string_view key, bool fallback) {
    bool v = false;
    switch (g_cmdline.get_bool(key, v)) {
    case CommandLine::Status::Ok: return v;
    case CommandLine::Status::Absent: return fallback;
    case CommandLine::Status::Invalid: break;
    }
    log_warn("cmdline: %.*s needs 0/1, yes/no, on/off or true/false; using %s",
             static_cast<int>(key.size()), key.data(), fallback ? "on" : "off");
    return fallback;
}

} // namespace cohort
