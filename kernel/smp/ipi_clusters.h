// Multicast IPIs in x2APIC cluster mode: one ICR write per cluster of 16 CPUs instead of one per
// CPU. In x2APIC mode each local APIC's logical ID (its read-only LDR) is its cluster in bits
// 31:16 and one bit for its place in the cluster in bits 15:0, and an IPI in logical
// destination mode reaches every CPU of the named cluster whose bit it carries (Intel SDM
// Vol. 3A, "Logical Destination Mode in x2APIC Mode"). Portable: host-tested.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cohort {

/// The logical ID the SDM derives from an x2APIC id: cluster id >> 4, bit id & 15.
constexpr uint32_t x2apic_logical_id(uint32_t x2apic_id) {
    return ((x2apic_id >> 4) << 16) | (uint32_t{1} << (x2apic_id & 15));
}

/// Gathers logical IDs into one destination per cluster. Targets usually come in APIC-id order,
/// so a cluster's CPUs arrive together; up to kSlots clusters are held at once, and a new one
/// beyond that first sends what is held. `send(destination)` gets cluster << 16 | bits.
template <size_t kSlots = 8>
class ClusterBatch {
  public:
    template <typename Send>
    void add(uint32_t logical_id, Send&& send) {
        const uint32_t cluster = logical_id >> 16;
        for (size_t i = 0; i < n_; ++i) {
            if (cluster_[i] == cluster) {
                bits_[i] |= logical_id & 0xffff;
                return;
            }
        }
        if (n_ == kSlots) flush(send);
        cluster_[n_] = cluster;
        bits_[n_] = logical_id & 0xffff;
        ++n_;
    }

    /// Sends every destination held, in the order their clusters first appeared.
    template <typename Send>
    void flush(Send&& send) {
        for (size_t i = 0; i < n_; ++i) send((cluster_[i] << 16) | bits_[i]);
        n_ = 0;
    }

  private:
    uint32_t cluster_[kSlots];
    uint32_t bits_[kSlots];
    size_t n_ = 0;
};

} // namespace cohort
