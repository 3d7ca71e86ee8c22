// A task's life: memory, ids and the per-CPU task lists, creation, exit and burial on the CPU
// it died on, join, and each CPU's worker (run_on work and stack purges).
#include "sched/sched.h"

#include <cstring>

#include "arch/arch.h"
#include "debug/log.h"
#include "debug/panic.h"
#include "mm/heap.h"
#include "numa/numa.h"
#include "sched/internal.h"
#include "smp/call.h"
#include "sync/lock_ranks.h"

namespace cohort {
namespace sched_impl {

LockClass g_tasks_class{"task list", rank::kTaskList, LockScope::PerCpu, false};
COHORT_PERCPU(CpuTasks, g_cpu_tasks);

namespace {
constexpr uint64_t kIdBlock = 256;
std::atomic<uint64_t> g_next_id_block{1}; // touched once per kIdBlock tasks a CPU creates

void copy_name(Task* t, const char* name) {
    size_t n = strlen(name);
    if (n >= sizeof(t->name)) n = sizeof(t->name) - 1;
    memcpy(t->name, name, n);
    t->name[n] = 0;
}

void free_task(Task* t) {
    {
        CpuTasks& home = per_cpu_on(cpu_by_id(t->home_cpu), g_cpu_tasks);
        Guard<SpinLock, IrqSave> g(home.lock);
        home.all.remove(*t);
    }
    t->~Task();
    kfree(t);
    // Last: a caller that sees the count back at its baseline also sees the memory freed.
    // Any CPU's counter will do (only the sum means something).
    per_cpu(g_cpu_tasks).freed.fetch_add(1, std::memory_order_release);
}

} // namespace

void put_task(Task* t) {
    if (t->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) free_task(t);
}

// Releases what a dead task held, right after the switch away from it (nothing runs on its
// stack any more), on the CPU it died on: the stack goes into this CPU's cache or onto the
// purge list, so nothing here waits, takes a machine-wide lock in the common case, or sends an
// IPI. Not left to a thread: a CPU's worker may be blocked in run_on work that joins the very
// task (it was, in the torture test), and one reaper for all CPUs was a machine-wide queue.
void bury(Task* t, RunQueue& rq) {
    if (kstack_release_nonblocking(t->stack)) {
        per_cpu(g_cpu_tasks).purge_due = true;
        if (rq.worker != nullptr) wake_up_locked_irqs_off(rq.worker);
    }
    kfree(t->fpu_alloc);
    t->fpu_alloc = t->fpu_area = nullptr;
    // Joiners wait for this flag, not for "only my reference is left": a waker may still hold
    // a transient reference (task_ref) now, and its task_unref wakes nobody. The Task is ours
    // until put_task, so its queue may be used up to there and not after.
    t->reaped.store(true, std::memory_order_release);
    t->joiners.wake_all();
    put_task(t);
}

// The node the calling CPU's allocations come from: its own, or the nearest with memory.
static uint32_t local_memory_node() {
    const uint32_t node = this_cpu()->node;
    const uint32_t mem = numa_map().nearest_node_with_memory(node);
    return mem != numa::kNoNode ? mem : node;
}

// A Task and its FPU area, not yet known to any CPU (no id, on no list).
Task* new_task_memory(uint32_t node) {
    void* mem = node == kAnyNode ? kzalloc(sizeof(Task)) : kzalloc_node(sizeof(Task), node);
    if (mem == nullptr) return nullptr;
    Task* t = new (mem) Task();
    t->fair.owner = t;
    const size_t fpu = arch::fpu_state_size();
    t->fpu_alloc = node == kAnyNode ? kmalloc(fpu + 64) : kmalloc_node(fpu + 64, node);
    if (t->fpu_alloc == nullptr) {
        kfree(mem);
        return nullptr;
    }
    t->fpu_area = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(t->fpu_alloc) + 63) & ~uintptr_t{63});
    t->canary = arch::random_u64();
    arch::fpu_init_state(t->fpu_area);
    for (uint32_t c = 0; c < cpu_count(); ++c) t->affinity.set(c);
    t->home_node = node != kAnyNode ? node : local_memory_node();
    return t;
}

// Names `t`, gives it an id from the calling CPU's block and puts it on that CPU's list.
Task* register_task(Task* t, const char* name) {
    copy_name(t, name);
    arch::IrqOff irq; // the id block and the list are this CPU's
    CpuTasks& mine = per_cpu(g_cpu_tasks);
    if (mine.next_id == mine.id_end) {
        mine.next_id = g_next_id_block.fetch_add(kIdBlock, std::memory_order_relaxed);
        mine.id_end = mine.next_id + kIdBlock;
    }
    t->id = mine.next_id++;
    t->home_cpu = this_cpu()->cpu_id;
    {
        Guard<SpinLock, NoIrq> g(mine.lock);
        mine.all.push_back(*t);
    }
    mine.created.fetch_add(1, std::memory_order_relaxed);
    return t;
}

Task* alloc_task(const char* name) {
    Task* t = new_task_memory();
    return t == nullptr ? nullptr : register_task(t, name);
}

// Makes `t` (registered, with its stack) runnable: the first switch to it enters `entry`.
Task* start_task(Task* t, TaskFn entry, void* arg, const TaskOptions& o) {
    t->entry = entry;
    t->arg = arg;
    t->system = o.system;
    t->fair.weight = o.weight < sched::kMinWeight   ? sched::kMinWeight
                     : o.weight > sched::kMaxWeight ? sched::kMaxWeight
                                                    : o.weight;
    if (o.affinity != nullptr) set_affinity(t, *o.affinity);
    t->address_space = o.address_space;
    t->saved_rsp = arch::initial_task_frame(t->stack.top, t);
    t->state.store(TaskState::Blocked, std::memory_order_relaxed);
    arch::IrqOff irq;
    place(t);
    return t;
}

void worker_main(void*) {
    for (;;) {
        // Deferred calls (run_on) run here, in thread context with interrupts on.
        run_deferred_work();
        CpuTasks& mine = per_cpu(g_cpu_tasks); // the worker never leaves its CPU
        if (mine.purge_due) {
            mine.purge_due = false;
            kstack_purge();
        }
        arch::irq_disable();
        if (!has_deferred_work() && !mine.purge_due) {
            current_task()->state.store(TaskState::Blocked, std::memory_order_relaxed);
            schedule(false);
        }
        arch::irq_enable();
    }
}

} // namespace sched_impl

using namespace sched_impl;

const char* task_state_name(TaskState s) {
    switch (s) {
    case TaskState::Ready: return "ready";
    case TaskState::Running: return "running";
    case TaskState::Blocked: return "blocked";
    case TaskState::Dead: return "dead";
    }
    return "?";
}

Task* task_create(TaskFn entry, void* arg, const TaskOptions& o) {
    if (o.node != TaskOptions::kHere && o.node >= numa_map().nodes()) {
        log_error("sched: task '%s' asks for NUMA node %u; there are %u", o.name, o.node,
                  numa_map().nodes());
        return nullptr;
    }
    Task* t = new_task_memory(o.node);
    if (t != nullptr) register_task(t, o.name);
    if (t == nullptr) {
        log_error("sched: out of memory creating task '%s'", o.name);
        return nullptr;
    }
    // The default goes through the CPU's stack cache; an explicit node asks that node's pages.
    t->stack = o.node == TaskOptions::kHere ? kstack_alloc(o.stack_size)
                                            : kstack_alloc_node(o.stack_size, o.node);
    if (!t->stack.valid()) {
        log_error("sched: no kernel stack for task '%s' (%zu bytes)", o.name, o.stack_size);
        t->refs.store(1);
        kfree(t->fpu_alloc);
        put_task(t);
        return nullptr;
    }
    return start_task(t, entry, arg, o);
}

extern "C" [[noreturn]] void sched_task_first_run(Task* t) {
    finish_switch();
    arch::irq_enable();
    t->entry(t->arg);
    task_exit();
}

void task_exit() {
    arch::irq_disable();
    Task* t = current_task();
    t->state.store(TaskState::Dead, std::memory_order_relaxed);
    schedule(false);
    panic("sched: dead task %lu (%s) was scheduled again", t->id, t->name);
}

void task_join(Task* t) {
    // The reaper has freed the stack; other references (ours, transient ones of wakers) keep
    // the Task itself until the last is dropped.
    // Our reference keeps `t` (and its queue) alive while we wait.
    t->joiners.wait([t] { return t->reaped.load(std::memory_order_acquire); });
    put_task(t);
}

void task_detach(Task* t) { put_task(t); }

void task_ref(Task* t) { t->refs.fetch_add(1, std::memory_order_relaxed); }
void task_unref(Task* t) { put_task(t); }

uint64_t sched_live_tasks() {
    // Every freed counter before any created one: a task freed before its counter is read was
    // created before that, so it is counted on both sides and the sum never drops below zero.
    uint64_t created = 0, freed = 0;
    for (uint32_t c = 0; c < cpu_count(); ++c)
        if (const CpuData* cpu = cpu_by_id(c))
            freed += per_cpu_on(cpu, g_cpu_tasks).freed.load(std::memory_order_acquire);
    for (uint32_t c = 0; c < cpu_count(); ++c)
        if (const CpuData* cpu = cpu_by_id(c))
            created += per_cpu_on(cpu, g_cpu_tasks).created.load(std::memory_order_acquire);
    return created - freed;
}

size_t sched_snapshot_tasks(TaskSnapshot* out, size_t max) {
    size_t n = 0;
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        const CpuData* cpu = cpu_by_id(c);
        if (cpu == nullptr) continue;
        CpuTasks& ct = per_cpu_on(cpu, g_cpu_tasks);
        Guard<SpinLock, IrqSave> g(ct.lock);
        for (const Task& t : ct.all) {
            if (n < max) {
                TaskSnapshot& s = out[n];
                s.id = t.id;
                memcpy(s.name, t.name, sizeof(s.name));
                s.name[sizeof(s.name) - 1] = 0;
                s.state = t.state.load(std::memory_order_relaxed);
                s.cpu = t.cpu.load(std::memory_order_relaxed);
                s.only_cpu = t.only_cpu;
                s.allowed = static_cast<uint32_t>(t.affinity.count());
                s.weight = t.fair.weight;
                s.run_ns = t.stats.run_ns;
                s.system = t.system;
                s.idle = t.idle;
            }
            ++n;
        }
    }
    return n;
}

} // namespace cohort
