// The WebSocket proxy's backend side (routes.json "proxy", as Apigee and Azure API Management put a
// gateway in front of an existing WebSocket server): one libwebsockets client connection per proxied
// client, on the network thread's context. It connects with the client's path suffix, query, chosen
// headers and subprotocol offers, queues frames towards the backend, reassembles the backend's messages,
// and reports to its BackendEvents (the listener's session). Either side may go first; detach() cuts the
// tie when the client side is gone.
#pragma once

#include "ws_url.h"

#include <cstddef>
#include <deque>
#include <string>
#include <utility>
#include <variant>
#include <vector>

struct lws;
struct lws_vhost;
struct lws_context;

namespace wsgw {

class BackendEvents {
public:
    virtual ~BackendEvents() = default;
    virtual void backendOpen(const std::string &subprotocol) = 0;
    // Before it opened. `reached`: the connection (TCP, and TLS) was made and the upgrade request was on its
    // way, so the backend itself refused or dropped it; otherwise it could not be reached at that address.
    virtual void backendFailed(const std::string &reason, bool reached) = 0;
    virtual void backendMessage(std::string payload, bool binary) = 0;
    virtual void backendClosed(int code, const std::string &reason) = 0;  // after it opened
    virtual void backendDrained() = 0;  // its send queue fell below the low-water mark
};

struct BackendTarget {
    WsUrl url;                 // path already joined with the client's suffix and query
    // The numeric address to connect to, looked up off the network thread (host_resolver.h); empty for a
    // URL whose host is an address already. url.host stays the Host header, the TLS server name and the
    // name the backend's certificate is checked against.
    std::string address;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string offers;        // the client's Sec-WebSocket-Protocol offers, comma-separated ("" for none)
    // The largest message relayed to the client (limits.maxMessageBytes, as for the client's own messages,
    // so the per-connection memory formula of docs/limits.md holds for proxied connections too); over it, 1009.
    size_t maxMessageBytes = kMaxMessage;
    static constexpr size_t kMaxMessage = 16u << 20;
};

class BackendLink {
public:
    static constexpr size_t kHighWater = 1u << 20;  // queued towards the backend: stop reading the client
    static constexpr size_t kLowWater = 256u << 10;

    // Starts connecting; the link lives until libwebsockets destroys its connection. Null if it could
    // not even start (events->backendFailed has been called then).
    static BackendLink *open(lws_context *context, lws_vhost *vhost, const BackendTarget &target, BackendEvents *events);
    // The libwebsockets protocol callback of backend connections ("wsgw-backend").
    static int callback(lws *wsi, int reason, void *user, void *in, size_t len);

    void send(std::string framed, bool binary);  // framed: LWS_PRE bytes of headroom, then the payload
    size_t queuedBytes() const { return queuedBytes_; }
    void pauseReading(bool paused);
    void close(int code, std::string reason);  // after what is queued
    void detach() { events_ = nullptr; }
    // Whether a connection's opaque user data is a live link of this thread. Until a client connection is
    // bound to "wsgw-backend", libwebsockets calls the vhost's first protocol (the public listener's) for it:
    // that callback must hand such a connection here instead of taking the link for a Session.
    static bool owns(const void *opaque);
    ~BackendLink();

private:
    struct Frame {
        std::string bytes;
        bool binary;
    };
    BackendLink(BackendTarget target, BackendEvents *events);
    // One per callback reason; onConnectionError and onClosed end the link (delete this) unless open() is
    // still running, which then reports and deletes it.
    int appendHandshakeHeaders(char **p, size_t len) const;
    void onEstablished(lws *wsi);
    void onReceive(lws *wsi, const void *in, size_t len);
    void refuseTooLarge(lws *wsi);
    void onPeerClose(const void *in, size_t len);
    void onConnectionError(lws *wsi, const void *in);
    void onClosed(lws *wsi);
    int onWritable();

    BackendTarget target_;
    BackendEvents *events_;
    lws *wsi_ = nullptr;
    bool open_ = false, closing_ = false, failed_ = false;
    bool reached_ = false;  // the upgrade request is being written: the connection itself was made
    std::deque<Frame> out_;
    size_t queuedBytes_ = 0;
    std::string rx_;
    bool rxBinary_ = false;
    bool rxTooLarge_ = false;  // a message over target_.maxMessageBytes: the rest of it is dropped, the link closes
    int closeCode_ = 1000;
    std::string closeReason_;
    int peerCode_ = 0;
    std::string peerReason_;
    std::string failure_;  // a failure reported while open() was still running
    std::string chosen_;   // the subprotocol the backend answered with
};

}  // namespace wsgw
