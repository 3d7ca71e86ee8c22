#include "sync/lock_class.h"

namespace cohort {

namespace {
std::atomic<LockClass*> g_classes{nullptr};

void store_max(std::atomic<uint64_t>& slot, uint64_t value) {
    uint64_t cur = slot.load(std::memory_order_relaxed);
    while (value > cur && !slot.compare_exchange_weak(cur, value, std::memory_order_relaxed)) {
    }
}
} // namespace

void LockClass::register_once() {
    if (registered_.load(std::memory_order_relaxed) ||
        registered_.exchange(true, std::memory_order_relaxed))
        return;
    // Lock-free push: registration happens inside lock() paths, where no lock may be taken.
    LockClass* head = g_classes.load(std::memory_order_relaxed);
    do {
        next_ = head;
    } while (!g_classes.compare_exchange_weak(head, this, std::memory_order_release,
                                              std::memory_order_relaxed));
}

void LockClass::record_acquire(bool contended, uint64_t wait) {
    register_once();
    acquisitions_.fetch_add(1, std::memory_order_relaxed);
    if (contended) contended_.fetch_add(1, std::memory_order_relaxed);
    total_wait_.fetch_add(wait, std::memory_order_relaxed);
    store_max(max_wait_, wait);
}

void LockClass::record_hold(uint64_t hold) {
    total_hold_.fetch_add(hold, std::memory_order_relaxed);
    store_max(max_hold_, hold);
}

LockStats LockClass::stats() const {
    LockStats s;
    s.acquisitions = acquisitions_.load(std::memory_order_relaxed);
    s.contended = contended_.load(std::memory_order_relaxed);
    s.total_wait = total_wait_.load(std::memory_order_relaxed);
    s.max_wait = max_wait_.load(std::memory_order_relaxed);
    s.total_hold = total_hold_.load(std::memory_order_relaxed);
    s.max_hold = max_hold_.load(std::memory_order_relaxed);
    return s;
}

void LockClass::reset_stats() {
    acquisitions_.store(0, std::memory_order_relaxed);
    contended_.store(0, std::memory_order_relaxed);
    total_wait_.store(0, std::memory_order_relaxed);
    max_wait_.store(0, std::memory_order_relaxed);
    total_hold_.store(0, std::memory_order_relaxed);
    max_hold_.store(0, std::memory_order_relaxed);
}

LockClass* LockClass::first_registered() {
    return g_classes.load(std::memory_order_acquire);
}

uint64_t LockClass::machine_wide_acquisitions() {
    uint64_t sum = 0;
    for (const LockClass* c = first_registered(); c != nullptr; c = c->next_registered())
        if (c->scope() == LockScope::MachineWide) sum += c->acquisitions_.load(std::memory_order_relaxed);
    return sum;
}

} // namespace cohort
