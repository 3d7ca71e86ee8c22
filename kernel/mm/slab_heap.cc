#include "mm/slab_heap.h"

#include "sync/lock_ranks.h"

#include <cstring>
#include <new>

namespace cohort {

LockClass g_heap_class{"heap size class", rank::kHeap, LockScope::MachineWide};
// Statistics off: a CPU takes only its own cache's lock, and shared counters would put one
// machine-wide cache line back on that path.
LockClass g_heap_cpu_class{"heap CPU cache", rank::kHeapCpuCache, LockScope::PerCpu, false};

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

// Objects a CPU keeps per class: fewer for big classes, whose objects each cost up to a page
// of slab. Refills and flushes move half of it.
uint32_t cache_cap(size_t cls) {
    const size_t by_size = 16384 / class_size(cls);
    return static_cast<uint32_t>(by_size < 4 ? 4 : by_size > SlabHeap::kCpuCacheMax ? SlabHeap::kCpuCacheMax : by_size);
}

// Sets or clears the "held by a caller" bit; false if it already had that value. Atomic: with
// CPU caches the bit flips outside the class lock, while neighbours in the same word may be
// allocated or freed on other CPUs.
bool mark_held(SlabHeap::Slab* s, size_t idx, bool held) {
    const uint64_t bit = uint64_t{1} << (idx % 64);
    const uint64_t old = held ? __atomic_fetch_or(&s->allocated[idx / 64], bit, __ATOMIC_RELAXED)
                              : __atomic_fetch_and(&s->allocated[idx / 64], ~bit, __ATOMIC_RELAXED);
    return held ? (old & bit) == 0 : (old & bit) != 0;
}

size_t index_in(const SlabHeap::Slab* s, const void* obj) {
    return static_cast<size_t>(static_cast<const unsigned char*>(obj) -
                               reinterpret_cast<const unsigned char*>(s) - s->first_offset) /
           class_size(s->size_class);
}
} // namespace

void SlabHeap::init(PageSource source, bool poison, ErrorHook on_error) {
    source_ = source;
    poison_ = poison;
    on_error_ = on_error;
}

bool SlabHeap::enable_cpu_caches(uint32_t cpus, uint32_t (*this_cpu)()) {
    if (cpus == 0 || cpus_ != nullptr) return false;
    const size_t pages = (cpus * sizeof(CpuCache) + kPageSize - 1) / kPageSize;
    void* mem = source_.alloc(pages, source_.ctx);
    if (mem == nullptr) return false;
    auto* caches = static_cast<CpuCache*>(mem);
    for (uint32_t i = 0; i < cpus; ++i) new (&caches[i]) CpuCache();
    count(boot_, 0, 0, static_cast<int64_t>(pages)); // held for good: part of the baseline
    cpu_count_ = cpus;
    this_cpu_ = this_cpu;
    __atomic_store_n(&cpus_, caches, __ATOMIC_RELEASE);
    return true;
}

void SlabHeap::report(const char* what, const void* p) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    if (on_error_ != nullptr) on_error_(what, p);
}

SlabHeap::Slab* SlabHeap::new_slab(size_t cls) {
    void* page = source_.alloc(1, source_.ctx);
    if (page == nullptr) return nullptr;
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

void* SlabHeap::slab_pop(Class& c, size_t cls, bool* new_page) {
    Slab* s = c.partial.front();
    if (s == nullptr) {
        s = new_slab(cls);
        if (s == nullptr) return nullptr;
        *new_page = true;
        c.partial.push_front(*s);
    }
    if (s->in_use == 0 && c.empty > 0) --c.empty; // a kept empty slab is in use again
    void* obj = s->free_list;
    s->free_list = *static_cast<void**>(obj);
    if (++s->in_use == s->capacity) c.partial.remove(*s);
    return obj;
}

SlabHeap::Slab* SlabHeap::slab_push(Class& c, void* obj) {
    auto* s = reinterpret_cast<Slab*>(page_of(obj));
    *static_cast<void**>(obj) = s->free_list;
    s->free_list = obj;
    if (s->in_use-- == s->capacity) c.partial.push_front(*s);
    if (s->in_use != 0) return nullptr;
    // With CPU caches a few empty slabs stay: a workload that allocates and frees around a
    // slab boundary must not hand a page back and forth with every object.
    if (cpus_ != nullptr && c.empty < kKeepEmpty) {
        ++c.empty;
        return nullptr;
    }
    c.partial.remove(*s);
    s->magic = 0;
    return s;
}

void SlabHeap::release_slab(Slab* s, Counters& k) {
    source_.free(s, 1, source_.ctx);
    count(k, 0, 0, -1);
}

void SlabHeap::refill(CpuCache& cc, size_t cls) {
    Class& c = classes_[cls];
    const uint32_t want = cache_cap(cls) / 2;
    uint32_t new_pages = 0;
    {
        Guard<TasLock, NoIrq> guard(c.lock);
        // The depot first: objects other CPUs gave back, moved without touching their slabs.
        while (cc.count[cls] < want && c.depot_count > 0)
            cc.objs[cls][cc.count[cls]++] = c.depot[--c.depot_count];
        while (cc.count[cls] < want) {
            bool fresh = false;
            void* obj = slab_pop(c, cls, &fresh);
            if (obj == nullptr) break;
            new_pages += fresh;
            cc.objs[cls][cc.count[cls]++] = obj;
        }
    }
    count(cc.counters, 0, 0, new_pages);
}

void SlabHeap::flush(CpuCache& cc, size_t cls, uint32_t n) {
    Class& c = classes_[cls];
    Slab* release[kCpuCacheMax];
    uint32_t nrel = 0;
    {
        Guard<TasLock, NoIrq> guard(c.lock);
        // The oldest objects go (the bottom of the stack); the newest stay, likely still warm.
        uint32_t i = 0;
        for (; i < n && c.depot_count < kDepotMax; ++i) c.depot[c.depot_count++] = cc.objs[cls][i];
        for (; i < n; ++i)
            if (Slab* r = slab_push(c, cc.objs[cls][i])) release[nrel++] = r;
    }
    for (uint32_t i = n; i < cc.count[cls]; ++i) cc.objs[cls][i - n] = cc.objs[cls][i];
    cc.count[cls] -= n;
    for (uint32_t i = 0; i < nrel; ++i) release_slab(release[i], cc.counters);
}

void* SlabHeap::alloc(size_t size) {
    if (size == 0) return nullptr;
    if (size > kMaxSmall) return alloc_large(size, source_);
    const size_t cls = class_for(size);
    const size_t csize = class_size(cls);
    void* obj = nullptr;
    {
        const IrqSave::State irq = IrqSave::save(); // stay on this CPU while using its cache
        CpuCache* caches = __atomic_load_n(&cpus_, __ATOMIC_ACQUIRE);
        if (caches != nullptr) {
            CpuCache& cc = caches[this_cpu_()];
            Guard<SpinLock, NoIrq> guard(cc.lock);
            if (cc.count[cls] == 0) refill(cc, cls);
            if (cc.count[cls] != 0) {
                obj = cc.objs[cls][--cc.count[cls]];
                count(cc.counters, static_cast<int64_t>(csize), 1, 0);
            }
        } else {
            Class& c = classes_[cls];
            bool fresh = false;
            {
                Guard<TasLock, NoIrq> guard(c.lock);
                obj = slab_pop(c, cls, &fresh);
            }
            if (obj != nullptr) count(boot_, static_cast<int64_t>(csize), 1, fresh);
        }
        IrqSave::restore(irq);
    }
    if (obj == nullptr) return nullptr;
    auto* s = reinterpret_cast<Slab*>(page_of(obj));
    if (!mark_held(s, index_in(s, obj), true))
        report("heap: a free object is also held (heap corruption)", obj);
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
    if (!mark_held(s, index_in(s, p), false)) {
        report("heap: double free", p);
        return;
    }
    // Poisoned before it is visible to anyone else: once cached or back in its slab, another
    // CPU may take it.
    if (poison_) memset(p, kFreePoison, csize);
    const IrqSave::State irq = IrqSave::save();
    CpuCache* caches = __atomic_load_n(&cpus_, __ATOMIC_ACQUIRE);
    if (caches != nullptr) {
        CpuCache& cc = caches[this_cpu_()];
        Guard<SpinLock, NoIrq> guard(cc.lock);
        if (cc.count[cls] >= cache_cap(cls)) flush(cc, cls, cache_cap(cls) / 2);
        cc.objs[cls][cc.count[cls]++] = p;
        count(cc.counters, -static_cast<int64_t>(csize), -1, 0);
    } else {
        Slab* release;
        Class& c = classes_[cls];
        {
            Guard<TasLock, NoIrq> guard(c.lock);
            release = slab_push(c, p);
        }
        count(boot_, -static_cast<int64_t>(csize), -1, 0);
        if (release != nullptr) release_slab(release, boot_);
    }
    IrqSave::restore(irq);
}

uint64_t SlabHeap::drain_cpu(uint32_t cpu) {
    CpuCache* caches = __atomic_load_n(&cpus_, __ATOMIC_ACQUIRE);
    if (caches == nullptr || cpu >= cpu_count_) return 0;
    CpuCache& cc = caches[cpu];
    Guard<SpinLock, IrqSave> guard(cc.lock);
    uint64_t n = 0;
    for (size_t cls = 0; cls < kClassCount; ++cls) {
        n += cc.count[cls];
        if (cc.count[cls] != 0) flush(cc, cls, cc.count[cls]);
    }
    return n;
}

void SlabHeap::drain() {
    CpuCache* caches = __atomic_load_n(&cpus_, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; caches != nullptr && i < cpu_count_; ++i) {
        CpuCache& cc = caches[i];
        Guard<SpinLock, IrqSave> guard(cc.lock);
        for (size_t cls = 0; cls < kClassCount; ++cls)
            if (cc.count[cls] != 0) flush(cc, cls, cc.count[cls]);
    }
    for (size_t cls = 0; cls < kClassCount; ++cls) {
        Class& c = classes_[cls];
        Slab* release[kDepotMax + kKeepEmpty + 1];
        uint32_t nrel = 0;
        {
            Guard<TasLock, IrqSave> guard(c.lock);
            while (c.depot_count > 0)
                if (Slab* r = slab_push(c, c.depot[--c.depot_count])) release[nrel++] = r;
            // The kept empty slabs go too: after a drain the heap holds only what is in use.
            for (Slab* s = c.partial.front(); s != nullptr && nrel < kDepotMax + kKeepEmpty + 1;) {
                Slab* next = c.partial.next(*s);
                if (s->in_use == 0) {
                    c.partial.remove(*s);
                    s->magic = 0;
                    release[nrel++] = s;
                }
                s = next;
            }
            c.empty = 0;
        }
        for (uint32_t i = 0; i < nrel; ++i) release_slab(release[i], boot_);
    }
}

uint64_t SlabHeap::cached_objects() const COHORT_NO_THREAD_SAFETY_ANALYSIS {
    uint64_t n = 0;
    const CpuCache* caches = __atomic_load_n(&cpus_, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; caches != nullptr && i < cpu_count_; ++i)
        for (size_t cls = 0; cls < kClassCount; ++cls)
            n += __atomic_load_n(&caches[i].count[cls], __ATOMIC_RELAXED);
    for (size_t cls = 0; cls < kClassCount; ++cls)
        n += __atomic_load_n(&classes_[cls].depot_count, __ATOMIC_RELAXED);
    return n;
}

SlabHeap::ClassStats SlabHeap::class_stats(size_t cls) {
    ClassStats st{};
    if (cls >= kClassCount) return st;
    st.size = size_t{16} << cls;
    {
        Class& c = classes_[cls];
        Guard<TasLock, IrqSave> g(c.lock);
        for (const Slab& s : c.partial) {
            (void)s;
            ++st.partial_slabs;
        }
        st.empty_slabs = c.empty;
        st.depot = c.depot_count;
    }
    const CpuCache* caches = __atomic_load_n(&cpus_, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; caches != nullptr && i < cpu_count_; ++i)
        st.cpu_cached += __atomic_load_n(&caches[i].count[cls], __ATOMIC_RELAXED);
    return st;
}

void* SlabHeap::alloc_pages_from(size_t size, const PageSource& source) {
    if (size == 0) return nullptr;
    return alloc_large(size, source);
}

void* SlabHeap::alloc_large(size_t size, const PageSource& source) {
    if (size > (uint64_t{1} << 40)) return nullptr;
    size_t pages = (size + kLargeHeader + kPageSize - 1) / kPageSize;
    // Up to 16 pages, a power of two: the page allocator's CPU caches serve exactly those.
    if (pages <= 16) pages = std::bit_ceil(pages);
    void* mem = source.alloc(pages, source.ctx);
    if (mem == nullptr) return nullptr;
    auto* h = static_cast<LargeHeader*>(mem);
    h->magic = kLargeMagic;
    h->pages = pages;
    h->size = size;
    count_here(static_cast<int64_t>(pages * kPageSize - kLargeHeader), 1, static_cast<int64_t>(pages));
    void* obj = static_cast<unsigned char*>(mem) + kLargeHeader;
    if (poison_) memset(obj, kAllocPoison, size);
    return obj;
}

void SlabHeap::free_large(void* p) {
    auto* h = reinterpret_cast<LargeHeader*>(static_cast<unsigned char*>(p) - kLargeHeader);
    const uint64_t pages = h->pages;
    // A second free of the same block fails the magic check; two racing frees cannot both
    // clear it.
    uint32_t expected = kLargeMagic;
    if (!__atomic_compare_exchange_n(&h->magic, &expected, 0u, false,
                                     __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        report("heap: double free", p);
        return;
    }
    count_here(-static_cast<int64_t>(pages * kPageSize - kLargeHeader), -1, -static_cast<int64_t>(pages));
    source_.free(h, pages, source_.ctx);
}

void SlabHeap::count_here(int64_t bytes, int64_t objects, int64_t pages) {
    const IrqSave::State irq = IrqSave::save();
    CpuCache* caches = __atomic_load_n(&cpus_, __ATOMIC_ACQUIRE);
    count(caches != nullptr ? caches[this_cpu_()].counters : boot_, bytes, objects, pages);
    IrqSave::restore(irq);
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
    int64_t bytes = boot_.bytes.load(std::memory_order_relaxed);
    int64_t objects = boot_.objects.load(std::memory_order_relaxed);
    int64_t pages = boot_.pages.load(std::memory_order_relaxed);
    const CpuCache* caches = __atomic_load_n(&cpus_, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; caches != nullptr && i < cpu_count_; ++i) {
        bytes += caches[i].counters.bytes.load(std::memory_order_relaxed);
        objects += caches[i].counters.objects.load(std::memory_order_relaxed);
        pages += caches[i].counters.pages.load(std::memory_order_relaxed);
    }
    return {static_cast<uint64_t>(bytes), static_cast<uint64_t>(objects),
            static_cast<uint64_t>(pages), errors_.load(std::memory_order_relaxed)};
}

} // namespace cohort
