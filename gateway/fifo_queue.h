// A first-in first-out queue that costs nothing while empty. std::deque allocates a 512-byte block and
// its map as soon as it is constructed, which is most of the memory of an idle connection when every
// connection has two of them (its outgoing frames and its invocation lane). Elements live in one vector
// read from a moving head; the vector is emptied whenever the head reaches its end.
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
        items_[head_] = T();  // release what it holds now, not when the vector is reused
        if (++head_ == items_.size()) clear();
    }
    void clear() {
        items_.clear();
        head_ = 0;
        // A burst may have grown it; do not keep a large buffer for a connection that went quiet.
        if (items_.capacity() > kKeptCapacity) items_.shrink_to_fit();
    }
    auto begin() { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
    auto end() { return items_.end(); }

private:
    static constexpr size_t kKeptCapacity = 64;
    std::vector<T> items_;
    size_t head_ = 0;
};

}  // namespace wsgw
