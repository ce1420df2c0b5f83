// ClusterNode (cluster_node.h) puts the pieces together: the heartbeat and node ID claim
// (cluster_heartbeat.h), the reaper (cluster_reaper.h), the subscriber thread (cluster_subscriber.h), the
// calls this node makes to others and the inbox that answers theirs (cluster_remote_calls.h,
// cluster_inbox.h). What stays here is the ClusterBus itself: the remote half of pushes, closes and group
// changes, and the publishing of group sends and of group memberships, over one pool of Redis connections.
#include "cluster_node.h"

#include "cluster_executor.h"
#include "cluster_heartbeat.h"
#include "cluster_inbox.h"
#include "cluster_reaper.h"
#include "cluster_rejoin.h"
#include "cluster_remote_calls.h"
#include "cluster_subscriber.h"
#include "cluster_wire.h"
#include "event.h"
#include "log.h"

namespace wsgw {

using cluster::BusMessage;
using cluster::Op;

// Declared in the order of their dependencies; stop() ends the threads in the order that keeps them valid.
struct ClusterNode::Impl {
    ClusterSettings settings;
    HostContext &host;
    RedisStore &store;
    RedisPool pool;
    cluster::RemoteCalls calls{settings, pool};
    cluster::Reaper reaper{settings, store};
    cluster::Rejoin rejoin{settings, host, store, pool};
    cluster::Heartbeat heartbeat{settings, store, rejoin, reaper};
    std::unique_ptr<cluster::Inbox> inbox;  // from start(); outlives the subscriber thread and the executor
    cluster::Subscriber subscriber{settings, host};
    std::unique_ptr<cluster::BlockingExecutor> executor;

    Impl(ClusterSettings s, HostContext &h, RedisStore &st)
        : settings(std::move(s)), host(h), store(st), pool(settings.address, 16) {}

    const RedisKeys &keys() const { return settings.keys; }
    const std::string &me() const { return settings.nodeId; }
};

ClusterNode::ClusterNode(ClusterSettings settings, HostContext &host, RedisStore &store)
    : impl_(std::make_unique<Impl>(std::move(settings), host, store)) {}

ClusterNode::~ClusterNode() { stop(); }

std::string ClusterNode::claimNodeId() { return impl_->heartbeat.claimNodeId(); }

std::string ClusterNode::start(DisconnectRunner runDisconnect) {
    Impl &m = *impl_;
    m.reaper.setDisconnectRunner(std::move(runDisconnect));
    m.executor = std::make_unique<cluster::BlockingExecutor>(8);
    m.inbox = std::make_unique<cluster::Inbox>(m.settings, m.host, m.subscriber, m.calls, *m.executor);
    std::string error = m.subscriber.start([&m](const std::string &channel, std::string_view payload) { m.inbox->dispatch(channel, payload); });
    if (!error.empty()) return error;
    // Serve only once other nodes can reach us: wait (bounded) for the inbox subscription.
    if (!m.subscriber.subscribeAndWait(m.keys().inboxChannel(m.me())))
        return "cluster: could not subscribe to this node's inbox on " + m.settings.address.text;
    m.heartbeat.start();
    return {};
}

void ClusterNode::stopReaping() { impl_->reaper.stop(); }

void ClusterNode::stop(bool rowsRemain) {
    Impl &m = *impl_;
    m.heartbeat.stop(rowsRemain);
    // The subscriber first (it hands joins to the executor), then the executor (its tasks may still queue
    // acks on the loop, which stays allocated until both are gone).
    m.subscriber.stop();
    m.executor.reset();
    m.subscriber.release();
}

std::vector<std::string> ClusterNode::problems() const {
    std::vector<std::string> out;
    if (!impl_->heartbeat.redisHealthy()) out.push_back("the cluster's Redis (" + impl_->settings.address.text + ") is unreachable");
    if (!impl_->subscriber.subscribed()) out.push_back("not subscribed to the cluster's channels (Redis pub/sub is reconnecting)");
    return out;
}

int ClusterNode::postRemote(const std::string &id, std::string_view data, bool binary, const WpsRendering *wps) {
    BusMessage m;
    m.op = Op::Post;
    m.binary = binary;
    if (wps && !cluster::plainFormRendersAlike(*wps)) m.wps = *wps;  // else the plain form, which every node reads
    m.data.assign(data.data(), data.size());
    return impl_->calls.toOwner(id, std::move(m));
}

int ClusterNode::deleteRemote(const std::string &id) {
    BusMessage m;
    m.op = Op::Delete;
    return impl_->calls.toOwner(id, std::move(m));
}

int ClusterNode::wpsCloseRemote(const std::string &id, const std::string &reason) {
    BusMessage m;
    m.op = Op::Delete;
    m.wpsClose = true;  // an older owner reads a plain Delete and closes without the reason
    m.data = reason;
    return impl_->calls.toOwner(id, std::move(m));
}

bool ClusterNode::describeRemote(const std::string &id, std::string &json) {
    RedisReply r = impl_->pool.command({"HGETALL", impl_->keys().connection(id)});
    auto row = rowFromHash(id, r.get());
    if (!row || row->nodeId == impl_->me() || !impl_->calls.nodeAlive(row->nodeId)) return false;
    ConnectionInfo info;
    info.connectionId = id;
    info.connectedAtMs = row->connectedAtMs;
    info.sourceIp = row->sourceIp;
    info.userAgent = row->userAgent;
    json = connectionDescriptionJson(info, row->lastActiveAtMs);
    return true;
}

int ClusterNode::joinRemote(const std::string &group, const std::string &id) {
    BusMessage m;
    m.op = Op::Join;
    m.group = group;
    return impl_->calls.toOwner(id, std::move(m));
}

int ClusterNode::leaveRemote(const std::string &group, const std::string &id) {
    BusMessage m;
    m.op = Op::Leave;
    m.group = group;
    return impl_->calls.toOwner(id, std::move(m));
}

bool ClusterNode::publishDeliver(const std::string &group, std::string_view data, bool binary, const WpsRendering *wps,
                                 const std::vector<std::string> &excluded) {
    BusMessage m;
    m.op = Op::Deliver;
    m.origin = impl_->me();
    m.group = group;
    m.binary = binary;
    if (wps && !cluster::plainFormRendersAlike(*wps)) m.wps = *wps;  // else the plain form, which every node reads
    m.excluded = excluded;  // none: no 'x' part, which older nodes could not read
    m.data.assign(data.data(), data.size());
    std::string channel = group.empty() ? impl_->keys().everyoneChannel() : impl_->keys().groupChannel(group);
    std::string error;
    RedisReply r = impl_->pool.command({"PUBLISH", channel, cluster::encode(m)}, &error);
    if (r && !replyIsError(r.get())) return true;
    log::warn("cluster: a group send reached this node only", {log::Field("group", group), log::Field("error", r ? replyString(r.get()) : error)});
    return false;
}

void ClusterNode::publishCloseAll(const std::vector<std::string> &excluded, const std::string &reason) {
    BusMessage m;
    m.op = Op::CloseAll;
    m.origin = impl_->me();
    m.excluded = excluded;
    m.data = reason;
    std::string error;
    RedisReply r = impl_->pool.command({"PUBLISH", impl_->keys().everyoneChannel(), cluster::encode(m)}, &error);
    if (!r || replyIsError(r.get()))
        log::warn("cluster: closing all connections reached this node only", {log::Field("error", r ? replyString(r.get()) : error)});
}

bool ClusterNode::memberJoined(const std::string &group, const std::string &id, bool firstLocal) {
    auto r = impl_->pool.pipeline({{"SADD", impl_->keys().group(group), id}, {"SADD", impl_->keys().connectionGroups(id), group}});
    if (r.empty()) return false;
    return !firstLocal || impl_->subscriber.subscribeAndWait(impl_->keys().groupChannel(group));
}

void ClusterNode::memberLeft(const std::string &group, const std::string &id, bool lastLocal) {
    impl_->pool.pipeline({{"SREM", impl_->keys().group(group), id}, {"SREM", impl_->keys().connectionGroups(id), group}});
    if (lastLocal) impl_->subscriber.unsubscribe(impl_->keys().groupChannel(group));
}

void ClusterNode::groupsEmptied(std::vector<std::string> groups) {
    if (!impl_->subscriber.running()) return;
    for (const auto &g : groups) impl_->subscriber.unsubscribe(impl_->keys().groupChannel(g));
}

bool ClusterNode::groupMembers(const std::string &group, std::vector<std::string> &out) {
    RedisReply r = impl_->pool.command({"SMEMBERS", impl_->keys().group(group)});
    if (!r || replyIsError(r.get())) return false;
    for (size_t i = 0; i < replyElements(r.get()); ++i) out.push_back(replyString(replyElement(r.get(), i)));
    return true;
}

void ClusterNode::runBlocking(std::function<void()> task) {
    if (impl_->executor) impl_->executor->post(std::move(task));
    else task();
}

}  // namespace wsgw
