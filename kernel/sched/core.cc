// The scheduler's core: per-CPU run queues, the switch, preemption, the idle loop and the
// statistics. Locking rules: sched/internal.h.
#include "sched/sched.h"

#include <cstring>

#include "arch/arch.h"
#include "debug/log.h"
#include "debug/panic.h"
#include "mm/address_space.h"
#include "mm/vmm.h"
#include "sched/internal.h"
#include "smp/call.h"
#include "sync/lock_debug.h"
#include "sync/lock_ranks.h"
#include "time/clock.h"

namespace cohort {
namespace sched_impl {

LockClass g_rq_class{"run queue", rank::kRunQueue, LockScope::PerCpu};
COHORT_PERCPU(RunQueue, g_rq);

sched::Topology g_topology;
sched::PositionMask g_online, g_idle, g_overloaded;
sched::Placement g_placement = sched::Placement::Spread;
std::atomic<uint64_t> g_affinity_violations{0};

RunQueue& rq_of(uint32_t cpu) {
    // During bring-up an AP may not be in the CPU table yet, but it can always reach its own.
    CpuData* me = this_cpu();
    return cpu == me->cpu_id ? per_cpu(g_rq) : per_cpu_on(cpu_by_id(cpu), g_rq);
}

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
        Guard<ParkLock, NoIrq> g(rq.lock);
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
    const uint32_t runnable = queued + (idle_running ? 0 : 1);
    const bool idle = idle_running && queued == 0;
    const bool overloaded = runnable >= 2;
    if (rq.runnable.load(std::memory_order_relaxed) != runnable)
        rq.runnable.store(runnable, std::memory_order_relaxed);
    // The shared masks change only on transitions: a CPU that stays busy (or idle) writes no
    // shared line however often it switches.
    // A CPU going offline keeps its bits out of the masks (sched_cpu_going_down cleared them).
    const bool listed = rq.ready.load(std::memory_order_relaxed) &&
                        !rq.down.load(std::memory_order_relaxed);
    if (rq.is_idle.load(std::memory_order_relaxed) != idle) {
        if (idle) rq.idle_since.store(monotonic_ns(), std::memory_order_relaxed);
        rq.is_idle.store(idle, std::memory_order_relaxed);
        if (listed) {
            if (idle) g_idle.set(rq.pos);
            else g_idle.clear(rq.pos);
        }
    }
    if (rq.overloaded != overloaded) {
        rq.overloaded = overloaded;
        if (overloaded) rq.waiting_since = monotonic_ns();
        if (listed) {
            if (overloaded) g_overloaded.set(rq.pos);
            else g_overloaded.clear(rq.pos);
        }
    }
}

uint32_t choose_cpu(const Task* t, uint32_t prev, sched::ProbeCost& cost, uint32_t sample_from) {
    if (t->only_cpu != kMaxCpus) {
        ++cost.lines;
        return load_view(t->only_cpu).online ? t->only_cpu : kMaxCpus;
    }
    return sched::select_cpu(machine(), prev, t->affinity, load_view, cost, g_placement,
                             sample_from, t->home_node);
}

void set_affinity(Task* t, const CpuMask& mask) {
    t->affinity = mask;
    const uint32_t first = mask.first();
    t->only_cpu = first != CpuMask::kNone && mask.next(first + 1) == CpuMask::kNone ? first : kMaxCpus;
}

sched::CpuLoad load_view(uint32_t cpu) {
    const CpuData* c = cpu_by_id(cpu);
    sched::CpuLoad l;
    if (c == nullptr || !c->online.load(std::memory_order_acquire)) return l;
    const RunQueue& rq = per_cpu_on(c, g_rq);
    if (!rq.ready.load(std::memory_order_acquire) || rq.down.load(std::memory_order_acquire))
        return l;
    l.online = true;
    l.idle = rq.is_idle.load(std::memory_order_relaxed);
    l.runnable = rq.runnable.load(std::memory_order_relaxed);
    return l;
}

namespace {

// Charges the running task for the time since it was last charged.
void account(RunQueue& rq, uint64_t now) COHORT_REQUIRES(rq.lock) {
    uint64_t delta = now - rq.last_account;
    rq.last_account = now;
    // Time in interrupt handlers is nobody's. Charged to whichever task they interrupted, it
    // starved that task on a CPU kept busy by interrupts: under Bochs (4 million instructions
    // a second) a task sleeping 100 us in a loop made every timer interrupt and wake-up count
    // as the running task's time, and the test task beside it never ran again.
    if (&rq == &this_rq()) {
        const uint64_t irq = this_cpu()->counters.irq_cycles.load(std::memory_order_relaxed);
        const uint64_t irq_ns = tsc_to_ns(irq - rq.irq_cycles_seen);
        rq.irq_cycles_seen = irq;
        delta = delta > irq_ns ? delta - irq_ns : 0;
    }
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

} // namespace

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

namespace {

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

} // namespace

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

namespace {

void slice_expired(Timer&, void* arg) {
    auto& rq = *static_cast<RunQueue*>(arg);
    Guard<ParkLock, IrqSave> g(rq.lock);
    rq.slice_armed = false;
    const uint64_t now = monotonic_ns();
    account(rq, now);
    balance(rq, now);
    if (!rq.fair.empty() || !rq.system.empty()) rq.need_resched.store(true, std::memory_order_relaxed);
}

} // namespace

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
        sched::ProbeCost cost = probe_budget();
        uint32_t dst = choose_cpu(prev, me, cost);
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

namespace {
#if COHORT_ASSERTS
extern "C" const char __text_start[], __text_end[];
// The frame the context switch will resume must lie on the task's stack and return into the
// kernel's text: anything else means the stack was overwritten or its memory was reused, and
// the switch would fault with no trace of which task it was.
void check_switch_frame(const Task* next) {
    const bool on_stack = next->saved_rsp >= next->stack.bottom &&
                          next->saved_rsp + arch::kSwitchFrameBytes <= next->stack.top;
    const uint64_t ret = on_stack ? arch::switch_resume_address(next->saved_rsp) : 0;
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
} // namespace

// The core: called with interrupts off and the run-queue lock free. `preempted` keeps the
// current task runnable whatever its state (it was interrupted, not blocking); `yielding` puts
// it behind the next waiting task of its class.
void schedule(bool preempted, bool yielding) COHORT_NO_THREAD_SAFETY_ANALYSIS {
    RunQueue& rq = this_rq();
    // Whoever switches away must hold nothing: the count is the CPU's, and the next task
    // would inherit it (its backtrace shows who got here with one).
    if (const uint32_t holds = lock_holds_on_this_cpu(); holds != 0)
        panic("sched: cpu%u switches away from %s holding %u lock(s)/NoPreempt",
              this_cpu()->cpu_id, rq.curr != nullptr ? rq.curr->name : "?", holds);
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
    // A CPU going offline keeps only its worker (and idle task): a task preempted here leaves
    // as one whose affinity changed does, through finish_switch.
    const bool allowed_here =
        (prev->homeless || prev->affinity.test(this_cpu()->cpu_id)) &&
        (!rq.down.load(std::memory_order_relaxed) || prev == rq.worker);
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
    arch::fpu_save(prev->fpu_area);
    arch::fpu_restore(next->fpu_area);
    // A kernel thread keeps whatever space is loaded (lazy TLB: no CR3 write, no TLB flush);
    // a task with a space of its own loads it, which checks what a lazy CPU missed.
    if (next->address_space == nullptr) {
        if (prev->address_space != nullptr) address_space_enter_lazy();
    } else if (next->address_space != prev->address_space) {
        address_space_activate(next->address_space);
    }
#if COHORT_ASSERTS
    check_switch_frame(next);
#endif
    this_cpu()->kernel_stack_top = next->stack.top;
    this_cpu()->kernel_stack_bottom = next->stack.bottom;
    // Every function from here to the switch checks against `next`'s canary on both ends;
    // this one returns only once prev runs again, when prev's is back.
    this_cpu()->stack_canary = next->canary;
    rq.prev = prev;
    arch::context_switch(&prev->saved_rsp, next->saved_rsp);
    // Running again, possibly on another CPU: finish the switch that brought us here.
    finish_switch();
}

void schedule_with_irqs_saved(bool preempted, bool yielding) {
    const bool was_enabled = arch::irqs_enabled();
    arch::irq_disable();
    schedule(preempted, yielding);
    if (was_enabled) arch::irq_enable();
}

// A switch the caller's last action asked for (it woke a task that should preempt it), taken
// now if this is a point where the caller could be preempted anyway.
void preempt_point() {
    if (!arch::irqs_enabled() || arch::cpu_base_load32<offsetof(CpuData, irq_depth)>() != 0) return;
    if (lock_holds_on_this_cpu() != 0) return;
    RunQueue& rq = this_rq();
    if (rq.ready.load(std::memory_order_relaxed) && rq.need_resched.load(std::memory_order_relaxed))
        schedule_with_irqs_saved(true);
}

[[noreturn]] void idle_main() {
    RunQueue& rq = this_rq();
    for (;;) {
        arch::irq_disable();
        if (rq.need_resched.load(std::memory_order_relaxed) ||
            rq.runnable.load(std::memory_order_relaxed) != 0) {
            schedule(false);
            arch::irq_enable();
            continue;
        }
        if (rq.parking) sched_park_here(); // CPU hotplug: nothing is left here
        if (try_steal()) {
            arch::irq_enable();
            continue;
        }
        run_stranded_calls(); // nothing else would wake us for them
        // Enable-and-halt atomically: a wake-up IPI that arrives after the check above is
        // delivered after the HLT and ends it, instead of being missed.
        arch::irq_enable_and_wait();
    }
}

} // namespace sched_impl

using namespace sched_impl;

Task* current_task() {
    // One gs-relative load: with `this_cpu()->current_task` a task preempted between the two
    // loads and moved to another CPU would read that CPU's current task instead of itself.
    return reinterpret_cast<Task*>(arch::cpu_base_load<offsetof(CpuData, current_task)>());
}

uint64_t task_run_ns(const Task* t) {
    arch::IrqOff irq; // no switch between reading the clock base and the task
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
    COHORT_ASSERT(arch::irqs_enabled());
    // Blocking while holding a spinlock or inside NoPreempt would switch away from a section
    // that promised not to.
    if (const uint32_t holds = lock_holds_on_this_cpu(); holds != 0) {
        // Name what is held: a lock (with lock debugging, where it was taken), or a NoPreempt.
        const char* what = "a NoPreempt section or an unbalanced count";
#if COHORT_LOCK_DEBUG
        if (const HeldLockStack* h = current_held_locks(); h && h->depth > 0)
            what = h->entries[h->depth - 1].cls != nullptr ? h->entries[h->depth - 1].cls->name()
                                                           : "an unnamed lock";
#endif
        panic("sched: task %s blocks on cpu%u holding %u lock(s)/NoPreempt (innermost: %s)",
              current_task()->name, this_cpu()->cpu_id, holds, what);
    }
    arch::irq_disable();
    schedule(false);
    arch::irq_enable();
}

NoPreempt::~NoPreempt() {
    lock_hold_exit();
    preempt_point();
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

CpuSchedStats sched_cpu_stats(uint32_t cpu) {
    CpuSchedStats s;
    const CpuData* c = cpu_lookup(cpu);
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
    s.wakes_placed = rq.wakes_placed.load(std::memory_order_relaxed);
    s.wake_lines = rq.wake_lines.load(std::memory_order_relaxed);
    s.wake_lines_max = rq.wake_lines_max.load(std::memory_order_relaxed);
    s.wasted_core_violations = rq.wasted_core_violations.load(std::memory_order_relaxed);
    s.pushes = rq.pushes.load(std::memory_order_relaxed);
    s.node_pushes = rq.node_pushes.load(std::memory_order_relaxed);
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

const sched::Topology& sched_topology() { return g_topology; }

void sched_log_health() {
    uint64_t pushes = 0, node_pushes = 0, wasted = 0, steals = 0;
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        const CpuSchedStats s = sched_cpu_stats(c);
        pushes += s.pushes;
        node_pushes += s.node_pushes;
        wasted += s.wasted_core_violations;
        steals += s.steals;
    }
    log_info("sched: balancing pushed %lu tasks (%lu to another node), idle CPUs stole %lu; "
             "%lu wasted-core violations, %lu affinity violations", pushes, node_pushes, steals,
             wasted, sched_affinity_violations());
}

uint64_t sched_wasted_core_violations() {
    uint64_t n = 0;
    for (uint32_t c = 0; c < cpu_count(); ++c) n += sched_cpu_stats(c).wasted_core_violations;
    return n;
}

uint64_t sched_affinity_violations() { return g_affinity_violations.load(std::memory_order_relaxed); }

} // namespace cohort
