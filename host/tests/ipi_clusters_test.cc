#include "smp/ipi_clusters.h"

#include <gtest/gtest.h>

#include <vector>

namespace cohort {
namespace {

TEST(X2apicLogicalId, ClusterAndBitFromTheId) {
    EXPECT_EQ(x2apic_logical_id(0), 0x00000001u);
    EXPECT_EQ(x2apic_logical_id(15), 0x00008000u);
    EXPECT_EQ(x2apic_logical_id(16), 0x00010001u);
    EXPECT_EQ(x2apic_logical_id(0x123), 0x00120008u);
}

std::vector<uint32_t> batch(const std::vector<uint32_t>& apic_ids) {
    std::vector<uint32_t> sent;
    auto send = [&](uint32_t d) { sent.push_back(d); };
    ClusterBatch<4> b;
    for (uint32_t id : apic_ids) b.add(x2apic_logical_id(id), send);
    b.flush(send);
    return sent;
}

TEST(ClusterBatch, OneDestinationPerCluster) {
    EXPECT_EQ(batch({1, 2, 3}), (std::vector<uint32_t>{0x0000000e}));
    EXPECT_EQ(batch({0, 15, 16, 31, 32}),
              (std::vector<uint32_t>{0x00008001, 0x00018001, 0x00020001}));
}

TEST(ClusterBatch, ClustersOutOfOrderAreStillMerged) {
    EXPECT_EQ(batch({1, 17, 2, 18}), (std::vector<uint32_t>{0x00000006, 0x00010006}));
}

TEST(ClusterBatch, MoreClustersThanSlotsSendsEarlyButLosesNoCpu) {
    // Five clusters through four slots: the first four go out when the fifth arrives, and a
    // later CPU of cluster 0 gets a destination of its own.
    EXPECT_EQ(batch({0, 16, 32, 48, 64, 1}),
              (std::vector<uint32_t>{0x00000001, 0x00010001, 0x00020001, 0x00030001, 0x00040001,
                                     0x00000002}));
}

TEST(ClusterBatch, NothingAddedSendsNothing) { EXPECT_TRUE(batch({}).empty()); }

} // namespace
} // namespace cohort
