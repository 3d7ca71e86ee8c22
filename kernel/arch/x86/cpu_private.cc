#include "arch/x86/cpu_private.h"

#include <cstring>

#include "arch/x86/cpu_features.h"
#include "arch/x86/cpu_stacks.h"
#include "arch/x86/gdt.h"
#include "arch/x86/paging.h"
#include "boot/params.h"
#include "debug/log.h"
#include "lib/format.h"
#include "mm/layout.h"
#include "mm/phys.h"
#include "mm/pmm.h"
#include "mm/vmm.h"
#include "smp/cpu.h"
#include "smp/cpu_private.h"

namespace cohort::x86 {

namespace {

constexpr uint64_t kPage = layout::kPageSize;
constexpr unsigned kPrivateSlot = (layout::kCpuPrivateBase >> 39) & 511;
static_assert(kPrivateSlot == 510, "the CPU-private slot is the one below the kernel image's");
constexpr uint64_t kIstPages = kIstStackSize / kPage;
static_assert(kIstStackSize + kPage == layout::kCpuPrivateIstStride, "guard + stack per IST");
static_assert(layout::kCpuPrivateIstBase + kIstCount * layout::kCpuPrivateIstStride + kPage <=
                  layout::kCpuPrivateData, "a guard page between the IST stacks and the data");
// The tables block: the CPU's top-level table, then the slot's PDPT, PD and PT.
constexpr uint64_t kTablePages = 4;

uint64_t data_pages() {
    const uint64_t bytes = static_cast<uint64_t>(__cpu_private_end - __cpu_private_start);
    return bytes == 0 ? 1 : (bytes + kPage - 1) / kPage;
}

uint64_t* table(uint64_t phys) { return phys_to_virt<uint64_t>(phys); }

// Private pages: non-global would drop them at every CR3 write for nothing; global is right
// because on any one CPU the mapping never changes (INIT empties the TLB of a restarted CPU).
uint64_t leaf(uint64_t phys) {
    return phys | pte::kPresent | pte::kWrite | pte::kNx |
           (boot_cpu_features().pge ? pte::kGlobal : 0);
}

} // namespace

bool cpu_private_enforced() {
    static const bool on = param_bool("security.cpu_private", true);
    return on;
}

uint64_t cpu_private_ist_top(int i) {
    return layout::kCpuPrivateIstBase + uint64_t(i) * layout::kCpuPrivateIstStride +
           layout::kCpuPrivateIstStride;
}

bool cpu_private_setup(CpuData& cpu) {
    const uint64_t data = data_pages();
    if (layout::kCpuPrivateData + data * kPage > layout::kCpuPrivateBase + layout::kCpuPrivateSize) {
        log_error("vmm: %lu pages of CPU-private variables do not fit the private region", data);
        return false;
    }
    const uint64_t priv_pages = kIstCount * kIstPages + data;
    const uint64_t tables = pmm::alloc_pages_node(cpu.node, kTablePages);
    const uint64_t priv = tables == 0 ? 0 : pmm::alloc_pages_node(cpu.node, priv_pages);
    if (priv == 0) {
        if (tables != 0) pmm::free_pages(tables, kTablePages);
        log_error("vmm: no memory for cpu%u's own page tables and private pages", cpu.cpu_id);
        return false;
    }
    memset(table(tables), 0, kTablePages * kPage);
    uint64_t* root = table(tables);
    uint64_t* pdpt = table(tables + kPage);
    uint64_t* pd = table(tables + 2 * kPage);
    uint64_t* pt = table(tables + 3 * kPage);
    // The kernel half as in the master table (those entries never change after boot), except
    // this CPU's own slot.
    memcpy(root + 256, table(vmm::kernel_root()) + 256, 256 * sizeof(uint64_t));
    root[kPrivateSlot] = (tables + kPage) | pte::kPresent | pte::kWrite;
    pdpt[(layout::kCpuPrivateBase >> 30) & 511] = (tables + 2 * kPage) | pte::kPresent | pte::kWrite;
    pd[(layout::kCpuPrivateBase >> 21) & 511] = (tables + 3 * kPage) | pte::kPresent | pte::kWrite;
    auto map = [&](uint64_t va, uint64_t phys) { pt[(va >> 12) & 511] = leaf(phys); };
    map(layout::kCpuPrivateRoot, tables);
    uint64_t next = priv;
    for (int i = 0; i < kIstCount; ++i)
        for (uint64_t p = 0; p < kIstPages; ++p, next += kPage)
            map(cpu_private_ist_top(i) - kIstStackSize + p * kPage, next);
    // The CPU-private variables start as the image's template (their initial values).
    uint8_t* vars = phys_to_virt<uint8_t>(next);
    memset(vars, 0, data * kPage);
    memcpy(vars, __cpu_private_start, static_cast<size_t>(__cpu_private_end - __cpu_private_start));
    for (uint64_t p = 0; p < data; ++p, next += kPage) map(layout::kCpuPrivateData + p * kPage, next);

    cpu.page_root = tables;
    cpu.private_phys = priv;
    cpu.private_pages = static_cast<uint32_t>(priv_pages);
    if (!cpu_private_enforced()) return true;
    // From here on only this CPU writes them: the stacks and variables leave the direct map,
    // the tables stay readable there (translations and the W^X audit walk them).
    if (!vmm::direct_map_restrict(priv, priv_pages, /*read_only=*/false) ||
        !vmm::direct_map_restrict(tables, kTablePages, /*read_only=*/true)) {
        log_error("vmm: cannot take cpu%u's private pages out of the direct map", cpu.cpu_id);
        return false;
    }
    return true;
}

uint32_t cpu_private_owner(uint64_t phys, const char** what) {
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        const CpuData* cpu = cpu_lookup(c);
        if (cpu == nullptr || cpu->page_root == 0) continue;
        if (phys >= cpu->private_phys && phys < cpu->private_phys + cpu->private_pages * kPage) {
            *what = phys - cpu->private_phys < kIstCount * kIstPages * kPage ? "IST stack"
                                                                              : "private variables";
            return c;
        }
        if (phys >= cpu->page_root && phys < cpu->page_root + kTablePages * kPage) {
            *what = "page tables";
            return c;
        }
    }
    return UINT32_MAX;
}

bool cpu_private_describe(uint64_t addr, char* buf, size_t size) {
    if (addr >= layout::kCpuPrivateBase && addr < layout::kCpuPrivateBase + layout::kCpuPrivateSize) {
        for (int i = 0; i < kIstCount; ++i) {
            const uint64_t guard = cpu_private_ist_top(i) - kIstStackSize - kPage;
            if (addr >= guard && addr < guard + kPage) {
                format(buf, size, " (the guard page below IST stack %d: it overflowed)", i + 1);
                return true;
            }
        }
        format(buf, size, " (in the CPU-private region, outside what it maps)");
        return true;
    }
    if (addr < layout::kDirectMapBase || addr >= layout::kDirectMapBase + layout::kDirectMapSize)
        return false;
    const char* what = nullptr;
    const uint32_t owner = cpu_private_owner(addr - layout::kDirectMapBase, &what);
    if (owner == UINT32_MAX) return false;
    format(buf, size, " (cpu%u's %s: CPU-private, no other CPU may write them)", owner, what);
    return true;
}

} // namespace cohort::x86
