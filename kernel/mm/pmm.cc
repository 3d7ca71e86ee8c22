#include "mm/pmm.h"

#include <atomic>
#include <cstring>

#include "arch/arch.h"
#include "debug/log.h"
#include "debug/panic.h"
#include "mm/buddy.h"
#include "mm/layout.h"
#include "mm/page_cache.h"
#include "mm/phys.h"
#include "smp/cpu.h"
#include "smp/percpu.h"
#include "sync/lock_ranks.h"
#include "sync/spinlock.h"
#include "sync/tas_lock.h"

namespace cohort::pmm {

namespace {
LockClass g_pmm_class{"page allocator", rank::kPageAllocator, LockScope::MachineWide};
// Statistics off: each CPU takes only its own cache's lock, and shared counters would put one
// machine-wide cache line back on that path.
LockClass g_pcp_class{"page CPU cache", rank::kPageCpuCache, LockScope::PerCpu, false};
constexpr uint64_t kPage = layout::kPageSize;
constexpr uint64_t kEarlyLimit = 4ull << 30; // the early direct map covers only this much

/// A pool of physical memory with its own buddy lists and lock. There is one; zone_for() is
/// the only place that chooses, so per-node zones (NUMA) change that function and init().
struct Zone {
    TasLock lock{&g_pmm_class}; // behind the CPU caches: rare, and must not convoy (tas_lock.h)
    BuddyAllocator buddy COHORT_GUARDED_BY(lock);
};
Zone g_zone;

Zone& zone_for(uint32_t /*cpu*/) { return g_zone; }

/// One CPU's cache and its counters. The lock is almost always uncontended: only the owner
/// takes it, except a CPU that drains every cache because memory ran out.
struct alignas(64) CpuPages {
    SpinLock lock{&g_pcp_class};
    PageCache cache COHORT_GUARDED_BY(lock);
    // Frames callers got and gave back on this CPU, any path. Written only by the owner with
    // interrupts off (no locked instruction needed), read by anyone.
    std::atomic<uint64_t> allocated{0};
    std::atomic<uint64_t> freed{0};
};
COHORT_PERCPU(CpuPages, g_cpu_pages);
std::atomic<bool> g_caches_on{false};
// Before the caches are on (one CPU, early boot) allocations are counted here.
std::atomic<uint64_t> g_early_allocated{0}, g_early_freed{0};

// One bit per frame, set while a caller holds it. Catches a double free at the moment it
// happens even when the block would only go into a CPU cache (where the buddy lists cannot
// see it). Atomic read-modify-write: frames in one word may belong to several CPUs.
std::atomic<uint64_t>* g_held = nullptr;
uint64_t g_frames = 0;
uint64_t g_metadata_bytes = 0;

uint64_t word_mask(uint64_t first, uint64_t count) {
    return count >= 64 ? ~uint64_t{0} : ((uint64_t{1} << count) - 1) << first;
}

// Marks [f, f+count) held (held=true) or released; returns false if any frame was already in
// that state (nothing is changed for the words after the first bad one; the caller panics).
bool mark(uint64_t f, uint64_t count, bool held) {
    while (count > 0) {
        const uint64_t bit = f % 64;
        const uint64_t n = count < 64 - bit ? count : 64 - bit;
        const uint64_t m = word_mask(bit, n);
        std::atomic<uint64_t>& w = g_held[f / 64];
        const uint64_t old = held ? w.fetch_or(m, std::memory_order_relaxed)
                                  : w.fetch_and(~m, std::memory_order_relaxed);
        if (held ? (old & m) != 0 : (old & m) != m) return false;
        f += n;
        count -= n;
    }
    return true;
}

void account(bool alloc, uint64_t frames) {
    if (!g_caches_on.load(std::memory_order_relaxed)) {
        (alloc ? g_early_allocated : g_early_freed).fetch_add(frames, std::memory_order_relaxed);
        return;
    }
    // Interrupts are off here (the callers' guards), so this CPU is the only writer.
    std::atomic<uint64_t>& c = alloc ? per_cpu(g_cpu_pages).allocated : per_cpu(g_cpu_pages).freed;
    c.store(c.load(std::memory_order_relaxed) + frames, std::memory_order_relaxed);
}

uint32_t pool_take(void* ctx, uint32_t order, uint64_t* out, uint32_t n) {
    Zone& z = *static_cast<Zone*>(ctx);
    Guard<TasLock, NoIrq> g(z.lock);
    uint32_t got = 0;
    while (got < n) {
        const uint64_t f = z.buddy.alloc_block(order);
        if (f == BuddyAllocator::kNone) break;
        out[got++] = f;
    }
    return got;
}

void pool_give(void* ctx, uint32_t order, const uint64_t* blocks, uint32_t n) {
    Zone& z = *static_cast<Zone*>(ctx);
    Guard<TasLock, NoIrq> g(z.lock);
    for (uint32_t i = 0; i < n; ++i)
        if (!z.buddy.free(blocks[i], uint64_t{1} << order))
            panic("pmm: a CPU cache held frame %#lx (order %u) that the allocator says is free",
                  blocks[i] * kPage, order);
}

PageCache::Pool pool_of(Zone& z) { return {pool_take, pool_give, &z}; }

// Blocks the CPU caches serve: naturally aligned power-of-two runs of up to 16 pages.
bool cacheable(uint64_t count, uint64_t align, uint64_t limit) {
    return g_caches_on.load(std::memory_order_relaxed) && limit == UINT64_MAX && count <= 16 &&
           (count & (count - 1)) == 0 && align <= count && (count % align) == 0;
}
uint32_t order_of(uint64_t count) { return static_cast<uint32_t>(__builtin_ctzll(count)); }

uint64_t alloc_direct(uint64_t count, uint64_t align, uint64_t limit_frame) {
    Zone& z = zone_for(this_cpu()->cpu_id);
    Guard<TasLock, NoIrq> g(z.lock);
    return z.buddy.alloc(count, align, limit_frame);
}
} // namespace

void init(MemoryMap& map) {
    const uint64_t top = map.highest_usable_end();
    if (top == 0) panic("pmm: the memory map has no usable RAM");
    uint64_t frames = top / kPage;
    if (frames > BuddyAllocator::kMaxFrames) {
        log_warn("pmm: RAM above %lu GiB is not used (the allocator indexes frames with 32 bits)",
                 (BuddyAllocator::kMaxFrames * kPage) >> 30);
        frames = BuddyAllocator::kMaxFrames;
    }
    const uint64_t meta_bytes = (BuddyAllocator::metadata_bytes(frames) + 63) / 64 * 64;
    const uint64_t held_bytes = (frames + 63) / 64 * 8;
    const uint64_t pages = (meta_bytes + held_bytes + kPage - 1) / kPage;

    // The metadata needs a home before any allocator exists: the first usable region below the
    // early mapping limit that is large enough.
    uint64_t meta_phys = 0;
    for (const MemRegion& r : map.regions()) {
        if (r.type != MemType::Usable || r.base >= kEarlyLimit) continue;
        const uint64_t end = r.end() < kEarlyLimit ? r.end() : kEarlyLimit;
        if (end - r.base >= pages * kPage) {
            meta_phys = r.base;
            break;
        }
    }
    if (meta_phys == 0)
        panic("pmm: no usable region below 4 GiB can hold the %lu KiB of allocator metadata",
              pages * kPage / 1024);

    auto* meta = phys_to_virt<unsigned char>(meta_phys);
    memset(meta + meta_bytes, 0, held_bytes);
    g_held = reinterpret_cast<std::atomic<uint64_t>*>(meta + meta_bytes);
    g_frames = frames;
    g_metadata_bytes = pages * kPage;
    Guard<TasLock, IrqSave> guard(g_zone.lock);
    BuddyAllocator& b = g_zone.buddy;
    b.init(meta, frames);
    // Top of memory first, a largest block at a time: the last pushed is the first handed out,
    // so allocation starts at the lowest frames, right above the kernel image, and climbs. Not
    // at the top of RAM, where firmware ran its code during POST (SeaBIOS relocates itself
    // there): under TCG the first write to a page that held executed code invalidates its
    // translations on every vCPU, measured at up to 100 ms a page with 255 vCPUs.
    constexpr uint64_t kChunk = uint64_t{1} << BuddyAllocator::kMaxOrder;
    const auto& regions = map.regions();
    for (size_t i = regions.size(); i-- > 0;) {
        const MemRegion& r = regions[i];
        if (r.type != MemType::Usable) continue;
        const uint64_t first = r.base / kPage, end = (r.base + r.length) / kPage;
        for (uint64_t hi = end; hi > first;) {
            const uint64_t lo = hi - 1 - (hi - 1) % kChunk < first ? first : hi - 1 - (hi - 1) % kChunk;
            b.add_free_range(lo, hi - lo);
            hi = lo;
        }
    }
    b.reserve_range(meta_phys / kPage, pages);
    map.reserve(meta_phys, pages * kPage, MemType::Kernel);
    log_info("pmm: %lu MiB usable in %lu frames; buddy metadata %lu KiB at %#lx",
             (b.free_frames() * kPage) >> 20, b.free_frames(), pages * kPage / 1024, meta_phys);
}

void enable_cpu_caches() {
    const uint32_t cpus = cpu_count();
    // At most an eighth of memory may sit in CPU caches, however many CPUs there are.
    const uint64_t budget = managed_bytes() / kPage / 8 / (cpus ? cpus : 1);
    for (uint32_t c = 0; c < cpus; ++c) {
        CpuData* cpu = cpu_by_id(c);
        if (cpu == nullptr) continue;
        CpuPages& cp = per_cpu_on(cpu, g_cpu_pages);
        Guard<SpinLock, IrqSave> g(cp.lock);
        cp.cache.configure(budget < 256 ? budget : 256);
    }
    g_caches_on.store(true, std::memory_order_release);
    log_info("pmm: per-CPU page caches on (up to %lu frames each)", budget < 256 ? budget : 256);
}

uint64_t drain_cpu_caches() {
    if (!g_caches_on.load(std::memory_order_acquire)) return 0;
    uint64_t frames = 0;
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        CpuData* cpu = cpu_by_id(c);
        if (cpu == nullptr) continue;
        CpuPages& cp = per_cpu_on(cpu, g_cpu_pages);
        Guard<SpinLock, IrqSave> g(cp.lock);
        frames += cp.cache.drain(pool_of(zone_for(c)));
    }
    return frames;
}

uint64_t alloc_pages(uint64_t count, uint64_t align_pages, uint64_t limit) {
    if (count == 0 || align_pages == 0) return 0;
    uint64_t f = BuddyAllocator::kNone;
    arch::IrqOff irq; // stay on this CPU: its cache and counters are used below
    if (cacheable(count, align_pages, limit)) {
        CpuPages& cp = per_cpu(g_cpu_pages);
        Guard<SpinLock, NoIrq> g(cp.lock);
        f = cp.cache.alloc(order_of(count), pool_of(zone_for(this_cpu()->cpu_id)));
    }
    const uint64_t limit_frame = limit == UINT64_MAX ? BuddyAllocator::kNone : limit / kPage;
    if (f == BuddyAllocator::kNone) f = alloc_direct(count, align_pages, limit_frame);
    if (f == BuddyAllocator::kNone && drain_cpu_caches() != 0)
        f = alloc_direct(count, align_pages, limit_frame); // what the caches held may fit
    if (f == BuddyAllocator::kNone) return 0;
    if (!mark(f, count, true))
        panic("pmm: handed out %lu page(s) at %#lx that a caller still holds", count, f * kPage);
    account(true, count);
    return f * kPage;
}

uint64_t alloc_page() { return alloc_pages(1); }

uint64_t alloc_zeroed_page() {
    const uint64_t p = alloc_page();
    if (p != 0) memset(phys_to_virt<void>(p), 0, kPage);
    return p;
}

void free_pages(uint64_t phys, uint64_t count) {
    const uint64_t f = phys / kPage;
    if ((phys % kPage) != 0 || count == 0 || f >= g_frames || count > g_frames - f ||
        !mark(f, count, false))
        panic("pmm: free of %lu page(s) at %#lx that are not allocated (double free?)", count,
              phys);
    arch::IrqOff irq;
    account(false, count);
    if (cacheable(count, 1, UINT64_MAX) && f % count == 0) {
        CpuPages& cp = per_cpu(g_cpu_pages);
        Guard<SpinLock, NoIrq> g(cp.lock);
        cp.cache.free(f, order_of(count), pool_of(zone_for(this_cpu()->cpu_id)));
        return;
    }
    Zone& z = zone_for(this_cpu()->cpu_id);
    Guard<TasLock, NoIrq> g(z.lock);
    if (!z.buddy.free(f, count))
        panic("pmm: free of %lu page(s) at %#lx refused by the allocator", count, phys);
}

Stats stats() {
    Stats s;
    {
        Guard<TasLock, IrqSave> guard(g_zone.lock);
        s.managed = g_zone.buddy.managed_frames();
        s.free = g_zone.buddy.free_frames();
    }
    uint64_t allocated = g_early_allocated.load(std::memory_order_relaxed);
    uint64_t freed = g_early_freed.load(std::memory_order_relaxed);
    if (g_caches_on.load(std::memory_order_acquire)) {
        for (uint32_t c = 0; c < cpu_count(); ++c) {
            CpuData* cpu = cpu_by_id(c);
            if (cpu == nullptr) continue;
            CpuPages& cp = per_cpu_on(cpu, g_cpu_pages);
            {
                Guard<SpinLock, IrqSave> g(cp.lock);
                s.cached += cp.cache.cached_frames();
            }
            allocated += cp.allocated.load(std::memory_order_relaxed);
            freed += cp.freed.load(std::memory_order_relaxed);
        }
    }
    s.used = allocated - freed;
    return s;
}

uint64_t free_bytes() {
    const Stats s = stats();
    return (s.free + s.cached) * kPage;
}
uint64_t metadata_bytes() { return g_metadata_bytes; }

uint64_t managed_bytes() {
    Guard<TasLock, IrqSave> guard(g_zone.lock);
    return g_zone.buddy.managed_frames() * kPage;
}

} // namespace cohort::pmm
