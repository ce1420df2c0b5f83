#include "redis_connection.h"

#include <hiredis/hiredis.h>

#include <condition_variable>
#include <cstdlib>

namespace wsgw {

std::variant<RedisAddress, std::string> parseRedisUrl(std::string_view url) {
    RedisAddress a;
    a.text = std::string(url);
    const std::string shape = " (expected redis://HOST[:PORT][/DB], for example redis://127.0.0.1:6379)";
    constexpr std::string_view kScheme = "redis://";
    if (url.substr(0, kScheme.size()) != kScheme) return "'" + a.text + "' is not a redis:// URL" + shape;
    std::string_view rest = url.substr(kScheme.size());
    size_t slash = rest.find('/');
    std::string_view hostPort = rest.substr(0, slash);
    if (slash != std::string_view::npos) {
        std::string db(rest.substr(slash + 1));
        if (!db.empty()) {
            char *end = nullptr;
            long n = std::strtol(db.c_str(), &end, 10);
            if (*end || n < 0 || n > 1000) return "'" + a.text + "': the database must be a number from 0 to 1000" + shape;
            a.db = static_cast<int>(n);
        }
    }
    if (hostPort.find('@') != std::string_view::npos)
        return "'" + a.text + "': credentials in the URL are not supported; run Redis on a private network" + shape;
    size_t colon = hostPort.rfind(':');
    if (colon != std::string_view::npos && hostPort.find(']') == std::string_view::npos) {
        std::string port(hostPort.substr(colon + 1));
        char *end = nullptr;
        long n = std::strtol(port.c_str(), &end, 10);
        if (port.empty() || *end || n < 1 || n > 65535) return "'" + a.text + "': bad port" + shape;
        a.port = static_cast<int>(n);
        hostPort = hostPort.substr(0, colon);
    }
    if (hostPort.size() >= 2 && hostPort.front() == '[' && hostPort.back() == ']') hostPort = hostPort.substr(1, hostPort.size() - 2);
    if (hostPort.empty()) return "'" + a.text + "': no host" + shape;
    a.host = std::string(hostPort);
    return a;
}

void RedisReplyDeleter::operator()(redisReply *r) const { freeReplyObject(r); }

bool replyIsError(const redisReply *r) { return !r || r->type == REDIS_REPLY_ERROR; }
std::string replyString(const redisReply *r) {
    if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR))
        return std::string(r->str, r->len);
    return {};
}
long long replyInteger(const redisReply *r) { return r && r->type == REDIS_REPLY_INTEGER ? r->integer : 0; }
size_t replyElements(const redisReply *r) { return r && r->type == REDIS_REPLY_ARRAY ? r->elements : 0; }
const redisReply *replyElement(const redisReply *r, size_t i) { return i < replyElements(r) ? r->element[i] : nullptr; }

RedisConnection::RedisConnection(RedisAddress address, std::chrono::milliseconds timeout)
    : address_(std::move(address)), timeout_(timeout) {}

RedisConnection::~RedisConnection() {
    if (ctx_) redisFree(ctx_);
}

void RedisConnection::drop(const std::string &why) {
    error_ = "Redis at " + address_.host + ":" + std::to_string(address_.port) + ": " + why;
    if (ctx_) redisFree(ctx_);
    ctx_ = nullptr;
}

bool RedisConnection::ensureConnected() {
    if (ctx_) return true;
    // A dead Redis must not turn every caller into a connect attempt: retry at most every 200 ms.
    auto now = std::chrono::steady_clock::now();
    if (now < nextAttempt_) return false;
    nextAttempt_ = now + std::chrono::milliseconds(200);
    timeval tv{static_cast<time_t>(timeout_.count() / 1000), static_cast<suseconds_t>((timeout_.count() % 1000) * 1000)};
    redisContext *c = redisConnectWithTimeout(address_.host.c_str(), address_.port, tv);
    if (!c || c->err) {
        std::string why = c ? c->errstr : "out of memory";
        if (c) redisFree(c);
        error_ = "Redis at " + address_.host + ":" + std::to_string(address_.port) + ": " + why;
        return false;
    }
    redisSetTimeout(c, tv);
    ctx_ = c;
    if (address_.db != 0) {
        RedisReply r(static_cast<redisReply *>(redisCommand(ctx_, "SELECT %d", address_.db)));
        if (!r || replyIsError(r.get())) {
            drop("SELECT " + std::to_string(address_.db) + " failed: " + (r ? replyString(r.get()) : std::string(ctx_ ? ctx_->errstr : "")));
            return false;
        }
    }
    ++generation_;
    error_.clear();
    return true;
}

RedisReply RedisConnection::command(const std::vector<std::string> &args) {
    for (int attempt = 0; attempt < 2; ++attempt) {
        if (!ensureConnected()) return nullptr;
        std::vector<const char *> argv;
        std::vector<size_t> lens;
        for (const auto &a : args) {
            argv.push_back(a.data());
            lens.push_back(a.size());
        }
        auto *r = static_cast<redisReply *>(redisCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data()));
        if (r) return RedisReply(r);
        drop(ctx_->errstr[0] ? ctx_->errstr : "connection lost");
        nextAttempt_ = {};  // the retry reconnects at once
    }
    return nullptr;
}

std::vector<RedisReply> RedisConnection::pipeline(const std::vector<std::vector<std::string>> &commands) {
    for (int attempt = 0; attempt < 2; ++attempt) {
        if (!ensureConnected()) return {};
        for (const auto &args : commands) {
            std::vector<const char *> argv;
            std::vector<size_t> lens;
            for (const auto &a : args) {
                argv.push_back(a.data());
                lens.push_back(a.size());
            }
            redisAppendCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data());
        }
        std::vector<RedisReply> replies;
        replies.reserve(commands.size());
        bool ok = true;
        for (size_t i = 0; i < commands.size(); ++i) {
            void *r = nullptr;
            if (redisGetReply(ctx_, &r) != REDIS_OK || !r) {
                ok = false;
                break;
            }
            replies.emplace_back(static_cast<redisReply *>(r));
        }
        if (ok) return replies;
        drop(ctx_->errstr[0] ? ctx_->errstr : "connection lost");
        nextAttempt_ = {};
    }
    return {};
}

RedisPool::RedisPool(RedisAddress address, size_t max) : address_(std::move(address)), max_(max) {}

std::unique_ptr<RedisConnection> RedisPool::take() {
    std::unique_lock lock(mutex_);
    if (!free_.empty()) {
        auto c = std::move(free_.back());
        free_.pop_back();
        return c;
    }
    ++open_;  // beyond `max` we still open one: a blocked caller is worse than one more socket
    return std::make_unique<RedisConnection>(address_);
}

void RedisPool::give(std::unique_ptr<RedisConnection> c) {
    std::lock_guard lock(mutex_);
    if (free_.size() < max_) free_.push_back(std::move(c));
    else --open_;
}

RedisReply RedisPool::command(const std::vector<std::string> &args, std::string *error) {
    auto c = take();
    RedisReply r = c->command(args);
    if (!r && error) *error = c->error();
    give(std::move(c));
    return r;
}

std::vector<RedisReply> RedisPool::pipeline(const std::vector<std::vector<std::string>> &commands, std::string *error) {
    auto c = take();
    auto r = c->pipeline(commands);
    if (r.empty() && error) *error = c->error();
    give(std::move(c));
    return r;
}

}  // namespace wsgw
