// A route's "http" integration (AWS's HTTP proxy integration): the event JSON (docs/event.md) is POSTed
// to a URL and the backend's raw response body is the route response; on $connect its status is the
// answer (a non-2xx refuses the upgrade with it). Runs on worker threads: a blocking HTTP/1.1 client
// bounded by the route's deadline, over a pool of keep-alive connections per integration.
#pragma once

#include "http_message.h"

#include <chrono>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace wsgw {

struct HttpUrl {
    std::string host;
    int port = 80;
    std::string path = "/";
    std::string text;  // as configured, for logs

    // http://host[:port][/path], by the rules of backend_url.h; https is not spoken yet, and says so.
    static std::variant<HttpUrl, std::string> parse(const std::string &url);
};

struct HttpReply {
    int status = 0;       // 0 when no response came
    std::string body;
    std::string failure;  // set when the request failed (connect, write, read, parse)
    bool timedOut = false;
};

// Reads one HTTP/1.x response as its bytes arrive, with the HTTP/1.1 message parser (http_message.h, in its
// tolerant mode), skipping interim 1xx answers. Each byte is parsed once however it is cut, and interim
// answers are dropped as they complete (at most kMaxInterim), so neither the time nor the memory spent on a
// response grows past its bounds whatever a backend sends.
class HttpResponseReader {
public:
    static constexpr int kMaxInterim = 32;
    enum class State { NeedMore, Complete, Error };
    static HttpParserOptions responseOptions();  // the bounds: head 64 KiB, body 16 MiB

    // `more`: the next bytes from the connection; `closed`: the backend closed after them.
    State append(std::string_view more, bool closed);
    State state() const { return state_; }
    HttpReply &reply() { return reply_; }             // Complete: status and body
    bool keepAlive() const { return keepAlive_; }     // Complete: the connection may carry the next request
    size_t leftover() const { return in_.size() - used_; }  // Complete: bytes past the response
    const std::string &error() const { return error_; }     // Error: what was wrong

private:
    State step(bool closed);

    std::string in_;  // the current message's bytes from its first
    HttpMessageParser parser_{responseOptions()};
    int interim_ = 0;
    size_t used_ = 0;
    State state_ = State::NeedMore;
    HttpReply reply_;
    bool keepAlive_ = false;
    std::string error_;
};

// parseHttpResponse: the reader on bytes held whole. False while more bytes are needed; `error` set when it
// can never parse. `consumed` is the length of the response (what follows belongs to the next one).
bool parseHttpResponse(std::string_view bytes, bool connectionClosed, HttpReply &out, size_t &consumed, bool &keepAlive,
                       std::string &error);

class HttpIntegration {
public:
    explicit HttpIntegration(HttpUrl url) : url_(std::move(url)) {}
    ~HttpIntegration();
    HttpIntegration(const HttpIntegration &) = delete;
    HttpIntegration &operator=(const HttpIntegration &) = delete;

    HttpReply post(std::string_view body, const std::vector<std::pair<std::string, std::string>> &headers,
                   std::chrono::steady_clock::time_point deadline);
    const HttpUrl &url() const { return url_; }

private:
    int connectTo(std::chrono::steady_clock::time_point deadline, std::string &error) const;
    HttpReply exchange(int fd, const std::string &request, std::chrono::steady_clock::time_point deadline, bool &reusable);

    HttpUrl url_;
    std::mutex mutex_;
    std::vector<int> idle_;  // keep-alive connections ready for the next request
};

}  // namespace wsgw
