// Kernel page tables (implements mm/vmm.h).
#include "arch/x86/paging.h"

#include <atomic>
#include <cstring>

#include "arch/arch.h"
#include "arch/x86/cpu.h"
#include "arch/x86/cpu_features.h"
#include "debug/log.h"
#include "debug/panic.h"
#include "mm/layout.h"
#include "mm/phys.h"
#include "mm/pmm.h"
#include "mm/vmm.h"
#include "mm/address_space.h"
#include "smp/cpu.h"
#include "smp/tlb.h"
#include "sync/spinlock.h"
#include "sync/tas_lock.h"
#include "sync/lock_ranks.h"

extern "C" const char __text_start[], __text_end[], __rodata_start[], __rodata_end[];
extern "C" const char __data_start[], __bss_end[], __ksymtab_start[], __kernel_end[];

namespace cohort {

namespace {

using namespace x86;
constexpr uint64_t kPage = layout::kPageSize;
constexpr uint64_t k2M = 2ull << 20;
constexpr uint64_t k1G = 1ull << 30;

LockClass g_pt_class{"kernel page tables", rank::kKernelPageTables, LockScope::MachineWide};
TasLock g_pt_lock{&g_pt_class}; // every kernel-half page-table change (machine-wide: no convoy)
uint64_t g_kernel_root = 0;
// Page-table pages below the roots, kernel and private spaces alike: memory that "back to
// baseline" checks must account for (kernel-half tables, once made, are kept for good).
std::atomic<int64_t> g_table_pages{0};
uint64_t g_global_bit = 0;
uint64_t g_mmio_next = layout::kMmioAreaBase;

uint64_t* table(uint64_t phys) { return phys_to_virt<uint64_t>(phys); }
unsigned index(uint64_t va, int level) { return (va >> (12 + 9 * (level - 1))) & 0x1ff; }

// One past the last canonical lower-half address (48-bit virtual addresses).
constexpr uint64_t kLowerHalfEnd = 0x0000800000000000;

uint64_t leaf_bits(uint64_t va, uint32_t prot) {
    // Lower-half entries must never be global: a full flush of that half is a CR3 reload, which
    // leaves global entries in the TLB, and a global entry would also show through in every
    // private address space that maps something else there.
    uint64_t bits = pte::kPresent | (va >= layout::kKernelHalf ? g_global_bit : 0);
    if (prot & vmm::kWrite) bits |= pte::kWrite;
    if (!(prot & vmm::kExec)) bits |= pte::kNx;
    if (prot & vmm::kUncached) bits |= pte::kPcd | pte::kPwt;
    return bits;
}

/// Returns the entry for `va` at `level` (1 = PT ... 4 = PML4), creating intermediate tables
/// when asked. nullptr if a table is missing (and not created) or a huge page is in the way.
uint64_t* walk(uint64_t root, uint64_t va, int level, bool create) {
    uint64_t* t = table(root);
    for (int l = 4; l > level; --l) {
        uint64_t& e = t[index(va, l)];
        if (!(e & pte::kPresent)) {
            if (!create) return nullptr;
            const uint64_t fresh = pmm::alloc_zeroed_page();
            if (fresh == 0) return nullptr;
            g_table_pages.fetch_add(1, std::memory_order_relaxed);
            // Intermediate entries are permissive; the leaf decides access rights.
            e = fresh | pte::kPresent | pte::kWrite;
        } else if (e & pte::kHuge) {
            return nullptr;
        }
        t = table(e & pte::kAddrMask);
    }
    return &t[index(va, level)];
}

bool map_one(uint64_t root, uint64_t va, uint64_t pa, uint64_t bits, uint64_t size) {
    const int level = size == k1G ? 3 : size == k2M ? 2 : 1;
    uint64_t* e = walk(root, va, level, true);
    if (e == nullptr) {
        log_error("vmm: cannot map %#lx: out of memory or a huge page is in the way", va);
        return false;
    }
    const uint64_t want = (pa & pte::kAddrMask) | bits | (level > 1 ? pte::kHuge : 0);
    if ((*e & pte::kPresent) && *e != want) {
        log_error("vmm: %#lx is already mapped to %#lx; refusing to replace it with %#lx", va,
                  *e & pte::kAddrMask, pa);
        return false;
    }
    *e = want;
    return true;
}

/// Maps a range using the largest pages alignment allows (for the direct map).
bool map_range_large(uint64_t root, uint64_t va, uint64_t pa, uint64_t size, uint64_t bits) {
    const bool gb_pages = boot_cpu_features().pdpe1gb;
    while (size > 0) {
        uint64_t step = kPage;
        if (gb_pages && (va % k1G) == 0 && (pa % k1G) == 0 && size >= k1G) step = k1G;
        else if ((va % k2M) == 0 && (pa % k2M) == 0 && size >= k2M) step = k2M;
        if (!map_one(root, va, pa, bits, step)) return false;
        va += step;
        pa += step;
        size -= step;
    }
    return true;
}

bool direct_mapped_type(MemType t) {
    return t == MemType::Usable || t == MemType::AcpiReclaimable || t == MemType::AcpiNvs ||
           t == MemType::Kernel || t == MemType::Trampoline;
}

void map_image_part(uint64_t root, const char* start, const char* end, uint32_t prot) {
    const uint64_t va = reinterpret_cast<uint64_t>(start);
    const uint64_t size = reinterpret_cast<uint64_t>(end) - va;
    for (uint64_t off = 0; off < size; off += kPage)
        if (!map_one(root, va + off, kernel_image_virt_to_phys(start) + off, leaf_bits(va, prot),
                     kPage))
            panic("vmm: cannot map the kernel image at %#lx", va + off);
}

void audit_table(uint64_t phys, int level, uint64_t va_base, vmm::WxAudit& out) {
    const uint64_t* t = table(phys);
    for (unsigned i = 0; i < 512; ++i) {
        const uint64_t e = t[i];
        if (!(e & pte::kPresent)) continue;
        uint64_t va = va_base + (uint64_t(i) << (12 + 9 * (level - 1)));
        if (level == 4) va |= (i >= 256) ? 0xffff000000000000ull : 0;
        if (level == 4 && i < 256) continue; // user half: not the kernel's business here
        if (level == 1 || (e & pte::kHuge)) {
            ++out.leaves_checked;
            const bool bad_wx = (e & pte::kWrite) && !(e & pte::kNx);
            const bool bad_user = (e & pte::kUser) != 0;
            if (bad_wx) ++out.writable_executable;
            if (bad_user) ++out.user_accessible;
            if ((bad_wx || bad_user) && out.first_bad_va == 0) out.first_bad_va = va;
        } else {
            audit_table(e & pte::kAddrMask, level - 1, va, out);
        }
    }
}

} // namespace

namespace x86 {
uint64_t* pt_walk(uint64_t root, uint64_t va, int level, bool create) {
    return walk(root, va, level, create);
}

void pt_free_tree(uint64_t phys, int level) {
    if (level > 1) {
        const uint64_t* t = table(phys);
        for (unsigned i = 0; i < 512; ++i)
            if ((t[i] & pte::kPresent) && !(t[i] & pte::kHuge))
                pt_free_tree(t[i] & pte::kAddrMask, level - 1);
    }
    pmm::free_pages(phys);
    g_table_pages.fetch_sub(1, std::memory_order_relaxed);
}

bool is_kernel_address_mapped(uint64_t va) {
    const uint64_t* t = table(read_cr3() & pte::kAddrMask);
    for (int level = 4; level >= 1; --level) {
        const uint64_t e = t[index(va, level)];
        if (!(e & pte::kPresent)) return false;
        if (level == 1 || (e & pte::kHuge)) return true;
        t = table(e & pte::kAddrMask);
    }
    return false;
}
} // namespace x86

namespace vmm {

void init(const MemoryMap& map) {
    if (boot_cpu_features().pge) g_global_bit = pte::kGlobal;
    // Below 4 GiB: the AP trampoline loads CR3 while still in 32-bit mode.
    const uint64_t root = pmm::alloc_pages(1, 1, 1ull << 32);
    if (root == 0) panic("vmm: no memory below 4 GiB for the kernel page tables");
    memset(table(root), 0, kPage);
    // Every kernel-half PML4 slot gets its PDPT now and keeps it forever: address spaces
    // created later copy these 256 entries and so see every future kernel mapping.
    for (unsigned i = 256; i < 512; ++i) {
        const uint64_t pdpt = pmm::alloc_zeroed_page();
        if (pdpt == 0) panic("vmm: no memory for the kernel page tables");
        table(root)[i] = pdpt | pte::kPresent | pte::kWrite;
    }

    // Direct map: the low 1 MiB (BIOS data, legacy RSDP area, trampoline) plus every region
    // that is RAM. Device ranges stay out so no MMIO page gets a cacheable alias.
    const uint64_t data_bits = leaf_bits(layout::kDirectMapBase, kRead | kWrite);
    uint64_t run_start = 0, run_end = 1ull << 20;
    auto flush_run = [&] {
        if (run_end > run_start &&
            !map_range_large(root, layout::kDirectMapBase + run_start, run_start,
                             run_end - run_start, data_bits))
            panic("vmm: cannot build the direct map");
    };
    for (const MemRegion& r : map.regions()) {
        if (!direct_mapped_type(r.type)) continue;
        const uint64_t start = r.base & ~(kPage - 1);
        const uint64_t end = (r.end() + kPage - 1) & ~(kPage - 1);
        if (end > layout::kDirectMapSize) {
            log_warn("vmm: RAM above %lu TiB is not mapped", layout::kDirectMapSize >> 40);
            continue;
        }
        if (start <= run_end) {
            if (end > run_end) run_end = end;
        } else {
            flush_run();
            run_start = start;
            run_end = end;
        }
    }
    flush_run();

    // The kernel image, section by section: code RX, read-only data R, data RW, all NX but code.
    map_image_part(root, __text_start, __text_end, kRead | kExec);
    map_image_part(root, __rodata_start, __rodata_end, kRead);
    map_image_part(root, __data_start, __bss_end, kRead | kWrite);
    map_image_part(root, __ksymtab_start, __kernel_end, kRead);

    g_kernel_root = root;
    address_space_init_kernel(root);
    write_cr3(root);
}

uint64_t kernel_root() { return g_kernel_root; }

bool map(uint64_t va, uint64_t pa, uint64_t size, uint32_t prot) {
    if (va >= layout::kCpuPrivateBase && va < layout::kCpuPrivateBase + (1ull << 39)) {
        // Each CPU's own slot (arch/x86/cpu_private.cc): the shared tables do not reach it.
        log_error("vmm: %#lx is in the CPU-private slot; map it with cpu_private_setup", va);
        return false;
    }
    Guard<TasLock, IrqSave> guard(g_pt_lock);
    for (uint64_t off = 0; off < size; off += kPage)
        if (!map_one(g_kernel_root, va + off, pa + off, leaf_bits(va + off, prot), kPage))
            return false;
    return true;
}

namespace {
uint64_t clear_ptes(uint64_t va, uint64_t size) {
    uint64_t n = 0;
    Guard<TasLock, IrqSave> guard(g_pt_lock);
    for (uint64_t off = 0; off < size; off += kPage) {
        uint64_t* e = walk(g_kernel_root, va + off, 1, false);
        if (e == nullptr || !(*e & pte::kPresent)) continue;
        *e = 0;
        ++n;
    }
    return n;
}
} // namespace

namespace {
// Splits the large pages on the way to `va` (1 GiB, then 2 MiB) into tables of the next size
// with the same frames and attributes, and returns its 4 KiB entry; `split` is set if it split
// anything. Under g_pt_lock. The old and new translations are identical, so a CPU using
// either meanwhile reads the same memory; the caller flushes before it changes any attribute.
uint64_t* split_to_4k(uint64_t root, uint64_t va, bool* split) {
    uint64_t* t = table(root);
    for (int l = 4; l > 1; --l) {
        uint64_t& e = t[index(va, l)];
        if (!(e & pte::kPresent)) return nullptr;
        if (l < 4 && (e & pte::kHuge)) {
            const uint64_t fresh = pmm::alloc_zeroed_page();
            if (fresh == 0) return nullptr;
            g_table_pages.fetch_add(1, std::memory_order_relaxed);
            const uint64_t span = l == 3 ? k1G : k2M, child = l == 3 ? k2M : kPage;
            const uint64_t base = e & pte::kAddrMask & ~(span - 1);
            uint64_t bits = e & ~pte::kAddrMask; // present, write, global, NX, caching
            if (child == kPage) bits &= ~pte::kHuge; // bit 7 of a 4 KiB entry is PAT
            uint64_t* fresh_table = table(fresh);
            for (unsigned i = 0; i < 512; ++i) fresh_table[i] = (base + i * child) | bits;
            __atomic_store_n(&e, fresh | pte::kPresent | pte::kWrite, __ATOMIC_RELEASE);
            *split = true;
        }
        t = table(e & pte::kAddrMask);
    }
    return &t[index(va, 1)];
}
} // namespace

bool direct_map_restrict(uint64_t phys, uint64_t pages, bool read_only) {
    // Boot only (every CPU's private region is made before any AP runs): the flushes below
    // are this CPU's alone.
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        if (c != this_cpu()->cpu_id && cpu_by_id(c)->online.load(std::memory_order_acquire)) {
            log_error("vmm: direct_map_restrict with cpu%u running: only at boot", c);
            return false;
        }
    }
    const uint64_t va = layout::kDirectMapBase + phys;
    bool split = false;
    {
        Guard<TasLock, IrqSave> guard(g_pt_lock);
        for (uint64_t i = 0; i < pages; ++i) {
            if (split_to_4k(g_kernel_root, va + i * kPage, &split) == nullptr) {
                log_error("vmm: cannot split the direct map at %#lx (out of memory)", va + i * kPage);
                return false;
            }
        }
    }
    // The SDM's rule for a page-size change: a CPU may hold the large and the small
    // translation of one address at once, so no attribute may differ between them until the
    // large one is gone. Drop every translation, global ones included, before changing any.
    if (split) arch::tlb_flush_all();
    {
        Guard<TasLock, IrqSave> guard(g_pt_lock);
        for (uint64_t i = 0; i < pages; ++i) {
            uint64_t* e = walk(g_kernel_root, va + i * kPage, 1, false);
            *e = read_only ? (*e & ~pte::kWrite) : 0;
        }
    }
    for (uint64_t i = 0; i < pages; ++i) invlpg(va + i * kPage);
    return true;
}

uint64_t unmap(uint64_t va, uint64_t size) {
    const uint64_t n = clear_ptes(va, size);
    // Every CPU may cache kernel translations: shoot them down everywhere (with the lock
    // dropped and interrupts on, since the others may be waiting for us to answer a call).
    if (n != 0) tlb_shootdown(va < layout::kKernelHalf ? &kernel_address_space() : nullptr, va, va + size);
    return n;
}

uint64_t unmap_batched(uint64_t va, uint64_t size, TlbBatch& batch) {
    const uint64_t n = clear_ptes(va, size);
    if (n != 0) batch.add(va, va + size);
    return n;
}

void drop_low_half() {
    uint64_t tables[256];
    unsigned n = 0;
    {
        Guard<TasLock, IrqSave> guard(g_pt_lock);
        uint64_t* root = table(g_kernel_root);
        for (unsigned i = 0; i < 256; ++i) {
            if (!(root[i] & pte::kPresent)) continue;
            tables[n++] = root[i] & pte::kAddrMask;
            root[i] = 0;
        }
    }
    if (n == 0) return;
    // Other CPUs' paging-structure caches may still point into these tables: flush them all
    // before the pages can be reused.
    tlb_shootdown(&kernel_address_space(), 0, kLowerHalfEnd);
    for (unsigned i = 0; i < n; ++i) pt_free_tree(tables[i], 3);
}

uint64_t trampoline_root_create(uint64_t code_page, uint64_t data_page) {
    const uint64_t root = pmm::alloc_pages(1, 1, 1ull << 32);
    if (root == 0) return 0;
    g_table_pages.fetch_add(1, std::memory_order_relaxed);
    uint64_t* t = table(root);
    memset(t, 0, kPage);
    {
        // The kernel half's top-level entries never change after vmm::init (all 256 slots were
        // populated then), so a copy stays in step.
        Guard<TasLock, IrqSave> guard(g_pt_lock);
        const uint64_t* kernel = table(g_kernel_root);
        for (unsigned i = 256; i < 512; ++i) t[i] = kernel[i];
    }
    if (!map_one(root, code_page, code_page, leaf_bits(code_page, kRead | kExec), kPage) ||
        !map_one(root, data_page, data_page, leaf_bits(data_page, kRead | kWrite), kPage)) {
        trampoline_root_destroy(root);
        return 0;
    }
    return root;
}

void trampoline_root_destroy(uint64_t root) {
    uint64_t* t = table(root);
    for (unsigned i = 0; i < 256; ++i)
        if (t[i] & pte::kPresent) pt_free_tree(t[i] & pte::kAddrMask, 3);
    pmm::free_pages(root);
    g_table_pages.fetch_sub(1, std::memory_order_relaxed);
}

int64_t page_table_pages() { return g_table_pages.load(std::memory_order_relaxed); }

uint64_t translate(uint64_t va) {
    const uint64_t* t = table(g_kernel_root != 0 ? g_kernel_root : (read_cr3() & pte::kAddrMask));
    for (int level = 4; level >= 1; --level) {
        const uint64_t e = t[index(va, level)];
        if (!(e & pte::kPresent)) return UINT64_MAX;
        if (level == 1 || (e & pte::kHuge)) {
            const uint64_t page_mask = (1ull << (12 + 9 * (level - 1))) - 1;
            return (e & pte::kAddrMask & ~page_mask) | (va & page_mask);
        }
        t = table(e & pte::kAddrMask);
    }
    return UINT64_MAX;
}

void* map_device(uint64_t pa, uint64_t size, uint32_t prot) {
    const uint64_t first = pa & ~(kPage - 1);
    const uint64_t len = ((pa + size + kPage - 1) & ~(kPage - 1)) - first;
    uint64_t va;
    {
        Guard<TasLock, IrqSave> guard(g_pt_lock);
        if (g_mmio_next + len > layout::kMmioAreaBase + layout::kMmioAreaSize) return nullptr;
        va = g_mmio_next;
        g_mmio_next += len + kPage; // one unmapped page between mappings catches overruns
    }
    if (!map(va, first, len, prot & ~kExec)) return nullptr;
    return reinterpret_cast<void*>(va + (pa - first));
}

WxAudit audit_wx() {
    WxAudit out{};
    Guard<TasLock, IrqSave> guard(g_pt_lock);
    audit_table(read_cr3() & pte::kAddrMask, 4, 0, out);
    return out;
}

} // namespace vmm
} // namespace cohort
