// The in-process host API handed to plugins (wsgw_host_api of <wsgw/handler.h>): post, delete and get any
// connection by ID, the lazily built event JSON, and logging. Every function is thread-safe: lookups go
// to the ConnectionRegistry and actions become commands for the network thread (ConnectionControl).
#pragma once

#include "access_log.h"
#include "connection_registry.h"
#include "event.h"
#include "metrics.h"

#include <wsgw/handler.h>

#include <atomic>
#include <string>

namespace wsgw {

// What other threads may ask of the network thread. Implementations queue and wake it; they never block.
class ConnectionControl {
public:
    virtual ~ConnectionControl() = default;
    virtual void sendFrame(const std::string &connectionId, std::string data, bool binary) = 0;
    virtual void closeConnection(const std::string &connectionId, int code, std::string reason) = 0;
    // The outcome of a $connect: status 0 accepts; otherwise the upgrade is refused with that HTTP status.
    virtual void connectDecided(const std::string &connectionId, int status, std::string body) = 0;
};

struct HostContext {
    ConnectionRegistry *registry = nullptr;
    ConnectionControl *control = nullptr;
    std::atomic<size_t> maxMessageBytes{131072};
    Metrics metrics;
    RouteMetrics *pushMetrics = metrics.route(Metrics::kPushRoute);  // frames pushed by ID, from any source
    AccessLog *accessLog = nullptr;                             // null: --access-log off
};

// The wsgw_event a handler sees is the first member of this, so event_json can find the rest.
struct InvocationEvent {
    wsgw_event ev{};
    uint64_t magic = kMagic;
    const ConnectionInfo *connection = nullptr;
    EventFields fields;
    std::string json;
    bool jsonBuilt = false;
    static constexpr uint64_t kMagic = 0x7773677765763031ULL;  // "wsgwev01"
};

// Pushes and closes by ID, shared by the host API and (later) the management API.
int postToConnection(HostContext &ctx, const std::string &connectionId, const void *data, size_t len, bool forceBinary);
int deleteConnection(HostContext &ctx, const std::string &connectionId);
// get_connection's contract: copy as much as fits (NUL-terminated when all of it does), return the length.
long copyOut(const std::string &text, char *buf, size_t cap);
// Fills `out` with the GET /@connections/{id} JSON; false when the connection is unknown.
bool describeConnection(HostContext &ctx, const std::string &connectionId, std::string &out);

}  // namespace wsgw

// One per plugin instance: the instance name goes into its log lines.
struct wsgw_host {
    wsgw::HostContext *ctx = nullptr;
    std::string instanceName;
    wsgw_host_api api{};
};

namespace wsgw {
void initHostApi(wsgw_host &host, HostContext *ctx, std::string instanceName);
}
