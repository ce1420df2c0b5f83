// The subscriber thread: its own libev loop with two async Redis connections, one subscribed to the
// channels this node hears (its inbox, everyone's, and each group with a local member) and one that
// publishes without blocking the loop (the acks this node answers with). Owns which channels are
// subscribed and confirmed, the waiters for a confirmation, and reconnecting both after Redis goes away
// (resubscribing to what is wanted then). Other threads hand it changes through a mutex and an ev_async.
#pragma once

#include "cluster_node.h"

#include <ev.h>

#include <atomic>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

struct redisAsyncContext;

namespace wsgw::cluster {

class Subscriber {
public:
    // Runs on the subscriber thread for each message on a subscribed channel.
    using MessageHandler = std::function<void(const std::string &channel, std::string_view payload)>;

    Subscriber(const ClusterSettings &settings, HostContext &host) : settings_(settings), host_(host) {}
    ~Subscriber() {
        stop();
        release();
    }
    Subscriber(const Subscriber &) = delete;
    Subscriber &operator=(const Subscriber &) = delete;

    // Creates the loop, connects and starts the thread. "" or what went wrong.
    std::string start(MessageHandler onMessage);
    // Ends the thread and frees the connections. The loop stays allocated (release()), since threads that
    // publish may still wake it until they are gone.
    void stop();
    void release();
    bool running() const { return loop_ != nullptr; }
    bool subscribed() const { return subscribed_.load(); }

    // Subscribes and waits (bounded by the request timeout) for Redis to confirm. true when confirmed.
    bool subscribeAndWait(const std::string &channel);
    // Unsubscribes, unless the channel is a group's that has a local member again by then.
    void unsubscribe(const std::string &channel);
    // PUBLISH on the loop's own connection; dropped when it is down (whoever waits for it times out).
    void publish(std::string channel, std::string payload);

private:
    static void onSubReply(redisAsyncContext *ac, void *reply, void *);
    static void onConnected(const redisAsyncContext *ac, int status);
    static void onDisconnected(const redisAsyncContext *ac, int);
    static void onReconnectTimer(struct ev_loop *, ev_timer *w, int);
    static void onWake(struct ev_loop *l, ev_async *w, int);

    void confirm(const std::string &channel);
    std::vector<std::string> wantedChannels() const;
    bool staleUnsubscribe(const std::string &channel) const;
    void sendSubscribe(const std::vector<std::string> &channels, bool subscribe);
    redisAsyncContext *openAsync();
    void connectAsync();

    const ClusterSettings &settings_;
    HostContext &host_;
    MessageHandler onMessage_;

    struct ev_loop *loop_ = nullptr;
    std::thread thread_;
    ev_async wake_{};
    ev_timer reconnectTimer_{};
    redisAsyncContext *sub_ = nullptr;  // subscribed
    redisAsyncContext *pub_ = nullptr;  // publishes acks without blocking the loop
    std::atomic<bool> loopStopping_{false};
    std::atomic<bool> subscribed_{false};

    std::mutex mutex_;  // guards the fields below, shared with other threads
    struct ChannelChange {
        bool subscribe;
        std::string channel;
    };
    std::vector<ChannelChange> changes_;
    std::vector<std::string> pendingPublishes_;  // channel, message, channel, message...
    std::set<std::string> confirmed_;           // channels Redis has confirmed
    std::unordered_map<std::string, std::vector<std::shared_ptr<std::promise<bool>>>> waiters_;
};

}  // namespace wsgw::cluster
