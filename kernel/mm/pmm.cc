#include "mm/pmm.h"

#include <cstring>

#include "debug/log.h"
#include "debug/panic.h"
#include "mm/frame_allocator.h"
#include "mm/layout.h"
#include "mm/phys.h"
#include "sync/spinlock.h"
#include "sync/lock_ranks.h"

namespace cohort::pmm {

namespace {
LockClass g_pmm_class{"page allocator", rank::kPageAllocator, LockScope::MachineWide};
SpinLock g_lock{&g_pmm_class};
FrameAllocator g_frames COHORT_GUARDED_BY(g_lock);
constexpr uint64_t kPage = layout::kPageSize;
constexpr uint64_t kEarlyLimit = 4ull << 30; // the early direct map covers only this much
} // namespace

void init(MemoryMap& map) {
    const uint64_t top = map.highest_usable_end();
    if (top == 0) panic("pmm: the memory map has no usable RAM");
    const uint64_t frames = top / kPage;
    const uint64_t bitmap_bytes = BitmapView::words_for(frames) * sizeof(uint64_t);
    const uint64_t bitmap_pages = (bitmap_bytes + kPage - 1) / kPage;

    // The bitmap needs a home before any allocator exists: the first usable region below the
    // early mapping limit that is large enough.
    uint64_t bitmap_phys = 0;
    for (const MemRegion& r : map.regions()) {
        if (r.type != MemType::Usable || r.base >= kEarlyLimit) continue;
        const uint64_t end = r.end() < kEarlyLimit ? r.end() : kEarlyLimit;
        if (end - r.base >= bitmap_pages * kPage) {
            bitmap_phys = r.base;
            break;
        }
    }
    if (bitmap_phys == 0)
        panic("pmm: no usable region below 4 GiB can hold the %lu KiB frame bitmap",
              bitmap_bytes / 1024);

    Guard<SpinLock, IrqSave> guard(g_lock);
    g_frames.init(phys_to_virt<uint64_t>(bitmap_phys), frames);
    for (const MemRegion& r : map.regions())
        if (r.type == MemType::Usable) g_frames.add_free_range(r.base / kPage, r.length / kPage);
    g_frames.reserve_range(bitmap_phys / kPage, bitmap_pages);
    map.reserve(bitmap_phys, bitmap_pages * kPage, MemType::Kernel);
    log_info("pmm: %lu MiB usable in %lu frames; bitmap %lu KiB at %#lx",
             (g_frames.free_frames() * kPage) >> 20, g_frames.free_frames(), bitmap_bytes / 1024,
             bitmap_phys);
}

uint64_t alloc_pages(uint64_t count, uint64_t align_pages, uint64_t limit) {
    Guard<SpinLock, IrqSave> guard(g_lock);
    const uint64_t limit_frame = limit == UINT64_MAX ? FrameAllocator::kNone : limit / kPage;
    const uint64_t f = g_frames.alloc(count, align_pages, limit_frame);
    return f == FrameAllocator::kNone ? 0 : f * kPage;
}

uint64_t alloc_page() { return alloc_pages(1); }

uint64_t alloc_zeroed_page() {
    const uint64_t p = alloc_page();
    if (p != 0) memset(phys_to_virt<void>(p), 0, kPage);
    return p;
}

void free_pages(uint64_t phys, uint64_t count) {
    bool ok;
    {
        Guard<SpinLock, IrqSave> guard(g_lock);
        ok = (phys % kPage) == 0 && g_frames.free(phys / kPage, count);
    }
    if (!ok) panic("pmm: free of %lu page(s) at %#lx that are not allocated (double free?)", count,
                   phys);
}

uint64_t free_bytes() {
    Guard<SpinLock, IrqSave> guard(g_lock);
    return g_frames.free_frames() * kPage;
}
uint64_t managed_bytes() {
    Guard<SpinLock, IrqSave> guard(g_lock);
    return g_frames.managed_frames() * kPage;
}

} // namespace cohort::pmm
