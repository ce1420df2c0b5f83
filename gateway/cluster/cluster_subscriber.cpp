#include "cluster_subscriber.h"

#include "log.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libev.h>

#include <cstring>

namespace wsgw::cluster {

std::string Subscriber::start(MessageHandler onMessage) {
    onMessage_ = std::move(onMessage);
    loop_ = ev_loop_new(EVFLAG_AUTO);
    if (!loop_) return "cluster: cannot create an event loop";
    ev_async_init(&wake_, onWake);
    wake_.data = this;
    ev_async_start(loop_, &wake_);
    ev_init(&reconnectTimer_, onReconnectTimer);
    reconnectTimer_.repeat = 0.5;
    reconnectTimer_.data = this;
    connectAsync();
    thread_ = std::thread([this] { ev_run(loop_, 0); });
    return {};
}

void Subscriber::stop() {
    if (!thread_.joinable()) return;
    loopStopping_ = true;
    ev_async_send(loop_, &wake_);
    thread_.join();
    if (sub_) redisAsyncFree(sub_);
    if (pub_) redisAsyncFree(pub_);
    sub_ = pub_ = nullptr;
}

void Subscriber::release() {
    if (!loop_) return;
    ev_loop_destroy(loop_);
    loop_ = nullptr;
}

bool Subscriber::subscribeAndWait(const std::string &channel) {
    auto waiter = std::make_shared<std::promise<bool>>();
    auto done = waiter->get_future();
    {
        std::lock_guard lock(mutex_);
        if (confirmed_.count(channel)) return true;
        waiters_[channel].push_back(waiter);
        changes_.push_back({true, channel});
    }
    ev_async_send(loop_, &wake_);
    if (done.wait_for(std::chrono::milliseconds(settings_.requestTimeoutMs)) == std::future_status::ready) return true;
    log::warn("cluster: subscription not confirmed in time", {log::Field("channel", channel)});
    return false;
}

void Subscriber::unsubscribe(const std::string &channel) {
    {
        std::lock_guard lock(mutex_);
        changes_.push_back({false, channel});
    }
    ev_async_send(loop_, &wake_);
}

void Subscriber::publish(std::string channel, std::string payload) {
    {
        std::lock_guard lock(mutex_);
        pendingPublishes_.push_back(std::move(channel));
        pendingPublishes_.push_back(std::move(payload));
    }
    ev_async_send(loop_, &wake_);
}

// ---- on the subscriber thread ----------------------------------------------------------------------------

void Subscriber::onSubReply(redisAsyncContext *ac, void *reply, void *) {
    auto *self = static_cast<Subscriber *>(ac->data);
    auto *r = static_cast<redisReply *>(reply);
    if (!self || !r || replyElements(r) < 3) return;
    std::string kind = replyString(replyElement(r, 0));
    std::string channel = replyString(replyElement(r, 1));
    if (kind == "message") {
        const redisReply *p = replyElement(r, 2);
        self->onMessage_(channel, std::string_view(p->str ? p->str : "", p->len));
    } else if (kind == "subscribe") {
        self->confirm(channel);
    } else if (kind == "unsubscribe") {
        std::lock_guard lock(self->mutex_);
        self->confirmed_.erase(channel);
    }
}

void Subscriber::confirm(const std::string &channel) {
    std::vector<std::shared_ptr<std::promise<bool>>> waiters;
    {
        std::lock_guard lock(mutex_);
        confirmed_.insert(channel);
        auto it = waiters_.find(channel);
        if (it != waiters_.end()) {
            waiters = std::move(it->second);
            waiters_.erase(it);
        }
    }
    for (auto &w : waiters) w->set_value(true);
}

// The channels this node must hear: its inbox, everyone's, and each group with a local member.
std::vector<std::string> Subscriber::wantedChannels() const {
    const RedisKeys &keys = settings_.keys;
    std::vector<std::string> out{keys.inboxChannel(settings_.nodeId), keys.everyoneChannel()};
    for (const auto &g : host_.groups.groups()) out.push_back(keys.groupChannel(g));
    return out;
}

// An unsubscribe queued when a group emptied is stale if a member has joined since.
bool Subscriber::staleUnsubscribe(const std::string &channel) const {
    std::string groupChannelPrefix = settings_.keys.groupChannel("");
    return channel.rfind(groupChannelPrefix, 0) == 0 && !host_.groups.members(channel.substr(groupChannelPrefix.size())).empty();
}

void Subscriber::sendSubscribe(const std::vector<std::string> &channels, bool subscribe) {
    if (!sub_ || channels.empty()) return;
    std::vector<const char *> argv{subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE"};
    std::vector<size_t> lens{std::strlen(argv[0])};
    for (const auto &c : channels) {
        argv.push_back(c.c_str());
        lens.push_back(c.size());
    }
    redisAsyncCommandArgv(sub_, subscribe ? onSubReply : nullptr, nullptr, static_cast<int>(argv.size()), argv.data(), lens.data());
}

void Subscriber::onConnected(const redisAsyncContext *ac, int status) {
    auto *self = static_cast<Subscriber *>(ac->data);
    if (!self) return;
    if (status != REDIS_OK) {
        // hiredis frees a context whose connect failed without calling the disconnect callback.
        if (ac == self->sub_) self->sub_ = nullptr;
        if (ac == self->pub_) self->pub_ = nullptr;
        if (!self->loopStopping_) ev_timer_again(self->loop_, &self->reconnectTimer_);
        return;
    }
    if (ac != self->sub_) return;
    std::vector<std::string> wanted = self->wantedChannels();
    self->sendSubscribe(wanted, true);
    if (!self->subscribed_.exchange(true)) log::info("cluster: subscribed", {log::Field("channels", static_cast<uint64_t>(wanted.size()))});
}

void Subscriber::onDisconnected(const redisAsyncContext *ac, int) {
    auto *self = static_cast<Subscriber *>(ac->data);
    if (!self) return;
    if (ac == self->sub_) {
        self->sub_ = nullptr;
        if (self->subscribed_.exchange(false)) log::warn("cluster: lost the subscription; reconnecting", {});
        std::lock_guard lock(self->mutex_);
        self->confirmed_.clear();
    }
    if (ac == self->pub_) self->pub_ = nullptr;
    if (!self->loopStopping_) ev_timer_again(self->loop_, &self->reconnectTimer_);
}

redisAsyncContext *Subscriber::openAsync() {
    redisAsyncContext *ac = redisAsyncConnect(settings_.address.host.c_str(), settings_.address.port);
    if (!ac) return nullptr;
    if (ac->err) {
        redisAsyncFree(ac);
        return nullptr;
    }
    ac->data = this;
    redisLibevAttach(loop_, ac);
    redisAsyncSetConnectCallback(ac, onConnected);
    redisAsyncSetDisconnectCallback(ac, onDisconnected);
    return ac;
}

void Subscriber::connectAsync() {
    if (!sub_) sub_ = openAsync();
    if (!pub_) pub_ = openAsync();
    if (!sub_ || !pub_) ev_timer_again(loop_, &reconnectTimer_);
}

void Subscriber::onReconnectTimer(struct ev_loop *, ev_timer *w, int) {
    auto *self = static_cast<Subscriber *>(w->data);
    ev_timer_stop(self->loop_, w);
    if (!self->loopStopping_) self->connectAsync();
}

void Subscriber::onWake(struct ev_loop *l, ev_async *w, int) {
    auto *self = static_cast<Subscriber *>(w->data);
    std::vector<ChannelChange> changes;
    std::vector<std::string> out;
    {
        std::lock_guard lock(self->mutex_);
        changes.swap(self->changes_);
        out.swap(self->pendingPublishes_);
    }
    if (self->loopStopping_) {
        // Only a connected context is disconnected here (its queued publishes are written first). hiredis
        // 0.14 frees a context whose connect is still under way without calling back, which would leave
        // sub_ or pub_ dangling for stop() to free again: a SIGTERM just after Redis went away (a reconnect
        // in flight) crashed the gateway. stop() frees what is left once the loop is gone.
        for (redisAsyncContext *ac : {self->sub_, self->pub_})
            if (ac && (ac->c.flags & REDIS_CONNECTED)) redisAsyncDisconnect(ac);
        ev_timer_stop(l, &self->reconnectTimer_);
        ev_async_stop(l, w);
        ev_break(l, EVBREAK_ALL);  // what is still connected is freed by stop() once the loop is gone
        return;
    }
    for (auto &c : changes) {
        if (!c.subscribe && self->staleUnsubscribe(c.channel)) continue;
        self->sendSubscribe({c.channel}, c.subscribe);
    }
    for (size_t i = 0; i + 1 < out.size(); i += 2) {
        if (!self->pub_) break;  // the asker times out; nothing else is waiting on it
        const char *argv[] = {"PUBLISH", out[i].c_str(), out[i + 1].data()};
        size_t lens[] = {7, out[i].size(), out[i + 1].size()};
        redisAsyncCommandArgv(self->pub_, nullptr, nullptr, 3, argv, lens);
    }
}

}  // namespace wsgw::cluster
