#include "mm/slab_heap.h"

#include "sync/lock_ranks.h"

#include <cstring>

namespace cohort {

LockClass g_heap_class{"heap size class", rank::kHeap, LockScope::MachineWide};

namespace {
constexpr uint32_t kSlabMagic = 0x51ab51ab;
constexpr uint32_t kLargeMagic = 0x1a7e1a7e;
constexpr uint8_t kFreePoison = 0x6b;  // written over freed objects
constexpr uint8_t kAllocPoison = 0xa5; // fresh objects: reading it means use before init
constexpr size_t kLargeHeader = 64;    // keeps large objects 16-byte (and cache-line) aligned

struct LargeHeader {
    uint32_t magic;
    uint32_t pad;
    uint64_t pages;
    uint64_t size;
};
static_assert(sizeof(LargeHeader) <= kLargeHeader);

size_t class_size(size_t cls) { return size_t{16} << cls; }
size_t class_for(size_t size) {
    size_t cls = 0;
    while (class_size(cls) < size) ++cls;
    return cls;
}
uintptr_t page_of(const void* p) {
    return reinterpret_cast<uintptr_t>(p) & ~uintptr_t(SlabHeap::kPageSize - 1);
}
} // namespace

void SlabHeap::init(PageSource source, bool poison, ErrorHook on_error) {
    source_ = source;
    poison_ = poison;
    on_error_ = on_error;
}

void SlabHeap::report(const char* what, const void* p) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    if (on_error_ != nullptr) on_error_(what, p);
}

SlabHeap::Slab* SlabHeap::new_slab(size_t cls) {
    void* page = source_.alloc(1, source_.ctx);
    if (page == nullptr) return nullptr;
    pages_.fetch_add(1, std::memory_order_relaxed);
    auto* s = new (page) Slab{};
    const size_t size = class_size(cls);
    s->magic = kSlabMagic;
    s->size_class = static_cast<uint16_t>(cls);
    // Objects are aligned to their size (up to a cache line) after the header.
    const size_t align = size < 64 ? size : 64;
    s->first_offset = static_cast<uint16_t>((sizeof(Slab) + align - 1) / align * align);
    s->capacity = static_cast<uint16_t>((kPageSize - s->first_offset) / size);
    // Thread the free list in address order so fresh slabs hand out ascending addresses.
    auto* base = static_cast<unsigned char*>(page) + s->first_offset;
    s->free_list = nullptr;
    for (size_t i = s->capacity; i > 0; --i) {
        unsigned char* obj = base + (i - 1) * size;
        if (poison_) memset(obj, kFreePoison, size);
        *reinterpret_cast<void**>(obj) = s->free_list;
        s->free_list = obj;
    }
    return s;
}

void* SlabHeap::alloc(size_t size) {
    if (size == 0) return nullptr;
    if (size > kMaxSmall) return alloc_large(size);
    const size_t cls = class_for(size);
    const size_t csize = class_size(cls);
    Class& c = classes_[cls];
    void* obj;
    {
        Guard<SpinLock, IrqSave> guard(c.lock);
        Slab* s = c.partial.front();
        if (s == nullptr) {
            s = new_slab(cls);
            if (s == nullptr) return nullptr;
            c.partial.push_front(*s);
        }
        obj = s->free_list;
        s->free_list = *static_cast<void**>(obj);
        const size_t idx = (static_cast<unsigned char*>(obj) - reinterpret_cast<unsigned char*>(s) -
                            s->first_offset) / csize;
        s->allocated[idx / 64] |= uint64_t{1} << (idx % 64);
        if (++s->in_use == s->capacity) c.partial.remove(*s);
    }
    if (poison_) {
        // Everything but the free-list link must still hold the free poison; anything else
        // means someone wrote to the object after freeing it.
        const auto* bytes = static_cast<const unsigned char*>(obj);
        for (size_t i = sizeof(void*); i < csize; ++i) {
            if (bytes[i] != kFreePoison) {
                report("heap: object modified after it was freed", obj);
                break;
            }
        }
        memset(obj, kAllocPoison, csize);
    }
    // Accounted by class size: the slot, not the request, is what the heap holds.
    bytes_.fetch_add(csize, std::memory_order_relaxed);
    objects_.fetch_add(1, std::memory_order_relaxed);
    return obj;
}

void SlabHeap::free(void* p) {
    if (p == nullptr) return;
    if ((reinterpret_cast<uintptr_t>(p) & (kAlignment - 1)) != 0) {
        report("heap: free of a misaligned pointer", p);
        return;
    }
    auto* s = reinterpret_cast<Slab*>(page_of(p));
    if (reinterpret_cast<uintptr_t>(p) - page_of(p) == kLargeHeader &&
        reinterpret_cast<LargeHeader*>(s)->magic == kLargeMagic) {
        free_large(p);
        return;
    }
    if (s->magic != kSlabMagic || s->size_class >= kClassCount) {
        report("heap: free of a pointer the heap did not allocate", p);
        return;
    }
    const size_t cls = s->size_class;
    const size_t csize = class_size(cls);
    const size_t off = static_cast<size_t>(static_cast<unsigned char*>(p) -
                                           reinterpret_cast<unsigned char*>(s));
    if (off < s->first_offset || (off - s->first_offset) % csize != 0 ||
        (off - s->first_offset) / csize >= s->capacity) {
        report("heap: free of a pointer into the middle of an object", p);
        return;
    }
    const size_t idx = (off - s->first_offset) / csize;
    Class& c = classes_[cls];
    bool release = false;
    {
        Guard<SpinLock, IrqSave> guard(c.lock);
        const uint64_t bit = uint64_t{1} << (idx % 64);
        if (!(s->allocated[idx / 64] & bit)) {
            report("heap: double free", p);
            return;
        }
        s->allocated[idx / 64] &= ~bit;
        if (poison_) memset(p, kFreePoison, csize);
        *static_cast<void**>(p) = s->free_list;
        s->free_list = p;
        if (s->in_use-- == s->capacity) c.partial.push_front(*s);
        if (s->in_use == 0) {
            // Empty slabs go back to the page source, so memory use returns to its baseline.
            c.partial.remove(*s);
            s->magic = 0;
            release = true;
        }
    }
    bytes_.fetch_sub(csize, std::memory_order_relaxed);
    objects_.fetch_sub(1, std::memory_order_relaxed);
    if (release) {
        source_.free(s, 1, source_.ctx);
        pages_.fetch_sub(1, std::memory_order_relaxed);
    }
}

void* SlabHeap::alloc_large(size_t size) {
    if (size > (uint64_t{1} << 40)) return nullptr;
    const size_t pages = (size + kLargeHeader + kPageSize - 1) / kPageSize;
    void* mem = source_.alloc(pages, source_.ctx);
    if (mem == nullptr) return nullptr;
    auto* h = static_cast<LargeHeader*>(mem);
    h->magic = kLargeMagic;
    h->pages = pages;
    h->size = size;
    pages_.fetch_add(pages, std::memory_order_relaxed);
    bytes_.fetch_add(pages * kPageSize - kLargeHeader, std::memory_order_relaxed);
    objects_.fetch_add(1, std::memory_order_relaxed);
    void* obj = static_cast<unsigned char*>(mem) + kLargeHeader;
    if (poison_) memset(obj, kAllocPoison, size);
    return obj;
}

void SlabHeap::free_large(void* p) {
    auto* h = reinterpret_cast<LargeHeader*>(static_cast<unsigned char*>(p) - kLargeHeader);
    const uint64_t pages = h->pages;
    h->magic = 0; // a second free of the same block now fails the magic check
    bytes_.fetch_sub(pages * kPageSize - kLargeHeader, std::memory_order_relaxed);
    objects_.fetch_sub(1, std::memory_order_relaxed);
    pages_.fetch_sub(pages, std::memory_order_relaxed);
    source_.free(h, pages, source_.ctx);
}

size_t SlabHeap::usable_size(const void* p) const {
    if (p == nullptr) return 0;
    const auto* s = reinterpret_cast<const Slab*>(page_of(p));
    if (reinterpret_cast<uintptr_t>(p) - page_of(p) == kLargeHeader &&
        reinterpret_cast<const LargeHeader*>(s)->magic == kLargeMagic)
        return reinterpret_cast<const LargeHeader*>(s)->pages * kPageSize - kLargeHeader;
    if (s->magic != kSlabMagic || s->size_class >= kClassCount) return 0;
    return class_size(s->size_class);
}

SlabHeap::Stats SlabHeap::stats() const {
    return {bytes_.load(std::memory_order_relaxed), objects_.load(std::memory_order_relaxed),
            pages_.load(std::memory_order_relaxed), errors_.load(std::memory_order_relaxed)};
}

} // namespace cohort
