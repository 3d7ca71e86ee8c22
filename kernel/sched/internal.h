// The scheduler's own shared state and helpers, split over sched/*.cc by concern:
//   core.cc     run queues, the switch, preemption, idle, statistics
//   balance.cc  placement of new tasks, migration, stealing and pushing, affinity changes
//   wake.cc     wake-ups and sleeping
//   task.cc     task life: creation, ids and lists, exit, burial, join, the per-CPU worker
//   boot.cc     bring-up: each CPU's run queue, idle task and worker, the main task
// Not for code outside sched/ (sched/sched.h is the interface).
//
// Locking rules (all run-queue locks are taken with interrupts off):
// - A task's `state`, `on_cpu` and queue membership change only under the lock of the run queue
//   named by its `cpu` field; `cpu` itself changes only under that lock too (migration).
// - schedule() holds its run-queue lock from picking the next task until that task has finished
//   the switch (finish_switch), so a waker that holds the lock sees either "still on the CPU"
//   (it cancels the block) or "fully switched out" (it may enqueue the task anywhere).
// - Never two run-queue locks at once: migrating takes the task off one queue, drops that lock,
//   then takes the other. In between the task is Ready on no queue, which every path tolerates.
// - Lock ranks (sync/lock_ranks.h): wait-queue locks below run-queue locks (a wake-up holds
//   both), timer-queue locks above them and never held while waking.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "sched/fair.h"
#include "sched/placement.h"
#include "sched/sched.h"
#include "sched/topology.h"
#include "smp/cpu.h"
#include "smp/percpu.h"
#include "sync/park_lock.h"
#include "sync/spinlock.h"
#include "time/timer.h"

namespace cohort::sched_impl {

using sched::FairEntity;

extern LockClass g_rq_class;
extern LockClass g_tasks_class;

constexpr sched::FairParams kParams{};
constexpr uint64_t kBalanceIntervalNs = 10'000'000;

struct alignas(64) RunQueue {
    // Read without the lock by placement, balancing and stealing on other CPUs: a line of its
    // own, written only when this queue's load changes, never by a lock acquisition or a
    // switch that leaves the load as it was.
    std::atomic<uint32_t> runnable{0}; // queued + running (not counting idle)
    std::atomic<bool> is_idle{true};
    std::atomic<bool> ready{false};
    // CPU hotplug: the CPU is going (or has gone) offline: nothing new is placed here, and its
    // bits stay out of the shared masks. `parking`: its tasks are gone, the idle loop parks it.
    std::atomic<bool> down{false};
    bool parking = false;
    // When is_idle last became true (monotonic ns): balancing elsewhere tells from it how long
    // this CPU has idled beside waiting work.
    std::atomic<uint64_t> idle_since{0};
    // Mirrors this queue's bits in g_overloaded (is_idle mirrors g_idle), so publish_load
    // writes the shared masks only when they change.
    bool overloaded = false;
    uint32_t pos = 0; // the CPU's position in the topology order (sched/topology.h)

    // This CPU's, and its lock's: the lock word and what the owner updates on every switch.
    // A ParkLock: a waker whose vCPU the host preempts must not stall a FIFO line of others,
    // and waiters halt instead of burning the host core the holder needs (sync/park_lock.h).
    alignas(64) ParkLock lock{&g_rq_class};
    sched::FairQueue fair;
    IntrusiveList<Task, &Task::link> system; // strict priority, FIFO
    Task* curr = nullptr;
    Task* idle = nullptr;
    Task* worker = nullptr;
    Task* prev = nullptr; // the task being switched away from, for finish_switch
    // Set under the lock (remotely too), read without it at interrupt exit and preemption points.
    std::atomic<bool> need_resched{false};
    // Problems noticed under the lock, logged once it is dropped: the console is a slow UART
    // behind its own lock, and a line written with the run queue held stalls every waker.
    struct Report {
        enum Kind : uint8_t { None, Homeless, OutsideAffinity } kind = None;
        uint64_t task_id = 0;
        char name[24] = {};
        uint32_t cpu = 0;
    } report;
    uint32_t reports_dropped = 0; // more problems before the first was logged
    std::atomic<bool> has_report{false}; // read without the lock on every switch
    Timer slice_timer;
    bool slice_armed = false;
    uint64_t next_balance = 0;
    // The wasted-core check (balance): since when this queue has had waiting work that other
    // CPUs may run (set when it becomes overloaded, and again when a waiting task's affinity
    // changes), and the starts of its last two balance intervals.
    uint64_t waiting_since = 0;
    uint64_t balanced_at[2] = {};
    uint64_t last_account = 0; // busy/idle accounting
    uint64_t irq_cycles_seen = 0; // CpuCounters::irq_cycles at last_account: not a task's time
    std::atomic<uint64_t> switches{0}, busy_ns{0}, idle_ns{0}, migrations_in{0}, steals{0};
    // Wake-ups this CPU placed and the cache lines of other CPUs' state (and of the shared
    // masks) they read or wrote: their ratio must not grow with the number of CPUs.
    std::atomic<uint64_t> wakes_placed{0}, wake_lines{0};
    std::atomic<uint32_t> wake_lines_max{0}; // the most one wake-up read (this CPU only writes)
    std::atomic<uint64_t> wasted_core_violations{0}, pushes{0}, node_pushes{0};
};
// Checked where the compiler allows it (RunQueue is not standard-layout, so offsetof is
// conditionally supported): the load other CPUs read sits on the first line, the lock on the
// next.
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Winvalid-offsetof"
static_assert(offsetof(RunQueue, runnable) < 64 && offsetof(RunQueue, is_idle) < 64 &&
              offsetof(RunQueue, ready) < 64 && offsetof(RunQueue, idle_since) < 64 &&
              offsetof(RunQueue, down) < 64);
static_assert(offsetof(RunQueue, lock) == 64, "the lock word shares no line with the load");
#pragma clang diagnostic pop
extern RunQueue g_rq; // per CPU

// The scheduling domains and the masks of scheduling, idle and overloaded CPUs (by position),
// set up by sched_init before any AP schedules.
extern sched::Topology g_topology;
extern sched::PositionMask g_online, g_idle, g_overloaded;
extern sched::Placement g_placement;
inline sched::Machine machine() { return sched::Machine{g_topology, g_online, g_idle, g_overloaded}; }
inline sched::ProbeCost probe_budget() { return sched::probe_budget(g_topology); }
/// Where `t` should run, from `prev`: select_cpu over t's affinity with this kernel's masks,
/// loads and placement mode, or straight to the one CPU a pinned task may use.
uint32_t choose_cpu(const Task* t, uint32_t prev, sched::ProbeCost& cost,
                    uint32_t sample_from = kMaxCpus);
/// Sets t->affinity (and what is derived from it). Under the lock that guards t's affinity.
void set_affinity(Task* t, const CpuMask& mask);

RunQueue& rq_of(uint32_t cpu);
inline RunQueue& this_rq() { return per_cpu(g_rq); }

// What a CPU knows about the tasks created on it and the tasks that died on it. Nothing here
// is shared by all CPUs: task creation and exit stay on the CPU.
struct alignas(64) CpuTasks {
    SpinLock lock{&g_tasks_class}; // `all`: its owner, and whoever frees one of its tasks
    IntrusiveList<Task, &Task::all_link> all COHORT_GUARDED_BY(lock);
    // A dead task's stack went onto the purge list and a batch is due: the worker purges it
    // (a shootdown needs thread context). Owner only, interrupts off.
    bool purge_due = false;
    uint64_t next_id = 0, id_end = 0; // a block of task ids (owner, interrupts off)
    uint32_t spread = 0;              // where the search for a new task's CPU starts
    // Tasks created and freed here; their sums is sched_live_tasks().
    std::atomic<uint64_t> created{0}, freed{0};
};
extern CpuTasks g_cpu_tasks; // per CPU

extern std::atomic<uint64_t> g_affinity_violations;

inline Task* task_of(FairEntity* e) { return static_cast<Task*>(e->owner); }
inline bool queued(const Task* t) { return t->system ? t->link.linked() : t->fair.link.linked(); }

// core.cc
void note_problem(RunQueue& rq, RunQueue::Report::Kind kind, const Task* t, uint32_t cpu)
    COHORT_REQUIRES(rq.lock);
void flush_problems(RunQueue& rq);
void publish_load(RunQueue& rq) COHORT_REQUIRES(rq.lock);
sched::CpuLoad load_view(uint32_t cpu);
void enqueue(RunQueue& rq, Task* t) COHORT_REQUIRES(rq.lock);
void dequeue(RunQueue& rq, Task* t) COHORT_REQUIRES(rq.lock);
void resched(uint32_t cpu, RunQueue& rq) COHORT_REQUIRES(rq.lock);
void kick(uint32_t cpu, RunQueue& rq, Task* t) COHORT_REQUIRES(rq.lock);
void finish_switch();
void schedule(bool preempted, bool yielding = false);
void schedule_with_irqs_saved(bool preempted, bool yielding = false);
void preempt_point();
[[noreturn]] void idle_main();

// balance.cc
void arrive(Task* t, uint32_t cpu, int64_t lag, bool woken);
void note_migration(Task* t, uint32_t dst_cpu);
void migrate_queued(RunQueue& src, Task* t, uint32_t dst_cpu);
bool try_steal();
void balance(RunQueue& rq, uint64_t now) COHORT_REQUIRES(rq.lock);
void place(Task* t);

// wake.cc
bool wake_up_locked_irqs_off(Task* t);

// hotplug.cc
void reinit_cpu(CpuData* cpu, RunQueue& rq);

// task.cc
void put_task(Task* t);
void bury(Task* t, RunQueue& rq);
/// A node for new_task_memory: the caller's own.
inline constexpr uint32_t kAnyNode = TaskOptions::kHere;
/// A Task and its FPU area, in memory of NUMA node `node` (a CPU's idle and worker tasks are
/// made by the boot CPU on that CPU's node).
Task* new_task_memory(uint32_t node = kAnyNode);
Task* register_task(Task* t, const char* name);
Task* alloc_task(const char* name);
Task* start_task(Task* t, TaskFn entry, void* arg, const TaskOptions& o);
void worker_main(void*);

} // namespace cohort::sched_impl
