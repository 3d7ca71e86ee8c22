// Doubly linked lists whose nodes live inside the elements, so linking never allocates.
#pragma once

#include "lib/assert.h"

#include <bit>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace cohort {

/// Link embedded in an element. Both pointers are null while the element is on no list, which
/// lets the list catch double insertion and removal of unlinked elements.
struct ListNode {
    ListNode* prev = nullptr;
    ListNode* next = nullptr;

    bool linked() const { return next != nullptr; }
};

/// Circular doubly linked list of T threaded through the member `Link` (a direct, non-virtual-base
/// member). The list does not own its elements; an element must be removed before it is
/// destroyed. An element may be on several lists at once through different ListNode members.
/// Removing the element an iterator points at invalidates that iterator. Not thread-safe.
template <typename T, ListNode T::*Link>
class IntrusiveList {
  public:
    template <bool Const>
    class Iter {
        using Node = std::conditional_t<Const, const ListNode, ListNode>;
        using Elem = std::conditional_t<Const, const T, T>;

      public:
        Iter() = default;
        explicit Iter(Node* n) : node_(n) {}
        Elem& operator*() const { return *IntrusiveList::owner(node_); }
        Elem* operator->() const { return IntrusiveList::owner(node_); }
        Iter& operator++() {
            node_ = node_->next;
            return *this;
        }
        Iter operator++(int) {
            Iter old = *this;
            node_ = node_->next;
            return old;
        }
        bool operator==(const Iter& other) const { return node_ == other.node_; }

      private:
        Node* node_ = nullptr;
    };
    using iterator = Iter<false>;
    using const_iterator = Iter<true>;

    /// constexpr so global lists are constant-initialised and usable before constructors run.
    constexpr IntrusiveList() : head_{&head_, &head_} {}
    IntrusiveList(const IntrusiveList&) = delete;
    IntrusiveList& operator=(const IntrusiveList&) = delete;
    // The destructor is deliberately trivial, so global lists need no atexit registration.
    // Destroying a non-empty list leaves its elements pointing at dead memory: empty it first.

    bool empty() const { return head_.next == &head_; }
    size_t size() const { return size_; }

    T* front() { return empty() ? nullptr : owner(head_.next); }
    T* back() { return empty() ? nullptr : owner(head_.prev); }
    const T* front() const { return empty() ? nullptr : owner(head_.next); }
    const T* back() const { return empty() ? nullptr : owner(head_.prev); }

    void push_front(T& item) { link_before(head_.next, node(item)); }
    void push_back(T& item) { link_before(&head_, node(item)); }

    /// Inserts `item` immediately before `pos`, which must be on this list.
    void insert_before(T& pos, T& item) {
        COHORT_ASSERT(node(pos).linked());
        link_before(&node(pos), node(item));
    }

    T* pop_front() {
        if (empty()) return nullptr;
        T* item = owner(head_.next);
        remove(*item);
        return item;
    }
    T* pop_back() {
        if (empty()) return nullptr;
        T* item = owner(head_.prev);
        remove(*item);
        return item;
    }

    /// Unlinks `item`, which must be on this list.
    void remove(T& item) {
        ListNode& n = node(item);
        COHORT_ASSERT(n.linked() && n.next->prev == &n && n.prev->next == &n);
        COHORT_ASSERT(size_ > 0);
        n.prev->next = n.next;
        n.next->prev = n.prev;
        n.prev = n.next = nullptr;
        --size_;
    }

    /// The element after / before `item` (which must be on this list), or nullptr at the end.
    T* next(T& item) {
        ListNode* n = node(item).next;
        return n == &head_ ? nullptr : owner(n);
    }
    T* prev(T& item) {
        ListNode* n = node(item).prev;
        return n == &head_ ? nullptr : owner(n);
    }

    /// Linear scan; meant for assertions, not for hot paths.
    bool contains(const T& item) const {
        const ListNode* target = &(item.*Link);
        for (const ListNode* n = head_.next; n != &head_; n = n->next)
            if (n == target) return true;
        return false;
    }

    iterator begin() { return iterator(head_.next); }
    iterator end() { return iterator(&head_); }
    const_iterator begin() const { return const_iterator(head_.next); }
    const_iterator end() const { return const_iterator(&head_); }

  private:
    static ListNode& node(T& item) { return item.*Link; }

    // Byte offset of the link inside T. offsetof needs a member name, not a member pointer, and
    // forging a T to measure it is UB. The x86-64 (Itanium) C++ ABI represents a pointer to data
    // member as exactly this offset, so read it out; the ABI is fixed for both kernel and host.
    static_assert(sizeof(Link) == sizeof(ptrdiff_t), "expected Itanium ABI member pointers");
    static size_t link_offset() { return static_cast<size_t>(std::bit_cast<ptrdiff_t>(Link)); }

    static T* owner(ListNode* n) {
        return reinterpret_cast<T*>(reinterpret_cast<unsigned char*>(n) - link_offset());
    }
    static const T* owner(const ListNode* n) {
        return reinterpret_cast<const T*>(reinterpret_cast<const unsigned char*>(n) -
                                          link_offset());
    }

    void link_before(ListNode* pos, ListNode& n) {
        COHORT_ASSERT(!n.linked());
        n.next = pos;
        n.prev = pos->prev;
        pos->prev->next = &n;
        pos->prev = &n;
        ++size_;
    }

    ListNode head_;
    size_t size_ = 0;
};

} // namespace cohort
