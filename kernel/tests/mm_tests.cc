// Memory management: allocators under stress, stack guards, W^X, and RAM size.
#include <cstring>

#include "arch/x86/cpu_features.h"
#include "arch/x86/paging.h"
#include "boot/bootinfo.h"
#include "boot/params.h"
#include "debug/fault_catcher.h"
#include "debug/log.h"
#include "lib/memmap.h"
#include "mm/heap.h"
#include "mm/kstack.h"
#include "mm/layout.h"
#include "mm/phys.h"
#include "mm/pmm.h"
#include "mm/vmm.h"
#include "test/ktest.h"

namespace cohort {
namespace {

/// xorshift64: deterministic pseudo-random sequences for stress tests.
struct Rng {
    uint64_t s;
    uint64_t next() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        return s;
    }
    uint64_t below(uint64_t n) { return next() % n; }
};

uint64_t pattern_for(uint64_t addr, uint64_t i) { return (addr * 0x9e3779b97f4a7c15ull) ^ i; }

KTEST(mm, pmm_stress_with_patterns) {
    struct Block {
        uint64_t phys, pages;
    };
    static Block live[128];
    const uint64_t baseline = pmm::free_bytes();
    Rng rng{0x1234567};
    size_t n = 0;
    uint64_t bad = 0;
    auto release = [&](size_t i) {
        const uint64_t* words = phys_to_virt<uint64_t>(live[i].phys);
        for (uint64_t w = 0; w < live[i].pages * 512; w += 61)
            if (words[w] != pattern_for(live[i].phys, w)) ++bad;
        pmm::free_pages(live[i].phys, live[i].pages);
        live[i] = live[--n];
    };
    for (int op = 0; op < 6000; ++op) {
        if (n == 128 || (n > 0 && rng.below(2) == 0)) {
            release(rng.below(n));
            continue;
        }
        const uint64_t pages = 1 + rng.below(8);
        const uint64_t phys = pmm::alloc_pages(pages, rng.below(4) == 0 ? 4 : 1);
        KASSERT(phys != 0);
        uint64_t* words = phys_to_virt<uint64_t>(phys);
        for (uint64_t w = 0; w < pages * 512; w += 61) words[w] = pattern_for(phys, w);
        live[n++] = {phys, pages};
    }
    while (n > 0) release(n - 1);
    KEXPECT_EQ(bad, uint64_t{0});
    KEXPECT_EQ(pmm::free_bytes(), baseline);
}

KTEST(mm, heap_stress_with_patterns) {
    struct Obj {
        uint8_t* p;
        size_t size;
    };
    static Obj live[256];
    const auto before = heap_stats();
    const uint64_t free_before = pmm::free_bytes();
    Rng rng{0xfeedbeef};
    size_t n = 0;
    uint64_t bad = 0;
    auto release = [&](size_t i) {
        for (size_t b = 0; b < live[i].size; ++b)
            if (live[i].p[b] != static_cast<uint8_t>(reinterpret_cast<uint64_t>(live[i].p) + b)) {
                ++bad;
                break;
            }
        kfree(live[i].p);
        live[i] = live[--n];
    };
    for (int op = 0; op < 20000; ++op) {
        if (n == 256 || (n > 0 && rng.below(2) == 0)) {
            release(rng.below(n));
            continue;
        }
        // Mostly small objects, sometimes large ones that take whole pages.
        const size_t size = rng.below(8) == 0 ? 1 + rng.below(12000) : 1 + rng.below(256);
        auto* p = static_cast<uint8_t*>(kmalloc(size));
        KASSERT(p != nullptr);
        KEXPECT_EQ(reinterpret_cast<uint64_t>(p) % 16, uint64_t{0});
        for (size_t b = 0; b < size; ++b) p[b] = static_cast<uint8_t>(reinterpret_cast<uint64_t>(p) + b);
        live[n++] = {p, size};
    }
    while (n > 0) release(n - 1);
    const auto after = heap_stats();
    KEXPECT_EQ(bad, uint64_t{0});
    KEXPECT_EQ(after.objects, before.objects);
    KEXPECT_EQ(after.pages, before.pages);
    KEXPECT_EQ(after.errors, before.errors);
    KEXPECT_EQ(pmm::free_bytes(), free_before);
}

KTEST(mm, heap_reports_double_free) {
    const auto before = heap_stats();
    const uint64_t mark = log_mark();
    void* p = kmalloc(64);
    void* keep = kmalloc(64); // keeps the slab alive so the second free sees it
    KASSERT(p != nullptr && keep != nullptr);
    kfree(p);
    kfree(p);
    KEXPECT_EQ(heap_stats().errors, before.errors + 1);
    KEXPECT(log_contains_since(mark, "double free"));
    kfree(keep);
    KEXPECT_EQ(heap_stats().objects, before.objects);
}

KTEST(mm, heap_detects_write_after_free) {
    if (!param_bool("heap.poison", true)) return ktest::skip("heap.poison=0");
    const auto before = heap_stats();
    auto* keep = static_cast<uint8_t*>(kmalloc(96));
    auto* p = static_cast<uint8_t*>(kmalloc(96));
    KASSERT(p != nullptr && keep != nullptr);
    kfree(p);
    p[40] = 0x42; // the bug under test: a write through a dangling pointer
    auto* q = static_cast<uint8_t*>(kmalloc(96)); // the same slot comes back first
    KEXPECT_EQ(q, p);
    KEXPECT_EQ(heap_stats().errors, before.errors + 1);
    kfree(q);
    kfree(keep);
}

void touch_guard(void* arg) {
    const auto* s = static_cast<const KernelStack*>(arg);
    *reinterpret_cast<volatile uint64_t*>(s->bottom - 8) = 1;
}

KTEST(mm, stack_guard_page_is_reported) {
    KernelStack s = kstack_alloc(16 * 1024);
    KASSERT(s.valid());
    FaultInfo f{};
    KEXPECT(run_catching_faults(touch_guard, &s, &f));
    KEXPECT_EQ(f.vector, uint64_t{14});
    KEXPECT_EQ(f.cr2, s.bottom - 8);
    char why[128];
    KEXPECT(kstack_describe_guard(f.cr2, why, sizeof(why)));
    KEXPECT(!kstack_describe_guard(s.bottom, why, sizeof(why)));
    kstack_free(s);
}

volatile bool g_keep_recursing = true;
[[gnu::noinline]] uint64_t recurse(uint64_t depth) {
    volatile uint8_t frame[512];
    frame[0] = static_cast<uint8_t>(depth);
    if (!g_keep_recursing) return frame[0];
    return recurse(depth + 1) + frame[0];
}
void overflow_on(void* arg) {
    const auto* s = static_cast<const KernelStack*>(arg);
    asm volatile("movq %0, %%rsp\n\t"
                 "xorl %%edi, %%edi\n\t"
                 "call *%1"
                 :
                 : "r"(s->top), "r"(&recurse)
                 : "memory");
}

KTEST(mm, stack_overflow_is_a_reported_double_fault) {
    // Running off the end of a real stack: the #PF cannot be delivered on the broken stack,
    // so the CPU raises #DF, which runs on its own IST stack and is reported, not a triple fault.
    KernelStack s = kstack_alloc(8 * 1024);
    KASSERT(s.valid());
    const uint64_t mark = log_mark();
    FaultInfo f{};
    KEXPECT(run_catching_faults(overflow_on, &s, &f, /*quiet=*/false));
    KEXPECT_EQ(f.vector, uint64_t{8});
    KEXPECT(log_contains_since(mark, "kernel stack overflow"));
    kstack_free(s);
}

KTEST(mm, wx_audit_finds_no_violations) {
    const vmm::WxAudit a = vmm::audit_wx();
    ktest::note("%lu kernel leaf mappings checked", a.leaves_checked);
    KEXPECT(a.leaves_checked > 0);
    KEXPECT_EQ(a.writable_executable, uint64_t{0});
    KEXPECT_EQ(a.user_accessible, uint64_t{0});
}

KTEST(mm, wx_audit_catches_a_violation) {
    // The audit must be able to fail: plant one writable+executable page and look for it.
    const uint64_t frame = pmm::alloc_page();
    KASSERT(frame != 0);
    const uint64_t va = layout::kMmioAreaBase + layout::kMmioAreaSize - 0x200000;
    KASSERT(vmm::map(va, frame, layout::kPageSize, vmm::kWrite | vmm::kExec));
    const vmm::WxAudit a = vmm::audit_wx();
    KEXPECT_EQ(a.writable_executable, uint64_t{1});
    KEXPECT_EQ(a.first_bad_va, va);
    KEXPECT_EQ(vmm::unmap(va, layout::kPageSize), uint64_t{1});
    pmm::free_pages(frame);
    KEXPECT_EQ(vmm::audit_wx().writable_executable, uint64_t{0});
}

KTEST(mm, map_write_unmap_roundtrip) {
    const uint64_t frame = pmm::alloc_zeroed_page();
    KASSERT(frame != 0);
    const uint64_t va = layout::kMmioAreaBase + layout::kMmioAreaSize - 0x400000;
    KASSERT(vmm::map(va, frame, layout::kPageSize, vmm::kWrite));
    KEXPECT_EQ(vmm::translate(va + 8), frame + 8);
    *reinterpret_cast<volatile uint64_t*>(va + 8) = 0xabcdef;
    KEXPECT_EQ(phys_to_virt<uint64_t>(frame)[1], uint64_t{0xabcdef});
    KEXPECT(!vmm::map(va, frame + 4096, layout::kPageSize, vmm::kWrite)); // no silent remap
    KEXPECT_EQ(vmm::unmap(va, layout::kPageSize), uint64_t{1});
    FaultInfo f{};
    KEXPECT(run_catching_faults([](void* p) { (void)*static_cast<volatile uint64_t*>(p); },
                                reinterpret_cast<void*>(va), &f));
    pmm::free_pages(frame);
}

KTEST(mm, lower_half_mappings_are_not_global) {
    // A global lower-half entry would survive the CR3 reload that flushes that half, and show
    // through in private address spaces. The AP trampoline is the real user of such mappings;
    // this maps one page the same way, plus a kernel-half alias to show G is in use at all.
    const uint64_t frame = pmm::alloc_zeroed_page();
    KASSERT(frame != 0);
    const uint64_t low = 0x00007fffffe00000; // below the canonical end of the lower half
    const uint64_t high = layout::kMmioAreaBase + layout::kMmioAreaSize - 0x600000;
    KASSERT(vmm::map(low, frame, layout::kPageSize, vmm::kRead));
    KASSERT(vmm::map(high, frame, layout::kPageSize, vmm::kRead));
    const uint64_t* lo = x86::pt_walk(vmm::kernel_root(), low, 1, /*create=*/false);
    const uint64_t* hi = x86::pt_walk(vmm::kernel_root(), high, 1, /*create=*/false);
    KEXPECT(lo != nullptr && (*lo & x86::pte::kPresent));
    KEXPECT(hi != nullptr && (*hi & x86::pte::kPresent));
    if (lo != nullptr) KEXPECT_EQ(*lo & x86::pte::kGlobal, uint64_t{0});
    if (hi != nullptr && x86::boot_cpu_features().pge)
        KEXPECT_EQ(*hi & x86::pte::kGlobal, x86::pte::kGlobal);
    KEXPECT_EQ(vmm::unmap(low, layout::kPageSize), uint64_t{1});
    KEXPECT_EQ(vmm::unmap(high, layout::kPageSize), uint64_t{1});
    // Frees the page-table pages the lower-half mapping created (nothing else lives there).
    vmm::drop_low_half();
    KEXPECT_EQ(vmm::translate(low), UINT64_MAX);
    pmm::free_pages(frame);
}

void read_region_ends(void* arg) {
    const MemoryMap* map = static_cast<const MemoryMap*>(arg);
    for (const MemRegion& r : map->regions()) {
        if (r.type != MemType::Usable) continue;
        (void)*phys_to_virt<volatile uint8_t>(r.base);
        (void)*phys_to_virt<volatile uint8_t>(r.end() - 1);
    }
}

KTEST(mm, direct_map_covers_all_ram) {
    static MemoryMap map;
    map = g_boot_info.memmap;
    map.normalize();
    FaultInfo f{};
    KEXPECT(!run_catching_faults(read_region_ends, &map, &f, /*quiet=*/false));
}

KTEST(mm, ram_size_matches_the_machine) {
    uint64_t expected_mib = 0;
    if (params().get_u64("test.mem_mib", expected_mib) != CommandLine::Status::Ok)
        return ktest::skip("needs test.mem_mib=<QEMU -m in MiB>");
    static MemoryMap map;
    map = g_boot_info.memmap;
    map.normalize();
    const uint64_t usable = map.total(MemType::Usable);
    const uint64_t expected = expected_mib << 20;
    ktest::note("firmware reports %lu KiB usable of %lu MiB; allocator manages %lu KiB",
                usable >> 10, expected_mib, pmm::managed_bytes() >> 10);
    // Firmware keeps a little RAM for itself (legacy hole below 1 MiB, its own tables at the
    // top of low memory): everything else must be there, and never more than the machine has.
    KEXPECT(usable <= expected);
    KEXPECT(usable + (2ull << 20) >= expected);
    // What the allocator manages is the usable RAM minus the kernel, the low 1 MiB and the
    // allocator's own bitmap.
    KEXPECT(pmm::managed_bytes() <= usable);
    KEXPECT(pmm::managed_bytes() + (8ull << 20) >= usable);
}

KTEST(mm, kstacks_are_returned) {
    KernelStack stacks[8];
    // Warm-up round: page tables created for new stack slots stay (they are shared kernel
    // structure), so measure from the second round on.
    for (auto& s : stacks) s = kstack_alloc(32 * 1024);
    for (auto& s : stacks) kstack_free(s);
    const uint64_t free_before = pmm::free_bytes();
    const uint64_t in_use = kstack_in_use();
    for (auto& s : stacks) {
        s = kstack_alloc(32 * 1024);
        KASSERT(s.valid());
        *reinterpret_cast<volatile uint64_t*>(s.top - 8) = 1;
    }
    KEXPECT_EQ(kstack_in_use(), in_use + 8);
    for (auto& s : stacks) kstack_free(s);
    KEXPECT_EQ(kstack_in_use(), in_use);
    KEXPECT_EQ(pmm::free_bytes(), free_before);
}

} // namespace
} // namespace cohort
