// Owns: the application log's writer thread and its bounded queue (background_log.h).
#include "background_log.h"

#include "line_output.h"

#include <cstring>
#include <pthread.h>
#include <unistd.h>

namespace wsgw {

namespace {

std::mutex g_startMutex;
std::atomic<BackgroundLog *> g_instance{nullptr};  // never deleted: threads may log until the process ends

// How long the writer may still spend on its last batch after stop()'s wait, before it is left behind.
constexpr auto kLeaveBehindAfter = std::chrono::milliseconds(500);

}  // namespace

void BackgroundLog::start() {
    std::lock_guard lock(g_startMutex);
    if (g_instance.load()) return;
    auto *b = new BackgroundLog();
    b->thread_ = std::thread([b] {
        pthread_setname_np(pthread_self(), "wsgw-log");
        b->run();
    });
    g_instance.store(b);
    log::setSink(b);
}

void BackgroundLog::take(std::string &&line) {
    bool wasEmpty;
    {
        std::lock_guard lock(mutex_);
        if (stopping_ || queued_.size() + line.size() > kMaxQueuedBytes) {
            dropped_.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        // Nothing waits before it and stdout takes it now: written at once, by this thread, so that a line
        // is out before what follows it happens (as without the writer thread), as long as stdout is read.
        if (queued_.empty() && !writing_ && writeLinesIfReady(STDOUT_FILENO, line)) return;
        wasEmpty = queued_.empty();
        queued_ += line;
        ++queuedLines_;
    }
    if (wasEmpty) wake_.notify_one();  // otherwise the writer is busy with the lines before and comes back for these
}

void BackgroundLog::run() {
    std::string batch;
    auto giveUp = [this] {
        std::lock_guard lock(mutex_);
        return std::chrono::steady_clock::now() >= giveUpAt_;
    };
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [this] { return stopping_ || !queued_.empty(); });
        if (queued_.empty()) break;  // stopping, and everything is out
        batch.swap(queued_);
        queued_.clear();
        uint64_t upTo = queuedLines_;
        writing_ = true;
        lock.unlock();
        LineOutcome outcome = writeLines(STDOUT_FILENO, batch, giveUp);
        batch.clear();
        if (outcome.linesLost) dropped_.fetch_add(outcome.linesLost, std::memory_order_relaxed);
        uint64_t dropped = dropped_.load(std::memory_order_relaxed);
        if (!outcome.linesLost && dropped > reported_) reportDropped(dropped);  // stdout takes lines again: say what was lost
        lock.lock();
        writing_ = false;
        writtenLines_ = upTo;
        written_.notify_all();
    }
    finished_ = true;
    written_.notify_all();
}

// Written directly, not queued: the queue may be full again already, and this line must not be the one dropped.
void BackgroundLog::reportDropped(uint64_t dropped) {
    std::string line = log::formatLine(
        log::Level::Warn, "log lines were dropped: stdout did not take them (its reader stopped reading, or it failed)",
        {log::Field("dropped", dropped - reported_), log::Field("droppedTotal", dropped),
         log::Field("queueLimitBytes", static_cast<uint64_t>(kMaxQueuedBytes))});
    reported_ = dropped;
    writeLines(STDOUT_FILENO, line, [this] {
        std::lock_guard lock(mutex_);
        return std::chrono::steady_clock::now() >= giveUpAt_;
    });
}

bool BackgroundLog::waitWritten(std::unique_lock<std::mutex> &lock, std::chrono::steady_clock::time_point until) {
    uint64_t target = queuedLines_;
    return written_.wait_until(lock, until, [&] { return writtenLines_ >= target || finished_; });
}

void BackgroundLog::flushFor(std::chrono::milliseconds wait) {
    BackgroundLog *b = g_instance.load();
    if (!b) return;
    std::unique_lock lock(b->mutex_);
    b->waitWritten(lock, std::chrono::steady_clock::now() + wait);
}

void BackgroundLog::stop(std::chrono::milliseconds wait) {
    BackgroundLog *b = g_instance.load();
    if (!b) return;
    auto until = std::chrono::steady_clock::now() + wait;
    std::unique_lock lock(b->mutex_);
    if (b->stopping_) return;
    b->waitWritten(lock, until);
    b->stopping_ = true;
    b->giveUpAt_ = until;
    b->wake_.notify_one();
    // The writer gives up within a poll slice of `until`; a write(2) that blocks even so (the descriptor said
    // it would take bytes) is left behind: the process is ending, and the object is never destroyed.
    bool finished = b->written_.wait_until(lock, until + kLeaveBehindAfter, [b] { return b->finished_; });
    lock.unlock();
    if (finished) b->thread_.join();
    else b->thread_.detach();
}

uint64_t BackgroundLog::droppedLines() {
    BackgroundLog *b = g_instance.load();
    return b ? b->dropped_.load(std::memory_order_relaxed) : 0;
}

}  // namespace wsgw
