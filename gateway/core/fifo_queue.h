// A first-in first-out queue that costs nothing while empty. std::deque allocates a 512-byte block and
// its map as soon as it is constructed, which is most of the memory of an idle connection when every
// connection has two of them (its outgoing frames and its invocation lane). Elements live in one vector
// read from a moving head; the vector is emptied whenever the head reaches its end, and compacted when a
// queue that never drains has consumed half of it.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace wsgw {

template <class T> class FifoQueue {
public:
    bool empty() const { return head_ == items_.size(); }
    size_t size() const { return items_.size() - head_; }
    T &front() { return items_[head_]; }
    void push_back(T &&v) { items_.push_back(std::move(v)); }
    void pop_front() {
        // Moved out and destroyed here, so its buffers are freed now: assigning T() would not do, as a
        // std::string assigned an empty one keeps its allocation.
        { [[maybe_unused]] T gone = std::move(items_[head_]); }
        advance();
    }
    // The front, moved out (its slot keeps only a moved-from shell, which holds no buffers), then popped: one
    // move where front() and pop_front() make two and destroy a shell.
    T take_front() {
        T taken = std::move(items_[head_]);
        advance();
        return taken;
    }
    void clear() {
        items_.clear();
        head_ = 0;
        // A burst may have grown it; do not keep a large buffer for a connection that went quiet.
        if (items_.capacity() > kKeptCapacity) items_.shrink_to_fit();
    }
    size_t slots() const { return items_.size(); }  // storage in use, consumed slots included (for tests)
    auto begin() { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
    auto end() { return items_.end(); }
    auto begin() const { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
    auto end() const { return items_.end(); }

private:
    void advance() {
        if (++head_ == items_.size()) {
            clear();
        } else if (head_ >= kCompactAfter && head_ * 2 >= items_.size()) {
            // A queue that never quite drains (steady pipelining) must not grow: drop the consumed front.
            items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
            head_ = 0;
        }
    }

    static constexpr size_t kKeptCapacity = 64;
    static constexpr size_t kCompactAfter = 32;
    std::vector<T> items_;
    size_t head_ = 0;
};

}  // namespace wsgw
