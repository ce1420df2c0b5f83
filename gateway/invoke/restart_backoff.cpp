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

void superviseWithBackoff(std::mutex &mutex, std::condition_variable &cv, const bool &stopping,
                          const std::function<bool()> &runProcess, const std::function<bool(bool becameReady)> &afterRun) {
    RestartBackoff backoff;
    for (;;) {
        {
            std::unique_lock lock(mutex);
            if (backoff.delay().count() > 0) cv.wait_for(lock, backoff.delay(), [&] { return stopping; });
            if (stopping) return;
        }
        bool becameReady = runProcess();
        {
            std::lock_guard lock(mutex);
            if (stopping) return;
            if (!afterRun(becameReady)) return;
        }
        backoff.afterEnd(becameReady);  // a process that cannot start or keeps ending comes back ever slower
    }
}

}  // namespace wsgw
