#include "mm/pmm.h"

#include <atomic>
#include <cstring>
#include <new>

#include "arch/arch.h"
#include "debug/log.h"
#include "debug/panic.h"
#include "mm/buddy.h"
#include "mm/layout.h"
#include "mm/page_cache.h"
#include "mm/phys.h"
#include "numa/numa.h"
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

/// A pool of physical memory with its own buddy lists and lock: all memory at boot, then one
/// per NUMA node that has memory (split_by_node). The buddy numbers frames from `base`, a
/// multiple of its largest block, so block alignment is the same in both numberings.
struct Zone {
    TasLock lock{&g_pmm_class}; // behind the CPU caches: rare, and must not convoy (tas_lock.h)
    BuddyAllocator buddy COHORT_GUARDED_BY(lock);
    uint64_t base = 0;
    uint32_t node = 0;
};
Zone g_boot_zone;
// By node once split (nullptr: a node without memory); before, node 0 is the boot zone.
Zone* g_zones[numa::kMaxNodes] = {&g_boot_zone};
std::atomic<bool> g_split{false};

// The node whose zone frame `f` belongs to.
uint32_t node_of_frame(uint64_t f) {
    if (!g_split.load(std::memory_order_acquire)) return 0;
    const uint32_t n = numa_map().node_of_address(f * layout::kPageSize);
    return n == numa::kNoNode ? 0 : n;
}
Zone& zone_of_frame(uint64_t f) {
    Zone* z = g_zones[node_of_frame(f)];
    // Only memory the node map places on a node with memory is ever handed out.
    if (z == nullptr) panic("pmm: frame %#lx is on no node with memory", f * layout::kPageSize);
    return *z;
}

// Where `cpu`'s allocations come from first: its node, or the nearest node with memory.
uint32_t home_node(const CpuData* cpu) {
    if (!g_split.load(std::memory_order_acquire)) return 0;
    const uint32_t n = numa_map().nearest_node_with_memory(cpu->node);
    return n == numa::kNoNode ? 0 : n;
}

/// One CPU's cache and its counters. The lock is almost always uncontended: only the owner
/// takes it, except a CPU that drains every cache because memory ran out.
struct alignas(64) CpuPages {
    SpinLock lock{&g_pcp_class};
    PageCache cache COHORT_GUARDED_BY(lock);
    // Frames callers got and gave back on this CPU, any path. Written only by the owner with
    // interrupts off (no locked instruction needed), read by anyone.
    std::atomic<uint64_t> allocated{0};
    std::atomic<uint64_t> freed{0};
    // The same by the frames' node, from the split on (for the per-node conservation check).
    std::atomic<uint64_t> node_allocated[numa::kMaxNodes] = {};
    std::atomic<uint64_t> node_freed[numa::kMaxNodes] = {};
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

// Frames callers held when the memory was split by node, per node: the start of each node's
// "used" count.
uint64_t g_adopted[numa::kMaxNodes] = {};
// Frames allocated or freed by each node before the caches were on (after the split).
std::atomic<uint64_t> g_early_node_allocated[numa::kMaxNodes], g_early_node_freed[numa::kMaxNodes];

void bump(std::atomic<uint64_t>& c, uint64_t n) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

void account(bool alloc, uint64_t frames, uint32_t node) {
    const bool split = g_split.load(std::memory_order_relaxed);
    if (!g_caches_on.load(std::memory_order_relaxed)) {
        (alloc ? g_early_allocated : g_early_freed).fetch_add(frames, std::memory_order_relaxed);
        if (split)
            (alloc ? g_early_node_allocated : g_early_node_freed)[node].fetch_add(
                frames, std::memory_order_relaxed);
        return;
    }
    // Interrupts are off here (the callers' guards), so this CPU is the only writer.
    CpuPages& cp = per_cpu(g_cpu_pages);
    bump(alloc ? cp.allocated : cp.freed, frames);
    if (split) bump(alloc ? cp.node_allocated[node] : cp.node_freed[node], frames);
}

uint32_t pool_take(void* ctx, uint32_t order, uint64_t* out, uint32_t n) {
    Zone& z = *static_cast<Zone*>(ctx);
    Guard<TasLock, NoIrq> g(z.lock);
    uint32_t got = 0;
    while (got < n) {
        const uint64_t f = z.buddy.alloc_block(order);
        if (f == BuddyAllocator::kNone) break;
        out[got++] = z.base + f;
    }
    return got;
}

void pool_give(void* ctx, uint32_t order, const uint64_t* blocks, uint32_t n) {
    Zone& z = *static_cast<Zone*>(ctx);
    Guard<TasLock, NoIrq> g(z.lock);
    for (uint32_t i = 0; i < n; ++i)
        if (blocks[i] < z.base || !z.buddy.free(blocks[i] - z.base, uint64_t{1} << order))
            panic("pmm: a CPU cache held frame %#lx (order %u) that node %u's allocator refuses",
                  blocks[i] * kPage, order, z.node);
}

PageCache::Pool pool_of(Zone& z) { return {pool_take, pool_give, &z}; }

// Blocks the CPU caches serve: naturally aligned power-of-two runs of up to 16 pages.
bool cacheable(uint64_t count, uint64_t align, uint64_t limit) {
    return g_caches_on.load(std::memory_order_relaxed) && limit == UINT64_MAX && count <= 16 &&
           (count & (count - 1)) == 0 && align <= count && (count % align) == 0;
}
uint32_t order_of(uint64_t count) { return static_cast<uint32_t>(__builtin_ctzll(count)); }

// From one zone, frame numbers in the machine's numbering.
uint64_t zone_alloc(Zone& z, uint64_t count, uint64_t align, uint64_t limit_frame) {
    uint64_t limit = BuddyAllocator::kNone;
    if (limit_frame != BuddyAllocator::kNone) {
        if (limit_frame <= z.base) return BuddyAllocator::kNone;
        limit = limit_frame - z.base;
    }
    if (align > 1 && z.base % align != 0) return BuddyAllocator::kNone; // see Zone::base
    Guard<TasLock, NoIrq> g(z.lock);
    const uint64_t f = z.buddy.alloc(count, align, limit);
    return f == BuddyAllocator::kNone ? f : z.base + f;
}

// From the nodes nearest `node` first (by SLIT distance, then node id).
uint64_t alloc_direct(uint32_t node, uint64_t count, uint64_t align, uint64_t limit_frame) {
    if (!g_split.load(std::memory_order_acquire))
        return zone_alloc(g_boot_zone, count, align, limit_frame);
    for (const uint8_t n : numa_map().nearest_nodes_with_memory(node)) {
        if (g_zones[n] == nullptr) continue;
        const uint64_t f = zone_alloc(*g_zones[n], count, align, limit_frame);
        if (f != BuddyAllocator::kNone) return f;
    }
    return BuddyAllocator::kNone;
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
    Guard<TasLock, IrqSave> guard(g_boot_zone.lock);
    BuddyAllocator& b = g_boot_zone.buddy;
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

uint64_t drain_cpu_cache(uint32_t cpu) {
    CpuData* c = cpu_lookup(cpu);
    if (!g_caches_on.load(std::memory_order_acquire) || c == nullptr) return 0;
    CpuPages& cp = per_cpu_on(c, g_cpu_pages);
    Guard<SpinLock, IrqSave> g(cp.lock);
    return cp.cache.drain(pool_of(*g_zones[home_node(c)]));
}

uint64_t drain_cpu_caches() {
    if (!g_caches_on.load(std::memory_order_acquire)) return 0;
    uint64_t frames = 0;
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        CpuData* cpu = cpu_by_id(c);
        if (cpu == nullptr) continue;
        CpuPages& cp = per_cpu_on(cpu, g_cpu_pages);
        Guard<SpinLock, IrqSave> g(cp.lock);
        frames += cp.cache.drain(pool_of(*g_zones[home_node(cpu)]));
    }
    return frames;
}

namespace {
constexpr uint32_t kHomeNode = UINT32_MAX; // alloc_from: the running CPU's home node

// From node `want` (kHomeNode: this CPU's home) and then the nodes nearest it. The home node is
// found with interrupts off, with the rest: the CPU cache used must be the home node's (it
// holds only that node's blocks), so the task must not move between the two.
uint64_t alloc_from(uint32_t want, uint64_t count, uint64_t align_pages, uint64_t limit) {
    if (count == 0 || align_pages == 0) return 0;
    uint64_t f = BuddyAllocator::kNone;
    arch::IrqOff irq; // stay on this CPU: its cache and counters are used below
    const uint32_t home = home_node(this_cpu());
    uint32_t node = home;
    if (want != kHomeNode && g_split.load(std::memory_order_acquire) &&
        want < numa_map().nodes()) {
        // A memory-less node's pages come from the node nearest it.
        const uint32_t target = numa_map().nearest_node_with_memory(want);
        if (target != numa::kNoNode) node = target;
    }
    if (node == home && cacheable(count, align_pages, limit)) {
        CpuPages& cp = per_cpu(g_cpu_pages);
        Guard<SpinLock, NoIrq> g(cp.lock);
        f = cp.cache.alloc(order_of(count), pool_of(*g_zones[node]));
    }
    const uint64_t limit_frame = limit == UINT64_MAX ? BuddyAllocator::kNone : limit / kPage;
    if (f == BuddyAllocator::kNone) f = alloc_direct(node, count, align_pages, limit_frame);
    if (f == BuddyAllocator::kNone && drain_cpu_caches() != 0)
        f = alloc_direct(node, count, align_pages, limit_frame); // what the caches held may fit
    if (f == BuddyAllocator::kNone) return 0;
    if (!mark(f, count, true))
        panic("pmm: handed out %lu page(s) at %#lx that a caller still holds", count, f * kPage);
    account(true, count, node_of_frame(f));
    return f * kPage;
}
} // namespace

uint64_t alloc_pages(uint64_t count, uint64_t align_pages, uint64_t limit) {
    return alloc_from(kHomeNode, count, align_pages, limit);
}

uint64_t alloc_pages_node(uint32_t node, uint64_t count, uint64_t align_pages) {
    return alloc_from(node, count, align_pages, UINT64_MAX);
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
    // A block goes back to its own node: through this CPU's cache when that is its node, else
    // straight to its node's allocator (so no cache ever holds another node's memory).
    const uint32_t node = node_of_frame(f);
    account(false, count, node);
    if (cacheable(count, 1, UINT64_MAX) && f % count == 0 && node == home_node(this_cpu()) &&
        node_of_frame(f + count - 1) == node) {
        CpuPages& cp = per_cpu(g_cpu_pages);
        Guard<SpinLock, NoIrq> g(cp.lock);
        cp.cache.free(f, order_of(count), pool_of(*g_zones[node]));
        return;
    }
    // A run that crosses nodes (allocated before the split, from one boot-time block) goes
    // back frame by frame.
    for (uint64_t i = 0; i < count;) {
        Zone& z = zone_of_frame(f + i);
        uint64_t n = 1;
        while (i + n < count && &zone_of_frame(f + i + n) == &z) ++n;
        Guard<TasLock, NoIrq> g(z.lock);
        if (f + i < z.base || !z.buddy.free(f + i - z.base, n))
            panic("pmm: free of %lu page(s) at %#lx refused by node %u's allocator", n,
                  (f + i) * kPage, z.node);
        i += n;
    }
}

Stats stats() {
    Stats s;
    for (Zone* z : g_zones) {
        if (z == nullptr) continue;
        Guard<TasLock, IrqSave> guard(z->lock);
        s.managed += z->buddy.managed_frames();
        s.free += z->buddy.free_frames();
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
    uint64_t frames = 0;
    for (Zone* z : g_zones) {
        if (z == nullptr) continue;
        Guard<TasLock, IrqSave> guard(z->lock);
        frames += z->buddy.managed_frames();
    }
    return frames * kPage;
}

namespace {
// Moves the frames of `r` from the boot allocator `b` into `z`. `z` is not published yet (no
// other CPU can reach it), so its lock is not taken: taking it would nest two locks of the
// page allocator's class.
void move_range(BuddyAllocator& b, Zone& z, const numa::NodeRange& r)
    COHORT_NO_THREAD_SAFETY_ANALYSIS {
    const uint64_t first = r.base / kPage, end = r.end() / kPage;
    for (uint64_t f = first; f < end;) {
        const bool managed = b.is_managed(f), free = b.is_free(f);
        uint64_t e = f + 1;
        while (e < end && b.is_managed(e) == managed && b.is_free(e) == free) ++e;
        if (free) {
            b.reserve_range(f, e - f);
            z.buddy.add_free_range(f - z.base, e - f);
        } else if (managed) {
            g_adopted[r.node] += z.buddy.adopt_allocated(f - z.base, e - f);
        }
        f = e;
    }
}
} // namespace

bool split_by_node() {
    const numa::NodeMap& m = numa_map();
    if (m.nodes() < 2 || g_split.load() || g_caches_on.load()) return false;
    constexpr uint64_t kChunk = uint64_t{1} << BuddyAllocator::kMaxOrder;
    // Each node's span of frames, and the memory for its zone and buddy metadata (taken from
    // the boot zone: this runs once, before any AP allocates).
    Zone* zones[numa::kMaxNodes] = {};
    for (uint32_t n = 0; n < m.nodes(); ++n) {
        uint64_t lo = UINT64_MAX, hi = 0;
        for (const numa::NodeRange& r : m.ranges()) {
            if (r.node != n) continue;
            lo = r.base / kPage < lo ? r.base / kPage : lo;
            hi = r.end() / kPage > hi ? r.end() / kPage : hi;
        }
        if (hi <= lo) continue; // no memory
        lo -= lo % kChunk;
        const uint64_t frames = hi - lo;
        const uint64_t bytes = sizeof(Zone) + 64 + BuddyAllocator::metadata_bytes(frames);
        const uint64_t pages = (bytes + kPage - 1) / kPage;
        const uint64_t phys = alloc_pages(pages);
        if (phys == 0) {
            log_error("pmm: no memory for node %u's allocator; memory stays node-blind", n);
            return false; // the pages taken so far stay allocated: a few, once, at boot
        }
        auto* z = new (phys_to_virt<void>(phys)) Zone();
        z->base = lo;
        z->node = n;
        auto* meta = phys_to_virt<unsigned char>(phys) + (sizeof(Zone) + 63) / 64 * 64;
        Guard<TasLock, IrqSave> g(z->lock);
        z->buddy.init(meta, frames);
        zones[n] = z;
    }
    // Move every managed frame of the boot zone to its node: free runs become free there,
    // frames callers hold are adopted as allocated (they come back through free_pages).
    {
        Guard<TasLock, IrqSave> boot(g_boot_zone.lock);
        BuddyAllocator& b = g_boot_zone.buddy;
        for (const numa::NodeRange& r : m.ranges())
            if (zones[r.node] != nullptr) move_range(b, *zones[r.node], r);
        if (b.free_frames() != 0)
            log_warn("pmm: %lu free frames in no node's ranges stay unused", b.free_frames());
        for (uint32_t n = 0; n < numa::kMaxNodes; ++n) g_zones[n] = zones[n];
        g_split.store(true, std::memory_order_release);
    }
    for (uint32_t n = 0; n < m.nodes(); ++n) {
        if (zones[n] == nullptr) continue;
        uint64_t free;
        {
            Guard<TasLock, NoIrq> g(zones[n]->lock);
            free = zones[n]->buddy.free_frames();
        }
        log_info("pmm: node %u: %lu MiB free, %lu frames in use at the split", n,
                 (free * kPage) >> 20, g_adopted[n]);
    }
    return true;
}

uint32_t node_of(uint64_t phys) { return node_of_frame(phys / kPage); }

NodeStats node_stats(uint32_t node) {
    NodeStats s;
    if (node >= numa::kMaxNodes || g_zones[node] == nullptr) return s;
    Zone& z = *g_zones[node];
    {
        Guard<TasLock, IrqSave> guard(z.lock);
        s.managed = z.buddy.managed_frames();
        s.free = z.buddy.free_frames();
    }
    if (!g_split.load(std::memory_order_acquire)) return s; // per-node counts start at the split
    uint64_t allocated = g_adopted[node] + g_early_node_allocated[node].load();
    uint64_t freed = g_early_node_freed[node].load();
    if (g_caches_on.load(std::memory_order_acquire)) {
        for (uint32_t c = 0; c < cpu_count(); ++c) {
            CpuData* cpu = cpu_by_id(c);
            if (cpu == nullptr) continue;
            CpuPages& cp = per_cpu_on(cpu, g_cpu_pages);
            if (home_node(cpu) == node) {
                Guard<SpinLock, IrqSave> g(cp.lock);
                s.cached += cp.cache.cached_frames();
            }
            allocated += cp.node_allocated[node].load(std::memory_order_relaxed);
            freed += cp.node_freed[node].load(std::memory_order_relaxed);
        }
    }
    s.used = allocated - freed;
    return s;
}

uint64_t misplaced_frames() {
    if (!g_split.load(std::memory_order_acquire)) return 0;
    uint64_t bad = 0;
    for (Zone* z : g_zones) {
        if (z == nullptr) continue;
        Guard<TasLock, IrqSave> guard(z->lock);
        z->buddy.for_each_free_block([&](uint64_t head, uint32_t order) {
            const uint64_t first = z->base + head, n = uint64_t{1} << order;
            if (node_of_frame(first) != z->node || node_of_frame(first + n - 1) != z->node)
                bad += n;
        });
    }
    if (g_caches_on.load(std::memory_order_acquire)) {
        for (uint32_t c = 0; c < cpu_count(); ++c) {
            CpuData* cpu = cpu_by_id(c);
            if (cpu == nullptr) continue;
            CpuPages& cp = per_cpu_on(cpu, g_cpu_pages);
            const uint32_t home = home_node(cpu);
            Guard<SpinLock, IrqSave> g(cp.lock);
            for (uint32_t o = 0; o < PageCache::kOrders; ++o)
                for (uint32_t i = 0; i < cp.cache.cached_blocks(o); ++i) {
                    const uint64_t first = cp.cache.cached_block(o, i);
                    if (node_of_frame(first) != home ||
                        node_of_frame(first + (uint64_t{1} << o) - 1) != home)
                        bad += uint64_t{1} << o;
                }
        }
    }
    return bad;
}

} // namespace cohort::pmm
