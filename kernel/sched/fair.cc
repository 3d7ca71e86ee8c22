#include "sched/fair.h"

#include "lib/muldiv.h"

namespace cohort::sched {

uint64_t weighted_delta(uint64_t ns, uint32_t weight) {
    if (weight == kDefaultWeight) return ns;
    return mul_div(ns, kDefaultWeight, weight == 0 ? 1 : weight);
}

void FairQueue::enqueue(FairEntity& e) {
    tree_.insert(e);
    total_weight_ += e.weight;
}

void FairQueue::dequeue(FairEntity& e) {
    tree_.remove(e);
    total_weight_ -= e.weight;
}

void FairQueue::update_min_vruntime(const FairEntity* running) {
    uint64_t candidate = min_vruntime_;
    bool any = false;
    if (running != nullptr) candidate = running->vruntime, any = true;
    if (const FairEntity* f = tree_.first()) {
        candidate = any && candidate < f->vruntime ? candidate : f->vruntime;
        any = true;
    }
    // Never backwards: entities placed relative to the floor must not gain from it moving back.
    if (any && candidate > min_vruntime_) min_vruntime_ = candidate;
}

uint64_t FairQueue::placement(uint64_t vruntime, bool is_new, const FairParams& p) const {
    uint64_t floor = min_vruntime_;
    if (!is_new) floor = floor > p.wakeup_credit_ns ? floor - p.wakeup_credit_ns : 0;
    return vruntime > floor ? vruntime : floor;
}

uint64_t fair_slice(uint32_t weight, uint64_t total_weight, size_t nr_running, const FairParams& p) {
    uint64_t period = p.period_ns;
    // With many tasks, stretch the period rather than cut slices below the minimum.
    if (nr_running * p.min_slice_ns > period) period = nr_running * p.min_slice_ns;
    if (total_weight == 0) return period;
    const uint64_t slice = mul_div(period, weight, total_weight);
    return slice < p.min_slice_ns ? p.min_slice_ns : slice;
}

bool fair_should_preempt(const FairEntity& running, const FairEntity& next, const FairParams& p) {
    if (running.vruntime <= next.vruntime) return false;
    return running.vruntime - next.vruntime > weighted_delta(p.min_slice_ns, next.weight);
}

} // namespace cohort::sched
