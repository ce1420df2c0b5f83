// Owns: the name lookups of proxy backends, off the network threads. libwebsockets 4.1.6 (Debian's) has no
// asynchronous DNS: given a host name it calls getaddrinfo inside lws_client_connect_via_info, on the network
// thread, and a DNS server that does not answer then freezes every connection of that thread for the
// resolver's whole timeout. Here a fixed pair of threads does the lookups instead; the network thread hands
// libwebsockets the numeric address it got back.
//
// Bounded: lookups of the same host while one is queued or running share it (a proxy has one backend host:
// a thousand clients connecting through a hung DNS make one lookup, not a thousand); at most kMaxHosts
// distinct hosts wait for a thread and kMaxWaiters requests wait in all. Past either bound resolve() says no
// at once, and the caller fails that connection instead of queueing it. A lookup cannot be interrupted: its
// thread stays in getaddrinfo until the system resolver gives up, so the caller keeps its own deadline and
// cancels its request (Ticket) when it stops waiting.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace wsgw {

class HostResolver {
public:
    struct Answer {
        // Numeric (IPv4 or IPv6, without brackets), in the order the system prefers (RFC 6724, gai.conf),
        // each once, when the lookup succeeded: a connection tries them in turn, as libwebsockets did.
        std::vector<std::string> addresses;
        std::string error;    // otherwise why not ("Name or service not known")
    };
    using Lookup = std::function<Answer(const std::string &host)>;
    using Done = std::function<void(Answer)>;  // called on a resolver thread, outside its lock

    struct Limits {
        int threads = 2;
        size_t maxHosts = 64;      // distinct hosts queued or being looked up
        size_t maxWaiters = 4096;  // requests waiting, over all hosts
    };

    // A request in flight; destroying (or reset()) cancels it: its Done is not called after that, except once
    // if the lookup was answering that very moment (Done runs outside the resolver's lock). So a Done must not
    // capture what the ticket's owner frees: the proxy's posts a command by connection ID.
    class Ticket {
    public:
        Ticket() = default;
        Ticket(Ticket &&other) noexcept : owner_(other.owner_), id_(other.id_) { other.owner_ = nullptr; }
        Ticket &operator=(Ticket &&other) noexcept;
        Ticket(const Ticket &) = delete;
        Ticket &operator=(const Ticket &) = delete;
        ~Ticket() { reset(); }
        void reset();
        explicit operator bool() const { return owner_ != nullptr; }

    private:
        friend class HostResolver;
        Ticket(HostResolver *owner, uint64_t id) : owner_(owner), id_(id) {}
        HostResolver *owner_ = nullptr;
        uint64_t id_ = 0;
    };

    HostResolver();  // the default Limits, getaddrinfo
    HostResolver(Limits limits, Lookup lookup);
    ~HostResolver();  // waits for the threads (the shared instance is never destroyed)
    HostResolver(const HostResolver &) = delete;
    HostResolver &operator=(const HostResolver &) = delete;

    // The process's resolver, its threads started by the first lookup.
    static HostResolver &shared();
    // Whether connecting to `host` needs a lookup: not for a numeric IPv4 or IPv6 address, nor for
    // "localhost" (the system resolver answers that from /etc/hosts, without a DNS server).
    static bool needsLookup(std::string_view host);
    // getaddrinfo (as libwebsockets asks it: any family, stream sockets), every address as text.
    static Answer systemLookup(const std::string &host);

    // Looks `host` up and calls `done` with the answer. An empty Ticket when at a bound (done is not called).
    Ticket resolve(const std::string &host, Done done);

    struct Counts {
        size_t hosts = 0, waiters = 0, running = 0;
    };
    Counts counts();  // for tests and diagnosis

private:
    struct Waiter {
        uint64_t id;
        Done done;
    };
    struct Pending {
        std::vector<Waiter> waiters;
        bool running = false;
    };
    void cancel(uint64_t id);
    void runLookups();
    bool startThreadsLocked();  // false: not one lookup thread could be started

    const Limits limits_;
    const Lookup lookup_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::map<std::string, Pending> byHost_;           // queued or running
    std::deque<std::string> queue_;                   // hosts not yet taken by a thread, oldest first
    std::unordered_map<uint64_t, std::string> hostOf_;  // a waiting request's host
    size_t waiters_ = 0;
    uint64_t nextId_ = 1;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace wsgw
