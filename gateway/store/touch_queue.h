// Owns: the queue of lastActiveAt touches between the network thread and a store's writer thread
// (TouchQueue), shared by the SQLite and the Redis store.
//
// Why not a map from ID to time: a connection ID (22 characters) is longer than std::string's inline
// buffer, so every touch cost the network thread a node and a string allocation, and the writer thread
// their frees. Here the IDs go back to back into one buffer that the writer swaps out whole under the
// store's lock and later hands back emptied: once the buffers have grown, queueing a touch allocates
// nothing. Duplicates are kept until coalesce(), which the writer runs before it writes (or keeps) them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>
#include <string_view>
#include <vector>

namespace wsgw {

class TouchQueue {
public:
    void add(std::string_view connectionId, int64_t lastActiveAtMs) {
        entries_.push_back({static_cast<uint32_t>(ids_.size()), static_cast<uint32_t>(connectionId.size()), lastActiveAtMs});
        ids_.append(connectionId);
    }

    bool empty() const { return entries_.empty(); }
    size_t size() const { return entries_.size(); }
    void clear() {  // keeps the capacity: the buffers are handed back and forth, not reallocated
        ids_.clear();
        entries_.clear();
    }
    void swap(TouchQueue &other) noexcept {
        ids_.swap(other.ids_);
        entries_.swap(other.entries_);
    }
    void append(const TouchQueue &other) {
        for (size_t i = 0; i < other.size(); ++i) add(other.id(i), other.time(i));
    }

    std::string_view id(size_t i) const { return {ids_.data() + entries_[i].offset, entries_[i].length}; }
    int64_t time(size_t i) const { return entries_[i].atMs; }

    // One entry per connection with its latest time (a touch never moves lastActiveAt back), sorted by ID:
    // one write per connection however often it was touched, and neighbouring keys one after the other
    // (the UPDATEs walk the ID index in order instead of jumping around it).
    void coalesce() { rebuild([](std::string_view) { return true; }); }

    // coalesce(), keeping only the IDs `keep` says yes to.
    template <class Keep>
    void coalesceKeeping(Keep &&keep) {
        rebuild(keep);
    }

private:
    struct Entry {
        uint32_t offset, length;
        int64_t atMs;
    };

    template <class Keep>
    void rebuild(Keep &&keep) {
        std::vector<uint32_t> order(entries_.size());
        std::iota(order.begin(), order.end(), 0u);
        std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
            int c = id(a).compare(id(b));
            return c < 0 || (c == 0 && entries_[a].atMs > entries_[b].atMs);  // the latest time first
        });
        TouchQueue out;
        out.ids_.reserve(ids_.size());
        out.entries_.reserve(entries_.size());
        for (size_t k = 0; k < order.size(); ++k) {
            std::string_view name = id(order[k]);
            if (k > 0 && name == id(order[k - 1])) continue;  // an older touch of the same connection
            if (keep(name)) out.add(name, entries_[order[k]].atMs);
        }
        swap(out);
    }

    std::string ids_;  // the IDs back to back; entries_ point into it
    std::vector<Entry> entries_;
};

}  // namespace wsgw
