// Size-class heap: small objects come from one-page slabs per class (16..2048 bytes), larger
// ones from whole pages. Portable: pages come from an injected source, so host tests run the
// same allocator over aligned host memory.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "lib/intrusive_list.h"
#include "sync/spinlock.h"

namespace cohort {

/// The size classes' locks (ranked: sync/lock_ranks.h).
extern LockClass g_heap_class;

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
    /// 16-byte aligned memory of at least `size` bytes; nullptr when out of memory or size 0.
    [[nodiscard]] void* alloc(size_t size);
    /// Releases `p` (nullptr is ignored). Misuse is reported through the hook and ignored.
    void free(void* p);
    /// Bytes usable at `p` (its size class, or the large allocation's capacity); 0 if invalid.
    size_t usable_size(const void* p) const;
    Stats stats() const;

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
        SpinLock lock{&g_heap_class};
        // Slabs with at least one free object.
        IntrusiveList<Slab, &Slab::link> partial COHORT_GUARDED_BY(lock);
    };
    void report(const char* what, const void* p);
    void* alloc_large(size_t size);
    void free_large(void* p);
    Slab* new_slab(size_t cls);

    PageSource source_{};
    bool poison_ = false;
    ErrorHook on_error_ = nullptr;
    std::atomic<uint64_t> bytes_{0}, objects_{0}, pages_{0}, errors_{0};
    Class classes_[kClassCount];
};

} // namespace cohort
