// Owns: backend name lookups on threads of their own (host_resolver.h).
#include "host_resolver.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <strings.h>
#include <sys/socket.h>

#include <algorithm>
#include <system_error>

namespace wsgw {

HostResolver::Ticket &HostResolver::Ticket::operator=(Ticket &&other) noexcept {
    if (this != &other) {
        reset();
        owner_ = other.owner_;
        id_ = other.id_;
        other.owner_ = nullptr;
    }
    return *this;
}

void HostResolver::Ticket::reset() {
    if (owner_) owner_->cancel(id_);
    owner_ = nullptr;
}

HostResolver::HostResolver() : HostResolver(Limits{}, systemLookup) {}

HostResolver::HostResolver(Limits limits, Lookup lookup) : limits_(limits), lookup_(std::move(lookup)) {}

HostResolver::~HostResolver() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    for (std::thread &t : threads_) t.join();
}

HostResolver &HostResolver::shared() {
    // Never destroyed: a thread may still be inside getaddrinfo when the process exits.
    static HostResolver *resolver = new HostResolver();
    return *resolver;
}

bool HostResolver::needsLookup(std::string_view host) {
    std::string text(host);
    if (strcasecmp(text.c_str(), "localhost") == 0) return false;
    unsigned char buf[sizeof(in6_addr)];
    return inet_pton(AF_INET, text.c_str(), buf) != 1 && inet_pton(AF_INET6, text.c_str(), buf) != 1;
}

HostResolver::Answer HostResolver::systemLookup(const std::string &host) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo *res = nullptr;
    int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
    if (rc != 0) return Answer{{}, rc == EAI_SYSTEM ? "system error" : gai_strerror(rc)};
    Answer answer;
    char text[NI_MAXHOST];
    for (const addrinfo *r = res; r; r = r->ai_next) {
        if (getnameinfo(r->ai_addr, r->ai_addrlen, text, sizeof text, nullptr, 0, NI_NUMERICHOST) != 0) continue;
        if (std::find(answer.addresses.begin(), answer.addresses.end(), text) == answer.addresses.end())
            answer.addresses.emplace_back(text);
    }
    if (answer.addresses.empty()) answer.error = "no usable address";
    freeaddrinfo(res);
    return answer;
}

HostResolver::Ticket HostResolver::resolve(const std::string &host, Done done) {
    std::lock_guard lock(mutex_);
    if (stopping_ || waiters_ >= limits_.maxWaiters) return {};
    auto it = byHost_.find(host);
    if (it == byHost_.end()) {
        if (byHost_.size() >= limits_.maxHosts) return {};
        // No thread to run it (the process is at its thread limit): refused like a lookup past the bounds.
        if (!startThreadsLocked()) return {};
        it = byHost_.emplace(host, Pending()).first;
        queue_.push_back(host);
        wake_.notify_one();
    }
    uint64_t id = nextId_++;
    it->second.waiters.push_back(Waiter{id, std::move(done)});
    hostOf_.emplace(id, host);
    ++waiters_;
    return Ticket(this, id);
}

void HostResolver::cancel(uint64_t id) {
    std::lock_guard lock(mutex_);
    auto h = hostOf_.find(id);
    if (h == hostOf_.end()) return;  // answered already
    auto it = byHost_.find(h->second);
    hostOf_.erase(h);
    if (it == byHost_.end()) return;
    auto &waiters = it->second.waiters;
    waiters.erase(std::remove_if(waiters.begin(), waiters.end(), [id](const Waiter &w) { return w.id == id; }), waiters.end());
    --waiters_;
    // Nobody waits for a lookup not yet started: it is not made (a running one ends on its own).
    if (waiters.empty() && !it->second.running) {
        queue_.erase(std::find(queue_.begin(), queue_.end(), it->first));
        byHost_.erase(it);
    }
}

HostResolver::Counts HostResolver::counts() {
    std::lock_guard lock(mutex_);
    size_t running = 0;
    for (const auto &[host, pending] : byHost_) running += pending.running ? 1 : 0;
    return Counts{byHost_.size(), waiters_, running};
}

bool HostResolver::startThreadsLocked() {
    // Started on first use, and again later if the process could not give them all then.
    while (threads_.size() < static_cast<size_t>(limits_.threads)) {
        try {
            threads_.emplace_back([this] { runLookups(); });
        } catch (const std::system_error &) {  // EAGAIN: RLIMIT_NPROC or the cgroup's pids.max
            break;
        }
        pthread_setname_np(threads_.back().native_handle(), "wsgw-dns");
    }
    return !threads_.empty();
}

void HostResolver::runLookups() {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        std::string host = std::move(queue_.front());
        queue_.pop_front();
        byHost_.at(host).running = true;
        lock.unlock();
        Answer answer = lookup_(host);
        lock.lock();
        auto it = byHost_.find(host);
        std::vector<Waiter> waiters = std::move(it->second.waiters);
        byHost_.erase(it);
        for (const Waiter &w : waiters) hostOf_.erase(w.id);
        waiters_ -= waiters.size();
        lock.unlock();
        for (Waiter &w : waiters) w.done(answer);
        lock.lock();
    }
}

}  // namespace wsgw
