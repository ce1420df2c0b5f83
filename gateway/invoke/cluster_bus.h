// What the host API and the management API ask of the cluster when a connection is not on this node, and
// how local group changes reach the other nodes. Implemented by ClusterNode (cluster_node.h) over Redis;
// absent (null) on a single node. Every call may wait on Redis, so none is made on the network thread
// except groupsEmptied, which only queues.
#pragma once

#include "webpubsub_protocol.h"

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace wsgw {

// What a Web PubSub send is, beyond its bytes, so that the node receiving it renders it for its clients
// exactly as the sending node renders it for its own: the data type (json/text/binary) and, for a client's
// sendToGroup, that it is "from":"group" with the publisher's user ID.
struct WpsRendering {
    WpsDataType dataType = WpsDataType::Text;
    bool fromGroup = false;   // a client's sendToGroup; else a message from the server
    std::string fromUserId;   // only with fromGroup ("" = the publisher has none)
    bool operator==(const WpsRendering &) const = default;
};

class ClusterBus {
public:
    virtual ~ClusterBus() = default;
    // For a connection that is not on this node: WSGW_OK, WSGW_GONE (no such connection anywhere, or its
    // node is dead) or WSGW_ERROR (its node did not answer in time, or Redis is unreachable).
    // `wps` (may be null): how a Web PubSub send renders on the receiving node; null renders as a push does.
    virtual int postRemote(const std::string &connectionId, std::string_view data, bool binary, const WpsRendering *wps) = 0;
    virtual int deleteRemote(const std::string &connectionId) = 0;
    // A Web PubSub close (REST): the owner tells a subprotocol client `disconnected` with `reason` and closes
    // with it, as this node does for its own (an owner on an older wsgw closes without the reason).
    virtual int wpsCloseRemote(const std::string &connectionId, const std::string &reason) = 0;
    virtual bool describeRemote(const std::string &connectionId, std::string &json) = 0;
    virtual int joinRemote(const std::string &group, const std::string &connectionId) = 0;
    virtual int leaveRemote(const std::string &group, const std::string &connectionId) = 0;
    // Sends to the members of `group` (all connections when "") on every other node, but not to `excluded`
    // (REST `excluded`; IDs of this node's connections need not be listed). False when Redis could not take
    // it: the other nodes' members did not get it.
    virtual bool publishDeliver(const std::string &group, std::string_view data, bool binary, const WpsRendering *wps,
                                const std::vector<std::string> &excluded) = 0;
    // Closes every connection of every other node but `excluded`, as a Web PubSub close with `reason`
    // (REST closeAllConnections).
    virtual void publishCloseAll(const std::vector<std::string> &excluded, const std::string &reason) = 0;
    // A local connection joined or left a group: mirror it in Redis and, for a group's first (last) local
    // member, start (stop) listening to it. Returns false when Redis could not be told.
    virtual bool memberJoined(const std::string &group, const std::string &connectionId, bool firstLocal) = 0;
    virtual void memberLeft(const std::string &group, const std::string &connectionId, bool lastLocal) = 0;
    virtual void groupsEmptied(std::vector<std::string> groups) = 0;  // closed connections' groups; queues only
    // Cluster-wide members of a group; false when Redis is unreachable.
    virtual bool groupMembers(const std::string &group, std::vector<std::string> &out) = 0;
    // Runs `task` on one of the cluster's executor threads (for the network thread's management requests).
    virtual void runBlocking(std::function<void()> task) = 0;
};

}  // namespace wsgw
