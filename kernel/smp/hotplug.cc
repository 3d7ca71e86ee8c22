// CPU hotplug: the sequences of cpu_offline and cpu_online (docs/hotplug.md). Each subsystem
// does its own part (sched_evacuate_here, timer_evacuate, irq_evacuate, call_close_here,
// address_space_cpu_leaving, the per-CPU cache drains); this file orders them.
#include "smp/hotplug.h"

#include <atomic>

#include "arch/arch.h"
#include "boot/params.h"
#include "debug/log.h"
#include "debug/panic.h"
#include "irq/irq.h"
#include "lib/format.h"
#include "mm/address_space.h"
#include "mm/heap.h"
#include "mm/kstack.h"
#include "mm/pmm.h"
#include "sched/sched.h"
#include "sched/wait.h"
#include "smp/call.h"
#include "smp/cpu.h"
#include "smp/smp.h"
#include "time/clock.h"
#include "time/timer.h"

namespace cohort {

namespace {

Mutex g_hotplug; // one offline or online at a time
std::atomic<uint64_t> g_cycles{0};

// The CPU that takes a departing CPU's timers: another online CPU of its node, else cpu0.
uint32_t timer_heir(uint32_t leaving) {
    const uint32_t node = cpu_by_id(leaving)->node;
    for (uint32_t c = 1; c < cpu_count(); ++c) {
        const CpuData* cpu = cpu_by_id(c);
        if (c != leaving && cpu->node == node && cpu->online.load(std::memory_order_acquire))
            return c;
    }
    return 0;
}

struct Offline {
    HotplugReport* report;
    uint64_t sent_ns; // when run_on was called
    uint64_t done_ns; // when k's part ended
};

const char* const kStepNames[6] = {"worker start", "tasks", "caches", "calls", "timers", "park"};

// On the departing CPU, in its worker (thread context, interrupts on): everything that must
// happen there, in an order that loses nothing.
void offline_here(void* arg) {
    Offline& o = *static_cast<Offline*>(arg);
    HotplugReport& r = *o.report;
    CpuData* me = this_cpu();
    uint64_t t = monotonic_ns();
    auto step = [&](uint32_t i) {
        const uint64_t now = monotonic_ns();
        r.step_us[i] = (now - t) / 1000;
        t = now;
    };
    r.step_us[0] = t > o.sent_ns ? (t - o.sent_ns) / 1000 : 0;
    // 1. Its queued tasks go (it is out of the placement masks already, so nothing new comes).
    r.tasks_moved = sched_evacuate_here();
    step(1);
    // 2. Its caches go back to the shared allocators.
    r.frames_drained = pmm::drain_cpu_cache(me->cpu_id);
    r.objects_drained = heap_drain_cpu(me->cpu_id);
    r.stacks_drained = kstack_drain_cpu(me->cpu_id);
    step(2);
    // 3. No shootdown waits for it from here on: it is in no active set.
    address_space_cpu_leaving();
    // 4. Not online: senders get CallStatus::Offline, IPIs are refused; then what was queued
    // before runs here, and the queue closes.
    detail::mark_offline(me);
    call_close_here();
    step(3);
    // 5. Its timers, with their deadlines, to a neighbour; its LAPIC timer stops.
    arch::IrqOff irq;
    r.timer_cpu = timer_heir(me->cpu_id);
    r.timers_moved = timer_evacuate(r.timer_cpu);
    step(4);
    o.done_ns = monotonic_ns();
    // The worker returns; the idle loop finds nothing to run and parks (smp_cpu_parked).
}

HotplugError do_offline(uint32_t cpu, HotplugReport& r) {
    CpuData* c = cpu_by_id(cpu);
    if (!c->online.load(std::memory_order_acquire)) return HotplugError::AlreadyOffline;
    if (sched_tasks_pinned_to(cpu, r.task_name, sizeof(r.task_name)) != 0)
        return HotplugError::PinnedTask;
    const uint64_t start = monotonic_ns();
    sched_cpu_going_down(cpu);
    r.irqs_moved = irq_evacuate(cpu);
    Offline o{&r, monotonic_ns(), 0};
    const CallStatus st = run_on(cpu, offline_here, &o);
    if (st != CallStatus::Ok)
        log_error("hotplug: cpu%u's own part of going offline did not run (%s)", cpu,
                  call_status_name(st));
    // Parked when its idle loop says so; halted while we wait, so a vCPU can take our core.
    const uint64_t deadline = start + param_u64("hotplug.timeout_ms", 2000) * 1'000'000;
    while (c->boot_stage.load(std::memory_order_acquire) != BootStage::Offline &&
           monotonic_ns() < deadline)
        sleep_for(50'000);
    irq_evacuate(kMaxCpus);
    const uint64_t end = monotonic_ns();
    r.duration_us = (end - start) / 1000;
    r.step_us[5] = o.done_ns != 0 && end > o.done_ns ? (end - o.done_ns) / 1000 : 0;
    if (r.duration_us > 1'000'000) {
        // Slow (an emulator short of host cores, a long critical section somewhere): say where.
        char steps[160];
        size_t len = 0;
        for (uint32_t i = 0; i < 6; ++i)
            len += format(steps + len, sizeof(steps) - len, "%s%s %lu ms", i ? ", " : "",
                          kStepNames[i], r.step_us[i] / 1000);
        log_warn("hotplug: cpu%u took %lu ms to go offline: %s", cpu, r.duration_us / 1000, steps);
    }
    if (c->boot_stage.load(std::memory_order_acquire) != BootStage::Offline) {
        log_error("hotplug: cpu%u did not park within hotplug.timeout_ms", cpu);
        return HotplugError::Stuck;
    }
    return HotplugError::None;
}

HotplugError do_online(uint32_t cpu, HotplugReport& r, bool plugged) {
    CpuData* c = cpu_by_id(cpu);
    const BootStage stage = c->boot_stage.load(std::memory_order_acquire);
    if (plugged && stage != BootStage::Absent) return HotplugError::NotAbsent;
    if (c->online.load(std::memory_order_acquire)) return HotplugError::AlreadyOnline;
    if (!plugged && stage == BootStage::Absent) return HotplugError::NotPresent;
    if (!plugged && stage != BootStage::Offline) return HotplugError::NotParked;
    const uint64_t start = monotonic_ns();
    call_reopen(cpu);
    uint64_t us = 0;
    if (!smp_restart_cpu(c, param_u64("smp.timeout_ms", 1000), &us))
        return HotplugError::StartFailed;
    // Online for IPIs now; placement takes it once its scheduler is set up again.
    const uint64_t deadline = start + param_u64("hotplug.timeout_ms", 2000) * 1'000'000;
    while (!sched_cpu_running(cpu) && monotonic_ns() < deadline) sleep_for(50'000);
    r.duration_us = (monotonic_ns() - start) / 1000;
    if (!sched_cpu_running(cpu)) {
        log_error("hotplug: cpu%u came online but its scheduler did not start", cpu);
        return HotplugError::StartFailed;
    }
    return HotplugError::None;
}

enum class Kind : uint8_t { Offline, Online, Plugged };

struct Op {
    uint32_t cpu;
    Kind kind;
    HotplugReport* report;
    HotplugError result;
};

void run_op(void* arg) {
    Op& op = *static_cast<Op*>(arg);
    op.result = op.kind == Kind::Offline ? do_offline(op.cpu, *op.report)
                                         : do_online(op.cpu, *op.report, op.kind == Kind::Plugged);
}

HotplugError operate(uint32_t cpu, Kind kind, HotplugReport* report) {
    HotplugReport local;
    HotplugReport& r = report != nullptr ? *report : local;
    r = HotplugReport{};
    r.cpu = cpu;
    if (cpu >= cpu_count() || cpu_by_id(cpu) == nullptr) return HotplugError::NoSuchCpu;
    if (cpu == 0) return HotplugError::BootCpu;
    if (!arch::irqs_enabled() || current_task() == nullptr) return HotplugError::NotFromTask;
    g_hotplug.lock();
    // From cpu0, which never goes offline: the initiator is never the CPU it works on.
    Op op{cpu, kind, &r, HotplugError::None};
    run_pinned(0, run_op, &op);
    g_hotplug.unlock();
    if (op.result == HotplugError::None) {
        if (kind == Kind::Offline) {
            log_info("hotplug: cpu%u offline in %lu us: %u tasks moved, %u timers to cpu%u, "
                     "%u interrupt lines moved, caches: %lu frames, %lu objects, %lu stacks",
                     cpu, r.duration_us, r.tasks_moved, r.timers_moved, r.timer_cpu,
                     r.irqs_moved, r.frames_drained, r.objects_drained, r.stacks_drained);
        } else {
            if (kind == Kind::Online) g_cycles.fetch_add(1, std::memory_order_relaxed);
            log_info("hotplug: cpu%u %s in %lu us", cpu,
                     kind == Kind::Plugged ? "plugged in and online" : "online", r.duration_us);
        }
    }
    return op.result;
}

} // namespace

const char* hotplug_error_name(HotplugError e) {
    switch (e) {
    case HotplugError::None: return "done";
    case HotplugError::NoSuchCpu: return "no such CPU";
    case HotplugError::BootCpu: return "the boot CPU (cpu0) cannot go offline";
    case HotplugError::AlreadyOffline: return "already offline";
    case HotplugError::AlreadyOnline: return "already online";
    case HotplugError::NotParked:
        return "not taken offline by cpu_offline (never started, or stopped at bring-up)";
    case HotplugError::PinnedTask: return "a task may run only on that CPU";
    case HotplugError::NotFromTask: return "must be called from a task with interrupts on";
    case HotplugError::Stuck: return "the CPU did not park in time";
    case HotplugError::StartFailed: return "the CPU did not come back online";
    case HotplugError::NotPresent: return "no CPU is plugged in that slot";
    case HotplugError::NotAbsent: return "that slot has a CPU already";
    }
    return "?";
}

HotplugError cpu_offline(uint32_t cpu, HotplugReport* report) {
    return operate(cpu, Kind::Offline, report);
}
HotplugError cpu_online(uint32_t cpu, HotplugReport* report) {
    return operate(cpu, Kind::Online, report);
}
HotplugError cpu_plugged(uint32_t cpu, HotplugReport* report) {
    return operate(cpu, Kind::Plugged, report);
}

void cpu_unplugged(uint32_t cpu) {
    if (cpu == 0 || cpu >= cpu_count()) return;
    g_hotplug.lock();
    CpuData* c = cpu_by_id(cpu);
    BootStage expected = BootStage::Offline;
    if (!c->boot_stage.compare_exchange_strong(expected, BootStage::Absent))
        log_error("hotplug: cpu%u was ejected while %s", cpu, boot_stage_name(expected));
    g_hotplug.unlock();
}
uint64_t hotplug_cycles() { return g_cycles.load(std::memory_order_relaxed); }

void smp_cpu_parked() {
    arch::irq_disable();
    CpuData* me = this_cpu();
    // It comes back with this CpuData: nothing may be held or nested now.
    if (me->locks_held != 0 || me->irq_depth != 0)
        panic("hotplug: cpu%u parks holding %u locks at interrupt depth %u", me->cpu_id,
              me->locks_held, me->irq_depth);
    call_wait_sends_done(); // requests from a parked CPU are refused as forged
    me->boot_stage.store(BootStage::Offline, std::memory_order_release);
    // Interrupts off, halted: only INIT (then a SIPI) gets it out, which is how cpu_online
    // starts it. An NMI (a panic's stop) would wake it into the halt loop again.
    arch::halt_forever();
}

void hotplug_apply_boot_param() {
    const auto v = params().get("cpu.offline");
    if (!v || v->empty()) return;
    // "2,5-7": each item a CPU or a range.
    std::string_view list = *v;
    while (!list.empty()) {
        const size_t comma = list.find(',');
        const std::string_view item = list.substr(0, comma);
        list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
        uint64_t lo = 0, hi = 0;
        const size_t dash = item.find('-');
        auto parse = [](std::string_view s, uint64_t& out) {
            if (s.empty() || s.size() > 9) return false;
            out = 0;
            for (char ch : s) {
                if (ch < '0' || ch > '9') return false;
                out = out * 10 + static_cast<uint64_t>(ch - '0');
            }
            return true;
        };
        const bool ok = dash == std::string_view::npos
                            ? parse(item, lo) && (hi = lo, true)
                            : parse(item.substr(0, dash), lo) && parse(item.substr(dash + 1), hi);
        if (!ok || hi < lo) {
            log_error("hotplug: cpu.offline: '%.*s' is not a CPU number or range (as in "
                      "cpu.offline=2,5-7); ignored", static_cast<int>(item.size()), item.data());
            continue;
        }
        for (uint64_t cpu = lo; cpu <= hi; ++cpu) {
            const HotplugError e = cpu_offline(static_cast<uint32_t>(cpu));
            if (e != HotplugError::None)
                log_error("hotplug: cpu.offline: cpu%lu stays online: %s", cpu, hotplug_error_name(e));
        }
    }
}

} // namespace cohort
