#include "lib/intrusive_list.h"

#include <gtest/gtest.h>

#include <vector>

namespace {

using cohort::IntrusiveList;
using cohort::ListNode;

struct Item {
    explicit Item(int v = 0) : value(v) {}
    int value;
    ListNode run_link;
    char padding[13] = {}; // Puts the second link at a non-trivial offset.
    ListNode wait_link;
};

using RunList = IntrusiveList<Item, &Item::run_link>;
using WaitList = IntrusiveList<Item, &Item::wait_link>;

template <typename List>
std::vector<int> values(const List& list) {
    std::vector<int> out;
    for (const Item& item : list)
        out.push_back(item.value);
    return out;
}

template <typename List>
void drain(List& list) {
    while (list.pop_front() != nullptr) {
    }
}

TEST(IntrusiveList, StartsEmpty) {
    RunList list;
    EXPECT_TRUE(list.empty());
    EXPECT_EQ(list.size(), 0u);
    EXPECT_EQ(list.front(), nullptr);
    EXPECT_EQ(list.back(), nullptr);
    EXPECT_EQ(list.pop_front(), nullptr);
    EXPECT_EQ(list.pop_back(), nullptr);
    EXPECT_EQ(list.begin(), list.end());
}

TEST(IntrusiveList, PushPopOrder) {
    Item a{1}, b{2}, c{3};
    RunList list;
    list.push_back(b);
    list.push_front(a);
    list.push_back(c);
    EXPECT_EQ(list.size(), 3u);
    EXPECT_EQ(values(list), (std::vector<int>{1, 2, 3}));
    EXPECT_EQ(list.front(), &a);
    EXPECT_EQ(list.back(), &c);
    EXPECT_TRUE(a.run_link.linked());
    EXPECT_EQ(list.pop_front(), &a);
    EXPECT_FALSE(a.run_link.linked());
    EXPECT_EQ(list.pop_back(), &c);
    EXPECT_EQ(list.size(), 1u);
    EXPECT_EQ(list.pop_back(), &b);
    EXPECT_TRUE(list.empty());
    EXPECT_EQ(list.size(), 0u);
}

TEST(IntrusiveList, InsertBeforeAndRemove) {
    Item a{1}, b{2}, c{3}, d{4};
    RunList list;
    list.push_back(a);
    list.push_back(c);
    list.insert_before(c, b);
    list.insert_before(a, d);
    EXPECT_EQ(values(list), (std::vector<int>{4, 1, 2, 3}));
    list.remove(a);
    EXPECT_EQ(values(list), (std::vector<int>{4, 2, 3}));
    list.remove(d);
    list.remove(c);
    EXPECT_EQ(values(list), (std::vector<int>{2}));
    EXPECT_EQ(list.front(), &b);
    EXPECT_EQ(list.back(), &b);
    list.remove(b);
    EXPECT_TRUE(list.empty());
    // A removed item can be reinserted.
    list.push_back(a);
    EXPECT_EQ(list.front(), &a);
    drain(list);
}

TEST(IntrusiveList, Contains) {
    Item a{1}, b{2};
    RunList list;
    EXPECT_FALSE(list.contains(a));
    list.push_back(a);
    EXPECT_TRUE(list.contains(a));
    EXPECT_FALSE(list.contains(b));
    drain(list);
}

TEST(IntrusiveList, ElementOnTwoLists) {
    Item items[4];
    RunList run;
    WaitList wait;
    for (int i = 0; i < 4; ++i) {
        items[i].value = i;
        run.push_back(items[i]);
        wait.push_front(items[i]);
    }
    EXPECT_EQ(values(run), (std::vector<int>{0, 1, 2, 3}));
    EXPECT_EQ(values(wait), (std::vector<int>{3, 2, 1, 0}));
    wait.remove(items[2]);
    EXPECT_EQ(values(run), (std::vector<int>{0, 1, 2, 3}));
    EXPECT_EQ(values(wait), (std::vector<int>{3, 1, 0}));
    EXPECT_EQ(wait.front(), &items[3]);
    EXPECT_EQ(wait.back(), &items[0]);
    drain(run);
    drain(wait);
}

TEST(IntrusiveList, MutableIteration) {
    Item a{1}, b{2}, c{3};
    RunList list;
    list.push_back(a);
    list.push_back(b);
    list.push_back(c);
    for (Item& item : list)
        item.value *= 10;
    EXPECT_EQ(values(list), (std::vector<int>{10, 20, 30}));
    auto it = list.begin();
    EXPECT_EQ(it->value, 10);
    EXPECT_EQ((it++)->value, 10);
    EXPECT_EQ((*it).value, 20);
    EXPECT_EQ((++it)->value, 30);
    EXPECT_EQ(++it, list.end());
    const RunList& clist = list;
    int sum = 0;
    for (const Item& item : clist)
        sum += item.value;
    EXPECT_EQ(sum, 60);
    EXPECT_EQ(clist.front()->value, 10);
    drain(list);
}

TEST(IntrusiveList, ManyElements) {
    std::vector<Item> items(1000);
    RunList list;
    for (size_t i = 0; i < items.size(); ++i) {
        items[i].value = static_cast<int>(i);
        if (i % 2 == 0)
            list.push_back(items[i]);
        else
            list.push_front(items[i]);
    }
    EXPECT_EQ(list.size(), 1000u);
    for (size_t i = 0; i < items.size(); i += 3)
        list.remove(items[i]);
    EXPECT_EQ(list.size(), 1000u - 334u);
    size_t n = 0;
    for (const Item& item : list) {
        EXPECT_NE(item.value % 3, 0);
        ++n;
    }
    EXPECT_EQ(n, list.size());
    drain(list);
}

TEST(IntrusiveListDeathTest, DoublePushAsserts) {
    EXPECT_DEATH(
        {
            Item a{1};
            RunList list;
            list.push_back(a);
            list.push_back(a);
        },
        "assertion failed");
    EXPECT_DEATH(
        {
            Item a{1};
            RunList one;
            RunList two;
            one.push_back(a);
            two.push_front(a);
        },
        "assertion failed");
}

TEST(IntrusiveListDeathTest, RemoveUnlinkedAsserts) {
    EXPECT_DEATH(
        {
            Item a{1};
            RunList list;
            list.remove(a);
        },
        "assertion failed");
}

// Global lists must be usable before any constructor runs.
constinit RunList global_list;

TEST(IntrusiveList, ConstantInitializedGlobal) {
    EXPECT_TRUE(global_list.empty());
    Item a{5};
    global_list.push_back(a);
    EXPECT_EQ(global_list.front(), &a);
    drain(global_list);
}

} // namespace
