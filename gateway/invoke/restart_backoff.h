// The restart policy shared by the supervisors of isolated plugin workers and Lambda function processes:
// how long to wait before starting a process again after it ended. A crash costs one invocation and the
// process is back at once; but one that cannot start, or ends over and over (5 times within 5 s), is
// restarted ever slower (100 ms, doubled each time, at most 5 s) instead of in a tight loop. Owns only that
// arithmetic and the record of recent ends; the supervisor owns the waiting (so a stop can cut it short).
#pragma once

#include <chrono>
#include <deque>

namespace wsgw {

class RestartBackoff {
public:
    using Clock = std::chrono::steady_clock;

    static constexpr std::chrono::milliseconds kFirstDelay{100};
    static constexpr std::chrono::milliseconds kMaxDelay{5000};
    static constexpr std::chrono::seconds kEndWindow{5};
    static constexpr std::size_t kEndsThatMeanFailing = 5;

    // After a process ended at `endedAt`: `becameReady` says whether it started properly before it ended.
    // Returns the delay before the next start (zero: at once) and remembers it for the next call.
    std::chrono::milliseconds afterEnd(bool becameReady, Clock::time_point endedAt = Clock::now());

    std::chrono::milliseconds delay() const { return delay_; }

private:
    std::chrono::milliseconds delay_{0};
    std::deque<Clock::time_point> recentEnds_;  // the ends within kEndWindow of the last one
};

}  // namespace wsgw
