// Azure Web PubSub on this node (docs/webpubsub.md), over the state in webpubsub_registry.h: what the gateway
// does for such clients and for the REST API: frames wrapped in the client protocol (and numbered on the
// reliable one), joinGroup/leaveGroup/sendToGroup/sequenceAck/ping, user IDs, and the data-plane operations. Groups are the GroupRegistry's (an AWS-style handler and an Azure client share them); a user
// is an internal group "~user.<base64url(id)>" that each of the user's connections joins, so sends to a
// user, its existence and its closes reach every node of a cluster the way group sends do.
// Thread-safe: any thread may call; a connection's outbox is numbered and queued under its own mutex so
// that frames enter its send queue in sequence order.
#pragma once

#include "cluster_bus.h"
#include "host_api.h"
#include "webpubsub_config.h"
#include "webpubsub_registry.h"
#include "webpubsub_rest.h"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace wsgw {

// The internal group of a user's connections. User IDs whose encoding would not fit a group name are
// hashed ("~userh.<sha256 hex>"). Reserved: isWpsUserGroup names are refused by the public group calls.
std::string wpsUserGroup(std::string_view userId);
bool isWpsUserGroup(std::string_view group);

// A connection opened by an Azure client: registers its state, joins its user group and the groups of its
// token ("webpubsub.group"), and queues the system "connected" message. Returns WSGW_OK, or the first
// failing group call's code (the connection is then refused by the caller).
int wpsClientOpened(HostContext &ctx, const std::shared_ptr<WpsClientState> &state, const std::vector<std::string> &groups);
// The connection is gone for good (its $disconnect runs): forget its state.
void wpsClientClosed(HostContext &ctx, const std::string &connectionId);

// A message to one Azure client in its protocol: `message` is a whole protocol message; `sequenced` numbers
// it on the reliable subprotocol (data messages are; acks, pongs and system messages are not). False when
// it was not queued (gone, or the reliable outbox is over maxSendQueueBytes: then closed with 1008).
bool wpsSendToClient(HostContext &ctx, WpsClientState &state, std::string message, bool sequenced);

// What a subprotocol client's joinGroup, leaveGroup, sendToGroup, sequenceAck or ping does, with its ack
// (events and invokes go to their route through the invoker instead). May wait on the cluster: call it off
// the network thread when ctx.cluster is set.
// Returns Route for an event or invoke that is not a repeated ackId: the caller invokes its route and
// answers with wpsAnswerEvent.
enum class WpsNext { Done, Route };
WpsNext wpsHandleClientMessage(HostContext &ctx, WpsClientState &state, const WpsClientMessage &msg);
// The end of an event's or invoke's invocation: its ack (success, or InternalServerError with `error`) and,
// for a two-way route, the response body as a message from the server (an invoke: its invokeResponse).
void wpsAnswerEvent(HostContext &ctx, WpsClientState &state, const WpsClientMessage &msg, bool failed,
                    std::string_view error, const std::string *responseBody, bool responseBinary);
// The internal delivery behind group sends and broadcasts on this node (host_api's deliverLocal calls it
// when any Azure client is connected): `send` null for data from the cluster or a handler.
size_t wpsDeliverLocal(HostContext &ctx, const std::string &group, std::string_view raw, bool binary, const struct WpsGroupSend *send);
// A frame that is not a client message: an ack with BadRequest when it named an ackId, else a log line.
void wpsAnswerProtocolError(HostContext &ctx, WpsClientState &state, const WpsProtocolError &error);
// A request over the API's throttle: an ack with TooManyRequests when it named an ackId, else a log line.
void wpsAnswerThrottled(HostContext &ctx, WpsClientState &state, const std::optional<uint64_t> &ackId);

// A data message to a group ("" = everyone), to every node: plain connections get the data as a frame,
// subprotocol clients a message from the group (fromUserId set, a client's publish) or from the server.
// `skip` (noEcho, a connection of this node) is left out here, `excluded` on every node. Returns WSGW_OK,
// WSGW_TOO_LARGE or WSGW_ERROR.
struct WpsGroupSend {
    std::string group;  // "" = every connection
    WpsData data;
    bool fromClient = false;   // a client's sendToGroup: "from":"group" with fromUserId
    std::string fromUserId;
    std::string skipConnection;        // noEcho
    std::vector<std::string> excluded; // REST "excluded"
};
int wpsSendToGroup(HostContext &ctx, const WpsGroupSend &send);
// One connection, by ID (this node or another): a message from the server, or the raw data for a plain one.
int wpsSendToConnection(HostContext &ctx, const std::string &connectionId, const WpsData &data);
// What a node does with a Web PubSub send that another node made in the cluster's Web PubSub form
// (cluster_node.cpp): renders it as the sending node rendered it for its own recipients. wpsPostLocal returns
// WSGW_OK or WSGW_GONE (not a connection of this node, or over its send queue's bound).
int wpsPostLocal(HostContext &ctx, const std::string &connectionId, WpsData data);
size_t wpsDeliverFromCluster(HostContext &ctx, const std::string &group, std::string_view bytes, const WpsRendering &rendering,
                             const std::vector<std::string> &excluded);
// A Web PubSub close of one connection of this node: a subprotocol client is told `disconnected` with the
// reason, then the connection is closed with 1000 and the reason. WSGW_OK, or WSGW_GONE when it is not here.
int wpsCloseLocal(HostContext &ctx, const std::string &connectionId, const std::string &reason);
// Closes every connection of this node but `excluded`, each as wpsCloseLocal does (REST closeAllConnections,
// here and on the other nodes of a cluster).
void wpsCloseAllLocal(HostContext &ctx, const std::vector<std::string> &excluded, const std::string &reason);
// Every connection of a user, on every node (POST /@users/{user}, send_to_user, the REST sendToUser).
int sendToUser(HostContext &ctx, const std::string &userId, const void *data, size_t len, bool forceBinary);

// The data-plane REST API: performs a routed operation (the caller checked the token and the hub).
struct WpsRestResult {
    int status = 200;
    std::string body;         // JSON ("" = none)
    std::string errorCode;    // for x-ms-error-code, when status >= 400
};
WpsRestResult performWpsRest(HostContext &ctx, const WebPubSubSpec &spec, const WpsRestOperation &op,
                             std::string_view host, int64_t nowSeconds);

}  // namespace wsgw
