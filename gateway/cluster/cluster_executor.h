// A few threads for work that waits on Redis on behalf of threads that must not: the network thread (the
// host API's remote calls, runBlocking) and the subscriber thread (joins and leaves that wait for their own
// group subscription). Destruction runs what is queued, then joins.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace wsgw::cluster {

class BlockingExecutor {
public:
    explicit BlockingExecutor(size_t threads) {
        for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
    }
    ~BlockingExecutor() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        cv_.notify_all();
        for (auto &t : threads_) t.join();
    }
    BlockingExecutor(const BlockingExecutor &) = delete;
    BlockingExecutor &operator=(const BlockingExecutor &) = delete;

    void post(std::function<void()> task) {
        {
            std::lock_guard lock(mutex_);
            tasks_.push_back(std::move(task));
        }
        cv_.notify_one();
    }

private:
    void run() {
        std::unique_lock lock(mutex_);
        for (;;) {
            cv_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
            if (tasks_.empty()) return;  // stopping, and everything queued has run
            auto task = std::move(tasks_.front());
            tasks_.pop_front();
            lock.unlock();
            task();
            lock.lock();
        }
    }
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> tasks_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace wsgw::cluster
