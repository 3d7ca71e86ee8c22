#include "mm/kstack.h"

#include <atomic>
#include <cstring>

#include "arch/arch.h"
#include "debug/log.h"
#include "debug/panic.h"
#include "lib/bitmap.h"
#include "lib/format.h"
#include "mm/layout.h"
#include "mm/pmm.h"
#include "mm/vmm.h"
#include "smp/cpu.h"
#include "smp/percpu.h"
#include "smp/tlb.h"
#include "sync/lock_ranks.h"
#include "sync/spinlock.h"
#include "sync/tas_lock.h"

namespace cohort {

namespace {
constexpr uint64_t kSlots = 65536; // 16 GiB of stack address space
constexpr uint64_t kPage = layout::kPageSize;
LockClass g_slots_class{"kernel stack slots", rank::kStackSlots, LockScope::MachineWide};
TasLock g_lock{&g_slots_class}; // machine-wide: must not convoy (sync/tas_lock.h)
Bitmap<kSlots> g_used COHORT_GUARDED_BY(g_lock);
uint16_t g_pages[kSlots] COHORT_GUARDED_BY(g_lock); // mapped pages per slot: stack vs guard
uint64_t g_in_use COHORT_GUARDED_BY(g_lock) = 0;
uint64_t g_search_from COHORT_GUARDED_BY(g_lock) = 0;


// Mapped stacks of the default size a CPU keeps for its next tasks: creating and ending a task
// then maps, unmaps and shoots down nothing. The lock is the owner's (a drain may take it
// from elsewhere).
LockClass g_cache_class{"kernel stack cache", rank::kStackCache, LockScope::PerCpu, false};
constexpr uint32_t kCachePerCpu = 4;
struct alignas(64) StackCache {
    SpinLock lock{&g_cache_class};
    uint32_t count COHORT_GUARDED_BY(lock) = 0;
    KernelStack stacks[kCachePerCpu] COHORT_GUARDED_BY(lock);
    std::atomic<uint64_t> hits{0}, misses{0}; // owner-written statistics
};
COHORT_PERCPU(StackCache, g_stack_cache);
std::atomic<bool> g_cache_on{false};
std::atomic<uint64_t> g_purges{0};

uint64_t slot_base(uint64_t slot) { return layout::kStackAreaBase + slot * layout::kStackSlotSize; }

void bump(std::atomic<uint64_t>& c) { c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }

std::atomic<uint32_t> g_purging{0}; // purges under way (their shootdowns may take a while)

// Unmaps `n` stacks with one shootdown, then gives back their frames (listed in `frames`, read
// while the stacks were still mapped) and their slots. The caller counted itself in
// g_purging; this drops it at the end.
void purge(const KernelStack* stacks, uint32_t n, const uint64_t* frames, uint32_t nframes) {
    {
        TlbBatch batch(nullptr);
        for (uint32_t i = 0; i < n; ++i) vmm::unmap_batched(stacks[i].bottom, stacks[i].top - stacks[i].bottom, batch);
        batch.flush();
    }
    for (uint32_t i = 0; i < nframes; ++i) pmm::free_pages(frames[i]);
    g_purges.fetch_add(1, std::memory_order_relaxed);
    Guard<TasLock, IrqSave> guard(g_lock);
    for (uint32_t i = 0; i < n; ++i) {
        g_used.clear(stacks[i].slot);
        g_pages[stacks[i].slot] = 0;
        if (stacks[i].slot < g_search_from) g_search_from = stacks[i].slot;
        --g_in_use;
    }
    g_purging.fetch_sub(1, std::memory_order_release);
}

constexpr uint32_t kPurgeBatch = 32;
constexpr uint32_t kMaxStackPages = layout::kStackSlotSize / kPage;
constexpr uint32_t kPurgeFrames = 256; // frames one purge frees at most (a 2 KiB array)

// Stacks waiting to be unmapped, a batch at a time: one shootdown covers them all. Their slots
// stay taken and their frames mapped until then, so nothing can reuse either while another
// CPU may still hold a translation. The list is threaded through the stacks themselves (still
// mapped, no longer used), with their frames noted there, so queueing one needs no memory and
// no purge: a context switch may do it.
struct Pending {
    KernelStack stack;
    Pending* next;
    uint32_t nframes;
    uint64_t frames[kMaxStackPages];
};
static_assert(sizeof(Pending) <= kPage, "a stack's lowest page holds its pending record");
Pending* g_pending COHORT_GUARDED_BY(g_lock) = nullptr;
uint32_t g_purge_count COHORT_GUARDED_BY(g_lock) = 0;

// Queues a stack (with at least one mapped page) for the next purge. True when a batch is
// ready: the caller, or a thread it wakes, should call purge_pending.
bool queue(const KernelStack& s) {
    auto* node = reinterpret_cast<Pending*>(s.bottom);
    node->stack = s;
    node->nframes = 0;
    for (uint64_t va = s.bottom; va < s.top; va += kPage)
        if (const uint64_t pa = vmm::translate(va); pa != UINT64_MAX) node->frames[node->nframes++] = pa;
    Guard<TasLock, IrqSave> guard(g_lock);
    node->next = g_pending;
    g_pending = node;
    return ++g_purge_count >= kPurgeBatch;
}

// Unmaps every queued stack, a batch (one shootdown) at a time. Thread context.
void purge_pending() {
    for (;;) {
        KernelStack batch[kPurgeBatch];
        uint64_t frames[kPurgeFrames];
        uint32_t n = 0, nframes = 0;
        {
            Guard<TasLock, IrqSave> guard(g_lock);
            if (g_pending == nullptr) return;
            // Counted before the stacks leave the list: whoever sees the list empty and no
            // purge under way knows every queued stack is gone.
            g_purging.fetch_add(1, std::memory_order_relaxed);
            while (g_pending != nullptr && n < kPurgeBatch &&
                   nframes + g_pending->nframes <= kPurgeFrames) {
                const Pending* p = g_pending;
                batch[n++] = p->stack;
                for (uint32_t i = 0; i < p->nframes; ++i) frames[nframes++] = p->frames[i];
                g_pending = p->next;
                --g_purge_count;
            }
        }
        purge(batch, n, frames, nframes);
    }
}

uint64_t default_pages() { return kKernelStackDefaultSize / kPage; }

void free_slot(uint32_t slot) {
    Guard<TasLock, IrqSave> guard(g_lock);
    g_used.clear(slot);
    g_pages[slot] = 0;
    if (slot < g_search_from) g_search_from = slot;
    --g_in_use;
}

// Into this CPU's cache, or onto the purge list; true when a purge is due.
bool put_back(KernelStack& s) {
    if (!s.valid()) return false;
    if (s.top - s.bottom == default_pages() * kPage && g_cache_on.load(std::memory_order_acquire)) {
        arch::IrqOff irq;
        StackCache& c = per_cpu(g_stack_cache);
        Guard<SpinLock, NoIrq> g(c.lock);
        if (c.count < kCachePerCpu) {
            c.stacks[c.count++] = s;
            s = {};
            return false;
        }
    }
    bool due = false;
    if (s.top == s.bottom) free_slot(s.slot); // nothing was mapped (a failed allocation)
    else due = queue(s);
    s = {};
    return due;
}
} // namespace

void kstack_enable_cpu_caches() { g_cache_on.store(true, std::memory_order_release); }

namespace {
constexpr uint32_t kAnyNode = 0xffff'ffff;

// Frames for a stack: this CPU's node, or `node`.
uint64_t stack_frames(uint64_t count, uint32_t node) {
    return node == kAnyNode ? pmm::alloc_pages(count) : pmm::alloc_pages_node(node, count);
}

KernelStack alloc_stack(size_t size, uint32_t node);
} // namespace

KernelStack kstack_alloc(size_t size) { return alloc_stack(size, kAnyNode); }
KernelStack kstack_alloc_node(size_t size, uint32_t node) { return alloc_stack(size, node); }

namespace {
KernelStack alloc_stack(size_t size, uint32_t node) {
    const uint64_t pages = (size + kPage - 1) / kPage;
    if (pages == 0 || pages >= layout::kStackSlotSize / kPage) return {};
    if (node == kAnyNode && pages == default_pages() &&
        g_cache_on.load(std::memory_order_acquire)) {
        KernelStack s;
        {
            arch::IrqOff irq;
            StackCache& c = per_cpu(g_stack_cache);
            Guard<SpinLock, NoIrq> g(c.lock);
            if (c.count != 0) s = c.stacks[--c.count];
            bump(s.valid() ? c.hits : c.misses);
        }
        if (s.valid()) {
            // Same mapping, same guard region: only the contents are the last task's. Cleared,
            // so nothing of it (return addresses, pointers, data) reaches the next one.
            memset(reinterpret_cast<void*>(s.bottom), 0, s.top - s.bottom);
            return s;
        }
    }
    uint64_t slot;
    {
        Guard<TasLock, IrqSave> guard(g_lock);
        slot = g_used.view().find_first_clear(g_search_from);
        if (slot == BitmapView::npos && g_purge_count == 0) return {};
        if (slot != BitmapView::npos) {
            g_used.set(slot);
            g_pages[slot] = static_cast<uint16_t>(pages);
            ++g_in_use;
            g_search_from = slot + 1;
        }
    }
    if (slot == BitmapView::npos) {
        purge_pending(); // the slots waiting for a purge are the last ones left
        return alloc_stack(size, node);
    }
    KernelStack s;
    s.slot = static_cast<uint32_t>(slot);
    s.top = slot_base(slot) + layout::kStackSlotSize;
    s.bottom = s.top - pages * kPage;
    // One block and one mapping when memory allows (the frames are still freed one by one);
    // page by page otherwise.
    if ((pages & (pages - 1)) == 0) {
        if (const uint64_t block = stack_frames(pages, node); block != 0) {
            if (vmm::map(s.bottom, block, pages * kPage, vmm::kRead | vmm::kWrite)) return s;
            vmm::unmap(s.bottom, pages * kPage); // what was mapped before the failure
            pmm::free_pages(block, pages);
        }
    }
    for (uint64_t va = s.bottom; va < s.top; va += kPage) {
        uint64_t frame = stack_frames(1, node);
        if (frame == 0) {
            // Stacks awaiting a purge hold frames: free them and try once more.
            purge_pending();
            frame = stack_frames(1, node);
        }
        if (frame == 0 || !vmm::map(va, frame, kPage, vmm::kRead | vmm::kWrite)) {
            if (frame != 0) pmm::free_pages(frame);
            s.bottom = va; // only what was mapped gets released
            put_back(s);
            purge_pending();
            return {};
        }
    }
    return s;
}
} // namespace

bool kstack_release_nonblocking(KernelStack& s) { return put_back(s); }

void kstack_purge() { purge_pending(); }

void kstack_free(KernelStack& s) {
    if (put_back(s)) purge_pending();
}

namespace {
// Queues every stack of `c`'s cache for the purge; returns how many.
uint64_t empty_cache(CpuData* c) {
    uint64_t n = 0;
    {
        StackCache& sc = per_cpu_on(c, g_stack_cache);
        for (;;) {
            KernelStack s;
            {
                Guard<SpinLock, IrqSave> g(sc.lock);
                if (sc.count == 0) break;
                s = sc.stacks[--sc.count];
            }
            queue(s);
            ++n;
        }
    }
    return n;
}
} // namespace

uint64_t kstack_drain() {
    uint64_t n = 0;
    for (uint32_t cpu = 0; cpu < cpu_count(); ++cpu)
        if (CpuData* c = cpu_by_id(cpu)) n += empty_cache(c);
    purge_pending();
    return n;
}

uint64_t kstack_drain_cpu(uint32_t cpu) {
    // Queued for the next batched purge, not purged here: under heavy task churn on many
    // CPUs a purge on the way out took seconds (others keep queueing), and a CPU going
    // offline has no reason to wait for it.
    CpuData* c = cpu_lookup(cpu);
    return c == nullptr ? 0 : empty_cache(c);
}

KstackStats kstack_stats() {
    KstackStats st;
    {
        Guard<TasLock, IrqSave> guard(g_lock);
        st.slots_in_use = g_in_use;
        st.awaiting_purge = g_purge_count;
    }
    for (uint32_t cpu = 0; cpu < cpu_count(); ++cpu) {
        CpuData* c = cpu_by_id(cpu);
        if (c == nullptr) continue;
        StackCache& sc = per_cpu_on(c, g_stack_cache);
        {
            Guard<SpinLock, IrqSave> g(sc.lock);
            st.cached += sc.count;
        }
        st.cache_hits += sc.hits.load(std::memory_order_relaxed);
        st.cache_misses += sc.misses.load(std::memory_order_relaxed);
    }
    st.purges = g_purges.load(std::memory_order_relaxed);
    st.purging = g_purging.load(std::memory_order_acquire);
    return st;
}

// Called from exception handlers, possibly on a CPU that holds g_lock (a fault inside
// kstack_alloc): it must not take the lock. It reads two words racily, which at worst describes
// a stack that is being freed at that moment; good enough for a fault report.
bool kstack_describe_guard(uint64_t addr, char* buf, size_t size) COHORT_NO_THREAD_SAFETY_ANALYSIS {
    if (addr < layout::kStackAreaBase || addr >= layout::kStackAreaBase + kSlots * layout::kStackSlotSize)
        return false;
    const uint64_t slot = (addr - layout::kStackAreaBase) / layout::kStackSlotSize;
    if (!g_used.test(slot)) return false;
    const uint64_t top = slot_base(slot) + layout::kStackSlotSize;
    const uint64_t bottom = top - uint64_t(g_pages[slot]) * kPage;
    if (addr >= bottom) return false;
    format(buf, size, ", in the guard region below kernel stack %lu [%#lx-%#lx)", slot, bottom, top);
    return true;
}

uint64_t kstack_in_use() {
    Guard<TasLock, IrqSave> guard(g_lock);
    return g_in_use;
}

} // namespace cohort
