#include "mm/caches.h"

#include "mm/heap.h"
#include "mm/kstack.h"
#include "mm/pmm.h"
#include "debug/log.h"
#include "sched/sched.h"
#include "time/clock.h"

namespace cohort {

void mm_drain_caches() {
    // Outermost first: stacks give back heap-free pages, the heap gives back slabs, and only
    // then are the page caches emptied into the buddy lists.
    kstack_drain();
    // A worker may be purging stacks right now (its shootdown is slow with many vCPUs): its
    // slots are counted in use until it ends, and a snapshot taken meanwhile would show them
    // (sched.thousand_short_tasks_all_finish_and_spread once saw one stack too many).
    const uint64_t give_up = monotonic_ns() + 5'000'000'000;
    for (;;) {
        const KstackStats st = kstack_stats();
        if (st.purging == 0 && st.awaiting_purge == 0) break;
        if (monotonic_ns() > give_up) {
            log_warn("mm: stack purges still under way after 5 s; draining without them");
            break;
        }
        kstack_purge();
        sleep_for(1'000'000);
    }
    heap_drain();
    pmm::drain_cpu_caches();
}

} // namespace cohort
