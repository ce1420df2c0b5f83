// The restart policy shared by the supervisors of isolated plugin workers and Lambda function processes:
// how long to wait before starting a process again after it ended. A crash costs one invocation and the
// process is back at once; but one that cannot start, or ends over and over (5 times within 5 s), is
// restarted ever slower (100 ms, doubled each time, at most 5 s) instead of in a tight loop. Owns that
// arithmetic and the record of recent ends (RestartBackoff), and the one supervise loop both supervisors run
// with it (superviseWithBackoff: the waiting, which a stop cuts short).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>

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

// A supervisor thread's life: runs `runProcess` (one process's life; true when it became ready) again and
// again, waiting the back-off between runs on `cv` (woken early once `stopping` is set), until `stopping`.
// After each run, unless stopping, `afterRun(becameReady)` is called with `mutex` held: it counts a start
// failure and returns false to end the supervision. `stopping` is read with `mutex` held.
void superviseWithBackoff(std::mutex &mutex, std::condition_variable &cv, const bool &stopping,
                          const std::function<bool()> &runProcess, const std::function<bool(bool becameReady)> &afterRun);

}  // namespace wsgw
