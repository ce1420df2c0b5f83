// Owns: SIGTERM and SIGINT while the gateway starts, before its network loops serve them. A start that
// waits (another process's lock on the database, a connection table that cannot be read after an unclean
// stop) must still stop when asked: the signal is recorded here, the waits of the start-up ask stopped()
// or sleep in waitFor(), which a signal cuts short, and the start ends without touching what it has not
// claimed. Once the network threads have installed their own handlers, takeOverAgain() puts this one in
// front of theirs, chaining to them, so a signal that comes after the clean-up still starts the drain.
// One instance at a time; the destructor puts back the handlers it found.
#pragma once

#include <chrono>
#include <csignal>

namespace wsgw {

class StartupSignals {
public:
    StartupSignals();
    ~StartupSignals();
    StartupSignals(const StartupSignals &) = delete;
    StartupSignals &operator=(const StartupSignals &) = delete;

    void takeOverAgain();
    // The signal that asked for a stop (SIGTERM or SIGINT), 0 when none came.
    static int stopSignal();
    static bool stopped() { return stopSignal() != 0; }
    // Sleeps `d`, or less when a stop is asked for (then true).
    static bool waitFor(std::chrono::milliseconds d);

private:
    void install();
    void restore();
    struct sigaction previous_[2]{};
};

}  // namespace wsgw
