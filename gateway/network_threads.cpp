#include "network_threads.h"

namespace wsgw {

NetworkThreads::NetworkThreads(ListenerSettings settings, unsigned count, ConnectionRegistry &registry, ConnectionStore &store,
                               HostContext &host)
    : registry_(registry) {
    if (count == 0) count = 1;
    settings.reusePort = count > 1;
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

void NetworkThreads::sendFrame(const std::string &connectionId, std::string data, bool binary) {
    if (Listener *l = owner(connectionId)) l->sendFrame(connectionId, std::move(data), binary);
}

void NetworkThreads::closeConnection(const std::string &connectionId, int code, std::string reason) {
    if (Listener *l = owner(connectionId)) l->closeConnection(connectionId, code, std::move(reason));
}

void NetworkThreads::connectDecided(const std::string &connectionId, int status, std::string body) {
    if (Listener *l = owner(connectionId)) l->connectDecided(connectionId, status, std::move(body));
}

}  // namespace wsgw
