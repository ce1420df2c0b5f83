#include "backend_link.h"

#include "log.h"

#include <libwebsockets.h>

#include <cstdlib>
#include <cstring>
#include <unordered_set>

namespace wsgw {

namespace {
// The link inside lws_client_connect_via_info on this thread: open() owns its failure. The callbacks that
// look at it run inside that call, on the same network thread, so each thread has its own.
thread_local BackendLink *g_starting = nullptr;
// The links alive on this thread (each is made and destroyed on its network thread).
thread_local std::unordered_set<const void *> t_liveLinks;
}

BackendLink::BackendLink(BackendTarget target, BackendEvents *events) : target_(std::move(target)), events_(events) {
    t_liveLinks.insert(this);
}

BackendLink::~BackendLink() { t_liveLinks.erase(this); }

bool BackendLink::owns(const void *opaque) { return opaque && !t_liveLinks.empty() && t_liveLinks.count(opaque) != 0; }

BackendLink *BackendLink::open(lws_context *context, lws_vhost *vhost, const BackendTarget &target, BackendEvents *events) {
    auto *link = new BackendLink(target, events);
    lws_client_connect_info info{};
    info.context = context;
    info.vhost = vhost;
    // Never a name here: libwebsockets would look it up with a blocking getaddrinfo on this thread.
    info.address = link->target_.address.empty() ? link->target_.url.host.c_str() : link->target_.address.c_str();
    info.port = link->target_.url.port;
    info.path = link->target_.url.path.c_str();
    info.host = link->target_.url.host.c_str();
    info.origin = link->target_.url.host.c_str();
    info.protocol = link->target_.offers.empty() ? nullptr : link->target_.offers.c_str();
    info.local_protocol_name = "wsgw-backend";
    // A backend's redirect is not followed: it would take the forwarded headers (Authorization) to any host.
    info.ssl_connection = (link->target_.url.tls ? LCCSCF_USE_SSL : 0) | LCCSCF_HTTP_NO_FOLLOW_REDIRECT;
    info.opaque_user_data = link;
    info.pwsi = &link->wsi_;
    g_starting = link;
    lws *wsi = lws_client_connect_via_info(&info);
    g_starting = nullptr;
    if (!wsi || link->failed_) {
        if (events) {
            std::string where = target.url.host + (target.address.empty() ? "" : " (" + target.address + ")");
            events->backendFailed(link->failure_.empty() ? "cannot start a connection to " + where + ":" +
                                                               std::to_string(target.url.port)
                                                         : link->failure_,
                                  link->reached_);
        }
        if (wsi) lws_set_opaque_user_data(wsi, nullptr);
        delete link;
        return nullptr;
    }
    return link;
}

void BackendLink::send(std::string framed, bool binary) {
    if (closing_ || failed_) return;
    queuedBytes_ += framed.size() - LWS_PRE;
    out_.push_back(Frame{std::move(framed), binary});
    if (open_ && wsi_) lws_callback_on_writable(wsi_);
}

void BackendLink::pauseReading(bool paused) {
    if (open_ && wsi_) lws_rx_flow_control(wsi_, paused ? 0 : 1);
}

void BackendLink::close(int code, std::string reason) {
    if (closing_) return;
    closing_ = true;
    closeCode_ = code;
    closeReason_ = std::move(reason);
    if (closeReason_.size() > 123) closeReason_.resize(123);
    if (wsi_) lws_callback_on_writable(wsi_);
}

int BackendLink::onWritable() {
    for (int n = 0; n < 64 && !out_.empty(); ++n) {
        if (n > 0 && lws_send_pipe_choked(wsi_)) break;
        Frame &f = out_.front();
        size_t len = f.bytes.size() - LWS_PRE;
        int wrote = lws_write(wsi_, reinterpret_cast<unsigned char *>(f.bytes.data()) + LWS_PRE, len,
                              f.binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
        if (wrote < static_cast<int>(len)) return -1;
        bool wasHigh = queuedBytes_ >= kLowWater;
        queuedBytes_ -= len;
        out_.pop_front();
        if (wasHigh && queuedBytes_ < kLowWater && events_) events_->backendDrained();
    }
    if (!out_.empty()) {
        lws_callback_on_writable(wsi_);
        return 0;
    }
    if (closing_) {
        lws_close_reason(wsi_, static_cast<lws_close_status>(closeCode_), reinterpret_cast<unsigned char *>(closeReason_.data()),
                         closeReason_.size());
        return -1;
    }
    return 0;
}

int BackendLink::appendHandshakeHeaders(char **p, size_t len) const {
    char *end = *p + len;
    for (const auto &[name, value] : target_.headers) {
        size_t need = name.size() + value.size() + 4;
        if (static_cast<size_t>(end - *p) <= need) return -1;
        std::memcpy(*p, name.data(), name.size());
        *p += name.size();
        std::memcpy(*p, ": ", 2);
        *p += 2;
        std::memcpy(*p, value.data(), value.size());
        *p += value.size();
        std::memcpy(*p, "\r\n", 2);
        *p += 2;
    }
    return 0;
}

void BackendLink::onEstablished(lws *wsi) {
    wsi_ = wsi;
    open_ = true;
    if (events_) events_->backendOpen(chosen_);
    if (!out_.empty() || closing_) lws_callback_on_writable(wsi);
}

void BackendLink::onReceive(lws *wsi, const void *in, size_t len) {
    if (rxTooLarge_) return;  // the rest of a message over the limit, until the close
    if (lws_is_first_fragment(wsi)) {
        rx_.clear();
        rxBinary_ = lws_frame_is_binary(wsi) != 0;
    }
    if (rx_.size() + len > target_.maxMessageBytes) {
        refuseTooLarge(wsi);
        return;
    }
    rx_.append(static_cast<const char *>(in), len);
    if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
        std::string message;
        message.swap(rx_);
        if (events_) events_->backendMessage(std::move(message), rxBinary_);
    }
}

// Not -1 from the receive callback: libwebsockets 4.1.6, told to close in the middle of a frame, went on
// parsing the rest of it into a freed buffer (a heap overflow with the backend's bytes). The close comes
// after this read instead, and the client hears 1009 as the backend would have.
void BackendLink::refuseTooLarge(lws *wsi) {
    rxTooLarge_ = true;
    closing_ = true;
    rx_.clear();
    rx_.shrink_to_fit();
    peerCode_ = LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE;
    peerReason_ = "Message too big: the backend sent a message over " + std::to_string(target_.maxMessageBytes) +
                  " bytes (limits.maxMessageBytes)";
    static const char kReason[] = "Message too big";
    lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, reinterpret_cast<unsigned char *>(const_cast<char *>(kReason)),
                     sizeof kReason - 1);
    // The close is made from the writable callback, outside the frame parser; the timeout is a backstop (on
    // its own it was not serviced when no more bytes came from the backend).
    closeCode_ = LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE;
    closeReason_ = kReason;
    lws_callback_on_writable(wsi);
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, 2);
}

void BackendLink::onPeerClose(const void *in, size_t len) {
    const auto *p = static_cast<const unsigned char *>(in);
    if (len >= 2) {
        peerCode_ = (p[0] << 8) | p[1];
        peerReason_.assign(reinterpret_cast<const char *>(p) + 2, len - 2);
    } else {
        peerCode_ = 1005;
    }
}

void BackendLink::onConnectionError(lws *wsi, const void *in) {
    std::string why = in ? std::string(static_cast<const char *>(in), strnlen(static_cast<const char *>(in), 256)) : "";
    failed_ = true;
    if (this == g_starting) {  // still inside open(): it reports and deletes
        failure_ = why.empty() ? "connection failed" : why;
        lws_set_opaque_user_data(wsi, nullptr);
        return;
    }
    if (events_) {
        if (open_) events_->backendClosed(1006, why);
        else events_->backendFailed(why.empty() ? "connection failed" : why, reached_);
    }
    lws_set_opaque_user_data(wsi, nullptr);
    delete this;
}

void BackendLink::onClosed(lws *wsi) {
    if (this == g_starting) {
        failed_ = true;
        lws_set_opaque_user_data(wsi, nullptr);
        return;
    }
    if (events_) {
        if (open_) events_->backendClosed(peerCode_ ? peerCode_ : 1006, peerReason_);
        else events_->backendFailed("the backend closed the connection during the handshake", reached_);
    }
    lws_set_opaque_user_data(wsi, nullptr);
    delete this;
}

int BackendLink::callback(lws *wsi, int reason, void *, void *in, size_t len) {
    auto *link = static_cast<BackendLink *>(lws_get_opaque_user_data(wsi));
    if (reason == LWS_CALLBACK_CLIENT_CONFIRM_EXTENSION_SUPPORTED) return 1;  // frames pass through as they are
    if (!link) return 0;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:  // made once the connection (and its TLS) is up
        link->reached_ = true;
        return link->appendHandshakeHeaders(static_cast<char **>(in), len);
    case LWS_CALLBACK_CLIENT_FILTER_PRE_ESTABLISH: {
        // The response headers are still there: the subprotocol the backend chose goes back to the client.
        char chosen[256] = "";
        if (lws_hdr_copy(wsi, chosen, sizeof chosen, WSI_TOKEN_PROTOCOL) > 0) link->chosen_ = chosen;
        return 0;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        link->onEstablished(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        link->onReceive(wsi, in, len);
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return link->onWritable();
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        link->onPeerClose(in, len);
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        link->onConnectionError(wsi, in);  // may delete the link
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
    case LWS_CALLBACK_WSI_DESTROY:
        link->onClosed(wsi);  // may delete the link
        return 0;
    default:
        return 0;
    }
}

}  // namespace wsgw
