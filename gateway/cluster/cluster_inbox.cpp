#include "cluster_inbox.h"

#include "log.h"
#include "webpubsub_clients.h"

#include <cstdlib>

namespace wsgw::cluster {

void Inbox::sendAck(const BusMessage &req, int rc) {
    BusMessage ack;
    ack.op = Op::Ack;
    ack.origin = settings_.nodeId;
    ack.token = req.token;
    ack.data = std::to_string(rc);
    subscriber_.publish(settings_.keys.inboxChannel(req.origin), encode(ack));
}

// A Web PubSub send renders here as it did on its node (data type, a client's publish), and leaves out the
// connections its REST call excluded.
void Inbox::deliver(const BusMessage &m) {
    if (m.wps) wpsDeliverFromCluster(host_, m.group, m.data, *m.wps, m.excluded);
    else if (!m.excluded.empty())
        wpsDeliverFromCluster(host_, m.group, m.data, WpsRendering{wpsDataFromFrame(m.data, m.binary).type, false, {}}, m.excluded);
    else deliverLocal(host_, m.group, m.data, m.binary);
}

void Inbox::dispatch(const std::string &channel, std::string_view payload) {
    auto m = decode(payload);
    if (!m) {
        log::warn("cluster: malformed message ignored", {log::Field("channel", channel), log::Field("bytes", static_cast<uint64_t>(payload.size()))});
        return;
    }
    switch (m->op) {
    case Op::Deliver:
        if (m->origin == settings_.nodeId) return;  // the sender delivered its own
        deliver(*m);
        return;
    case Op::CloseAll:
        if (m->origin == settings_.nodeId) return;  // the sender closed its own
        wpsCloseAllLocal(host_, m->excluded, m->data);
        return;
    case Op::Ack:
        calls_.answered(m->token, std::atoi(m->data.c_str()));
        return;
    case Op::Post:
        if (m->wps) sendAck(*m, wpsPostLocal(host_, m->connectionId, WpsData{m->wps->dataType, std::move(m->data)}));
        else sendAck(*m, postLocal(host_, m->connectionId, std::move(m->data), m->binary));
        return;
    case Op::Delete:
        sendAck(*m, m->wpsClose ? wpsCloseLocal(host_, m->connectionId, m->data) : deleteLocal(host_, m->connectionId));
        return;
    case Op::Join:
    case Op::Leave:
        // Joining may wait for our own subscription, which this thread confirms: run it elsewhere.
        executor_.post([this, msg = std::move(*m)] {
            int rc = msg.op == Op::Join ? joinLocal(host_, msg.group, msg.connectionId) : leaveLocal(host_, msg.group, msg.connectionId);
            sendAck(msg, rc);
        });
        return;
    }
}

}  // namespace wsgw::cluster
