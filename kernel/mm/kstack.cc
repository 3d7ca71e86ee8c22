#include "mm/kstack.h"

#include "debug/log.h"
#include "lib/bitmap.h"
#include "lib/format.h"
#include "mm/layout.h"
#include "mm/pmm.h"
#include "mm/vmm.h"
#include "sync/spinlock.h"
#include "sync/lock_ranks.h"

namespace cohort {

namespace {
constexpr uint64_t kSlots = 65536; // 16 GiB of stack address space
constexpr uint64_t kPage = layout::kPageSize;
LockClass g_slots_class{"kernel stack slots", rank::kStackSlots, LockScope::MachineWide};
SpinLock g_lock{&g_slots_class};
Bitmap<kSlots> g_used COHORT_GUARDED_BY(g_lock);
uint16_t g_pages[kSlots] COHORT_GUARDED_BY(g_lock); // mapped pages per slot: stack vs guard
uint64_t g_in_use COHORT_GUARDED_BY(g_lock) = 0;

uint64_t slot_base(uint64_t slot) { return layout::kStackAreaBase + slot * layout::kStackSlotSize; }
} // namespace

KernelStack kstack_alloc(size_t size) {
    const uint64_t pages = (size + kPage - 1) / kPage;
    if (pages == 0 || pages >= layout::kStackSlotSize / kPage) return {};
    uint64_t slot;
    {
        Guard<SpinLock, IrqSave> guard(g_lock);
        slot = g_used.view().find_first_clear(0);
        if (slot == BitmapView::npos) return {};
        g_used.set(slot);
        g_pages[slot] = static_cast<uint16_t>(pages);
        ++g_in_use;
    }
    KernelStack s;
    s.slot = static_cast<uint32_t>(slot);
    s.top = slot_base(slot) + layout::kStackSlotSize;
    s.bottom = s.top - pages * kPage;
    for (uint64_t va = s.bottom; va < s.top; va += kPage) {
        const uint64_t frame = pmm::alloc_page();
        if (frame == 0 || !vmm::map(va, frame, kPage, vmm::kRead | vmm::kWrite)) {
            if (frame != 0) pmm::free_pages(frame);
            s.bottom = va; // only what was mapped gets released
            kstack_free(s);
            return {};
        }
    }
    return s;
}

void kstack_free(KernelStack& s) {
    if (!s.valid()) return;
    // One unmap (one TLB shootdown) for the whole stack; its frames are freed only after it,
    // when no CPU can still reach them through a stale translation.
    uint64_t frames[layout::kStackSlotSize / kPage];
    uint32_t n = 0;
    for (uint64_t va = s.bottom; va < s.top; va += kPage)
        if (const uint64_t pa = vmm::translate(va); pa != UINT64_MAX) frames[n++] = pa;
    vmm::unmap(s.bottom, s.top - s.bottom);
    for (uint32_t i = 0; i < n; ++i) pmm::free_pages(frames[i]);
    Guard<SpinLock, IrqSave> guard(g_lock);
    g_used.clear(s.slot);
    g_pages[s.slot] = 0;
    --g_in_use;
    s = {};
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
    Guard<SpinLock, IrqSave> guard(g_lock);
    return g_in_use;
}

} // namespace cohort
