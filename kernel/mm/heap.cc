#include "mm/heap.h"

#include <cstring>
#include <new>

#include "debug/log.h"
#include "mm/phys.h"
#include "mm/pmm.h"
#include "numa/numa.h"
#include "smp/cpu.h"

namespace cohort {

namespace {
SlabHeap g_heap;

void* pages_alloc(size_t pages, void*) {
    const uint64_t phys = pmm::alloc_pages(pages);
    return phys == 0 ? nullptr : phys_to_virt<void>(phys);
}
void pages_free(void* p, size_t pages, void*) { pmm::free_pages(direct_map_virt_to_phys(p), pages); }
void heap_error(const char* what, const void* p) { log_error("%s (pointer %p)", what, p); }

uint32_t running_cpu() { return this_cpu()->cpu_id; }
} // namespace

void heap_init(bool poison) { g_heap.init(PageSource{pages_alloc, pages_free, nullptr}, poison, heap_error); }
void heap_enable_cpu_caches() {
    if (!g_heap.enable_cpu_caches(cpu_count(), running_cpu))
        log_warn("heap: no memory for per-CPU caches; every allocation takes its class lock");
}
void heap_drain() { g_heap.drain(); }
uint64_t heap_drain_cpu(uint32_t cpu) { return g_heap.drain_cpu(cpu); }
uint64_t heap_cached_objects() { return g_heap.cached_objects(); }
void* kmalloc(size_t size) { return g_heap.alloc(size); }
void* kzalloc(size_t size) {
    void* p = g_heap.alloc(size);
    if (p != nullptr) memset(p, 0, size);
    return p;
}
void kfree(void* p) { g_heap.free(p); }

namespace {
void* node_pages_alloc(size_t pages, void* ctx) {
    const uint64_t phys = pmm::alloc_pages_node(*static_cast<const uint32_t*>(ctx), pages);
    return phys == 0 ? nullptr : phys_to_virt<void>(phys);
}
} // namespace

void* kmalloc_node(size_t size, uint32_t node) {
    // This CPU's slabs hold memory of its own node already; another node's objects take whole
    // pages of that node (only boot-time, per-CPU structures ask for those).
    const numa::NodeMap& m = numa_map();
    if (m.nodes() < 2 || m.nearest_node_with_memory(node) ==
                             m.nearest_node_with_memory(this_cpu()->node))
        return kmalloc(size);
    return g_heap.alloc_pages_from(size, PageSource{node_pages_alloc, pages_free, &node});
}

void* kzalloc_node(size_t size, uint32_t node) {
    void* p = kmalloc_node(size, node);
    if (p != nullptr) memset(p, 0, size);
    return p;
}
SlabHeap::Stats heap_stats() { return g_heap.stats(); }
SlabHeap::ClassStats heap_class_stats(size_t cls) { return g_heap.class_stats(cls); }

} // namespace cohort

// C++ allocation goes to the kernel heap. No exceptions exist, so failure returns nullptr.
void* operator new(size_t size) { return cohort::kmalloc(size); }
void* operator new[](size_t size) { return cohort::kmalloc(size); }
void operator delete(void* p) noexcept { cohort::kfree(p); }
void operator delete[](void* p) noexcept { cohort::kfree(p); }
void operator delete(void* p, size_t) noexcept { cohort::kfree(p); }
void operator delete[](void* p, size_t) noexcept { cohort::kfree(p); }
