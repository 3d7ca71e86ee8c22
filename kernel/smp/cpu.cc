#include "smp/cpu.h"


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

void install_cpu_data(CpuData* cpu) {
    cpu->self = cpu;
    cpu->magic = kCpuDataMagic;
    arch::set_cpu_base(cpu);
}

uint32_t cpu_count() { return g_cpu_count; }
CpuData* cpu_by_id(uint32_t id) { return id < g_cpu_count ? g_cpus[id] : nullptr; }
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
