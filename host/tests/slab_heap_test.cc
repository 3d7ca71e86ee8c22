#include "lock_test_util.h"
#include "mm/slab_heap.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using cohort::PageSource;
using cohort::SlabHeap;

constexpr size_t kPage = SlabHeap::kPageSize;

// Host page source: aligned_alloc'd pages, checked on release (right size, really ours) and
// counted so a test can see the heap give every page back. With `quarantine`, released pages
// stay mapped until the source dies, so a test can free a pointer into a released page without
// the host reporting a use after free.
class HostPages {
  public:
    explicit HostPages(bool quarantine = false) : quarantine_(quarantine) {}
    ~HostPages() {
        for (auto& [p, pages] : live_)
            std::free(p);
        for (void* p : quarantined_)
            std::free(p);
    }
    HostPages(const HostPages&) = delete;
    HostPages& operator=(const HostPages&) = delete;

    PageSource source() { return PageSource{&alloc_cb, &free_cb, this}; }
    uint64_t outstanding() const { return outstanding_.load(); }
    uint64_t bad_frees() const { return bad_frees_.load(); }
    void set_fail(bool fail) { fail_ = fail; }

  private:
    static void* alloc_cb(size_t pages, void* ctx) {
        auto* self = static_cast<HostPages*>(ctx);
        if (self->fail_.load()) return nullptr;
        void* p = std::aligned_alloc(kPage, pages * kPage);
        if (p == nullptr) return nullptr;
        // Junk, not zeros: the heap must initialise everything it relies on.
        std::memset(p, 0xdb, pages * kPage);
        std::lock_guard<std::mutex> lock(self->mu_);
        self->live_.emplace(p, pages);
        self->outstanding_ += pages;
        return p;
    }
    static void free_cb(void* p, size_t pages, void* ctx) {
        auto* self = static_cast<HostPages*>(ctx);
        std::lock_guard<std::mutex> lock(self->mu_);
        auto it = self->live_.find(p);
        if (it == self->live_.end() || it->second != pages) {
            ++self->bad_frees_;
            return;
        }
        self->live_.erase(it);
        self->outstanding_ -= pages;
        if (self->quarantine_)
            self->quarantined_.push_back(p);
        else
            std::free(p);
    }

    const bool quarantine_;
    std::atomic<bool> fail_{false};
    std::mutex mu_;
    std::map<void*, size_t> live_;
    std::vector<void*> quarantined_;
    std::atomic<uint64_t> outstanding_{0};
    std::atomic<uint64_t> bad_frees_{0};
};

// ErrorHook is a plain function pointer, so reports go to a global recorder.
struct Report {
    std::string what;
    const void* ptr;
};
std::mutex g_reports_mu;
std::vector<Report> g_reports;

void record_error(const char* what, const void* p) {
    std::lock_guard<std::mutex> lock(g_reports_mu);
    g_reports.push_back({what, p});
}

std::vector<Report> take_reports() {
    std::lock_guard<std::mutex> lock(g_reports_mu);
    return std::exchange(g_reports, {});
}

class SlabHeapTest : public ::testing::Test {
  protected:
    void SetUp() override { take_reports(); }
    void TearDown() override {
        // Every test leaves the heap empty: all pages must be back with the source.
        const SlabHeap::Stats s = heap->stats();
        EXPECT_EQ(s.objects, 0u);
        EXPECT_EQ(s.bytes_in_use, 0u);
        EXPECT_EQ(s.pages, 0u);
        EXPECT_EQ(pages->outstanding(), 0u);
        EXPECT_EQ(pages->bad_frees(), 0u);
    }
    void init(bool poison, bool quarantine = false) {
        pages = std::make_unique<HostPages>(quarantine);
        heap = std::make_unique<SlabHeap>();
        heap->init(pages->source(), poison, &record_error);
    }

    std::unique_ptr<HostPages> pages = std::make_unique<HostPages>();
    std::unique_ptr<SlabHeap> heap = [this] {
        auto h = std::make_unique<SlabHeap>();
        h->init(pages->source(), false, &record_error);
        return h;
    }();
};

using cohort::test::join_or_abort;

uint8_t pattern_byte(uint64_t tag, size_t i) {
    return static_cast<uint8_t>((tag * 0x9e3779b97f4a7c15ull + i * 131) >> 56);
}
void fill(void* p, size_t n, uint64_t tag) {
    auto* b = static_cast<uint8_t*>(p);
    for (size_t i = 0; i < n; ++i)
        b[i] = pattern_byte(tag, i);
}
// Index of the first byte that does not match, or n.
size_t check(const void* p, size_t n, uint64_t tag) {
    const auto* b = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < n; ++i)
        if (b[i] != pattern_byte(tag, i)) return i;
    return n;
}

TEST_F(SlabHeapTest, ZeroSizeAndNull) {
    EXPECT_EQ(heap->alloc(0), nullptr);
    heap->free(nullptr);
    EXPECT_EQ(heap->usable_size(nullptr), 0u);
    EXPECT_EQ(heap->stats().errors, 0u);
    EXPECT_EQ(heap->stats().pages, 0u);
    EXPECT_TRUE(take_reports().empty());
}

TEST_F(SlabHeapTest, AllSizesAlignedDistinctAndUsable) {
    constexpr size_t kMax = 8192;
    std::vector<std::pair<void*, size_t>> live;
    uint64_t bytes = 0;
    for (size_t size = 1; size <= kMax; ++size) {
        void* p = heap->alloc(size);
        ASSERT_NE(p, nullptr) << size;
        ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % SlabHeap::kAlignment, 0u) << size;
        const size_t usable = heap->usable_size(p);
        ASSERT_GE(usable, size);
        if (size <= SlabHeap::kMaxSmall) {
            // Small objects come from the smallest class that fits: at most double the request.
            ASSERT_LT(usable, 2 * std::max<size_t>(size, 16)) << size;
        }
        // The whole usable size is ours to write.
        fill(p, usable, size);
        bytes += usable;
        live.emplace_back(p, usable);
    }
    SlabHeap::Stats s = heap->stats();
    EXPECT_EQ(s.objects, kMax);
    EXPECT_EQ(s.bytes_in_use, bytes);
    EXPECT_EQ(s.pages, pages->outstanding());
    EXPECT_EQ(s.errors, 0u);

    // No two allocations overlap.
    std::vector<std::pair<uintptr_t, size_t>> ranges;
    for (auto [p, n] : live)
        ranges.emplace_back(reinterpret_cast<uintptr_t>(p), n);
    std::sort(ranges.begin(), ranges.end());
    for (size_t i = 1; i < ranges.size(); ++i)
        ASSERT_LE(ranges[i - 1].first + ranges[i - 1].second, ranges[i].first);

    // Free in an interleaved order, checking each pattern survived everyone else's writes.
    for (size_t phase : {0, 1}) {
        for (size_t i = phase; i < live.size(); i += 2) {
            auto [p, n] = live[i];
            ASSERT_EQ(check(p, n, i + 1), n) << "allocation of size " << i + 1 << " damaged";
            heap->free(p);
        }
    }
    s = heap->stats();
    EXPECT_EQ(s.objects, 0u);
    EXPECT_EQ(s.bytes_in_use, 0u);
    EXPECT_EQ(s.pages, 0u);
    EXPECT_EQ(s.errors, 0u);
    EXPECT_EQ(pages->outstanding(), 0u);
    EXPECT_TRUE(take_reports().empty());
}

TEST_F(SlabHeapTest, StatsTrackClassesAndPages) {
    void* a = heap->alloc(100); // 128-byte class
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(heap->usable_size(a), 128u);
    SlabHeap::Stats s = heap->stats();
    EXPECT_EQ(s.objects, 1u);
    EXPECT_EQ(s.bytes_in_use, 128u);
    EXPECT_EQ(s.pages, 1u);

    void* b = heap->alloc(128); // same class, same slab
    EXPECT_EQ(heap->stats().pages, 1u);
    void* c = heap->alloc(16); // new class, new slab
    EXPECT_EQ(heap->stats().pages, 2u);

    void* big = heap->alloc(5000); // 5000 + header needs two pages
    ASSERT_NE(big, nullptr);
    EXPECT_EQ(heap->usable_size(big), 2 * kPage - 64);
    s = heap->stats();
    EXPECT_EQ(s.objects, 4u);
    EXPECT_EQ(s.pages, 4u);
    EXPECT_EQ(s.bytes_in_use, 128u + 128u + 16u + 2 * kPage - 64);
    EXPECT_EQ(pages->outstanding(), 4u);

    heap->free(big);
    EXPECT_EQ(heap->stats().pages, 2u);
    heap->free(a);
    EXPECT_EQ(heap->stats().pages, 2u); // b keeps the slab
    heap->free(b);
    EXPECT_EQ(heap->stats().pages, 1u); // empty slab went back
    heap->free(c);
    EXPECT_EQ(pages->outstanding(), 0u);
    EXPECT_EQ(heap->stats().errors, 0u);
}

TEST_F(SlabHeapTest, FullSlabsAndReuse) {
    // Fill several slabs of one class, free them in a scattered order, refill: every object must
    // be handed out once, and the page count must follow.
    std::mt19937 rng(7);
    for (size_t size : {16, 48, 1000, 2048}) {
        SCOPED_TRACE(size);
        std::vector<void*> objs;
        for (int i = 0; i < 600; ++i) {
            void* p = heap->alloc(size);
            ASSERT_NE(p, nullptr);
            fill(p, size, reinterpret_cast<uintptr_t>(p));
            objs.push_back(p);
        }
        std::vector<void*> sorted = objs;
        std::sort(sorted.begin(), sorted.end());
        ASSERT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());
        std::shuffle(objs.begin(), objs.end(), rng);
        for (size_t i = 0; i < objs.size() / 2; ++i) {
            ASSERT_EQ(check(objs[i], size, reinterpret_cast<uintptr_t>(objs[i])), size);
            heap->free(objs[i]);
        }
        objs.erase(objs.begin(), objs.begin() + static_cast<ptrdiff_t>(objs.size() / 2));
        for (int i = 0; i < 300; ++i) {
            void* p = heap->alloc(size);
            ASSERT_NE(p, nullptr);
            fill(p, size, reinterpret_cast<uintptr_t>(p));
            objs.push_back(p);
        }
        sorted = objs;
        std::sort(sorted.begin(), sorted.end());
        ASSERT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());
        for (void* p : objs) {
            ASSERT_EQ(check(p, size, reinterpret_cast<uintptr_t>(p)), size);
            heap->free(p);
        }
        EXPECT_EQ(heap->stats().pages, 0u);
    }
    EXPECT_EQ(heap->stats().errors, 0u);
}

TEST_F(SlabHeapTest, DoubleFreeIsReportedAndHarmless) {
    void* keep = heap->alloc(64); // keeps the slab alive, so the second free reads a live page
    void* p = heap->alloc(64);
    ASSERT_NE(keep, nullptr);
    ASSERT_NE(p, nullptr);
    heap->free(p);
    const SlabHeap::Stats before = heap->stats();
    heap->free(p);
    const SlabHeap::Stats after = heap->stats();
    EXPECT_EQ(after.errors, before.errors + 1);
    EXPECT_EQ(after.objects, before.objects);
    EXPECT_EQ(after.bytes_in_use, before.bytes_in_use);
    EXPECT_EQ(after.pages, before.pages);
    auto reports = take_reports();
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_NE(reports[0].what.find("double free"), std::string::npos) << reports[0].what;
    EXPECT_EQ(reports[0].ptr, p);

    // The slot went onto the free list once: a slab's worth of allocations are all distinct.
    std::vector<void*> objs;
    for (int i = 0; i < 200; ++i) {
        void* q = heap->alloc(64);
        ASSERT_NE(q, nullptr);
        ASSERT_NE(q, keep);
        objs.push_back(q);
    }
    std::sort(objs.begin(), objs.end());
    EXPECT_EQ(std::adjacent_find(objs.begin(), objs.end()), objs.end());
    EXPECT_EQ(std::count(objs.begin(), objs.end(), p), 1);
    for (void* q : objs)
        heap->free(q);
    heap->free(keep);
    EXPECT_EQ(heap->stats().errors, 1u);
    EXPECT_TRUE(take_reports().empty());
}

TEST_F(SlabHeapTest, DoubleFreeAfterPagesWentBack) {
    // The page source keeps released pages mapped, so the second free reads real memory.
    init(/*poison=*/false, /*quarantine=*/true);
    void* small = heap->alloc(32);
    void* large = heap->alloc(3 * kPage);
    ASSERT_NE(small, nullptr);
    ASSERT_NE(large, nullptr);
    heap->free(small); // the slab's last object: the page goes back
    heap->free(large);
    EXPECT_EQ(pages->outstanding(), 0u);
    heap->free(small);
    heap->free(large);
    const SlabHeap::Stats s = heap->stats();
    EXPECT_EQ(s.errors, 2u);
    EXPECT_EQ(s.objects, 0u);
    EXPECT_EQ(s.pages, 0u);
    auto reports = take_reports();
    ASSERT_EQ(reports.size(), 2u);
    EXPECT_EQ(reports[0].ptr, small);
    EXPECT_EQ(reports[1].ptr, large);
    EXPECT_EQ(pages->bad_frees(), 0u) << "a page went back to the source twice";
}

TEST_F(SlabHeapTest, InteriorAndMisalignedPointersAreReported) {
    void* p = heap->alloc(64);
    ASSERT_NE(p, nullptr);
    fill(p, 64, 1);
    auto* b = static_cast<unsigned char*>(p);

    heap->free(b + 16); // 16-byte aligned, but inside the object
    heap->free(b + 32);
    heap->free(b + 1); // misaligned
    heap->free(b + 8);
    auto reports = take_reports();
    ASSERT_EQ(reports.size(), 4u);
    EXPECT_EQ(reports[0].ptr, b + 16);
    EXPECT_EQ(reports[1].ptr, b + 32);
    EXPECT_EQ(reports[2].ptr, b + 1);
    EXPECT_EQ(reports[3].ptr, b + 8);
    const SlabHeap::Stats s = heap->stats();
    EXPECT_EQ(s.errors, 4u);
    EXPECT_EQ(s.objects, 1u);

    // The object is intact and still live; the slab still hands out distinct objects.
    EXPECT_EQ(check(p, 64, 1), 64u);
    void* q = heap->alloc(64);
    EXPECT_NE(q, p);
    heap->free(q);
    heap->free(p);
    EXPECT_EQ(heap->stats().errors, 4u);
}

TEST_F(SlabHeapTest, ForeignPointersInsideSlabPageAreReported) {
    // A 1024-byte slab holds three objects after its header; the tail of the page is slack.
    void* p = heap->alloc(1024);
    ASSERT_NE(p, nullptr);
    const uintptr_t page = reinterpret_cast<uintptr_t>(p) & ~uintptr_t(kPage - 1);
    const uintptr_t first = reinterpret_cast<uintptr_t>(p);
    auto at = [](uintptr_t a) { return reinterpret_cast<void*>(a); };

    std::vector<void*> bad = {
        at(page + 16),         // inside the slab header
        at(page + 64),         // where a large block's object would start
        at(first + 512),       // 16-aligned, between object boundaries
        at(first + 3 * 1024),  // one past the last object: in the slack
        at(page + kPage - 16), // end of the page
        at(first - 16),        // just before the first object
    };
    for (void* x : bad) {
        EXPECT_EQ(reinterpret_cast<uintptr_t>(x) % 16, 0u);
        heap->free(x);
    }
    auto reports = take_reports();
    ASSERT_EQ(reports.size(), bad.size());
    for (size_t i = 0; i < bad.size(); ++i) {
        EXPECT_EQ(reports[i].ptr, bad[i]) << i;
        // No slot starts there, so this is a bad pointer, not a double free of some slot.
        EXPECT_EQ(reports[i].what.find("double free"), std::string::npos)
            << i << ": " << reports[i].what;
    }
    EXPECT_EQ(heap->stats().errors, bad.size());
    EXPECT_EQ(heap->stats().objects, 1u);

    // The slab's other two objects are still allocatable, and distinct.
    void* q = heap->alloc(1024);
    void* r = heap->alloc(1024);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(q) & ~uintptr_t(kPage - 1), page);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(r) & ~uintptr_t(kPage - 1), page);
    EXPECT_NE(q, r);
    EXPECT_NE(q, p);
    EXPECT_NE(r, p);
    heap->free(r);
    heap->free(q);
    heap->free(p);
    EXPECT_EQ(heap->stats().errors, bad.size());
}

TEST_F(SlabHeapTest, PointersTheHeapNeverOwnedAreReported) {
    // A page-aligned buffer that is not a slab: zeros and junk headers both fail the magic check.
    void* buf = std::aligned_alloc(kPage, 2 * kPage);
    ASSERT_NE(buf, nullptr);
    std::memset(buf, 0, 2 * kPage);
    auto* b = static_cast<unsigned char*>(buf);
    std::memset(b + kPage, 0x5a, kPage);
    heap->free(b + 64);
    heap->free(b + 256);
    heap->free(b + kPage + 64);
    heap->free(b + kPage + 256);
    EXPECT_EQ(heap->usable_size(b + 256), 0u);
    EXPECT_EQ(heap->usable_size(b + kPage + 64), 0u);
    auto reports = take_reports();
    ASSERT_EQ(reports.size(), 4u);
    EXPECT_EQ(reports[0].ptr, b + 64);
    EXPECT_EQ(reports[3].ptr, b + kPage + 256);
    EXPECT_EQ(heap->stats().errors, 4u);
    std::free(buf);
}

TEST_F(SlabHeapTest, PoisonDetectsWriteAfterFree) {
    init(/*poison=*/true);
    // Sizes whose slabs hold several objects, so `keep` holds p's slab (and its page) alive.
    for (size_t size : {16, 64, 1024}) {
        SCOPED_TRACE(size);
        void* keep = heap->alloc(size);
        void* p = heap->alloc(size);
        ASSERT_NE(p, nullptr);
        // Fresh memory is filled with the allocation poison, not left as it was.
        auto* b = static_cast<unsigned char*>(p);
        for (size_t i = 0; i < size; ++i)
            ASSERT_EQ(b[i], 0xa5) << i;
        fill(p, size, 9);
        heap->free(p);
        EXPECT_TRUE(take_reports().empty());
        // Freed memory holds the free poison (the first word is the free-list link).
        for (size_t i = sizeof(void*); i < size; ++i)
            ASSERT_EQ(b[i], 0x6b) << i;

        b[size - 1] = 0; // write after free
        void* again = heap->alloc(size);
        ASSERT_EQ(again, p) << "the freed slot should be reused first";
        auto reports = take_reports();
        ASSERT_EQ(reports.size(), 1u);
        EXPECT_NE(reports[0].what.find("after it was freed"), std::string::npos) << reports[0].what;
        EXPECT_EQ(reports[0].ptr, p);
        // Reallocation re-poisons the object and the heap keeps working.
        for (size_t i = 0; i < size; ++i)
            ASSERT_EQ(b[i], 0xa5) << i;
        heap->free(again);
        void* clean = heap->alloc(size);
        EXPECT_EQ(clean, p);
        EXPECT_TRUE(take_reports().empty());
        heap->free(clean);
        heap->free(keep);
    }
    EXPECT_EQ(heap->stats().errors, 3u);
}

TEST_F(SlabHeapTest, PoisonQuietWhenNothingIsWrong) {
    init(/*poison=*/true);
    std::mt19937 rng(3);
    std::vector<std::pair<void*, size_t>> live;
    for (int i = 0; i < 5000; ++i) {
        if (live.empty() || rng() % 3 != 0) {
            const size_t size = 1 + rng() % 3000;
            void* p = heap->alloc(size);
            ASSERT_NE(p, nullptr);
            fill(p, size, reinterpret_cast<uintptr_t>(p));
            live.emplace_back(p, size);
        } else {
            const size_t k = rng() % live.size();
            ASSERT_EQ(
                check(live[k].first, live[k].second, reinterpret_cast<uintptr_t>(live[k].first)),
                live[k].second);
            heap->free(live[k].first);
            live[k] = live.back();
            live.pop_back();
        }
    }
    for (auto [p, n] : live)
        heap->free(p);
    EXPECT_EQ(heap->stats().errors, 0u);
    EXPECT_TRUE(take_reports().empty());
}

TEST_F(SlabHeapTest, OutOfMemory) {
    void* p = heap->alloc(32);
    ASSERT_NE(p, nullptr);
    pages->set_fail(true);
    // The existing slab still serves its class; new classes and large blocks fail cleanly.
    void* q = heap->alloc(32);
    EXPECT_NE(q, nullptr);
    EXPECT_EQ(heap->alloc(256), nullptr);
    EXPECT_EQ(heap->alloc(10000), nullptr);
    EXPECT_EQ(heap->alloc(SIZE_MAX), nullptr);
    EXPECT_EQ(heap->alloc(SIZE_MAX - kPage), nullptr);
    const SlabHeap::Stats s = heap->stats();
    EXPECT_EQ(s.objects, 2u);
    EXPECT_EQ(s.pages, 1u);
    EXPECT_EQ(s.errors, 0u);
    pages->set_fail(false);
    void* r = heap->alloc(256);
    EXPECT_NE(r, nullptr);
    heap->free(r);
    heap->free(q);
    heap->free(p);
}

TEST_F(SlabHeapTest, MultiThreadedStress) {
    constexpr int kThreads = 8;
    constexpr int kOps = 20000;
    // Some allocations are handed to another thread to free, so frees race with allocations of
    // the same slab from elsewhere.
    std::mutex handoff_mu;
    std::vector<std::pair<void*, std::pair<size_t, uint64_t>>> handoff;
    std::atomic<int> failures{0};
    std::atomic<size_t> finished{0};

    auto worker = [&](int id) {
        std::mt19937_64 rng(1000 + id);
        struct Live {
            void* p;
            size_t size;
            uint64_t tag;
        };
        std::vector<Live> live;
        uint64_t counter = 0;
        auto release = [&](const Live& l) {
            if (check(l.p, l.size, l.tag) != l.size) ++failures;
            heap->free(l.p);
        };
        for (int op = 0; op < kOps; ++op) {
            const uint64_t r = rng() % 100;
            if (live.size() < 8 || (r < 50 && live.size() < 256)) {
                const size_t size = rng() % 16 == 0 ? 1 + rng() % 9000 : 1 + rng() % 2048;
                void* p = heap->alloc(size);
                if (p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 != 0) {
                    ++failures;
                    continue;
                }
                const uint64_t tag = (uint64_t(id) << 40) | ++counter;
                fill(p, size, tag);
                live.push_back({p, size, tag});
            } else if (r < 90) {
                const size_t k = rng() % live.size();
                release(live[k]);
                live[k] = live.back();
                live.pop_back();
            } else {
                const size_t k = rng() % live.size();
                {
                    std::lock_guard<std::mutex> lock(handoff_mu);
                    handoff.push_back({live[k].p, {live[k].size, live[k].tag}});
                }
                live[k] = live.back();
                live.pop_back();
                std::pair<void*, std::pair<size_t, uint64_t>> theirs{nullptr, {}};
                {
                    std::lock_guard<std::mutex> lock(handoff_mu);
                    if (handoff.size() > 1) {
                        theirs = handoff.front();
                        handoff.erase(handoff.begin());
                    }
                }
                if (theirs.first != nullptr)
                    release({theirs.first, theirs.second.first, theirs.second.second});
            }
        }
        for (const Live& l : live)
            release(l);
        ++finished;
    };

    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i)
        threads.emplace_back(worker, i);
    join_or_abort(threads, finished, std::chrono::seconds(120));
    for (auto& [p, info] : handoff) {
        EXPECT_EQ(check(p, info.first, info.second), info.first);
        heap->free(p);
    }
    EXPECT_EQ(failures.load(), 0);
    const SlabHeap::Stats s = heap->stats();
    EXPECT_EQ(s.objects, 0u);
    EXPECT_EQ(s.bytes_in_use, 0u);
    EXPECT_EQ(s.pages, 0u);
    EXPECT_EQ(s.errors, 0u);
    EXPECT_EQ(pages->outstanding(), 0u);
    EXPECT_TRUE(take_reports().empty());
}

// --- per-CPU object caches ------------------------------------------------------------------
// Threads play CPUs: each sets its number before it touches the heap.
thread_local uint32_t t_cpu = 0;
uint32_t host_cpu() { return t_cpu; }

class SlabHeapCpuCacheTest : public SlabHeapTest {
  protected:
    static constexpr uint32_t kCpus = 8;
    void SetUp() override {
        SlabHeapTest::SetUp();
        t_cpu = 0;
    }
    void enable(bool poison) {
        init(poison);
        ASSERT_TRUE(heap->enable_cpu_caches(kCpus, host_cpu));
        baseline_pages = heap->stats().pages; // the cache array itself, held for good
        ASSERT_GT(baseline_pages, 0u);
        ASSERT_EQ(pages->outstanding(), baseline_pages);
    }
    void TearDown() override {
        // After a drain the heap holds nothing but its cache array: every cached object and
        // every kept empty slab went back.
        heap->drain();
        EXPECT_EQ(heap->cached_objects(), 0u);
        const SlabHeap::Stats s = heap->stats();
        EXPECT_EQ(s.objects, 0u);
        EXPECT_EQ(s.bytes_in_use, 0u);
        EXPECT_EQ(s.pages, baseline_pages);
        EXPECT_EQ(pages->outstanding(), baseline_pages);
        EXPECT_EQ(pages->bad_frees(), 0u);
    }
    uint64_t class_lock_acquisitions() { return cohort::g_heap_class.stats().acquisitions; }
    uint64_t baseline_pages = 0;
};

TEST_F(SlabHeapCpuCacheTest, AllocFreeLoopStaysOffTheClassLock) {
    enable(false);
    const uint64_t before = class_lock_acquisitions();
    for (int i = 0; i < 10000; ++i) {
        void* p = heap->alloc(64);
        ASSERT_NE(p, nullptr);
        heap->free(p);
    }
    // One refill at the start; the loop itself runs on the CPU's cache.
    EXPECT_LE(class_lock_acquisitions() - before, 2u);
    EXPECT_GT(heap->cached_objects(), 0u);
}

TEST_F(SlabHeapCpuCacheTest, BurstsTakeTheClassLockOncePerBatch) {
    enable(false);
    std::vector<void*> v;
    const uint64_t before = class_lock_acquisitions();
    for (int round = 0; round < 20; ++round) {
        for (int i = 0; i < 512; ++i) v.push_back(heap->alloc(32));
        for (void* p : v) heap->free(p);
        v.clear();
    }
    const uint64_t taken = class_lock_acquisitions() - before;
    // 20 x 1024 operations in batches of 16 (32-byte class): about 1300 acquisitions; per
    // object it would be 20,480.
    EXPECT_LT(taken, 20u * 1024 / 8);
    EXPECT_GT(taken, 0u);
}

TEST_F(SlabHeapCpuCacheTest, ObjectsFreedOnAnotherCpuComeBackThroughTheDepot) {
    enable(false);
    std::vector<void*> v;
    for (int i = 0; i < 300; ++i) v.push_back(heap->alloc(128));
    std::thread other([&] {
        t_cpu = 5;
        for (void* p : v) heap->free(p);
    });
    other.join();
    EXPECT_GT(heap->cached_objects(), 0u);
    const uint64_t pages_before = heap->stats().pages;
    // CPU 0 allocates again: it gets the objects CPU 5 gave back (no new slab pages).
    std::vector<void*> again;
    for (int i = 0; i < 50; ++i) again.push_back(heap->alloc(128));
    EXPECT_EQ(heap->stats().pages, pages_before);
    for (void* p : again) heap->free(p);
}

TEST_F(SlabHeapCpuCacheTest, DoubleFreeIsCaughtBeforeTheObjectIsCachedTwice) {
    enable(false);
    void* p = heap->alloc(48);
    heap->free(p);
    heap->free(p);
    auto reports = take_reports();
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_NE(reports[0].what.find("double free"), std::string::npos) << reports[0].what;
    // Had it been cached twice, two allocations would return the same pointer.
    void* a = heap->alloc(48);
    void* b = heap->alloc(48);
    EXPECT_NE(a, b);
    heap->free(a);
    heap->free(b);
    EXPECT_TRUE(take_reports().empty());
}

TEST_F(SlabHeapCpuCacheTest, PoisonStillCatchesWriteAfterFree) {
    enable(true);
    void* p = heap->alloc(256);
    heap->free(p);
    static_cast<unsigned char*>(p)[100] = 0; // write after free, into a cached object
    void* again = heap->alloc(256);
    EXPECT_EQ(again, p) << "the CPU cache hands the newest object out first";
    auto reports = take_reports();
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_NE(reports[0].what.find("after it was freed"), std::string::npos);
    heap->free(again);
}

TEST_F(SlabHeapCpuCacheTest, EmptySlabsAreKeptUntilDrain) {
    enable(false);
    // The 2048-byte class: one object per slab page, so each free empties a slab.
    std::vector<void*> v;
    for (int i = 0; i < 40; ++i) v.push_back(heap->alloc(2048));
    for (void* p : v) heap->free(p);
    const uint64_t held = heap->stats().pages - baseline_pages;
    // Cached objects keep their slabs; at most kKeepEmpty empty slabs stay beyond those.
    EXPECT_LE(held, heap->cached_objects() + SlabHeap::kKeepEmpty);
    EXPECT_GT(held, 0u);
    heap->drain();
    EXPECT_EQ(heap->stats().pages, baseline_pages);
}

TEST_F(SlabHeapCpuCacheTest, ManyCpusAllocateAndFreeAcrossEachOther) {
    constexpr int kOps = 20000;
    enable(true);
    std::mutex mu;
    std::vector<std::pair<void*, uint64_t>> handoff; // freed by a thread other than the allocator
    std::atomic<int> failures{0};
    std::atomic<size_t> finished{0};
    auto worker = [&](uint32_t cpu) {
        t_cpu = cpu;
        std::mt19937_64 rng(77 + cpu);
        std::vector<std::pair<void*, uint64_t>> live;
        uint64_t n = 0;
        for (int op = 0; op < kOps; ++op) {
            const uint64_t r = rng() % 100;
            if (live.size() < 4 || (r < 50 && live.size() < 300)) {
                const size_t size = 1 + rng() % 2048;
                void* p = heap->alloc(size);
                if (p == nullptr) {
                    ++failures;
                    continue;
                }
                const uint64_t tag = (uint64_t{cpu} << 40) | ++n;
                fill(p, 16, tag);
                live.push_back({p, tag});
            } else {
                const size_t k = rng() % live.size();
                auto item = live[k];
                live[k] = live.back();
                live.pop_back();
                if (r < 85) {
                    if (check(item.first, 16, item.second) != 16) ++failures;
                    heap->free(item.first);
                } else {
                    std::lock_guard<std::mutex> lock(mu);
                    handoff.push_back(item);
                    if (handoff.size() > 8) {
                        auto theirs = handoff.front();
                        handoff.erase(handoff.begin());
                        if (check(theirs.first, 16, theirs.second) != 16) ++failures;
                        heap->free(theirs.first);
                    }
                }
            }
        }
        for (auto& [p, tag] : live) {
            if (check(p, 16, tag) != 16) ++failures;
            heap->free(p);
        }
        ++finished;
    };
    std::vector<std::thread> threads;
    for (uint32_t i = 0; i < kCpus; ++i) threads.emplace_back(worker, i);
    join_or_abort(threads, finished, std::chrono::seconds(120));
    for (auto& [p, tag] : handoff) {
        EXPECT_EQ(check(p, 16, tag), 16u);
        heap->free(p);
    }
    EXPECT_EQ(failures.load(), 0);
    EXPECT_TRUE(take_reports().empty());
    EXPECT_EQ(heap->stats().errors, 0u);
}

} // namespace

// kmalloc_node's path: whole pages from another source (a NUMA node's), freed like any large
// allocation through the heap's own source.
TEST_F(SlabHeapTest, PagesFromAnotherSourceAreALargeAllocationFreedAsUsual) {
    struct Counting {
        PageSource inner;
        int calls = 0;
        static void* alloc(size_t n, void* ctx) {
            auto* self = static_cast<Counting*>(ctx);
            ++self->calls;
            return self->inner.alloc(n, self->inner.ctx);
        }
    } counting{pages->source()};
    const PageSource other{&Counting::alloc, pages->source().free, &counting};
    void* p = heap->alloc_pages_from(100, other);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(counting.calls, 1);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
    EXPECT_GE(heap->usable_size(p), 100u);
    EXPECT_EQ(heap->stats().objects, 1u);
    fill(p, 100, 7);
    EXPECT_EQ(check(p, 100, 7), 100u);
    heap->free(p);
    EXPECT_EQ(heap->alloc_pages_from(0, other), nullptr);
    EXPECT_TRUE(take_reports().empty());
}
