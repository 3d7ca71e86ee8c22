#include "mm/caches.h"

#include "mm/heap.h"
#include "mm/kstack.h"
#include "mm/pmm.h"

namespace cohort {

void mm_drain_caches() {
    // Outermost first: stacks give back heap-free pages, the heap gives back slabs, and only
    // then are the page caches emptied into the buddy lists.
    kstack_drain();
    heap_drain();
    pmm::drain_cpu_caches();
}

} // namespace cohort
