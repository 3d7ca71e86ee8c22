// The scheduler: kernel threads ("tasks") on per-CPU run queues, a fair weighted policy
// (sched/fair.h) under a strict system class, preemption by the per-CPU one-shot timer, wake-up
// placement, idle stealing and periodic balancing. See docs/scheduler.md.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "lib/intrusive_list.h"
#include "mm/kstack.h"
#include "sched/fair.h"
#include "sched/wait.h"
#include "smp/cpumask.h"
#include "sync/owner.h"

namespace cohort {

struct AddressSpace;
struct FaultCatcher;

using TaskFn = void (*)(void* arg);

enum class TaskState : uint8_t {
    Ready,   // on a run queue (or moving between two)
    Running, // the current task of its CPU
    Blocked, // waiting for a wake-up (wait queue, timer)
    Dead,    // exited; its stack awaits the reaper
};
const char* task_state_name(TaskState s);

/// Per-task counters (read racily by observers; written by the scheduler on the task's CPU).
struct TaskStats {
    uint64_t run_ns = 0;
    uint64_t switches = 0;   // times it was switched in
    uint64_t migrations = 0; // times it moved to another CPU's queue
    uint64_t wakeups = 0;
};

/// Options for task_create. Everything has a sensible default.
struct TaskOptions {
    const char* name = "task";
    uint32_t weight = sched::kDefaultWeight;
    const CpuMask* affinity = nullptr; // nullptr: every CPU
    AddressSpace* address_space = nullptr; // nullptr: the kernel's
    size_t stack_size = kKernelStackDefaultSize;
    bool system = false; // strict-priority class above the fair one (kernel workers)
    /// The NUMA node the task's memory (Task, FPU area, stack) comes from, which becomes its
    /// home node: placement prefers that node's CPUs. kHere: the creating CPU's node (or the
    /// nearest node with memory, for a CPU on a memory-less node).
    static constexpr uint32_t kHere = 0xffff'ffff;
    uint32_t node = kHere;
};

/// A kernel thread. Fields below the scheduler's are private to sched/ unless documented.
struct Task {
    sched::FairEntity fair; // first: the run queue hands back FairEntity pointers
    uint64_t saved_rsp = 0;
    uint64_t canary = 0; // its stack-protector canary, loaded into CpuData on every switch
    std::atomic<TaskState> state{TaskState::Ready};
    std::atomic<uint32_t> cpu{0}; // the run queue it belongs to (where it runs or will run)
    bool on_cpu = false;          // its registers live on a CPU (set/cleared under that rq lock)
    bool system = false;
    bool idle = false;
    bool homeless = false; // no online CPU in its affinity: runs where it was created (logged)
    uint64_t id = 0;
    char name[24] = {};
    CpuMask affinity;
    // The one CPU `affinity` allows, or kMaxCpus when it allows more: a pinned task's wake-up
    // skips the search. Changes with `affinity`, under the same lock.
    uint32_t only_cpu = kMaxCpus;
    KernelStack stack;
    void* fpu_area = nullptr; // 64-byte aligned XSAVE/FXSAVE area
    void* fpu_alloc = nullptr;
    AddressSpace* address_space = nullptr;
    TaskFn entry = nullptr;
    void* arg = nullptr;
    uint64_t exec_start = 0; // monotonic_ns() when it was last switched in
    FaultCatcher* fault_catcher = nullptr; // innermost recovery point (debug/fault_catcher.h)
    TaskStats stats;
    // One reference for the scheduler, dropped by the reaper once the stack is freed; one for
    // the creator, dropped by task_join or task_detach. Whoever drops the last frees the Task.
    std::atomic<int> refs{2};
    std::atomic<bool> reaped{false}; // the reaper is done with it (task_join waits for this)
    WaitQueue joiners;               // task_join waits here; the reaper wakes it
    ListNode link;            // system-class FIFO, or its CPU's list of dead tasks
    ListNode all_link;        // on the task list of the CPU that created it
    uint32_t home_cpu = 0;    // that CPU
    uint32_t home_node = 0;   // the NUMA node its memory came from (TaskOptions::node)
};

/// Creates a ready task running entry(arg) and places it on a CPU (sched/placement.h). Returns
/// nullptr when memory or stack slots run out (logged). The caller owns one reference: release
/// it with task_join() or task_detach().
Task* task_create(TaskFn entry, void* arg, const TaskOptions& options = {});
/// Waits until `t` has exited and its stack is released (freed, or kept in a CPU's stack
/// cache), then drops the caller's reference. The Task itself goes with the last reference,
/// which the CPU's worker (the reaper of the tasks that die there) may hold for a moment.
void task_join(Task* t);
/// Drops the caller's reference without waiting; the task is freed once it exits.
void task_detach(Task* t);
/// Takes and drops an extra reference: `t` stays valid (not freed, even if it exits and is
/// reaped) until the matching task_unref. For code that wakes a task it does not own.
void task_ref(Task* t);
void task_unref(Task* t);
/// Ends the calling task (also what returning from its entry function does).
[[noreturn]] void task_exit();

/// The running task.
Task* current_task();
/// CPU time `t` has received. Exact for the caller's own task (includes the time since the
/// scheduler last charged it); for others, as of their last switch or preemption tick.
uint64_t task_run_ns(const Task* t);
/// Gives up the CPU if another task of the caller's class is ready: the caller goes just behind
/// the next one in line (a system-class task behind the others of its class), so it runs again
/// soon. Tasks of a higher class run first anyway.
void yield();
/// Blocks the caller for at least `ns` nanoseconds (per-CPU timer queue).
void sleep_for(uint64_t ns);
/// Makes a Blocked task runnable (placing it by the wake-up rules); false if it was not blocked.
bool wake_up(Task* t);
/// Replaces the affinity; a task running or queued elsewhere moves at its next switch.
void task_set_affinity(Task* t, const CpuMask& mask);

/// Keeps the running task on this CPU for a scope: no preemption, so no migration. Interrupts
/// stay enabled; the scope must not block (sched_block asserts it). For code that decides
/// something about "this CPU" and then acts on it (a remote call's own share, say). Uses the
/// count spinlocks keep; a reschedule asked for meanwhile happens when the scope ends.
class NoPreempt {
  public:
    NoPreempt() { lock_hold_enter(); }
    ~NoPreempt();
    NoPreempt(const NoPreempt&) = delete;
    NoPreempt& operator=(const NoPreempt&) = delete;
};

/// Runs fn(arg) in the calling task, on CPU `cpu`: the task is pinned there (moving it first if
/// needed) for the call, then gets its affinity back. fn may block.
void run_pinned(uint32_t cpu, void (*fn)(void*), void* arg);

/// Called by a task after it set its own state to Blocked (see WaitQueue): switches away
/// unless a wake-up already arrived. Interrupts must be enabled.
void sched_block();

/// Bring-up, on the boot CPU once the CPU table is final (smp_prepare) and before any AP
/// starts: the scheduler's global state, and the boot CPU's run queue with its boot context as
/// its idle task.
void sched_init();
/// Bring-up: waits (sched.ready_timeout_ms) until every online CPU has set up its scheduler,
/// starts `main` as the first task on the boot CPU and becomes its idle loop.
[[noreturn]] void sched_start(TaskFn main, void* arg);
/// Bring-up on an AP, as soon as it is online: sets up its own run queue, idle task (this
/// context) and worker, in parallel with every other AP, then idles.
[[noreturn]] void sched_enter_ap();
/// CPUs whose scheduler is set up (each sets up its own, in parallel, at boot).
uint32_t sched_cpus_ready();
/// The scheduler runs on the calling CPU.
bool sched_running_here();
/// The caller is its CPU's worker task (the one that runs run_on work).
bool sched_in_worker();

/// Interrupt exit (from interrupt_dispatch when the outermost handler returns): switches tasks
/// if the handler asked for it and the interrupted task holds no lock.
void sched_irq_exit();

/// Tells the scheduler there is deferred work (smp/call.h run_on) for this CPU's worker.
void sched_kick_worker();

/// Per-CPU statistics.
struct CpuSchedStats {
    uint64_t switches = 0;
    uint64_t busy_ns = 0;
    uint64_t idle_ns = 0;
    uint64_t migrations_in = 0; // tasks that moved here (wake-up placement, stealing, balancing)
    uint64_t steals = 0;
    uint32_t runnable = 0;
    // Wake-ups this CPU placed, the cache lines of other CPUs' state and of the shared idle
    // masks they read or wrote in all, and the most one of them did.
    uint64_t wakes_placed = 0;
    uint64_t wake_lines = 0;
    uint32_t wake_lines_max = 0;
    // Balancing found a CPU it could give a waiting task that had been idle for two of this
    // CPU's balance intervals while this CPU had work waiting (the "no wasted cores"
    // invariant; docs/numa.md): should stay 0.
    uint64_t wasted_core_violations = 0;
    uint64_t pushes = 0;       // tasks this CPU's balancing gave away
    uint64_t node_pushes = 0;  // of them, to a CPU of another NUMA node
};
CpuSchedStats sched_cpu_stats(uint32_t cpu);
namespace sched {
class Topology;
}
/// The scheduling domains built at boot from the CPUs' topology (sched/topology.h).
const sched::Topology& sched_topology();
/// Logs one line per online CPU: switches, busy %, migrations.
void sched_log_stats();
/// Tasks created and not yet freed.
uint64_t sched_live_tasks();
/// One task as sched_snapshot_tasks saw it.
struct TaskSnapshot {
    uint64_t id;
    char name[24];
    TaskState state;
    uint32_t cpu;       // the run queue it belongs to
    uint32_t only_cpu;  // the one CPU its affinity allows, or kMaxCpus
    uint32_t allowed;   // CPUs its affinity allows
    uint32_t weight;
    uint64_t run_ns;    // CPU time so far (up to its last switch-out)
    bool system, idle;
};
/// Copies up to `max` live tasks into `out` (each CPU's task list under its lock, one CPU at a
/// time: not one instant, but every task that lived throughout is there). Returns how many
/// tasks there were, which may exceed `max`.
size_t sched_snapshot_tasks(TaskSnapshot* out, size_t max);
/// Logs one line of machine-wide balancing counts: pushes, those across nodes, wasted-core and
/// affinity violations (end of a test or benchmark run).
void sched_log_health();
/// Wasted-core violations on every CPU so far (CpuSchedStats::wasted_core_violations).
uint64_t sched_wasted_core_violations();
/// Switches into a task on a CPU outside its affinity (checked on every switch; logged).
uint64_t sched_affinity_violations();

/// CPU hotplug (smp/hotplug.cc). Tasks other than `cpu`'s idle task and worker whose affinity
/// allows only `cpu`: how many, and the first one's name in `name`.
uint32_t sched_tasks_pinned_to(uint32_t cpu, char* name, size_t name_size);
/// Stops placing work on `cpu` (any CPU may call it): placement, stealing and balancing treat
/// it as offline from here on.
void sched_cpu_going_down(uint32_t cpu);
/// On the CPU going down, in its worker: moves every queued task to another CPU, cancels its
/// slice timer and lets its idle loop park it once the worker blocks. Returns the tasks moved.
uint32_t sched_evacuate_here();
/// `cpu` runs its scheduler and takes new work (online, not going down).
bool sched_cpu_running(uint32_t cpu);
/// Its scheduler was set up at least once: it has its idle task and worker (kept while it is
/// offline or its slot empty).
bool sched_cpu_started(uint32_t cpu);
/// The idle loop of a CPU whose tasks are gone: hands it to smp_cpu_parked.
[[noreturn]] void sched_park_here();

/// Called from the context switch path by a task on its first run; private to sched/.
extern "C" [[noreturn]] void sched_task_first_run(Task* t);

} // namespace cohort
