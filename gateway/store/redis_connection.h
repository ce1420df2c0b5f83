// Blocking connections to Redis (hiredis) for the threads that may wait: the store writer, the cluster's
// heartbeat and reaper, and workers or the cluster executor answering the host API. Never used on the
// network thread. A broken connection is re-opened on the next command, and the command retried once, so
// a Redis restart costs the commands in flight at that moment and nothing after it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

struct redisContext;
struct redisReply;

namespace wsgw {

struct RedisAddress {
    std::string host = "127.0.0.1";
    int port = 6379;
    int db = 0;
    std::string text;  // as given, for messages
};

// redis://HOST[:PORT][/DB]; the error says what is wrong with the URL.
std::variant<RedisAddress, std::string> parseRedisUrl(std::string_view url);

struct RedisReplyDeleter {
    void operator()(redisReply *r) const;
};
using RedisReply = std::unique_ptr<redisReply, RedisReplyDeleter>;

// Helpers over a reply (null-safe).
bool replyIsError(const redisReply *r);
std::string replyString(const redisReply *r);  // string, status or error text; "" otherwise
long long replyInteger(const redisReply *r);   // integer reply, or 0
size_t replyElements(const redisReply *r);
const redisReply *replyElement(const redisReply *r, size_t i);

class RedisConnection {
public:
    explicit RedisConnection(RedisAddress address, std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));
    ~RedisConnection();
    RedisConnection(const RedisConnection &) = delete;
    RedisConnection &operator=(const RedisConnection &) = delete;

    // One command; nullptr when Redis cannot be reached (error() says why). An error reply is returned.
    RedisReply command(const std::vector<std::string> &args);
    // Several commands in one round trip; empty when the connection failed part-way (then none is known
    // to have run, and the caller may retry them all: every command we pipeline is idempotent).
    std::vector<RedisReply> pipeline(const std::vector<std::vector<std::string>> &commands);
    bool connected() const { return ctx_ != nullptr; }
    const std::string &error() const { return error_; }
    // Counts successful (re)connects: a caller that sees it change knows Redis may have lost its data.
    uint64_t generation() const { return generation_; }
    const RedisAddress &address() const { return address_; }

private:
    bool ensureConnected();
    void drop(const std::string &why);
    RedisAddress address_;
    std::chrono::milliseconds timeout_;
    redisContext *ctx_ = nullptr;
    std::string error_;
    uint64_t generation_ = 0;
    std::chrono::steady_clock::time_point nextAttempt_{};
};

// A few connections shared by many threads: each command takes a free one (or opens one, up to `max`).
class RedisPool {
public:
    RedisPool(RedisAddress address, size_t max);
    RedisReply command(const std::vector<std::string> &args, std::string *error = nullptr);
    std::vector<RedisReply> pipeline(const std::vector<std::vector<std::string>> &commands, std::string *error = nullptr);

private:
    std::unique_ptr<RedisConnection> take();
    void give(std::unique_ptr<RedisConnection> c);
    RedisAddress address_;
    size_t max_, open_ = 0;
    std::mutex mutex_;
    std::vector<std::unique_ptr<RedisConnection>> free_;
};

}  // namespace wsgw
