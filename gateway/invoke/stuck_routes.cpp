#include "stuck_routes.h"

namespace wsgw {

void StuckRoutes::writtenOff(const Route &route) {
    std::lock_guard lock(mutex_);
    ++stuck_[route];
    ++total_;
}

std::vector<Invocation> StuckRoutes::returned(const Route &route) {
    std::lock_guard lock(mutex_);
    auto it = stuck_.find(route);
    if (it != stuck_.end()) {
        if (--it->second == 0) stuck_.erase(it);
        --total_;
    }
    // Below the cap now: every parked $disconnect may run (the cap counts all routes' threads).
    std::vector<Invocation> released;
    released.swap(parked_);
    return released;
}

size_t StuckRoutes::stuckAtCapLocked(const Route &route) const {
    if (total_ < cap_) return 0;
    auto it = stuck_.find(route);
    return it == stuck_.end() ? 0 : it->second;
}

size_t StuckRoutes::stuckAtCap(const Route &route) const {
    std::lock_guard lock(mutex_);
    return stuckAtCapLocked(route);
}

bool StuckRoutes::parkIfAtCap(const Route &route, Invocation &inv) {
    std::lock_guard lock(mutex_);
    if (stuckAtCapLocked(route) == 0) return false;
    parked_.push_back(std::move(inv));
    return true;
}

std::vector<Invocation> StuckRoutes::takeParked() {
    std::lock_guard lock(mutex_);
    std::vector<Invocation> taken;
    taken.swap(parked_);
    return taken;
}

size_t StuckRoutes::parked() const {
    std::lock_guard lock(mutex_);
    return parked_.size();
}

}  // namespace wsgw
