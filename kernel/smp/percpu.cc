#include "smp/percpu.h"

#include <cstring>

#include "debug/log.h"
#include "mm/heap.h"
#include "mm/phys.h"
#include "mm/pmm.h"
#include "sync/spinlock.h"
#include "sync/lock_ranks.h"

extern "C" char __percpu_start[], __percpu_end[];

namespace cohort {

namespace {
char* g_template = nullptr; // pristine copy of .percpu, taken before anyone wrote to it
size_t g_static_size = 0;
LockClass g_percpu_class{"per-CPU areas", rank::kPercpu, LockScope::MachineWide};
SpinLock g_lock{&g_percpu_class};
size_t g_dynamic_used COHORT_GUARDED_BY(g_lock) = 0;

constexpr size_t kPage = 4096;
// Whole pages straight from the page allocator: the run-time pool gets at least
// kPerCpuDynamicSize and whatever else the last page holds. (Through kmalloc the area would be
// rounded up to a power of two: 32 KiB a CPU, and every such page is memory an emulator must
// back, which at 255 CPUs measurably slowed boot.)
size_t area_pages() { return (g_static_size + kPerCpuDynamicSize + kPage - 1) / kPage; }
size_t area_size() { return area_pages() * kPage; }
} // namespace

void percpu_init_boot_cpu() {
    g_static_size = static_cast<size_t>(__percpu_end - __percpu_start);
    g_template = static_cast<char*>(kmalloc(g_static_size + 1));
    if (g_template == nullptr) return;
    memcpy(g_template, __percpu_start, g_static_size);
    if (!percpu_setup(this_cpu(), 0)) log_error("percpu: no memory for the boot CPU's area");
}

bool percpu_setup(CpuData* cpu, uint32_t node) {
    const uint64_t phys = pmm::alloc_pages_node(node, area_pages());
    if (phys == 0 || g_template == nullptr) return false;
    auto* area = phys_to_virt<char>(phys);
    memcpy(area, g_template, g_static_size);
    memset(area + g_static_size, 0, area_size() - g_static_size);
    cpu->percpu_offset = reinterpret_cast<uintptr_t>(area) - reinterpret_cast<uintptr_t>(__percpu_start);
    return true;
}

size_t percpu_alloc(size_t size, size_t align) {
    Guard<SpinLock, IrqSave> guard(g_lock);
    size_t offset = (g_static_size + g_dynamic_used + align - 1) / align * align;
    if (offset == 0) offset = align; // 0 means "invalid" to PerCpu
    if (offset + size > area_size()) return 0;
    g_dynamic_used = offset + size - g_static_size;
    // percpu_setup zeroed every CPU's pool and the pool is never reused, so it is already zero.
    return offset;
}

} // namespace cohort
