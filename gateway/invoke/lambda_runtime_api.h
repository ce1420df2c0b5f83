// The Lambda Runtime API as the gateway serves it to one function process (docs/lambda.md): a listening
// socket on 127.0.0.1 (an ephemeral port, the process's AWS_LAMBDA_RUNTIME_API), the HTTP/1.1 connections
// of its runtime client, and what each request asks for. Requests are parsed by the gateway's one HTTP
// parser (core/http_message). Which invocation a request belongs to, and when `next` is answered, is
// lambda_process_run's business; this file only reads requests and writes answers.
//
// Paths (API version 2018-06-01):
//   GET  /2018-06-01/runtime/invocation/next             -> 200, the event, Lambda-Runtime-* headers
//   POST /2018-06-01/runtime/invocation/{id}/response    -> 202
//   POST /2018-06-01/runtime/invocation/{id}/error       -> 202
//   POST /2018-06-01/runtime/init/error                  -> 202
#pragma once

#include "http_message.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wsgw {

struct RuntimeApiRequest {
    enum class Kind { Next, Response, Error, InitError, NotFound, MethodNotAllowed, Malformed };
    Kind kind = Kind::NotFound;
    std::string requestId;        // Response and Error
    std::string body;
    std::string errorTypeHeader;  // Lambda-Runtime-Function-Error-Type
    int status = 0;               // Malformed: the status to answer
    std::string problem;          // Malformed / NotFound: what was wrong
};

// What one parsed request asks for (pure).
RuntimeApiRequest classifyRuntimeRequest(const HttpMessageHead &head, std::string body);

// An HTTP/1.1 response with Content-Length (pure).
std::string runtimeApiResponse(int status, std::string_view body,
                               const std::vector<std::pair<std::string, std::string>> &headers = {},
                               std::string_view contentType = "application/json");

// The answer to `next`: the event and the headers the runtime clients read (pure).
struct NextInvocation {
    std::string requestId;
    int64_t deadlineEpochMs = 0;
    std::string functionArn;
    std::string traceId;
    std::string eventJson;
};
std::string nextInvocationResponse(const NextInvocation &inv);

// An X-Ray-shaped trace header (Root=1-<time>-<96 random bits>;Parent=...;Sampled=0).
std::string newLambdaTraceId();

// A loopback listening socket on an ephemeral port (non-blocking, close-on-exec); -1 with *error set.
int openRuntimeApiListener(int *port, std::string *error);

// Runtime API connections one function process may hold open at once; more are closed at accept.
inline constexpr size_t kMaxRuntimeApiConnections = 8;

// One connection from a runtime client: reads requests (keep-alive; any number per connection) and writes
// answers. The supervisor polls fd() for reading.
class RuntimeApiConnection {
public:
    static constexpr size_t kMaxBodyBytes = 6 * 1024 * 1024;  // Lambda's synchronous payload limit
    // The most one request can take on the wire (a chunked body's framing included), head and all.
    static constexpr size_t kMaxBufferedBytes = kMaxBodyBytes * 2 + 64 * 1024;

    explicit RuntimeApiConnection(int fd);
    ~RuntimeApiConnection();
    RuntimeApiConnection(const RuntimeApiConnection &) = delete;
    RuntimeApiConnection &operator=(const RuntimeApiConnection &) = delete;

    int fd() const { return fd_; }
    // Requests one read appends at most (moreRequests() then says that complete ones may be left).
    static constexpr size_t kMaxRequestsPerRead = 64;

    // Reads what has arrived and appends each complete request to `out`. false: the peer closed or sent
    // bytes that are not HTTP (a Malformed request is appended first, for its answer); close it then.
    bool readRequests(std::vector<RuntimeApiRequest> &out);
    // The last readRequests stopped at kMaxRequestsPerRead: call it again without waiting for the socket.
    bool moreRequests() const { return moreParsed_; }
    // Writes all of `bytes` (blocking with a bound: a client that does not read for 5 s is dropped). After
    // one failed send every later one fails at once (broken()): a client that pipelines requests and reads no
    // answer costs the supervisor one wait, not one per request.
    bool send(std::string_view bytes);
    bool broken() const { return broken_; }

private:
    int fd_;
    bool broken_ = false;
    bool moreParsed_ = false;
    std::string buffer_;
    size_t parsed_ = 0;  // bytes of buffer_ already parsed into requests
    HttpMessageParser parser_;
};

}  // namespace wsgw
