#include "disconnects_awaiting_store.h"

namespace wsgw {

void DisconnectsAwaitingStore::await(Invocation &&inv) {
    ConnectionStore *store = inv.removeRowAfter;
    {
        std::lock_guard lock(mutex_);
        if (!lanes_) return;  // stopped: dropped, its row kept
        waiting_.push_back(std::move(inv));
    }
    // The store may outlive this (and the Invoker): the call back holds only a weak reference.
    store->whenReachable([weak = weak_from_this()] {
        if (auto self = weak.lock()) self->release();
    });
}

void DisconnectsAwaitingStore::release() {
    std::lock_guard lock(mutex_);  // held while requeueing, so that close() waits for it
    if (!lanes_ || waiting_.empty()) return;
    std::vector<Invocation> ready;
    ready.swap(waiting_);
    lanes_->requeueReleased(std::move(ready));
}

size_t DisconnectsAwaitingStore::close() {
    std::lock_guard lock(mutex_);
    lanes_ = nullptr;
    size_t left = waiting_.size();
    waiting_.clear();
    return left;
}

}  // namespace wsgw
