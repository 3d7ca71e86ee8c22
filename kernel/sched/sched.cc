// The scheduler. Locking rules (all run-queue locks are taken with interrupts off):
// - A task's `state`, `on_cpu` and queue membership change only under the lock of the run queue
//   named by its `cpu` field; `cpu` itself changes only under that lock too (migration).
// - schedule() holds its run-queue lock from picking the next task until that task has finished
//   the switch (finish_switch), so a waker that holds the lock sees either "still on the CPU"
//   (it cancels the block) or "fully switched out" (it may enqueue the task anywhere).
// - Never two run-queue locks at once: migrating takes the task off one queue, drops that lock,
//   then takes the other. In between the task is Ready on no queue, which every path tolerates.
// - Lock ranks (sync/lock_ranks.h): wait-queue locks below run-queue locks (a wake-up holds
//   both), timer-queue locks above them and never held while waking.
#include "sched/sched.h"

#include <cstddef>
#include <cstring>
#include <new>

#include "arch/x86/cpu.h"
#include "arch/x86/fpu.h"
#include "debug/log.h"
#include "debug/panic.h"
#include "lib/format.h"
#include "mm/address_space.h"
#include "mm/heap.h"
#include "mm/vmm.h"
#include "sched/placement.h"
#include "smp/call.h"
#include "smp/cpu.h"
#include "smp/ipi.h"
#include "smp/percpu.h"
#include "sync/guard.h"
#include "sync/spinlock.h"
#include "time/clock.h"
#include "time/timer.h"
#include "boot/params.h"
#include "sync/lock_ranks.h"

extern "C" void x86_context_switch(uint64_t* save_rsp, uint64_t new_rsp);
extern "C" void x86_task_entry();

namespace cohort {

static bool wake_up_locked_irqs_off(Task* t);

namespace {

using sched::FairEntity;

LockClass g_rq_class{"run queue", rank::kRunQueue, LockScope::PerCpu};
LockClass g_tasks_class{"task list", rank::kTaskList, LockScope::PerCpu, false};

constexpr sched::FairParams kParams{};
constexpr uint64_t kBalanceIntervalNs = 10'000'000;

struct alignas(64) RunQueue {
    SpinLock lock{&g_rq_class};
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
    std::atomic<bool> ready{false};
    Timer slice_timer;
    bool slice_armed = false;
    uint64_t next_balance = 0;
    uint64_t last_account = 0; // busy/idle accounting
    // Read without the lock by placement and balancing on other CPUs.
    std::atomic<uint32_t> runnable{0}; // queued + running (not counting idle)
    std::atomic<bool> is_idle{true};
    std::atomic<uint64_t> switches{0}, busy_ns{0}, idle_ns{0}, migrations_in{0}, steals{0};
};
COHORT_PERCPU(RunQueue, g_rq);

RunQueue& rq_of(uint32_t cpu) {
    // During bring-up an AP may not be in the CPU table yet, but it can always reach its own.
    CpuData* me = this_cpu();
    return cpu == me->cpu_id ? per_cpu(g_rq) : per_cpu_on(cpu_by_id(cpu), g_rq);
}
RunQueue& this_rq() { return per_cpu(g_rq); }

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
COHORT_PERCPU(CpuTasks, g_cpu_tasks);
constexpr uint64_t kIdBlock = 256;
std::atomic<uint64_t> g_next_id_block{1}; // touched once per kIdBlock tasks a CPU creates
std::atomic<uint64_t> g_affinity_violations{0};

Task* task_of(FairEntity* e) { return static_cast<Task*>(e->owner); }

void note_problem(RunQueue& rq, RunQueue::Report::Kind kind, const Task* t, uint32_t cpu)
    COHORT_REQUIRES(rq.lock) {
    if (rq.report.kind != RunQueue::Report::None) {
        ++rq.reports_dropped;
        return;
    }
    rq.report.kind = kind;
    rq.report.task_id = t->id;
    memcpy(rq.report.name, t->name, sizeof(rq.report.name));
    rq.report.cpu = cpu;
    rq.has_report.store(true, std::memory_order_relaxed);
}

// Logs what note_problem kept, on the queue's own CPU with its lock free (after a switch).
void flush_problems(RunQueue& rq) COHORT_NO_THREAD_SAFETY_ANALYSIS {
    if (!rq.has_report.load(std::memory_order_relaxed)) return;
    RunQueue::Report r;
    uint32_t dropped;
    {
        Guard<SpinLock, NoIrq> g(rq.lock);
        r = rq.report;
        dropped = rq.reports_dropped;
        rq.report.kind = RunQueue::Report::None;
        rq.reports_dropped = 0;
        rq.has_report.store(false, std::memory_order_relaxed);
    }
    if (r.kind == RunQueue::Report::Homeless)
        log_warn("sched: task %lu (%s) has no online CPU in its affinity; it stays on cpu%u",
                 r.task_id, r.name, r.cpu);
    else if (r.kind == RunQueue::Report::OutsideAffinity)
        log_error("sched: task %lu (%s) switched in on cpu%u, outside its affinity", r.task_id,
                  r.name, r.cpu);
    if (dropped != 0) log_warn("sched: %u more such report(s) on cpu%u", dropped, r.cpu);
}

void publish_load(RunQueue& rq) COHORT_REQUIRES(rq.lock) {
    const uint32_t queued = static_cast<uint32_t>(rq.fair.count() + rq.system.size());
    const bool idle_running = rq.curr == nullptr || rq.curr->idle;
    rq.runnable.store(queued + (idle_running ? 0 : 1), std::memory_order_relaxed);
    rq.is_idle.store(idle_running && queued == 0, std::memory_order_relaxed);
}

sched::CpuLoad load_view(uint32_t cpu) {
    const CpuData* c = cpu_by_id(cpu);
    sched::CpuLoad l;
    if (c == nullptr || !c->online.load(std::memory_order_acquire)) return l;
    const RunQueue& rq = per_cpu_on(c, g_rq);
    if (!rq.ready.load(std::memory_order_acquire)) return l;
    l.online = true;
    l.idle = rq.is_idle.load(std::memory_order_relaxed);
    l.runnable = rq.runnable.load(std::memory_order_relaxed);
    return l;
}

// Charges the running task for the time since it was last charged.
void account(RunQueue& rq, uint64_t now) COHORT_REQUIRES(rq.lock) {
    const uint64_t delta = now - rq.last_account;
    rq.last_account = now;
    Task* t = rq.curr;
    if (t == nullptr) return;
    if (t->idle) {
        rq.idle_ns.fetch_add(delta, std::memory_order_relaxed);
        return;
    }
    rq.busy_ns.fetch_add(delta, std::memory_order_relaxed);
    t->stats.run_ns += delta;
    if (!t->system) t->fair.vruntime += sched::weighted_delta(delta, t->fair.weight);
    rq.fair.update_min_vruntime(t->system ? nullptr : &t->fair);
}

void enqueue(RunQueue& rq, Task* t) COHORT_REQUIRES(rq.lock) {
    t->state.store(TaskState::Ready, std::memory_order_relaxed);
    if (t->system) rq.system.push_back(*t);
    else rq.fair.enqueue(t->fair);
    publish_load(rq);
}

void dequeue(RunQueue& rq, Task* t) COHORT_REQUIRES(rq.lock) {
    if (t->system) rq.system.remove(*t);
    else rq.fair.dequeue(t->fair);
    publish_load(rq);
}

Task* pick_next(RunQueue& rq) COHORT_REQUIRES(rq.lock) {
    if (Task* t = rq.system.front()) return t;
    if (FairEntity* e = rq.fair.first()) return task_of(e);
    return rq.idle;
}

// Should `t`, just queued on `rq`, take the CPU from the running task?
bool preempts(RunQueue& rq, Task* t) COHORT_REQUIRES(rq.lock) {
    Task* curr = rq.curr;
    if (curr == nullptr || curr->idle) return true;
    if (curr->system) return false;
    if (t->system) return true;
    return sched::fair_should_preempt(curr->fair, t->fair, kParams);
}

void slice_expired(Timer&, void* arg);

// Arms the preemption timer for the running task when somebody else is waiting for the CPU.
// A CPU running one task alone takes no timer interrupts (tickless).
void arm_slice(RunQueue& rq, uint64_t now) COHORT_REQUIRES(rq.lock) {
    Task* t = rq.curr;
    const bool contended = !rq.fair.empty() || !rq.system.empty();
    if (t == nullptr || t->idle || t->system || !contended) {
        if (rq.slice_armed) timer_cancel(rq.slice_timer);
        rq.slice_armed = false;
        return;
    }
    if (rq.slice_armed) return;
    const uint64_t slice = sched::fair_slice(t->fair.weight, rq.fair.total_weight() + t->fair.weight,
                                             rq.fair.count() + 1, kParams);
    timer_arm(rq.slice_timer, now + slice, slice_expired, &rq);
    rq.slice_armed = true;
}

// Asks `cpu` to reschedule: a flag acted on at interrupt exit, plus an IPI so that an interrupt
// comes: remotely it also ends a HLT; locally (outside a handler) it is delivered as soon as
// interrupts are enabled again, so a wake-up made with interrupts off (in the middle of a
// switch, say) is not left waiting for some unrelated interrupt.
void resched(uint32_t cpu, RunQueue& rq) COHORT_REQUIRES(rq.lock) {
    rq.need_resched.store(true, std::memory_order_relaxed);
    CpuData* me = this_cpu();
    if (cpu != me->cpu_id) ipi_send(cpu_by_id(cpu), IpiKind::Reschedule);
    else if (me->irq_depth == 0) ipi_send(me, IpiKind::Reschedule);
}

// After `t` was queued on `rq` (of `cpu`): preempt the running task if `t` deserves the CPU,
// else make sure a preemption timer runs there. Only a CPU can arm its own timers, so a remote
// queue without one gets a reschedule IPI and arms it itself.
void kick(uint32_t cpu, RunQueue& rq, Task* t) COHORT_REQUIRES(rq.lock) {
    if (preempts(rq, t)) resched(cpu, rq);
    else if (cpu == this_cpu()->cpu_id) arm_slice(rq, monotonic_ns());
    else if (!rq.slice_armed) resched(cpu, rq);
}

bool queued(const Task* t) { return t->system ? t->link.linked() : t->fair.link.linked(); }

// The second half of every move between queues. `t` is Ready on no queue and its `cpu` field
// already names `cpu` (stored under the lock of the queue it left, so from then on `cpu`'s lock
// guards it). Its vruntime becomes `lag` past the new queue's floor, so moving neither rewards
// nor punishes it; a woken task is also held to the sleeper credit. If its affinity changed
// while it was between queues (task_set_affinity leaves such a task to us), it moves on.
// Interrupts off, no run-queue lock held.
void arrive(Task* t, uint32_t cpu, int64_t lag, bool woken) COHORT_NO_THREAD_SAFETY_ANALYSIS {
    for (;;) {
        RunQueue& dst = rq_of(cpu);
        dst.lock.lock();
        if (!t->affinity.test(cpu)) {
            const uint32_t alt = sched::select_cpu(kMaxCpus, t->affinity, cpu_count(), load_view);
            if (alt != kMaxCpus && alt != cpu) {
                t->cpu.store(alt, std::memory_order_release);
                dst.lock.unlock();
                cpu = alt;
                continue;
            }
            if (alt == kMaxCpus && !t->homeless) {
                // No CPU of its affinity is online: it runs here rather than nowhere, marked so
                // that schedule() does not count every switch into it as a violation.
                t->homeless = true;
                note_problem(dst, RunQueue::Report::Homeless, t, cpu);
            }
        }
        const int64_t vr = static_cast<int64_t>(dst.fair.min_vruntime()) + lag;
        const uint64_t v = vr > 0 ? static_cast<uint64_t>(vr) : 0;
        t->fair.vruntime = woken ? dst.fair.placement(v, false, kParams) : v;
        enqueue(dst, t);
        kick(cpu, dst, t);
        dst.lock.unlock();
        return;
    }
}

// Bookkeeping of a move decided under the source queue's lock.
void note_migration(Task* t, uint32_t dst_cpu) {
    ++t->stats.migrations;
    rq_of(dst_cpu).migrations_in.fetch_add(1, std::memory_order_relaxed);
}

// Moves a queued task (not on a CPU) from `src` to `dst_cpu`. Drops and retakes `src.lock`.
void migrate_queued(RunQueue& src, Task* t, uint32_t dst_cpu) COHORT_NO_THREAD_SAFETY_ANALYSIS {
    dequeue(src, t);
    const int64_t lag = static_cast<int64_t>(t->fair.vruntime - src.fair.min_vruntime());
    t->state.store(TaskState::Ready, std::memory_order_relaxed);
    t->cpu.store(dst_cpu, std::memory_order_release);
    note_migration(t, dst_cpu);
    src.lock.unlock();
    arrive(t, dst_cpu, lag, false);
    src.lock.lock();
}

// A queued fair task of `rq` that may run on `cpu` and is not still on its old CPU.
Task* find_movable(RunQueue& rq, uint32_t cpu) COHORT_REQUIRES(rq.lock) {
    for (FairEntity* e = rq.fair.last(); e != nullptr; e = rq.fair.prev(*e)) {
        Task* t = task_of(e);
        if (!t->on_cpu && t->affinity.test(cpu)) return t;
    }
    return nullptr;
}

// Idle CPU: take one waiting task from the busiest CPU. Interrupts off.
bool try_steal() {
    const uint32_t me = this_cpu()->cpu_id;
    const uint32_t victim = sched::find_busiest(me, cpu_count(), load_view);
    if (victim == kMaxCpus) return false;
    RunQueue& src = rq_of(victim);
    // Opportunistic: a victim whose lock is taken is busy with its own work or being robbed by
    // another idle CPU already. Waiting in line would turn every wake-up of a busy CPU into a
    // convoy of idle CPUs on its lock (with many vCPUs per host core, seconds long).
    if (!src.lock.try_lock()) return false;
    Task* t = find_movable(src, me);
    if (t != nullptr) {
        migrate_queued(src, t, me);
        this_rq().steals.fetch_add(1, std::memory_order_relaxed);
    }
    src.lock.unlock();
    return t != nullptr;
}

// Busy CPU, from its slice timer (so only while tasks wait here): now and then push one
// waiting task to an idle CPU, or to one with at least two tasks fewer. Idle CPUs halt instead
// of polling, so this is what evens out the load once they have stopped looking for work.
void balance(RunQueue& rq, uint64_t now) COHORT_REQUIRES(rq.lock) {
    if (now < rq.next_balance || rq.fair.count() == 0) return;
    rq.next_balance = now + kBalanceIntervalNs;
    const uint32_t me = this_cpu()->cpu_id;
    const uint32_t mine = rq.runnable.load(std::memory_order_relaxed);
    constexpr uint32_t kMaxScanned = 8; // the tasks that waited least: bounded work per tick
    uint32_t scanned = 0;
    for (FairEntity* e = rq.fair.last(); e != nullptr && scanned < kMaxScanned;
         e = rq.fair.prev(*e), ++scanned) {
        Task* t = task_of(e);
        if (t->on_cpu) continue;
        const uint32_t c = sched::find_push_target(me, mine, t->affinity, cpu_count(), load_view);
        if (c != kMaxCpus) {
            migrate_queued(rq, t, c);
            return;
        }
    }
}

void slice_expired(Timer&, void* arg) {
    auto& rq = *static_cast<RunQueue*>(arg);
    Guard<SpinLock, IrqSave> g(rq.lock);
    rq.slice_armed = false;
    const uint64_t now = monotonic_ns();
    account(rq, now);
    balance(rq, now);
    if (!rq.fair.empty() || !rq.system.empty()) rq.need_resched.store(true, std::memory_order_relaxed);
}

void put_task(Task* t);

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

void finish_switch() COHORT_NO_THREAD_SAFETY_ANALYSIS {
    RunQueue& rq = this_rq();
    Task* prev = rq.prev;
    rq.prev = nullptr;
    prev->on_cpu = false;
    const TaskState st = prev->state.load(std::memory_order_relaxed);
    const bool dead = st == TaskState::Dead;
    const uint32_t me = this_cpu()->cpu_id;
    if (st == TaskState::Ready && !prev->idle && !queued(prev)) {
        // Its affinity changed while it ran and schedule() kept it off this queue: now that its
        // registers are saved, move it where it may run.
        uint32_t dst = sched::select_cpu(kMaxCpus, prev->affinity, cpu_count(), load_view);
        if (dst == kMaxCpus) {
            // None of its CPUs is online: keep it here rather than lose it, and say so.
            prev->homeless = true;
            note_problem(rq, RunQueue::Report::Homeless, prev, me);
            enqueue(rq, prev);
        } else {
            const int64_t lag = static_cast<int64_t>(prev->fair.vruntime - rq.fair.min_vruntime());
            prev->cpu.store(dst, std::memory_order_release);
            note_migration(prev, dst);
            rq.lock.unlock();
            arrive(prev, dst, lag, false);
            rq.lock.lock();
        }
    }
    rq.lock.unlock();
    flush_problems(rq);
    if (dead) bury(prev, rq);
}

#if COHORT_ASSERTS
extern "C" const char __text_start[], __text_end[];
// The frame x86_context_switch will pop must end in a return address inside the kernel's
// text: anything else means the task's stack was overwritten or its memory was reused, and
// the switch would fault with no trace of which task it was.
void check_switch_frame(const Task* next) {
    const auto* frame = reinterpret_cast<const uint64_t*>(next->saved_rsp);
    const bool on_stack = next->saved_rsp >= next->stack.bottom && next->saved_rsp + 56 <= next->stack.top;
    const uint64_t ret = on_stack ? frame[6] : 0;
    if (on_stack && ret >= reinterpret_cast<uint64_t>(__text_start) &&
        ret < reinterpret_cast<uint64_t>(__text_end))
        return;
    panic("sched: task %lu (%s, %s, %lu switches) has a broken saved context on cpu%u: rsp %#lx "
          "(stack [%#lx, %#lx), phys %#lx), return address %#lx",
          next->id, next->name, task_state_name(next->state.load()), next->stats.switches,
          this_cpu()->cpu_id, next->saved_rsp, next->stack.bottom, next->stack.top,
          vmm::translate(next->saved_rsp), ret);
}
#endif

// The core: called with interrupts off and the run-queue lock free. `preempted` keeps the
// current task runnable whatever its state (it was interrupted, not blocking); `yielding` puts
// it behind the next waiting task of its class.
void schedule(bool preempted, bool yielding = false) COHORT_NO_THREAD_SAFETY_ANALYSIS {
    RunQueue& rq = this_rq();
    rq.lock.lock();
    const uint64_t now = monotonic_ns();
    account(rq, now);
    rq.need_resched.store(false, std::memory_order_relaxed);
    Task* prev = rq.curr;
    const TaskState st = prev->state.load(std::memory_order_relaxed);
    const bool stays = st == TaskState::Running || (preempted && st == TaskState::Blocked);
    if (stays && !prev->idle && yielding && !prev->system) {
        // Only just behind the first waiter, so a yield costs the yielder at most that lag.
        const FairEntity* first = rq.fair.first();
        if (first != nullptr && first->vruntime >= prev->fair.vruntime)
            prev->fair.vruntime = first->vruntime + 1;
    }
    const bool allowed_here = prev->homeless || prev->affinity.test(this_cpu()->cpu_id);
    if (stays && !prev->idle && allowed_here) enqueue(rq, prev);
    // Not allowed here any more (task_set_affinity while it ran): Ready on no queue, so it is
    // not picked again; finish_switch moves it once its registers are saved.
    if (stays && (prev->idle || !allowed_here)) prev->state.store(TaskState::Ready, std::memory_order_relaxed);
    Task* next = pick_next(rq);
    if (next != rq.idle) dequeue(rq, next);
    next->state.store(TaskState::Running, std::memory_order_relaxed);
    rq.curr = next;
    publish_load(rq);
    if (rq.slice_armed) {
        timer_cancel(rq.slice_timer);
        rq.slice_armed = false;
    }
    arm_slice(rq, now);
    if (next == prev) {
        rq.lock.unlock();
        flush_problems(rq);
        return;
    }
    if (!next->idle && !next->homeless && !next->affinity.test(this_cpu()->cpu_id)) {
        g_affinity_violations.fetch_add(1, std::memory_order_relaxed);
        note_problem(rq, RunQueue::Report::OutsideAffinity, next, this_cpu()->cpu_id);
    }
    next->on_cpu = true;
    next->exec_start = now;
    ++next->stats.switches;
    rq.switches.fetch_add(1, std::memory_order_relaxed);
    this_cpu()->counters.context_switches.fetch_add(1, std::memory_order_relaxed);
    this_cpu()->current_task = next;
    x86::fpu_save(prev->fpu_area);
    x86::fpu_restore(next->fpu_area);
    if (next->address_space != prev->address_space)
        address_space_activate(next->address_space != nullptr ? next->address_space
                                                              : &kernel_address_space());
#if COHORT_ASSERTS
    check_switch_frame(next);
#endif
    this_cpu()->kernel_stack_top = next->stack.top;
    this_cpu()->kernel_stack_bottom = next->stack.bottom;
    rq.prev = prev;
    x86_context_switch(&prev->saved_rsp, next->saved_rsp);
    // Running again, possibly on another CPU: finish the switch that brought us here.
    finish_switch();
}

void schedule_with_irqs_saved(bool preempted, bool yielding = false) {
    const bool was_enabled = x86::interrupts_enabled();
    x86::cli();
    schedule(preempted, yielding);
    if (was_enabled) x86::sti();
}

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

void put_task(Task* t) {
    if (t->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) free_task(t);
}

// A Task with everything but a stack: idle tasks reuse their CPU's boot stack.
// A Task and its FPU area, not yet known to any CPU (no id, on no list).
Task* new_task_memory() {
    void* mem = kzalloc(sizeof(Task));
    if (mem == nullptr) return nullptr;
    Task* t = new (mem) Task();
    t->fair.owner = t;
    const size_t fpu = x86::fpu_state_size();
    t->fpu_alloc = kmalloc(fpu + 64);
    if (t->fpu_alloc == nullptr) {
        kfree(mem);
        return nullptr;
    }
    t->fpu_area = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(t->fpu_alloc) + 63) & ~uintptr_t{63});
    x86::fpu_init_state(t->fpu_area);
    for (uint32_t c = 0; c < cpu_count(); ++c) t->affinity.set(c);
    return t;
}

// Names `t`, gives it an id from the calling CPU's block and puts it on that CPU's list.
Task* register_task(Task* t, const char* name) {
    copy_name(t, name);
    x86::InterruptGuard irq; // the id block and the list are this CPU's
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

void worker_main(void*) {
    for (;;) {
        // Deferred calls (run_on) run here, in thread context with interrupts on.
        run_deferred_work();
        CpuTasks& mine = per_cpu(g_cpu_tasks); // the worker never leaves its CPU
        if (mine.purge_due) {
            mine.purge_due = false;
            kstack_purge();
        }
        x86::cli();
        if (!has_deferred_work() && !mine.purge_due) {
            current_task()->state.store(TaskState::Blocked, std::memory_order_relaxed);
            schedule(false);
        }
        x86::sti();
    }
}

// Enqueues a new or woken task on the CPU the placement rules choose. Called with `t` Blocked
// (or new) and off every queue and CPU; interrupts off.
// Only new tasks come here (woken ones go through wake_up).
void place(Task* t) {
    // A new task has no warm cache anywhere: start the search at a rotating CPU, so tasks created
    // in a burst spread over the idle CPUs instead of all landing on the first one.
    CpuTasks& mine = per_cpu(g_cpu_tasks); // interrupts are off
    const uint32_t hint = (this_cpu()->cpu_id + mine.spread++) % cpu_count();
    uint32_t cpu = sched::select_cpu(hint, t->affinity, cpu_count(), load_view);
    if (cpu == kMaxCpus && t->affinity.test(this_cpu()->cpu_id)) {
        cpu = this_cpu()->cpu_id; // bring-up: this CPU is not listed as online yet
    } else if (cpu == kMaxCpus) {
        // No allowed CPU is running the scheduler (affinity to offline CPUs): run it here
        // rather than lose it, and say so.
        cpu = this_cpu()->cpu_id;
        t->homeless = true;
        log_warn("sched: task %lu (%s) has no online CPU in its affinity; running it on cpu%u",
                 t->id, t->name, cpu);
    }
    RunQueue& rq = rq_of(cpu);
    Guard<SpinLock, NoIrq> g(rq.lock);
    t->cpu.store(cpu, std::memory_order_release);
    t->fair.vruntime = rq.fair.placement(0, true, kParams);
    enqueue(rq, t);
    kick(cpu, rq, t);
}

void idle_main() {
    RunQueue& rq = this_rq();
    for (;;) {
        x86::cli();
        if (rq.need_resched.load(std::memory_order_relaxed) ||
            rq.runnable.load(std::memory_order_relaxed) != 0) {
            schedule(false);
            x86::sti();
            continue;
        }
        if (try_steal()) {
            x86::sti();
            continue;
        }
        run_stranded_calls(); // nothing else would wake us for them
        // Enable-and-halt atomically: a wake-up IPI that arrives after the check above is
        // delivered after the HLT and ends it, instead of being missed.
        x86::sti_halt();
    }
}

// Makes `t` (registered, with its stack) runnable: the first switch to it enters `entry`.
Task* start_task(Task* t, TaskFn entry, void* arg, const TaskOptions& o) {
    t->entry = entry;
    t->arg = arg;
    t->system = o.system;
    t->fair.weight = o.weight < sched::kMinWeight   ? sched::kMinWeight
                     : o.weight > sched::kMaxWeight ? sched::kMaxWeight
                                                    : o.weight;
    if (o.affinity != nullptr) t->affinity = *o.affinity;
    t->address_space = o.address_space;
    // The initial frame x86_context_switch pops: r15, r14, r13, r12, rbx (= the task), rbp (0,
    // ends backtraces), then the "return address".
    auto* sp = reinterpret_cast<uint64_t*>(t->stack.top);
    *--sp = reinterpret_cast<uint64_t>(&x86_task_entry);
    *--sp = 0;                              // rbp
    *--sp = reinterpret_cast<uint64_t>(t); // rbx
    for (int i = 0; i < 4; ++i) *--sp = 0; // r12-r15
    t->saved_rsp = reinterpret_cast<uint64_t>(sp);
    t->state.store(TaskState::Blocked, std::memory_order_relaxed);
    x86::InterruptGuard irq;
    place(t);
    return t;
}

// Every AP sets up its own scheduler as soon as it is online, all at once.
std::atomic<uint32_t> g_cpus_ready{0};

// The memory an AP's scheduler starts with, allocated for it by the boot CPU in sched_init.
// Allocating it on the APs, 254 of them at once each taking its first objects and a stack,
// convoyed on the allocators' shared locks under an emulator: hundreds of vCPUs spun while the
// host thread of the holder waited for a core (bring-up took 0.5-1 s instead of 0.1 s).
struct CpuProvision {
    Task* idle = nullptr;   // memory only: named, numbered and listed by its CPU
    Task* worker = nullptr; // the same, with its stack
};
COHORT_PERCPU(CpuProvision, g_provision);

void provision(CpuData* cpu) {
    CpuProvision& p = per_cpu_on(cpu, g_provision);
    p.idle = new_task_memory();
    p.worker = new_task_memory();
    if (p.worker != nullptr) {
        p.worker->stack = kstack_alloc(TaskOptions{}.stack_size);
        if (!p.worker->stack.valid()) {
            kfree(p.worker->fpu_alloc);
            kfree(p.worker);
            p.worker = nullptr;
        }
    }
    // Whatever is missing, the CPU allocates itself (and reports if it cannot).
}

// Sets up the calling CPU's run queue with its boot context (running, or just out of
// bring-up in sched_enter_ap) as its idle task, and its worker.
void init_cpu(CpuData* cpu) {
    RunQueue* rq = &per_cpu_on(cpu, g_rq);
    new (rq) RunQueue();
    new (&per_cpu_on(cpu, g_cpu_tasks)) CpuTasks(); // its lists point at themselves
    timer_init_cpu(cpu);
    CpuProvision& given = per_cpu_on(cpu, g_provision);
    char name[24];
    format(name, sizeof(name), "idle/%u", cpu->cpu_id);
    Task* idle = given.idle != nullptr ? register_task(given.idle, name) : alloc_task(name);
    if (idle == nullptr) panic("sched: cannot allocate the idle task of cpu%u", cpu->cpu_id);
    idle->idle = true;
    idle->state.store(TaskState::Running);
    idle->cpu.store(cpu->cpu_id);
    idle->on_cpu = true;
    idle->stack.top = cpu->kernel_stack_top;
    idle->stack.bottom = cpu->kernel_stack_bottom;
    idle->affinity.clear_all();
    idle->affinity.set(cpu->cpu_id);
    rq->idle = rq->curr = idle;
    rq->last_account = monotonic_ns();
    cpu->current_task = idle;
    rq->ready.store(true, std::memory_order_release);
    CpuMask only_it;
    only_it.set(cpu->cpu_id);
    format(name, sizeof(name), "worker/%u", cpu->cpu_id);
    TaskOptions o;
    o.name = name;
    o.affinity = &only_it;
    // Fair, but weighted 8x: run_on work is served promptly (a waking heavy task preempts) yet
    // a flood of it cannot starve the CPU's other tasks, as a strict-priority task would.
    o.weight = 8 * sched::kDefaultWeight;
    Task* worker = given.worker != nullptr
                       ? start_task(register_task(given.worker, name), worker_main, nullptr, o)
                       : task_create(worker_main, nullptr, o);
    if (worker == nullptr) panic("sched: cannot create the worker of cpu%u", cpu->cpu_id);
    given = {};
    rq->worker = worker;
    task_detach(worker);
    g_cpus_ready.fetch_add(1, std::memory_order_release);
}

} // namespace

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
    Task* t = alloc_task(o.name);
    if (t == nullptr) {
        log_error("sched: out of memory creating task '%s'", o.name);
        return nullptr;
    }
    t->stack = kstack_alloc(o.stack_size);
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
    x86::sti();
    t->entry(t->arg);
    task_exit();
}

void task_exit() {
    x86::cli();
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

Task* current_task() {
    // One gs-relative load: with `this_cpu()->current_task` a task preempted between the two
    // loads and moved to another CPU would read that CPU's current task instead of itself.
    Task* t;
    asm volatile("movq %%gs:%c1, %0" : "=r"(t) : "i"(offsetof(CpuData, current_task)));
    return t;
}

uint64_t task_run_ns(const Task* t) {
    x86::InterruptGuard irq; // no switch between reading the clock base and the task
    if (t != current_task()) return t->stats.run_ns;
    return t->stats.run_ns + (monotonic_ns() - this_rq().last_account);
}

bool sched_in_worker() {
    const CpuData* cpu = this_cpu();
    if (cpu == nullptr || !per_cpu(g_rq).ready.load(std::memory_order_relaxed)) return false;
    return current_task() == per_cpu(g_rq).worker;
}

bool sched_running_here() {
    const CpuData* cpu = this_cpu();
    return cpu != nullptr && per_cpu(g_rq).ready.load(std::memory_order_relaxed);
}

void yield() { schedule_with_irqs_saved(false, true); }

void sched_block() {
    COHORT_ASSERT(x86::interrupts_enabled());
    // Blocking while holding a spinlock or inside NoPreempt would switch away from a section
    // that promised not to.
    COHORT_ASSERT(lock_holds_on_this_cpu() == 0);
    x86::cli();
    schedule(false);
    x86::sti();
}

// A switch the caller's last action asked for (it woke a task that should preempt it), taken
// now if this is a point where the caller could be preempted anyway.
static void preempt_point() {
    if (!x86::interrupts_enabled() || this_cpu()->irq_depth != 0) return;
    if (lock_holds_on_this_cpu() != 0) return;
    RunQueue& rq = this_rq();
    if (rq.ready.load(std::memory_order_relaxed) && rq.need_resched.load(std::memory_order_relaxed))
        schedule_with_irqs_saved(true);
}

NoPreempt::~NoPreempt() {
    lock_hold_exit();
    preempt_point();
}

void run_pinned(uint32_t cpu, void (*fn)(void*), void* arg) {
    Task* me = current_task();
    if (me == nullptr || !x86::interrupts_enabled()) { // nothing can move us: run it here
        COHORT_ASSERT(this_cpu()->cpu_id == cpu);
        fn(arg);
        return;
    }
    const CpuMask saved = me->affinity;
    CpuMask only;
    only.set(cpu);
    task_set_affinity(me, only);
    while (this_cpu()->cpu_id != cpu) yield(); // the affinity change moves us at the switch
    fn(arg);
    task_set_affinity(me, saved);
}


bool wake_up(Task* t) {
    bool woken;
    {
        x86::InterruptGuard irq;
        woken = wake_up_locked_irqs_off(t);
    }
    preempt_point();
    return woken;
}

static bool wake_up_locked_irqs_off(Task* t) {
    RunQueue* rq;
    uint32_t cpu;
    for (;;) {
        cpu = t->cpu.load(std::memory_order_acquire);
        rq = &rq_of(cpu);
        rq->lock.lock();
        if (t->cpu.load(std::memory_order_relaxed) == cpu) break;
        rq->lock.unlock(); // migrated meanwhile
    }
    if (t->state.load(std::memory_order_relaxed) != TaskState::Blocked) {
        rq->lock.unlock();
        return false;
    }
    ++t->stats.wakeups;
    if (t->on_cpu) {
        // Marked Blocked but not switched out yet: cancel the sleep; schedule() keeps it.
        t->state.store(TaskState::Running, std::memory_order_relaxed);
        rq->lock.unlock();
        return true;
    }
    // Fully off its CPU: choose where it runs (under this lock, which guards its affinity), and
    // let it keep its lag relative to its old queue's floor.
    const int64_t lag = static_cast<int64_t>(t->fair.vruntime - rq->fair.min_vruntime());
    t->state.store(TaskState::Ready, std::memory_order_relaxed); // other wakers back off
    uint32_t target = sched::select_cpu(cpu, t->affinity, cpu_count(), load_view);
    if (target == kMaxCpus) target = cpu;
    if (target != cpu) note_migration(t, target);
    t->cpu.store(target, std::memory_order_release);
    rq->lock.unlock();
    arrive(t, target, lag, true);
    return true;
}

void sleep_for(uint64_t ns) {
    // Once `done` is set the sleeper may return (it may run on another CPU, preempted and moved
    // before it blocked) and `s` is gone with its stack frame: the callback takes what it needs
    // first, and a reference keeps the Task valid until wake_up is finished with it.
    struct Sleep {
        Task* task;
        std::atomic<bool> done{false};
    } s{current_task()};
    Timer timer;
    {
        x86::InterruptGuard irq; // armed on this CPU: no migration until it is queued
        // The deadline is read on the CPU whose timer queue gets it, so a TSC that differs
        // between CPUs cannot make the sleep short.
        const uint64_t deadline = monotonic_ns() + ns;
        timer_arm(
            timer, deadline,
            [](Timer&, void* arg) {
                auto* sl = static_cast<Sleep*>(arg);
                Task* t = sl->task;
                task_ref(t);
                sl->done.store(true, std::memory_order_seq_cst); // the last touch of `s`
                wake_up(t);
                task_unref(t);
            },
            &s);
    }
    for (;;) {
        // A full barrier between publishing Blocked and reading `done` (an xchg): the callback
        // may run on another CPU (we can be moved before we block), where it stores `done` and
        // then reads our state under its run-queue lock. With a plain store, x86 may let our
        // load of `done` pass the store still in the store buffer: we would read false, it would
        // read Running, and nobody would wake us (the store-buffer case of TSO; a Dekker pair
        // needs seq_cst on both sides).
        s.task->state.exchange(TaskState::Blocked, std::memory_order_seq_cst);
        if (s.done.load(std::memory_order_seq_cst)) break;
        sched_block();
    }
    s.task->state.store(TaskState::Running, std::memory_order_relaxed);
    timer_cancel(timer); // normally already fired; never leave it armed on our stack
}

void task_set_affinity(Task* t, const CpuMask& mask) {
    x86::InterruptGuard irq;
    for (;;) {
        const uint32_t cpu = t->cpu.load(std::memory_order_acquire);
        RunQueue& rq = rq_of(cpu);
        Guard<SpinLock, NoIrq> g(rq.lock);
        if (t->cpu.load(std::memory_order_relaxed) != cpu) continue;
        t->affinity = mask;
        t->homeless = false;
        if (mask.test(cpu)) return;
        if (queued(t) && !t->on_cpu) {
            const uint32_t dst = sched::select_cpu(kMaxCpus, mask, cpu_count(), load_view);
            if (dst != kMaxCpus) migrate_queued(rq, t, dst);
        } else if (rq.curr == t) {
            resched(cpu, rq); // it leaves when switched out (finish_switch)
        }
        // Blocked: its waker places it by the new mask. Between two queues: arrive() checks
        // the mask again under the lock we hold now. Being switched out: finish_switch moves it.
        return;
    }
}

void sched_irq_exit() {
    CpuData* cpu = this_cpu();
    RunQueue& rq = per_cpu(g_rq);
    if (!rq.ready.load(std::memory_order_relaxed) || !rq.need_resched.load(std::memory_order_relaxed) ||
        cpu->irq_depth != 0)
        return;
    if (lock_holds_on_this_cpu() != 0) return; // never switch away from a held spinlock
    schedule(true);
}

void sched_kick_worker() {
    RunQueue& rq = this_rq();
    if (rq.ready.load(std::memory_order_relaxed) && rq.worker != nullptr) {
        x86::InterruptGuard irq; // no preemption point: this runs inside the call handler
        wake_up_locked_irqs_off(rq.worker);
    }
}

void sched_init() {
    call_limits_start();
    for (uint32_t c = 0; c < cpu_count(); ++c)
        if (CpuData* cpu = cpu_by_id(c); cpu != nullptr && cpu != this_cpu()) provision(cpu);
    init_cpu(this_cpu());
}

[[noreturn]] void sched_start(TaskFn main, void* arg) {
    // Main (the tests, the benchmarks) starts once every CPU can run tasks. Halted between
    // checks, woken by a timer: a spinning boot CPU would take a host core from the APs under
    // an emulator.
    const uint32_t want = cpus_online();
    const uint64_t deadline = monotonic_ns() + param_u64("sched.ready_timeout_ms", 2000) * 1'000'000;
    while (g_cpus_ready.load(std::memory_order_acquire) < want && monotonic_ns() < deadline)
        timer_halt_until(monotonic_ns() + 200'000);
    if (const uint32_t ready = g_cpus_ready.load(std::memory_order_acquire); ready < want) {
        log_error("sched: only %u of %u online CPUs set up their scheduler in time; no task is "
                  "placed on the others", ready, want);
        for (uint32_t c = 0; c < cpu_count(); ++c) {
            const CpuData* cpu = cpu_by_id(c);
            if (cpu != nullptr && cpu->online.load() && !per_cpu_on(cpu, g_rq).ready.load())
                log_error("sched:   cpu%u (APIC id %u) is not ready", c, cpu->apic_id);
        }
    }
    TaskOptions o;
    o.name = "main";
    CpuMask boot_cpu;
    boot_cpu.set(this_cpu()->cpu_id);
    o.affinity = &boot_cpu; // tests and benches expect to run on the boot CPU
    o.stack_size = 64 * 1024;
    Task* t = task_create(main, arg, o);
    if (t == nullptr) panic("sched: cannot create the main task");
    task_detach(t);
    idle_main();
    __builtin_unreachable();
}

[[noreturn]] void sched_enter_ap() {
    // Straight on from bring-up, while this vCPU is running anyway: no second wake-up. Under
    // an emulator with many more vCPUs than host cores, waking 254 halted vCPUs a second time
    // cost as much as starting them.
    x86::sti(); // creating the worker may take a stack whose purge needs remote calls
    init_cpu(this_cpu());
    idle_main();
    __builtin_unreachable();
}

uint32_t sched_cpus_ready() { return g_cpus_ready.load(std::memory_order_acquire); }

CpuSchedStats sched_cpu_stats(uint32_t cpu) {
    CpuSchedStats s;
    const CpuData* c = cpu_by_id(cpu);
    if (c == nullptr) return s;
    const RunQueue& rq = per_cpu_on(c, g_rq);
    if (!rq.ready.load(std::memory_order_acquire)) return s;
    s.switches = rq.switches.load(std::memory_order_relaxed);
    s.busy_ns = rq.busy_ns.load(std::memory_order_relaxed);
    s.idle_ns = rq.idle_ns.load(std::memory_order_relaxed);
    // Time since the last charge belongs to whatever runs now (a halted CPU is charged late).
    // Read on another CPU than the one that stamped last_account: a TSC a little behind (an
    // unsynchronised machine, see tsc_synchronized()) must not wrap to years.
    const uint64_t now = monotonic_ns();
    const uint64_t stamped = __atomic_load_n(&rq.last_account, __ATOMIC_RELAXED);
    const uint64_t since = now > stamped ? now - stamped : 0;
    if (rq.is_idle.load(std::memory_order_relaxed)) s.idle_ns += since;
    else s.busy_ns += since;
    s.migrations_in = rq.migrations_in.load(std::memory_order_relaxed);
    s.steals = rq.steals.load(std::memory_order_relaxed);
    s.runnable = rq.runnable.load(std::memory_order_relaxed);
    return s;
}

void sched_log_stats() {
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        const CpuSchedStats s = sched_cpu_stats(c);
        const uint64_t total = s.busy_ns + s.idle_ns;
        const CpuData* cpu = cpu_by_id(c);
        const Task* curr = cpu != nullptr ? __atomic_load_n(&cpu->current_task, __ATOMIC_RELAXED) : nullptr;
        log_info("sched: cpu%-3u %8lu switches, busy %3lu%%, %lu migrations in, %lu steals, "
                 "%u runnable, running %s", c, s.switches,
                 total == 0 ? 0 : s.busy_ns * 100 / total, s.migrations_in, s.steals, s.runnable,
                 curr != nullptr ? curr->name : "-");
    }
}

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

uint64_t sched_affinity_violations() { return g_affinity_violations.load(std::memory_order_relaxed); }

} // namespace cohort
