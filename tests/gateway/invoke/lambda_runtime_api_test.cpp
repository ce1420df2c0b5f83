// Tests gateway/invoke/lambda_runtime_api's connection over a real loopback socket: requests a runtime
// client pipelines (its answer and its next `next` in one write, as wsgw's Node.js runtime client sends
// them) are all read, in order, and the connection does not hold answers back (TCP_NODELAY: with Nagle on,
// the answer to a pipelined `next` waited for the client's delayed ACK of the 202 before it, ~40 ms).
#include "lambda_runtime_api.h"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

using namespace wsgw;

namespace {

// A client socket connected to a fresh Runtime API listener, and the server side accepted from it.
struct LoopbackPair {
    int listener = -1, client = -1, server = -1;
    LoopbackPair() {
        int port = 0;
        std::string error;
        listener = openRuntimeApiListener(&port, &error);
        REQUIRE_MESSAGE(listener >= 0, error);
        client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(static_cast<uint16_t>(port));
        REQUIRE(connect(client, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0);
        pollfd p{listener, POLLIN, 0};
        REQUIRE(poll(&p, 1, 5000) == 1);
        server = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        REQUIRE(server >= 0);
    }
    ~LoopbackPair() {
        if (client >= 0) close(client);
        if (listener >= 0) close(listener);
    }
};

// Reads until `want` requests have arrived (or 5 s pass).
std::vector<RuntimeApiRequest> readUntil(RuntimeApiConnection &conn, size_t want) {
    std::vector<RuntimeApiRequest> got;
    while (got.size() < want) {
        pollfd p{conn.fd(), POLLIN, 0};
        if (poll(&p, 1, 5000) != 1) break;
        if (!conn.readRequests(got)) break;
    }
    return got;
}

}  // namespace

TEST_SUITE("lambda_runtime_api") {
    TEST_CASE("an answer and the next `next` pipelined in one write are both read, in order") {
        LoopbackPair pair;
        RuntimeApiConnection conn(pair.server);
        const std::string body = R"({"statusCode":200,"body":"hi"})";
        const std::string wire = "POST /2018-06-01/runtime/invocation/abc123/response HTTP/1.1\r\nHost: x\r\n"
                                 "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                                 "\r\n\r\n" + body +
                                 "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n";
        REQUIRE(write(pair.client, wire.data(), wire.size()) == static_cast<ssize_t>(wire.size()));
        std::vector<RuntimeApiRequest> got = readUntil(conn, 2);
        REQUIRE(got.size() == 2);
        CHECK(got[0].kind == RuntimeApiRequest::Kind::Response);
        CHECK(got[0].requestId == "abc123");
        CHECK(got[0].body == body);
        CHECK(got[1].kind == RuntimeApiRequest::Kind::Next);
    }

    TEST_CASE("the connection sends its answers at once (TCP_NODELAY)") {
        LoopbackPair pair;
        RuntimeApiConnection conn(pair.server);
        int noDelay = 0;
        socklen_t len = sizeof noDelay;
        REQUIRE(getsockopt(conn.fd(), IPPROTO_TCP, TCP_NODELAY, &noDelay, &len) == 0);
        CHECK(noDelay != 0);
    }
}
