// The scheduler's part in CPU hotplug (smp/hotplug.cc runs the sequence, docs/hotplug.md):
// a CPU going offline stops receiving work, hands its queued tasks to other CPUs from its own
// worker, and parks from its idle loop; coming back, it reuses its idle task and worker.
#include "sched/sched.h"

#include <cstring>

#include "arch/arch.h"
#include "debug/log.h"
#include "sched/internal.h"
#include "smp/hotplug.h"
#include "time/clock.h"

namespace cohort {

using namespace sched_impl;

uint32_t sched_tasks_pinned_to(uint32_t cpu, char* name, size_t name_size) {
    const RunQueue& rq = rq_of(cpu);
    uint32_t n = 0;
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        const CpuData* owner = cpu_by_id(c);
        if (owner == nullptr) continue;
        CpuTasks& ct = per_cpu_on(owner, g_cpu_tasks);
        Guard<SpinLock, IrqSave> g(ct.lock);
        for (const Task& t : ct.all) {
            if (t.only_cpu != cpu || &t == rq.idle || &t == rq.worker) continue;
            if (t.state.load(std::memory_order_relaxed) == TaskState::Dead) continue;
            if (n++ == 0 && name != nullptr && name_size > 0) {
                const size_t len = name_size - 1 < sizeof(t.name) ? name_size - 1 : sizeof(t.name);
                memcpy(name, t.name, len);
                name[len] = 0;
            }
        }
    }
    return n;
}

void sched_cpu_going_down(uint32_t cpu) {
    RunQueue& rq = rq_of(cpu);
    Guard<ParkLock, IrqSave> g(rq.lock);
    rq.down.store(true, std::memory_order_release);
    // Out of every mask placement and balancing read: from here on load_view() calls it
    // offline and publish_load() leaves the masks alone.
    g_online.clear(rq.pos);
    g_idle.clear(rq.pos);
    g_overloaded.clear(rq.pos);
}

uint32_t sched_evacuate_here() {
    arch::IrqOff irq;
    RunQueue& rq = this_rq();
    COHORT_ASSERT(rq.down.load(std::memory_order_relaxed) && current_task() == rq.worker);
    const uint32_t me = this_cpu()->cpu_id;
    uint32_t moved = 0;
    rq.lock.lock();
    for (;;) {
        // Anything queued but the worker (running now, so on no queue) goes: migrate_queued
        // drops the lock, so the queues are looked at afresh each time.
        Task* t = rq.system.front();
        if (t == nullptr && rq.fair.first() != nullptr) t = task_of(rq.fair.first());
        if (t == nullptr) break;
        sched::ProbeCost cost = probe_budget();
        uint32_t dst = choose_cpu(t, me, cost);
        if (dst == kMaxCpus) {
            // No CPU of its affinity stays online (hotplug refuses tasks pinned here alone, so
            // this is one allowed only offline CPUs): the boot CPU runs it, marked homeless.
            t->homeless = true;
            dst = 0;
            log_warn("hotplug: task %lu (%s) has no other online CPU in its affinity; moving it "
                     "to cpu0", t->id, t->name);
        }
        migrate_queued(rq, t, dst);
        ++moved;
    }
    if (rq.slice_armed) timer_cancel(rq.slice_timer);
    rq.slice_armed = false;
    rq.parking = true; // the idle loop parks the CPU once the worker blocks
    rq.lock.unlock();
    return moved;
}

bool sched_cpu_running(uint32_t cpu) { return cpu < cpu_count() && load_view(cpu).online; }

bool sched_cpu_started(uint32_t cpu) {
    return cpu < cpu_count() && per_cpu_on(cpu_by_id(cpu), g_rq).idle != nullptr;
}

void sched_park_here() {
    RunQueue& rq = this_rq();
    rq.parking = false;
    // The scheduler stops here: when bring-up enables interrupts on the way back, before
    // reinit_cpu, an interrupt's exit must not switch tasks on a queue not yet set up.
    rq.ready.store(false, std::memory_order_release);
    smp_cpu_parked(); // does not return: the CPU waits for INIT-SIPI-SIPI
}

namespace sched_impl {

// A CPU back from offline: its idle task is this context again (bring-up started it afresh on
// the same stack), its worker still waits where it blocked, its queues are empty.
void reinit_cpu(CpuData* cpu, RunQueue& rq) {
    timer_init_cpu(cpu);
    Task* idle = rq.idle;
    idle->state.store(TaskState::Running);
    idle->on_cpu = true;
    cpu->current_task = idle;
    rq.curr = idle;
    rq.prev = nullptr;
    rq.slice_armed = false;
    rq.parking = false;
    rq.next_balance = 0;
    rq.balanced_at[0] = rq.balanced_at[1] = 0;
    rq.last_account = monotonic_ns();
    rq.irq_cycles_seen = cpu->counters.irq_cycles.load(std::memory_order_relaxed);
    rq.need_resched.store(false, std::memory_order_relaxed);
    Guard<ParkLock, IrqSave> g(rq.lock);
    rq.ready.store(true, std::memory_order_release);
    rq.down.store(false, std::memory_order_release);
    rq.is_idle.store(false, std::memory_order_relaxed);
    rq.overloaded = false;
    g_online.set(rq.pos);
    publish_load(rq); // idle (or the worker, if it was woken meanwhile, is queued)
}

} // namespace sched_impl

} // namespace cohort
