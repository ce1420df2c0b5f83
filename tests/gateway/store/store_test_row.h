// The connection row the store tests write (sqlite_store_test.cpp, redis_store_test.cpp): one definition, so
// that every store is tested on the same row.
#pragma once

#include "connection_store.h"

#include <string>

namespace wsgw::store_test {

// Connection `id` on node `node`, connected and last active at 1000 ms, from 127.0.0.1 with one header and no
// authorizer context (which a store keeps as NULL): a test that needs one sets authorizerJson itself.
inline ConnectionRow row(const std::string &id, const std::string &node = "n1") {
    ConnectionRow r;
    r.connectionId = id;
    r.nodeId = node;
    r.connectedAtMs = 1000;
    r.lastActiveAtMs = 1000;
    r.sourceIp = "127.0.0.1";
    r.userAgent = "test";
    r.headersJson = R"({"Host":["x"]})";
    return r;
}

}  // namespace wsgw::store_test
