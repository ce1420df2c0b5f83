// The restart back-off of process supervisors (see restart_backoff.h).
#include "restart_backoff.h"

#include <algorithm>

namespace wsgw {

std::chrono::milliseconds RestartBackoff::afterEnd(bool becameReady, Clock::time_point endedAt) {
    recentEnds_.push_back(endedAt);
    while (!recentEnds_.empty() && endedAt - recentEnds_.front() > kEndWindow) recentEnds_.pop_front();
    bool failing = !becameReady || recentEnds_.size() >= kEndsThatMeanFailing;
    delay_ = failing ? std::min(kMaxDelay, std::max(kFirstDelay, delay_ * 2)) : std::chrono::milliseconds{0};
    return delay_;
}

}  // namespace wsgw
