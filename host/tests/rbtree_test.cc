#include "lib/rbtree.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <vector>

namespace {

using cohort::RbNode;
using cohort::RbTree;

struct Item {
    uint64_t key = 0;
    int seq = 0; // insertion order, to check FIFO among equal keys
    char padding[9] = {}; // the link at a non-trivial offset
    RbNode node;
};

struct ByKey {
    bool operator()(const Item& a, const Item& b) const { return a.key < b.key; }
};
using Tree = RbTree<Item, &Item::node, ByKey>;

std::vector<const Item*> forward(const Tree& t) {
    std::vector<const Item*> out;
    for (Item* i = t.first(); i != nullptr; i = t.next(*i)) out.push_back(i);
    return out;
}
std::vector<const Item*> backward(const Tree& t) {
    std::vector<const Item*> out;
    for (Item* i = t.last(); i != nullptr; i = t.prev(*i)) out.push_back(i);
    return out;
}

// The longest root-to-node path, in nodes: a red-black tree of n nodes is at most
// 2 log2(n + 1) deep.
size_t depth(const std::vector<std::unique_ptr<Item>>& items) {
    size_t most = 0;
    for (const auto& i : items) {
        if (!i->node.linked()) continue;
        size_t d = 0;
        for (const RbNode* n = &i->node; n != nullptr; n = n->parent) ++d;
        most = std::max(most, d);
    }
    return most;
}

TEST(RbTree, EmptyTreeHasNoEnds) {
    Tree t;
    EXPECT_TRUE(t.empty());
    EXPECT_EQ(t.size(), 0u);
    EXPECT_EQ(t.first(), nullptr);
    EXPECT_EQ(t.last(), nullptr);
    EXPECT_TRUE(t.valid());
}

TEST(RbTree, EqualKeysKeepInsertionOrder) {
    Tree t;
    std::vector<std::unique_ptr<Item>> items;
    for (int i = 0; i < 50; ++i) {
        items.push_back(std::make_unique<Item>());
        items.back()->key = static_cast<uint64_t>(i % 3);
        items.back()->seq = i;
        t.insert(*items.back());
    }
    ASSERT_TRUE(t.valid());
    const auto order = forward(t);
    for (size_t i = 1; i < order.size(); ++i) {
        ASSERT_LE(order[i - 1]->key, order[i]->key);
        if (order[i - 1]->key == order[i]->key) ASSERT_LT(order[i - 1]->seq, order[i]->seq);
    }
    // The last element is the last inserted of the greatest key.
    EXPECT_EQ(t.last()->key, 2u);
    EXPECT_EQ(t.last()->seq, 47);
    EXPECT_EQ(t.first()->seq, 0);
    for (auto& i : items) t.remove(*i);
    EXPECT_TRUE(t.empty());
}

TEST(RbTree, SortedInsertionStaysLogarithmicallyDeep) {
    // Ascending keys are the worst case for an unbalanced tree (a list) and the common one for
    // timers and virtual run times.
    Tree t;
    std::vector<std::unique_ptr<Item>> items;
    constexpr size_t kCount = 4096;
    for (size_t i = 0; i < kCount; ++i) {
        items.push_back(std::make_unique<Item>());
        items.back()->key = i;
        t.insert(*items.back());
    }
    ASSERT_TRUE(t.valid());
    EXPECT_LE(depth(items), static_cast<size_t>(2 * std::log2(kCount + 1)));
    // Removing every other one keeps it balanced too.
    for (size_t i = 0; i < kCount; i += 2) t.remove(*items[i]);
    ASSERT_TRUE(t.valid());
    EXPECT_LE(depth(items), static_cast<size_t>(2 * std::log2(kCount / 2 + 1)));
}

TEST(RbTree, RemovalUnlinksTheElement) {
    Tree t;
    Item a, b;
    a.key = 1;
    b.key = 2;
    t.insert(a);
    t.insert(b);
    EXPECT_TRUE(a.node.linked());
    t.remove(a);
    EXPECT_FALSE(a.node.linked());
    EXPECT_EQ(t.first(), &b);
    EXPECT_EQ(t.last(), &b);
    t.insert(a); // re-insertable after removal
    EXPECT_EQ(t.first(), &a);
    t.remove(a);
    t.remove(b);
    EXPECT_TRUE(t.valid());
}

// Random inserts and removals (arbitrary elements, the ends, runs of equal keys) against a
// sorted model, checking the red-black rules and both traversal directions after every step.
TEST(RbTree, RandomOperationsMatchASortedModel) {
    for (uint32_t seed = 1; seed <= 20; ++seed) {
        std::mt19937 rng(seed);
        Tree t;
        std::vector<std::unique_ptr<Item>> items;
        for (int i = 0; i < 300; ++i) {
            items.push_back(std::make_unique<Item>());
        }
        std::vector<Item*> model; // sorted by (key, seq)
        int seq = 0;
        const uint64_t key_range = seed % 2 == 0 ? 8 : 1'000'000; // many ties, or almost none
        for (int step = 0; step < 3000; ++step) {
            const uint32_t op = rng() % 10;
            if (op < 5) {
                Item* free_item = nullptr;
                for (int tries = 0; tries < 8 && free_item == nullptr; ++tries) {
                    Item* c = items[rng() % items.size()].get();
                    if (!c->node.linked()) free_item = c;
                }
                if (free_item == nullptr) continue;
                free_item->key = rng() % key_range;
                free_item->seq = seq++;
                t.insert(*free_item);
                auto pos = std::upper_bound(model.begin(), model.end(), free_item,
                                            [](const Item* a, const Item* b) {
                                                return a->key < b->key;
                                            });
                model.insert(pos, free_item);
            } else if (!model.empty()) {
                size_t idx;
                if (op == 5) idx = 0;                      // the front, as pick-next does
                else if (op == 6) idx = model.size() - 1;  // the back, as stealing does
                else idx = rng() % model.size();          // anywhere, as cancel does
                t.remove(*model[idx]);
                model.erase(model.begin() + static_cast<ptrdiff_t>(idx));
            }
            ASSERT_TRUE(t.valid()) << "seed " << seed << " step " << step;
            ASSERT_EQ(t.size(), model.size());
            const auto f = forward(t);
            ASSERT_TRUE(std::equal(f.begin(), f.end(), model.begin(), model.end()))
                << "seed " << seed << " step " << step;
            const auto b = backward(t);
            ASSERT_TRUE(std::equal(b.begin(), b.end(), model.rbegin(), model.rend()));
        }
        for (Item* i : model) t.remove(*i);
        ASSERT_TRUE(t.empty());
    }
}

} // namespace
