// The management API (docs/management-api.md): POST/GET/DELETE /@connections/{id} (also under a stage prefix,
// so the AWS SDK's ApiGatewayManagementApi client works unchanged) and GET /@connections to list. It is a
// small keep-alive HTTP/1.1 server on the network thread's event loop, separate from the public listener;
// it acts through the same calls as the host API (registry lookups, ConnectionControl commands), so it
// never blocks. Requests are authenticated by bearer token or AWS SigV4 when credentials are configured.
#pragma once

#include "sigv4.h"
#include "host_api.h"
#include "options.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

struct ev_loop;

namespace wsgw {

struct ManagementCredentials {
    std::vector<std::string> tokens;
    std::vector<SigV4Credential> sigv4;
    bool empty() const { return tokens.empty() && sigv4.empty(); }
};

// Reads {"tokens": ["..."], "sigv4": [{"accessKeyId": "...", "secretAccessKey": "..."}]}; "" on success.
std::string loadManagementCredentials(const std::string &path, ManagementCredentials &out);
bool isLoopbackHost(const std::string &host);

// What the operations endpoints read from the rest of the gateway; each runs on the network thread.
struct OperationsHooks {
    std::function<std::string()> metrics;                         // GET /metrics: Prometheus text
    std::function<std::vector<std::string>()> readinessProblems;  // GET /readyz: empty when ready
    std::function<std::string()> routesJson;                      // GET /@routes: the running route table
    std::function<std::string()> infoJson;                        // GET /@info: public URL, version, node
};

// The test console's page (gateway/mgmt/console.html, embedded at build time).
const std::string &consoleHtml();

class ManagementApi {
public:
    // ratePerSecond > 0 puts a token bucket (burst = rate) in front of every request: AWS answers an
    // account over its limit with 429 LimitExceededException, and so do we.
    ManagementApi(HostPort listen, ManagementCredentials credentials, HostContext &host, int ratePerSecond = 0);
    ~ManagementApi();
    ManagementApi(const ManagementApi &) = delete;
    ManagementApi &operator=(const ManagementApi &) = delete;

    // Binds and starts serving on `loop` (the network thread's). Returns "" or what went wrong.
    std::string start(struct ev_loop *loop);
    // Operations endpoints beside @connections: /healthz and /readyz (no credentials, for probes),
    // /console (the page; it sends the credentials it is given), /metrics, /@routes and /@info.
    void setOperationsHooks(OperationsHooks hooks);
    // Before start(): serve https:// with this PEM certificate chain and key.
    void setTls(std::string certFile, std::string keyFile);
    // Before start(): seconds a request may take to arrive whole, and a connection may stay idle (default 15).
    void setRequestTimeout(int seconds);
    std::string boundAddress() const;
    // Stops accepting and closes every management connection (drain).
    void stop();

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace wsgw
