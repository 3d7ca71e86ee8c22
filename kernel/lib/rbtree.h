// An intrusive red-black tree: ordered sets whose nodes live inside the elements, so inserting
// never allocates, with O(log n) insert and remove and O(1) access to both ends. The scheduler's
// run queues (by virtual run time) and the per-CPU timer queues (by deadline) use it: both are
// walked with interrupts off, where a sorted list's O(n) insert grows with the number of tasks
// or timers on the CPU.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

#include "lib/assert.h"

namespace cohort {

/// Link embedded in an element. `linked()` tells whether the element is in a tree, which lets
/// the tree catch double insertion and removal of an element it does not hold.
struct RbNode {
    RbNode* parent = nullptr;
    RbNode* left = nullptr;
    RbNode* right = nullptr;
    bool red = false;
    bool in_tree = false;

    bool linked() const { return in_tree; }
};

/// Elements of T threaded through the member `Link`, ordered by `Less` (a callable
/// `bool(const T&, const T&)`, a strict weak order). Elements that compare equal keep their
/// insertion order: a new one goes after every equal one, so the tree is FIFO among equals.
/// The tree does not own its elements; remove one before destroying it. Not thread-safe.
template <typename T, RbNode T::*Link, typename Less>
class RbTree {
  public:
    constexpr RbTree() = default;
    RbTree(const RbTree&) = delete;
    RbTree& operator=(const RbTree&) = delete;

    bool empty() const { return root_ == nullptr; }
    size_t size() const { return size_; }

    /// The least and the greatest element (the last of the equal greatest), or nullptr.
    T* first() const { return first_ ? owner(first_) : nullptr; }
    T* last() const { return last_ ? owner(last_) : nullptr; }

    /// The element after / before `item` (which must be in this tree), or nullptr.
    T* next(T& item) const {
        const RbNode* n = successor(&node(item));
        return n ? owner(n) : nullptr;
    }
    T* prev(T& item) const {
        const RbNode* n = predecessor(&node(item));
        return n ? owner(n) : nullptr;
    }

    /// Adds `item`, which must not be in a tree, after every element equal to it.
    void insert(T& item) {
        RbNode* n = &node(item);
        COHORT_ASSERT(!n->in_tree);
        RbNode* parent = nullptr;
        RbNode** slot = &root_;
        bool leftmost = true, rightmost = true;
        while (*slot != nullptr) {
            parent = *slot;
            if (Less{}(item, *owner(parent))) {
                slot = &parent->left;
                rightmost = false;
            } else {
                slot = &parent->right;
                leftmost = false;
            }
        }
        n->parent = parent;
        n->left = n->right = nullptr;
        n->red = true;
        n->in_tree = true;
        *slot = n;
        if (leftmost) first_ = n;
        if (rightmost) last_ = n;
        ++size_;
        insert_fixup(n);
    }

    /// Takes `item`, which must be in this tree, out of it.
    void remove(T& item) {
        RbNode* z = &node(item);
        COHORT_ASSERT(z->in_tree && size_ > 0);
        if (z == first_) first_ = successor(z);
        if (z == last_) last_ = predecessor(z);

        // z leaves the tree; y is the node that actually disappears from its place (z itself,
        // or z's successor, which then takes z's place and colour); x moves into y's place.
        RbNode* y = z;
        bool removed_black = !y->red;
        RbNode* x;
        RbNode* x_parent;
        if (z->left == nullptr) {
            x = z->right;
            x_parent = z->parent;
            transplant(z, z->right);
        } else if (z->right == nullptr) {
            x = z->left;
            x_parent = z->parent;
            transplant(z, z->left);
        } else {
            y = z->right;
            while (y->left != nullptr) y = y->left;
            removed_black = !y->red;
            x = y->right;
            if (y->parent == z) {
                x_parent = y;
            } else {
                x_parent = y->parent;
                transplant(y, y->right);
                y->right = z->right;
                y->right->parent = y;
            }
            transplant(z, y);
            y->left = z->left;
            y->left->parent = y;
            y->red = z->red;
        }
        z->parent = z->left = z->right = nullptr;
        z->red = false;
        z->in_tree = false;
        --size_;
        if (removed_black) remove_fixup(x, x_parent);
    }

    /// Walks the tree checking the red-black rules, the order, the parent links, the cached
    /// ends and the count: for tests and assertions, O(n).
    bool valid() const {
        size_t count = 0;
        if (root_ != nullptr && (root_->red || root_->parent != nullptr)) return false;
        if (black_height(root_, count) < 0 || count != size_) return false;
        const RbNode* lo = root_;
        const RbNode* hi = root_;
        while (lo != nullptr && lo->left != nullptr) lo = lo->left;
        while (hi != nullptr && hi->right != nullptr) hi = hi->right;
        if (lo != first_ || hi != last_) return false;
        for (const RbNode* n = first_; n != nullptr; n = successor(n)) {
            const RbNode* s = successor(n);
            if (s != nullptr && Less{}(*owner(s), *owner(n))) return false;
        }
        return true;
    }

  private:
    static RbNode& node(T& item) { return item.*Link; }

    // Byte offset of the link inside T, read from the member pointer: on the x86-64 (Itanium)
    // C++ ABI, kernel and host alike, a pointer to data member is that offset.
    static_assert(sizeof(Link) == sizeof(ptrdiff_t), "expected Itanium ABI member pointers");
    static size_t link_offset() { return static_cast<size_t>(std::bit_cast<ptrdiff_t>(Link)); }
    static T* owner(const RbNode* n) {
        return reinterpret_cast<T*>(
            reinterpret_cast<unsigned char*>(const_cast<RbNode*>(n)) - link_offset());
    }

    static RbNode* successor(const RbNode* n) {
        if (n->right != nullptr) {
            RbNode* m = n->right;
            while (m->left != nullptr) m = m->left;
            return m;
        }
        RbNode* p = n->parent;
        while (p != nullptr && n == p->right) n = p, p = p->parent;
        return p;
    }
    static RbNode* predecessor(const RbNode* n) {
        if (n->left != nullptr) {
            RbNode* m = n->left;
            while (m->right != nullptr) m = m->right;
            return m;
        }
        RbNode* p = n->parent;
        while (p != nullptr && n == p->left) n = p, p = p->parent;
        return p;
    }

    // Puts `v` (possibly null) where `u` hangs from its parent.
    void transplant(RbNode* u, RbNode* v) {
        if (u->parent == nullptr) root_ = v;
        else if (u == u->parent->left) u->parent->left = v;
        else u->parent->right = v;
        if (v != nullptr) v->parent = u->parent;
    }

    void rotate_left(RbNode* x) {
        RbNode* y = x->right;
        x->right = y->left;
        if (y->left != nullptr) y->left->parent = x;
        transplant(x, y);
        y->left = x;
        x->parent = y;
    }
    void rotate_right(RbNode* x) {
        RbNode* y = x->left;
        x->left = y->right;
        if (y->right != nullptr) y->right->parent = x;
        transplant(x, y);
        y->right = x;
        x->parent = y;
    }

    static bool is_red(const RbNode* n) { return n != nullptr && n->red; }

    // A red node was added under a parent that may be red: recolour up the tree while the
    // uncle is red, then at most two rotations end it.
    void insert_fixup(RbNode* z) {
        while (is_red(z->parent)) {
            RbNode* p = z->parent;
            RbNode* g = p->parent; // exists: a red parent is never the root
            if (p == g->left) {
                RbNode* uncle = g->right;
                if (is_red(uncle)) {
                    p->red = uncle->red = false;
                    g->red = true;
                    z = g;
                    continue;
                }
                if (z == p->right) {
                    rotate_left(p);
                    z = p;
                    p = z->parent;
                }
                p->red = false;
                g->red = true;
                rotate_right(g);
            } else {
                RbNode* uncle = g->left;
                if (is_red(uncle)) {
                    p->red = uncle->red = false;
                    g->red = true;
                    z = g;
                    continue;
                }
                if (z == p->left) {
                    rotate_right(p);
                    z = p;
                    p = z->parent;
                }
                p->red = false;
                g->red = true;
                rotate_left(g);
            }
        }
        root_->red = false;
    }

    // A black node left the path through `x` (which may be null, hence its parent is passed):
    // that path is one black short until a red node on it is blackened or the deficit is
    // pushed to the root.
    void remove_fixup(RbNode* x, RbNode* parent) {
        while (x != root_ && !is_red(x)) {
            if (x == parent->left) {
                RbNode* w = parent->right; // exists: its side has at least one black node
                if (w->red) {
                    w->red = false;
                    parent->red = true;
                    rotate_left(parent);
                    w = parent->right;
                }
                if (!is_red(w->left) && !is_red(w->right)) {
                    w->red = true;
                    x = parent;
                    parent = x->parent;
                    continue;
                }
                if (!is_red(w->right)) {
                    w->left->red = false;
                    w->red = true;
                    rotate_right(w);
                    w = parent->right;
                }
                w->red = parent->red;
                parent->red = false;
                w->right->red = false;
                rotate_left(parent);
            } else {
                RbNode* w = parent->left;
                if (w->red) {
                    w->red = false;
                    parent->red = true;
                    rotate_right(parent);
                    w = parent->left;
                }
                if (!is_red(w->left) && !is_red(w->right)) {
                    w->red = true;
                    x = parent;
                    parent = x->parent;
                    continue;
                }
                if (!is_red(w->left)) {
                    w->right->red = false;
                    w->red = true;
                    rotate_left(w);
                    w = parent->left;
                }
                w->red = parent->red;
                parent->red = false;
                w->left->red = false;
                rotate_right(parent);
            }
            x = root_;
        }
        if (x != nullptr) x->red = false;
    }

    // Black nodes on every path from `n` down (equal on all of them), or -1 when a rule is
    // broken below `n`; counts the nodes into `count`.
    static int black_height(const RbNode* n, size_t& count) {
        if (n == nullptr) return 0;
        ++count;
        if (!n->in_tree) return -1;
        if (n->red && (is_red(n->left) || is_red(n->right))) return -1;
        if ((n->left != nullptr && n->left->parent != n) ||
            (n->right != nullptr && n->right->parent != n))
            return -1;
        if (n->left != nullptr && Less{}(*owner(n), *owner(n->left))) return -1;
        if (n->right != nullptr && Less{}(*owner(n->right), *owner(n))) return -1;
        const int l = black_height(n->left, count);
        const int r = black_height(n->right, count);
        if (l < 0 || r < 0 || l != r) return -1;
        return l + (n->red ? 0 : 1);
    }

    RbNode* root_ = nullptr;
    RbNode* first_ = nullptr; // cached ends: the scheduler and the timers read them on every
    RbNode* last_ = nullptr;  // switch and interrupt
    size_t size_ = 0;
};

} // namespace cohort
