// PCID slot assignment and the flush-or-keep decision (mm/pcid_cache.h).
#include "mm/pcid_cache.h"

#include <gtest/gtest.h>

namespace cohort {
namespace {

TEST(PcidCache, FirstLoadFlushesAReloadAtTheSameGenerationKeeps) {
    PcidCache c;
    const auto a = c.switch_to(7, 0);
    EXPECT_TRUE(a.flush); // whatever the PCID tagged before is not ours
    EXPECT_NE(a.pcid, 0);
    const auto k = c.switch_to(PcidCache::kKernelSpace, 0);
    EXPECT_EQ(k.pcid, 0);
    const auto again = c.switch_to(7, 0);
    EXPECT_EQ(again.pcid, a.pcid);
    EXPECT_FALSE(again.flush); // nothing changed: its entries may stay
}

TEST(PcidCache, AChangeWhileAwayForcesAFlushOnReturn) {
    PcidCache c;
    c.switch_to(7, 3);
    c.switch_to(8, 0);
    // Address space 7 was changed (generation 4) while this CPU ran 8: no IPI reached us.
    EXPECT_TRUE(c.switch_to(7, 4).flush);
    EXPECT_FALSE(c.switch_to(7, 4).flush);
}

TEST(PcidCache, TheKernelSpaceKeepsPcidZeroAndItsOwnGeneration) {
    PcidCache c;
    EXPECT_TRUE(c.switch_to(PcidCache::kKernelSpace, 0).flush);
    for (uint64_t id = 1; id <= 20; ++id) c.switch_to(id, 0); // never evicts the kernel
    const auto k = c.switch_to(PcidCache::kKernelSpace, 0);
    EXPECT_EQ(k.pcid, 0);
    EXPECT_FALSE(k.flush);
    EXPECT_TRUE(c.switch_to(PcidCache::kKernelSpace, 1).flush);
}

TEST(PcidCache, TheLeastRecentlyUsedSlotIsReusedAndFlushed) {
    PcidCache c;
    for (uint64_t id = 1; id <= PcidCache::kSlots; ++id) c.switch_to(id, 0);
    c.switch_to(1, 0); // 1 is now the most recently used, 2 the least
    const int pcid2 = c.pcid_for(2);
    const auto n = c.switch_to(100, 0);
    EXPECT_TRUE(n.flush);
    EXPECT_EQ(n.pcid, pcid2);
    EXPECT_EQ(c.pcid_for(2), -1);
    EXPECT_FALSE(c.switch_to(1, 0).flush); // still cached
    EXPECT_TRUE(c.switch_to(2, 0).flush);  // evicted: its PCID was reused meanwhile
}

TEST(PcidCache, PcidsStayInTheSlotRange) {
    PcidCache c;
    for (uint64_t id = 1; id < 1000; ++id) {
        const auto d = c.switch_to(id * 7919 % 37 + 1, id % 3);
        EXPECT_GE(d.pcid, 1);
        EXPECT_LE(d.pcid, PcidCache::kSlots);
    }
}

} // namespace
} // namespace cohort
