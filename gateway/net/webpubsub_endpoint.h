// Owns: Azure Web PubSub on the public listener (docs/webpubsub.md), the parts the network thread does itself:
// - the data-plane REST API (/api/hubs/{hub}/..., /api/health): a plain HTTP request read whole, its bearer
//   token checked, the operation performed (webpubsub_clients.h) and answered with Connection: close. In a
//   cluster the operation may wait on Redis, so it runs on the cluster's executor and its answer comes back
//   through the command queue; the network thread never waits on it;
// - the client upgrade on /client/hubs/{hub}: the access token (?access_token= or Authorization: Bearer,
//   401 missing, 403 refused, 404 unknown hub), the subprotocol, and the client's state made ready for
//   $connect (requestContext.authorizer carries userId, hub, roles, groups);
// - what a subprotocol client's frames do: requests answered with acks, events turned into route messages.
// Everything else of such a connection ($connect, $disconnect, throttles, bounds) is the listener's usual.
#pragma once

#include "handshake.h"
#include "session.h"

#include <string>
#include <string_view>

namespace wsgw {

struct NetworkThreadState;
struct HeadParse;
struct CompiledRoute;

// True when the bytes read so far start a Web PubSub REST request of this API: the caller leaves the
// session to this part (it is answered and closed here, or waits for the rest of its body).
bool wpsRestRequestHandled(NetworkThreadState &t, Session *s);
// The command queue hands back the answer of a REST request that ran on the cluster's executor: written and
// the socket closed, or dropped when its session is gone or was answered already (timeout, drain).
void wpsRestAnswered(NetworkThreadState &t, std::string_view connectionId, const std::string &response);
// UpgradeReader::dropUnaccepted asks when it drops a session without an answer: for a REST request still
// waiting on the cluster (handshake timeout, drain, shutdown), the 503 it gets instead of a silent close;
// "" otherwise.
std::string wpsRestUnansweredResponse(NetworkThreadState &t, Session *s);

bool isWpsClientPath(std::string_view path);
// The connection a Web PubSub client upgrade asks to resume (its awps_connection_id), "" when none.
std::string wpsResumeId(const UpgradeRequest &request);
// An upgrade to /client/hubs/{hub}: false when it was refused (answered and dropped here).
bool wpsClientAdmitted(NetworkThreadState &t, Session *s, HeadParse &parsed);
// The authorizer context and admission of an Azure client, filled into its ConnectionInfo before $connect.
void wpsFillConnectionInfo(Session *s, ConnectionInfo &info);
// The connection is open: its groups are joined and "connected" is sent. False: it must be closed.
bool wpsClientOpened(NetworkThreadState &t, Session *s);
// The connection is gone.
void wpsClientFinished(NetworkThreadState &t, Session *s);

// Connection recovery (json.reliable.webpubsub.azure.v1). SessionCloser::finish asks first: true when the
// socket dropped under a reliable client (no close frame, not closed by us, not draining): the connection
// stays registered, in its groups and in the table, its messages are kept, and its $disconnect waits for
// the recovery window's end; the caller only frees the session.
bool wpsDetachForRecovery(NetworkThreadState &t, Session *s);
// ConnectFlow::startConnect asks first: true when the session resumes a detached connection (it takes the
// connection's ID and goes straight to the upgrade; $connect does not run again).
bool wpsResumeConnect(NetworkThreadState &t, Session *s);
// Drain: every connection waiting in a recovery window ends now.
void wpsEndRecoveryWindows(NetworkThreadState &t);

// A whole message of a subprotocol client, in s->rx. Handled: answered here (s->rx cleared). Queued: handed to
// the cluster's executor and counted against the connection's pending bounds until it has run (s->rx
// cleared): the caller pauses reading at the bounds. Dispatch: an event; s->rx holds its data, s->rxBinary its
// kind, `route` the event's route (or $default, or nullptr: then the caller leaves it to wpsAnswerNoRoute) and
// s->wpsRequest the request to answer when it has run.
enum class WpsReceive { Handled, Queued, Dispatch };
WpsReceive wpsReceive(NetworkThreadState &t, Session *s, const CompiledRoute **route);
// An event that will not reach a route (no route, throttled): its ack says why.
void wpsAnswerRefused(NetworkThreadState &t, Session *s, const std::string &why);

}  // namespace wsgw
