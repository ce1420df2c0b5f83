// The cap on written-off handler threads (issue 17), kept per route. A route is its key and the handler
// instance it runs: a reload that carries the instance over keeps its stuck count (the same code would get
// stuck again), while a reload that replaces the plugin (a fixed .so) or points the key at another handler
// starts from none. Once `cap` threads in all are written off, a route with any of them is "at the cap":
// a message or $connect of it is answered at once without calling the handler, and a $disconnect of it is
// parked here instead: it must still run (every $connect that ran gets its $disconnect), so it is handed
// back when one of the route's stuck threads returns, or dropped by Invoker::stop with its row left for
// the next start's clean-up. Parking and the release are under one mutex, so a $disconnect cannot be
// parked just after the last release it would have needed.
#pragma once

#include "invocation.h"

#include <atomic>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace wsgw {

class StuckRoutes {
public:
    using Route = std::pair<const void *, std::string>;  // the handler instance and the route key

    explicit StuckRoutes(size_t cap) : cap_(cap) {}

    void writtenOff(const Route &route);
    // A written-off thread's handler returned: the parked $disconnects, to be queued again (each is looked
    // at anew when it runs; one of another route still at the cap is parked again).
    std::vector<Invocation> returned(const Route &route);
    // The route's written-off threads when it is at the cap, else 0 (its handler may be called).
    size_t stuckAtCap(const Route &route) const;
    // Parks `inv` (moved from) when its route is at the cap; false when it may run now.
    bool parkIfAtCap(const Route &route, Invocation &inv);
    std::vector<Invocation> takeParked();  // at stop: what never got to run
    // Lock-free, for the invocation path: false means no route is at the cap (true: look with the above).
    bool anyAtCap() const { return total_.load(std::memory_order_relaxed) >= cap_; }
    size_t total() const { return total_.load(std::memory_order_relaxed); }
    size_t parked() const;

private:
    size_t stuckAtCapLocked(const Route &route) const;

    const size_t cap_;
    mutable std::mutex mutex_;
    std::atomic<size_t> total_{0};  // written only under mutex_
    std::map<Route, size_t> stuck_;
    std::vector<Invocation> parked_;
};

}  // namespace wsgw
