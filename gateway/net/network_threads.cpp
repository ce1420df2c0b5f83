#include "network_threads.h"

#include "log.h"
#include "rx_buffer_arena.h"
#include "send_queue.h"

namespace wsgw {

NetworkThreads::NetworkThreads(ListenerSettings settings, unsigned count, ConnectionRegistry &registry, ConnectionStore &store,
                               HostContext &host)
    : registry_(registry), host_(host) {
    installLwsRxBufferArena();  // before any libwebsockets context: idle connections then cost ~4 KB less
    if (count == 0) count = 1;
    settings.reusePortSockets = count > 1 ? static_cast<unsigned>(count) : 0;
    for (unsigned i = 0; i < count; ++i) {
        ListenerSettings mine = settings;
        mine.threadIndex = i;
        listeners_.push_back(std::make_unique<Listener>(mine, registry, store, host));
    }
}

NetworkThreads::~NetworkThreads() {
    for (auto &t : threads_)
        if (t.joinable()) t.join();
}

std::string NetworkThreads::start() {
    if (std::string err = listeners_.front()->start(); !err.empty()) return err;
    // Port 0 picked a free port for the first socket; the others join that one.
    std::string bound = listeners_.front()->boundAddress();
    int port = std::atoi(bound.c_str() + bound.rfind(':') + 1);
    for (size_t i = 1; i < listeners_.size(); ++i) {
        listeners_[i]->setListenPort(port);
        if (std::string err = listeners_[i]->start(); !err.empty()) return "network thread " + std::to_string(i) + ": " + err;
    }
    if (listeners_.size() > 1)
        listeners_.front()->setDrainHook([this] {
            for (size_t i = 1; i < listeners_.size(); ++i) listeners_[i]->requestDrain();
        });
    return {};
}

void NetworkThreads::setInvoker(Invoker *invoker) {
    for (auto &l : listeners_) l->setInvoker(invoker);
}

void NetworkThreads::setRouteTable(std::shared_ptr<const RouteTable> table) {
    for (auto &l : listeners_) l->setRouteTable(table);
}

std::shared_ptr<const RouteTable> NetworkThreads::replaceRouteTable(std::shared_ptr<const RouteTable> table) {
    std::shared_ptr<const RouteTable> replaced;
    for (size_t i = listeners_.size(); i-- > 0;) {
        auto old = listeners_[i]->replaceRouteTable(table);
        if (i == 0) replaced = std::move(old);
    }
    return replaced;
}

void NetworkThreads::run() {
    for (size_t i = 1; i < listeners_.size(); ++i) threads_.emplace_back([l = listeners_[i].get()] { l->run(); });
    listeners_.front()->run();
    for (auto &t : threads_) t.join();
    threads_.clear();
}

Listener *NetworkThreads::owner(const std::string &connectionId) {
    if (listeners_.size() == 1) return listeners_.front().get();
    auto conn = registry_.find(connectionId);
    if (!conn) return nullptr;  // closed: what it was sent is dropped, as a push to it would answer GONE
    return listeners_[conn->networkThread].get();
}

Listener *NetworkThreads::reserve(const std::string &connectionId, size_t len) {
    auto conn = registry_.find(connectionId);
    return conn ? reserve(*conn, len) : nullptr;
}

Listener *NetworkThreads::reserve(LiveConnection &conn, size_t len) {
    const std::string &connectionId = conn.info.connectionId;
    Listener *l = listeners_[listeners_.size() == 1 ? 0 : conn.networkThread].get();
    switch (conn.reserveSend(queuedFrameCost(len), host_.maxSendQueueBytes.load(std::memory_order_relaxed))) {
    case LiveConnection::Reserve::Queued:
        return l;
    case LiveConnection::Reserve::Overflowed:
        // This frame crossed the bound: the connection closes (its queued frames still get 5 s to leave).
        host_.metrics.slowConsumerCloses.fetch_add(1, std::memory_order_relaxed);
        log::warn("slow consumer: send queue over maxSendQueueBytes, closing",
                  {log::Field("connectionId", connectionId),
                   log::Field("queuedBytes", conn.sendQueueBytes.load(std::memory_order_relaxed))});
        l->closeConnection(connectionId, 1008, kSlowConsumerReason);
        return nullptr;
    case LiveConnection::Reserve::Gone:
        break;
    }
    return nullptr;
}

bool NetworkThreads::sendFrame(const std::string &connectionId, std::string data, bool binary) {
    Listener *l = reserve(connectionId, data.size());
    if (l) l->sendFrame(connectionId, std::move(data), binary);
    return l != nullptr;
}

bool NetworkThreads::sendFrameTo(const std::shared_ptr<LiveConnection> &conn, std::string data, bool binary) {
    // Closed (no longer registered): dropped, as a lookup by ID would have found nothing.
    if (!conn->registered.load(std::memory_order_acquire)) return false;
    Listener *l = reserve(*conn, data.size());
    if (l) l->sendFrame(conn, std::move(data), binary);
    return l != nullptr;
}

bool NetworkThreads::sendShared(const std::string &connectionId, std::shared_ptr<const std::string> payload, bool binary) {
    Listener *l = reserve(connectionId, payload->size());
    if (l) l->sendShared(connectionId, std::move(payload), binary);
    return l != nullptr;
}

void NetworkThreads::resumeReading(const std::string &connectionId) {
    if (Listener *l = owner(connectionId)) l->resumeReading(connectionId);
}

void NetworkThreads::closeConnection(const std::string &connectionId, int code, std::string reason) {
    if (Listener *l = owner(connectionId)) l->closeConnection(connectionId, code, std::move(reason));
}

void NetworkThreads::connectDecided(const std::string &connectionId, int status, std::string body) {
    if (Listener *l = owner(connectionId)) l->connectDecided(connectionId, status, std::move(body));
}

}  // namespace wsgw
