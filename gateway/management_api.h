// The management API (SPEC section 6): POST/GET/DELETE /@connections/{id} (also under a stage prefix, so
// the AWS SDK's ApiGatewayManagementApi client works unchanged) and GET /@connections to list. It is a
// small keep-alive HTTP/1.1 server on the network thread's event loop, separate from the public listener;
// it acts through the same calls as the host API (registry lookups, ConnectionControl commands), so it
// never blocks. Requests are authenticated by bearer token or AWS SigV4 when credentials are configured.
#pragma once

#include "auth/sigv4.h"
#include "host_api.h"
#include "options.h"

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
    std::string boundAddress() const;
    // Stops accepting and closes every management connection (drain).
    void stop();

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace wsgw
