#include "smp/cpu.h"

#include "debug/panic.h"
#include "debug/symbols.h"


namespace cohort {

CpuData g_bsp_cpu_data;

namespace {
CpuData* g_bsp_only[1] = {&g_bsp_cpu_data};
CpuData** g_cpus = g_bsp_only;
uint32_t g_cpu_count = 1;
std::atomic<uint32_t> g_online{1};
} // namespace

const char* boot_stage_name(BootStage s) {
    switch (s) {
    case BootStage::NotStarted: return "not started";
    case BootStage::InitSent: return "INIT sent";
    case BootStage::SipiSent: return "SIPI sent (never reached 64-bit code)";
    case BootStage::LongMode: return "64-bit entry";
    case BootStage::Tables: return "GDT/IDT/TSS loaded";
    case BootStage::Features: return "CPU features checked";
    case BootStage::Lapic: return "local APIC enabled";
    case BootStage::Online: return "online";
    case BootStage::FeatureMismatch: return "refused: CPU features differ from the boot CPU";
    case BootStage::Stalled: return "stalled on request (smp.inject_stall)";
    case BootStage::Offline: return "offline (halted until started again)";
    case BootStage::Absent: return "absent (an empty hot-add slot)";
    }
    return "?";
}

COHORT_NO_STACK_PROTECTOR void install_cpu_data(CpuData* cpu) {
    cpu->self = cpu;
    cpu->magic = kCpuDataMagic;
    arch::set_cpu_base(cpu);
}

uint32_t cpu_count() { return g_cpu_count; }

namespace {

[[noreturn, gnu::cold, gnu::noinline]] void bad_access(const char* what, uint32_t id,
                                                       uint64_t detail, const void* caller) {
    uint64_t off = 0;
    const char* fn = symbolize(reinterpret_cast<uint64_t>(caller), &off);
    panic("cpu access: %s (cpu id %u, %#lx), from %s+%#lx", what, id, detail, fn ? fn : "?", off);
}

inline CpuData* checked(uint32_t id, const void* caller, bool may_be_missing) {
    if (id >= g_cpu_count) [[unlikely]] {
        if (may_be_missing) return nullptr;
        bad_access("no such CPU", id, g_cpu_count, caller);
    }
    CpuData* c = g_cpus[id];
    if (c == nullptr || c->magic != kCpuDataMagic || c->cpu_id != id) [[unlikely]]
        bad_access("its data is not live (stale or overwritten)", id,
                   c != nullptr ? c->magic : 0, caller);
    return c;
}

} // namespace

CpuData* cpu_by_id(uint32_t id) { return checked(id, __builtin_return_address(0), false); }
CpuData* cpu_lookup(uint32_t id) { return checked(id, __builtin_return_address(0), true); }

const CpuData* cpu_validate(const CpuData* cpu) {
    if (cpu == nullptr || cpu->magic != kCpuDataMagic || cpu->self != cpu) [[unlikely]]
        bad_access("a pointer that is not a live CPU's data", cpu != nullptr ? cpu->cpu_id : ~0u,
                   reinterpret_cast<uint64_t>(cpu), __builtin_return_address(0));
    return cpu;
}

CpuData* cpu_running(uint32_t id) {
    CpuData* c = checked(id, __builtin_return_address(0), false);
    if (c->online.load(std::memory_order_acquire)) return c;
    // Not counted online: coming up (between INIT and online) or going down (marked offline,
    // not parked yet) is still running; absent, parked or never started is not.
    const BootStage s = c->boot_stage.load(std::memory_order_acquire);
    const bool coming_up = s == BootStage::InitSent || s == BootStage::SipiSent ||
                           s == BootStage::LongMode || s == BootStage::Tables ||
                           s == BootStage::Features || s == BootStage::Lapic;
    const bool going_down = s == BootStage::Online;
    if (!coming_up && !going_down) [[unlikely]]
        bad_access(s == BootStage::Offline  ? "the CPU is offline"
                   : s == BootStage::Absent ? "the CPU's slot is empty"
                                            : "the CPU is not running",
                   id, static_cast<uint64_t>(s), __builtin_return_address(0));
    return c;
}
uint32_t cpus_online() { return g_online.load(std::memory_order_acquire); }

namespace detail {
void set_cpu_table(CpuData** table, uint32_t count) {
    g_cpus = table;
    g_cpu_count = count;
}
void mark_online(CpuData* cpu) {
    cpu->online.store(true, std::memory_order_release);
    g_online.fetch_add(1, std::memory_order_acq_rel);
}
void mark_offline(CpuData* cpu) {
    cpu->online.store(false, std::memory_order_seq_cst);
    g_online.fetch_sub(1, std::memory_order_acq_rel);
}
} // namespace detail

} // namespace cohort
