// Size-class heap: small objects come from one-page slabs per class (16..2048 bytes), larger
// ones from whole pages. Once enable_cpu_caches() ran, each CPU keeps a small stack of free
// objects per class, refilled from and drained to a per-class depot (then the slabs) a batch
// at a time, so the class lock is taken once per batch, not per object. Portable: pages come
// from an injected source and the CPU number from a callback, so host tests run the same
// allocator over aligned host memory with threads as CPUs.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

#include "lib/intrusive_list.h"
#include "sync/spinlock.h"
#include "sync/tas_lock.h"

namespace cohort {

/// The size classes' locks and the CPU caches' locks (ranked: sync/lock_ranks.h).
extern LockClass g_heap_class;
extern LockClass g_heap_cpu_class;

struct PageSource {
    /// Returns `pages` contiguous, 4 KiB-aligned pages, or nullptr.
    void* (*alloc)(size_t pages, void* ctx);
    void (*free)(void* p, size_t pages, void* ctx);
    void* ctx;
};

class SlabHeap {
  public:
    static constexpr size_t kPageSize = 4096;
    static constexpr size_t kClassCount = 8; // 16, 32, ..., 2048
    static constexpr size_t kMaxSmall = 2048;
    static constexpr size_t kAlignment = 16;

    struct Stats {
        uint64_t bytes_in_use;    // capacity of the live allocations
        uint64_t objects;         // live allocations
        uint64_t pages;           // pages currently held from the source
        uint64_t errors;          // invalid frees, double frees, poison damage
    };
    /// Called for every detected misuse (double free, foreign pointer, write after free).
    using ErrorHook = void (*)(const char* what, const void* ptr);

    void init(PageSource source, bool poison, ErrorHook on_error);
    /// Gives each of `cpus` CPUs its object caches (their memory comes from the page source).
    /// `this_cpu` returns the caller's CPU number (< cpus); it is called with interrupts off.
    /// From then on up to kKeepEmpty empty slabs per class stay for reuse. False when out of
    /// memory (the heap then keeps working without caches).
    bool enable_cpu_caches(uint32_t cpus, uint32_t (*this_cpu)());
    /// Returns every cached object to its slab and every empty slab to the page source, so
    /// stats().pages is what the live objects need. Takes each CPU cache's lock in turn (no
    /// CPU is interrupted).
    void drain();
    /// Flushes CPU `cpu`'s object cache to the depots (CPU hotplug: the CPU goes offline).
    /// Returns the objects flushed.
    uint64_t drain_cpu(uint32_t cpu);
    /// 16-byte aligned memory of at least `size` bytes; nullptr when out of memory or size 0.
    [[nodiscard]] void* alloc(size_t size);
    /// A large allocation (whole pages, freed like any other) whose pages come from `source`
    /// instead of the heap's own: for memory that must sit somewhere in particular (a NUMA
    /// node). `source`'s pages must be ones the heap's own source can free.
    [[nodiscard]] void* alloc_pages_from(size_t size, const PageSource& source);
    /// Releases `p` (nullptr is ignored). Misuse is reported through the hook and ignored.
    void free(void* p);
    /// Bytes usable at `p` (its size class, or the large allocation's capacity); 0 if invalid.
    size_t usable_size(const void* p) const;
    Stats stats() const;
    /// Objects sitting in CPU caches and depots (free, but not in their slabs).
    uint64_t cached_objects() const;
    /// One size class, for listings (a snapshot: counts are read without the CPUs' locks).
    struct ClassStats {
        size_t size;            // object size
        uint32_t partial_slabs; // slabs with a free object (empty ones included)
        uint32_t empty_slabs;   // of those, kept with nothing in use
        uint32_t depot;         // free objects in the shared depot
        uint64_t cpu_cached;    // free objects in the CPU caches
    };
    ClassStats class_stats(size_t cls);

    static constexpr size_t kCpuCacheMax = 32;  // objects per class and CPU, small classes
    static constexpr size_t kDepotMax = 64;     // objects per class in the shared depot
    static constexpr uint32_t kKeepEmpty = 2;   // empty slabs a class keeps (with CPU caches)

    /// Header at the start of every slab page.
    struct Slab {
        uint32_t magic;
        uint16_t size_class;
        uint16_t in_use;
        uint16_t capacity;
        uint16_t first_offset;
        uint32_t requested_pad;
        void* free_list;
        ListNode link;
        uint64_t allocated[4]; // one bit per object slot: catches double and foreign frees
    };

  private:
    struct Class {
        TasLock lock{&g_heap_class}; // behind the CPU caches: rare, must not convoy

        // Slabs with at least one free object (empty ones too, while they are kept).
        IntrusiveList<Slab, &Slab::link> partial COHORT_GUARDED_BY(lock);
        uint32_t empty COHORT_GUARDED_BY(lock) = 0; // slabs kept with no object in use
        uint32_t depot_count COHORT_GUARDED_BY(lock) = 0;
        void* depot[kDepotMax] COHORT_GUARDED_BY(lock);
    };
    // Counters are per CPU once the caches exist (no shared line on the fast path); before
    // that, and on the host without caches, the `boot_` set is used.
    struct Counters {
        std::atomic<int64_t> bytes{0}, objects{0}, pages{0};
    };
    struct alignas(64) CpuCache {
        SpinLock lock{&g_heap_cpu_class};
        uint32_t count[kClassCount] COHORT_GUARDED_BY(lock) = {};
        void* objs[kClassCount][kCpuCacheMax] COHORT_GUARDED_BY(lock);
        Counters counters;
    };
    void report(const char* what, const void* p);
    void* alloc_large(size_t size, const PageSource& source);
    void free_large(void* p);
    Slab* new_slab(size_t cls);
    // Under the class lock: one object out of the slabs (*new_page set if that took a page),
    // or back into its slab (returning the slab if it must go back to the page source).
    void* slab_pop(Class& c, size_t cls, bool* new_page) COHORT_REQUIRES(c.lock);
    Slab* slab_push(Class& c, void* obj) COHORT_REQUIRES(c.lock);
    void refill(CpuCache& c, size_t cls) COHORT_REQUIRES(c.lock);
    void flush(CpuCache& c, size_t cls, uint32_t n) COHORT_REQUIRES(c.lock);
    void release_slab(Slab* s, Counters& k);
    void count_here(int64_t bytes, int64_t objects, int64_t pages);
    void count(Counters& k, int64_t bytes, int64_t objects, int64_t pages) {
        k.bytes.fetch_add(bytes, std::memory_order_relaxed);
        k.objects.fetch_add(objects, std::memory_order_relaxed);
        k.pages.fetch_add(pages, std::memory_order_relaxed);
    }

    PageSource source_{};
    bool poison_ = false;
    ErrorHook on_error_ = nullptr;
    Counters boot_;
    std::atomic<uint64_t> errors_{0};
    CpuCache* cpus_ = nullptr;
    uint32_t cpu_count_ = 0;
    uint32_t (*this_cpu_)() = nullptr;
    Class classes_[kClassCount];
};

} // namespace cohort
