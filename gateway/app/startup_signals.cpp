// Owns: SIGTERM and SIGINT during the start-up (startup_signals.h): a flag and a pipe a wait can poll.
#include "startup_signals.h"

#include <atomic>
#include <cerrno>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

namespace wsgw {

namespace {

constexpr int kSignals[2] = {SIGTERM, SIGINT};

std::atomic<int> g_stopSignal{0};
int g_wakePipe[2] = {-1, -1};
struct sigaction g_chained[2]{};  // the handlers found when ours went in: a real one is called after ours

void onStopSignal(int sig, siginfo_t *info, void *context) {
    int savedErrno = errno;
    int expected = 0;
    g_stopSignal.compare_exchange_strong(expected, sig);
    if (g_wakePipe[1] >= 0) {
        char byte = 1;
        (void)!::write(g_wakePipe[1], &byte, 1);
    }
    for (int i = 0; i < 2; ++i) {
        if (kSignals[i] != sig) continue;
        const struct sigaction &next = g_chained[i];
        if (next.sa_flags & SA_SIGINFO) {
            if (next.sa_sigaction) next.sa_sigaction(sig, info, context);
        } else if (next.sa_handler != SIG_DFL && next.sa_handler != SIG_IGN) {
            next.sa_handler(sig);
        }
    }
    errno = savedErrno;
}

}  // namespace

StartupSignals::StartupSignals() {
    g_stopSignal.store(0);
    if (g_wakePipe[0] < 0 && ::pipe2(g_wakePipe, O_CLOEXEC | O_NONBLOCK) != 0) g_wakePipe[0] = g_wakePipe[1] = -1;
    install();
    for (int i = 0; i < 2; ++i) previous_[i] = g_chained[i];
}

StartupSignals::~StartupSignals() { restore(); }

// Ours in front of whatever is there now; that one is called after ours.
void StartupSignals::install() {
    struct sigaction ours{};
    ours.sa_sigaction = onStopSignal;
    ours.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&ours.sa_mask);
    for (int i = 0; i < 2; ++i) {
        struct sigaction found{};
        sigaction(kSignals[i], nullptr, &found);
        if (found.sa_flags & SA_SIGINFO && found.sa_sigaction == onStopSignal) continue;
        // Blocked while the chain is replaced, so the handler never reads a half-written one.
        sigset_t block, old;
        sigemptyset(&block);
        sigaddset(&block, kSignals[i]);
        pthread_sigmask(SIG_BLOCK, &block, &old);
        g_chained[i] = found;
        sigaction(kSignals[i], &ours, nullptr);
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
    }
}

void StartupSignals::takeOverAgain() {
    install();
    for (int i = 0; i < 2; ++i) previous_[i] = g_chained[i];
}

// The handlers found last (the network loops', or the defaults when the start ended before them).
void StartupSignals::restore() {
    for (int i = 0; i < 2; ++i) sigaction(kSignals[i], &previous_[i], nullptr);
}

int StartupSignals::stopSignal() { return g_stopSignal.load(); }

bool StartupSignals::waitFor(std::chrono::milliseconds d) {
    using Clock = std::chrono::steady_clock;
    const Clock::time_point until = Clock::now() + d;
    while (!stopped()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
        if (left <= 0) return false;
        pollfd p{g_wakePipe[0], POLLIN, 0};
        if (g_wakePipe[0] < 0) p.fd = -1;
        ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 100)));
        char drain[16];
        if (g_wakePipe[0] >= 0)
            while (::read(g_wakePipe[0], drain, sizeof drain) > 0) {}
    }
    return true;
}

}  // namespace wsgw
