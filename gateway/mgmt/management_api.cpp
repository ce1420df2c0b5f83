// Owns: ManagementApi, the management API's public face (management_api.h): it holds the credentials and the
// operations hooks, refuses to start without credentials on an address that is not loopback, and joins the
// parts: management_server (the listener and its HTTP/1.1 connections), management_routes (what a request is
// answered), management_operations (/healthz, /readyz, /console, /metrics, /@routes, /@info) and
// management_credentials (the credentials file and the Authorization check).
#include "management_api.h"
#include "management_routes.h"
#include "management_server.h"

#include <utility>

namespace wsgw {

struct ManagementApi::Impl {
    HostPort listen;
    ManagementCredentials credentials;
    OperationsHooks ops;
    ManagementRoutes routes;  // reads credentials and ops at each request
    ManagementServer server;

    Impl(HostPort l, ManagementCredentials c, HostContext &h, int rate)
        : listen(std::move(l)),
          credentials(std::move(c)),
          routes(h, credentials, ops, rate, [this](std::function<ManagementResponse()> work) { return server.defer(std::move(work)); }),
          server(h, routes) {}
};

ManagementApi::ManagementApi(HostPort listen, ManagementCredentials credentials, HostContext &host, int ratePerSecond)
    : impl_(std::make_unique<Impl>(std::move(listen), std::move(credentials), host, ratePerSecond)) {}

ManagementApi::~ManagementApi() {
    stop();
}

std::string ManagementApi::start(struct ev_loop *loop) {
    Impl &m = *impl_;
    if (!isLoopbackHost(m.listen.host) && m.credentials.empty()) {
        return "--management-listen " + m.listen.host + ":" + std::to_string(m.listen.port) +
               " is not a loopback address, so the management API needs credentials: give "
               "--management-credentials FILE (bearer tokens or SigV4 keys) or listen on 127.0.0.1";
    }
    return m.server.start(loop, m.listen);
}

std::string ManagementApi::boundAddress() const { return impl_->server.boundAddress(); }

void ManagementApi::setOperationsHooks(OperationsHooks hooks) { impl_->ops = std::move(hooks); }

void ManagementApi::setTls(std::string certFile, std::string keyFile) { impl_->server.setTls(std::move(certFile), std::move(keyFile)); }
void ManagementApi::setRequestTimeout(int seconds) { impl_->server.setRequestTimeout(seconds); }

void ManagementApi::stop() { impl_->server.stop(); }

}  // namespace wsgw
