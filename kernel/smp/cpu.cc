#include "smp/cpu.h"

#include "arch/x86/cpu.h"

namespace cohort {

CpuData g_bsp_cpu_data;

void install_cpu_data(CpuData* cpu) {
    cpu->self = cpu;
    cpu->magic = kCpuDataMagic;
    x86::wrmsr(x86::msr::kGsBase, reinterpret_cast<uint64_t>(cpu));
}

} // namespace cohort
