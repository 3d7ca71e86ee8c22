// Memory management: allocators under stress, stack guards, W^X, and RAM size.
#include <atomic>
#include <cstring>

#include "arch/x86/cpu_features.h"
#include "arch/x86/paging.h"
#include "boot/bootinfo.h"
#include "boot/params.h"
#include "debug/fault_catcher.h"
#include "debug/log.h"
#include "lib/memmap.h"
#include "mm/caches.h"
#include "mm/heap.h"
#include "mm/kstack.h"
#include "mm/layout.h"
#include "mm/phys.h"
#include "mm/pmm.h"
#include "mm/vmm.h"
#include "sched/sched.h"
#include "smp/cpu.h"
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
    mm_drain_caches();
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
    mm_drain_caches();
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
    // allocator's own metadata (about 9.3 bytes per 4 KiB frame up to the top of RAM).
    KEXPECT(pmm::managed_bytes() <= usable);
    KEXPECT(pmm::managed_bytes() + pmm::metadata_bytes() + (8ull << 20) >= usable);
}

KTEST(mm, kstacks_are_returned) {
    KernelStack stacks[8];
    // Warm-up round: page tables created for new stack slots stay (they are shared kernel
    // structure), so measure from the second round on.
    for (auto& s : stacks) s = kstack_alloc(32 * 1024);
    for (auto& s : stacks) kstack_free(s);
    kstack_purge(); // freed stacks wait for a batch of 32 before they are unmapped
    const uint64_t free_before = pmm::free_bytes();
    const uint64_t in_use = kstack_in_use();
    for (auto& s : stacks) {
        s = kstack_alloc(32 * 1024);
        KASSERT(s.valid());
        *reinterpret_cast<volatile uint64_t*>(s.top - 8) = 1;
    }
    KEXPECT_EQ(kstack_in_use(), in_use + 8);
    for (auto& s : stacks) kstack_free(s);
    KEXPECT_EQ(kstack_stats().awaiting_purge, uint64_t{8});
    kstack_purge();
    KEXPECT_EQ(kstack_in_use(), in_use);
    KEXPECT_EQ(pmm::free_bytes(), free_before);
}

// --- per-CPU caches -----------------------------------------------------------------------

bool frames_conserved(const char* when) {
    const pmm::Stats st = pmm::stats();
    if (st.managed == st.free + st.cached + st.used) return true;
    ktest::note("%s: managed %lu != free %lu + cached %lu + used %lu", when, st.managed, st.free,
                st.cached, st.used);
    return false;
}

struct CacheChurn {
    std::atomic<uint64_t> failures{0};
};

// Allocates blocks of every cached size, frees most of them here and leaves the rest in the
// cache of whichever CPU frees them later (every CPU frees its neighbour's).
void churn_pages(void* arg) {
    auto& c = *static_cast<CacheChurn*>(arg);
    static uint64_t held[kMaxCpus][8];
    const uint32_t me = this_cpu()->cpu_id;
    Rng rng{0x5eed + me};
    for (int round = 0; round < 200; ++round) {
        uint64_t blocks[16];
        uint64_t counts[16];
        for (int i = 0; i < 16; ++i) {
            counts[i] = uint64_t{1} << rng.below(5);
            blocks[i] = pmm::alloc_pages(counts[i]);
            if (blocks[i] == 0) c.failures.fetch_add(1);
            else *phys_to_virt<uint64_t>(blocks[i]) = me;
        }
        for (int i = 0; i < 16; ++i) {
            if (blocks[i] == 0) continue;
            if (*phys_to_virt<uint64_t>(blocks[i]) != me) c.failures.fetch_add(1);
            pmm::free_pages(blocks[i], counts[i]);
        }
    }
    for (int i = 0; i < 8; ++i) held[me][i] = pmm::alloc_page();
    // Wait for the neighbour to have allocated its pages, then free them here.
    static std::atomic<uint32_t> ready{0};
    ready.fetch_add(1);
    while (ready.load() % cpus_online() != 0) sleep_for(1'000'000);
    uint32_t next = me;
    do next = (next + 1) % cpu_count(); while (!cpu_by_id(next)->online.load());
    for (int i = 0; i < 8; ++i)
        if (held[next][i] != 0) pmm::free_pages(held[next][i]);
}

KTEST(mm, page_caches_conserve_every_frame) {
    KEXPECT(frames_conserved("at the start"));
    static CacheChurn c;
    c.failures = 0;
    KEXPECT(ktest::run_on_all_cpus(churn_pages, &c));
    KEXPECT_EQ(c.failures.load(), uint64_t{0});
    // Quiescent: the caches hold what the CPUs freed, and the sum still closes.
    const pmm::Stats mid = pmm::stats();
    KEXPECT(mid.cached > 0);
    KEXPECT(frames_conserved("after the churn"));
    const uint64_t drained = pmm::drain_cpu_caches();
    const pmm::Stats after = pmm::stats();
    KEXPECT_EQ(after.cached, uint64_t{0});
    KEXPECT_EQ(drained, mid.cached);
    KEXPECT_EQ(after.free, mid.free + mid.cached);
    KEXPECT(frames_conserved("after the drain"));
}

// Memory nearly gone while other CPUs' caches hold frames: allocation must drain them (without
// stopping those CPUs) before it reports failure.
KTEST(mm, allocation_under_pressure_drains_every_cache_first) {
    if (cpus_online() < 2) return ktest::skip("needs a second CPU whose cache holds frames");
    mm_drain_caches();
    static CacheChurn c;
    c.failures = 0;
    KEXPECT(ktest::run_on_all_cpus([](void*) {
        uint64_t p[8];
        for (uint64_t& x : p) x = pmm::alloc_page();
        for (uint64_t x : p)
            if (x != 0) pmm::free_pages(x);
    }, &c));
    const pmm::Stats before = pmm::stats();
    KASSERT(before.cached > 0);
    // Take every frame from here, chaining them through their own first word.
    uint64_t head = 0, got = 0;
    for (;;) {
        const uint64_t f = pmm::alloc_page();
        if (f == 0) break;
        *phys_to_virt<uint64_t>(f) = head;
        head = f;
        ++got;
    }
    const pmm::Stats empty = pmm::stats();
    while (head != 0) {
        const uint64_t next = *phys_to_virt<uint64_t>(head);
        pmm::free_pages(head);
        head = next;
    }
    ktest::note("%lu frames free and %lu cached before; %lu allocated", before.free, before.cached, got);
    // Every free frame, the cached ones included, was handed out before the first failure.
    KEXPECT_EQ(got, before.free + before.cached);
    KEXPECT_EQ(empty.cached, uint64_t{0});
    KEXPECT_EQ(empty.free, uint64_t{0});
    KEXPECT(frames_conserved("after the refill"));
}

constexpr uint64_t kSecret = 0x5ec7e75ec7e7ull;

struct StackProbe {
    uint64_t bottom = 0, top = 0, slot = 0;
    uint64_t secrets_found = 0; // the previous owner's words found on the stack
    bool write_secret = false;
};

void stack_probe(void* arg) {
    auto& p = *static_cast<StackProbe*>(arg);
    const Task* t = current_task();
    p.bottom = t->stack.bottom;
    p.top = t->stack.top;
    p.slot = t->stack.slot;
    uint64_t here;
    const uint64_t sp = reinterpret_cast<uint64_t>(&here);
    if (p.write_secret) {
        // Leave a secret all over the unused part of the stack for the next owner to find.
        for (uint64_t a = p.bottom; a + 8 <= sp - 256; a += 8) *reinterpret_cast<volatile uint64_t*>(a) = kSecret;
        return;
    }
    // (The task's own start-up calls wrote below this frame too, so only the secret counts.)
    for (uint64_t a = p.bottom; a + 8 <= p.top; a += 8)
        if (*reinterpret_cast<volatile uint64_t*>(a) == kSecret) ++p.secrets_found;
}

KTEST(mm, stack_from_cpu_cache_is_clean_and_keeps_its_guard) {
    CpuMask here;
    here.set(this_cpu()->cpu_id);
    StackProbe first, second;
    first.write_secret = true;
    const KstackStats s0 = kstack_stats();
    Task* a = task_create(stack_probe, &first, {.name = "stack/a", .affinity = &here});
    KASSERT(a != nullptr);
    task_join(a);
    Task* b = task_create(stack_probe, &second, {.name = "stack/b", .affinity = &here});
    KASSERT(b != nullptr);
    task_join(b);
    const KstackStats s1 = kstack_stats();
    // The second task ran on the stack the first one left in this CPU's cache...
    KEXPECT_EQ(second.slot, first.slot);
    KEXPECT_EQ(second.bottom, first.bottom);
    KEXPECT(s1.cache_hits > s0.cache_hits);
    KEXPECT_EQ(s1.purges, s0.purges); // ...with no unmap and no shootdown in between
    // ...found none of the first task's data on it...
    KEXPECT_EQ(second.secrets_found, uint64_t{0});
    // ...and the guard region below it is still unmapped (an overflow still faults), while the
    // stack's own pages are mapped.
    KEXPECT_EQ(vmm::translate(second.bottom - layout::kPageSize), UINT64_MAX);
    KEXPECT_EQ(vmm::translate(second.bottom - 2 * layout::kPageSize), UINT64_MAX);
    for (uint64_t va = second.bottom; va < second.top; va += layout::kPageSize)
        KEXPECT(vmm::translate(va) != UINT64_MAX);
}

KTEST(mm, drained_stacks_are_unmapped_in_one_purge) {
    // A burst of tasks leaves more dead stacks than the caches keep: the rest wait for a purge,
    // and a drain unmaps them all with one shootdown.
    mm_drain_caches();
    const KstackStats s0 = kstack_stats();
    KEXPECT_EQ(s0.cached, uint64_t{0});
    KEXPECT_EQ(s0.awaiting_purge, uint64_t{0});
    constexpr int kTasks = 12;
    Task* t[kTasks];
    StackProbe probes[kTasks];
    CpuMask here;
    here.set(this_cpu()->cpu_id);
    for (int i = 0; i < kTasks; ++i) {
        t[i] = task_create(stack_probe, &probes[i], {.name = "stack/n", .affinity = &here});
        KASSERT(t[i] != nullptr);
    }
    for (Task* x : t) task_join(x);
    const KstackStats s1 = kstack_stats();
    KEXPECT(s1.cached >= 1);
    // Every slot the burst added belongs to a dead task: cached, or waiting for the purge.
    KEXPECT_EQ(s1.cached + s1.awaiting_purge, s1.slots_in_use - s0.slots_in_use);
    const uint64_t purges = s1.purges;
    mm_drain_caches();
    const KstackStats s2 = kstack_stats();
    KEXPECT_EQ(s2.cached, uint64_t{0});
    KEXPECT_EQ(s2.awaiting_purge, uint64_t{0});
    KEXPECT_EQ(s2.purges, purges + 1);
    KEXPECT_EQ(s2.slots_in_use, s0.slots_in_use);
    for (const StackProbe& p : probes) KEXPECT_EQ(vmm::translate(p.top - 8), UINT64_MAX);
}

} // namespace
} // namespace cohort
