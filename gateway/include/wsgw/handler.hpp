// <wsgw/handler.hpp>: a thin C++20 wrapper over the handler plugin ABI of <wsgw/handler.h>. Since wsgw 0.4.
//
// Derive from wsgw::Handler, override what you need, export the class with WSGW_HANDLER_CLASS:
//
//     class Hello : public wsgw::Handler {
//     public:
//         Hello(wsgw::Host host, std::string_view configJson) : Handler(host) {}
//         void onMessage(const wsgw::Event &event, std::string_view body, wsgw::Response &response) override {
//             response.send("hello, " + std::string(body));
//         }
//     };
//     WSGW_HANDLER_CLASS(Hello, "hello")
//
// One object of the class is made per handler instance of routes.json (its constructor is the C ABI's
// init, its destructor shutdown), and its methods run in parallel for different connections: state
// shared across connections needs its own lock. Everything else in <wsgw/handler.h> holds as written there.
//
// Exceptions. Nothing may be thrown across the C ABI, so the wrapper catches everything at the boundary:
//   - thrown out of onConnect/onMessage/onDisconnect: the event is an integration error (the client gets
//     "Internal server error", a $connect is refused with 502) and the gateway's log gets an error line
//     "<Class>::onMessage threw: <what()>";
//   - thrown out of the constructor: the instance stays loaded but every event is an integration error,
//     with the constructor's what() logged at load and again with each event (the C ABI's init has no
//     way to refuse, and an exception must not cross it);
//   - thrown out of the destructor: swallowed (destructors are noexcept anyway).
// Host methods never throw except std::bad_alloc from the strings they build; Response::fail is the
// way to fail an event without an exception.
//
// How long each pointer stays valid (the string_views are views, not copies):
//   - Event, its routeKey(), connectionId(), body (the std::string_view argument) and json(): until the
//     method returns. Copy what you keep (a std::string of the connection ID, say).
//   - Response: during the method; what send() and reject() were given is copied, so a temporary is fine.
//     The copy lives in a per-thread buffer until the gateway has copied it, right after the method returns.
//   - Host: a small value holding the host API pointer; valid from the constructor until the destructor
//     returns, from any thread. Arguments given to its methods are copied by the gateway during the call.
//
// Versions: a plugin built with this header loads into any gateway of ABI version 1. What an older
// gateway lacks answers as such: the group methods need 0.3 (hasGroups()), sendToUser 0.4 (hasUsers()),
// Response::relayTo 0.2. The "since" notes count in the gateway's version, WSGW_VERSION, which
// `wsgw --version` prints (tests/integration/header-versions.test.mjs holds the two together).
#ifndef WSGW_HANDLER_HPP
#define WSGW_HANDLER_HPP

#include <wsgw/handler.h>

#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace wsgw {

namespace detail {
// Where a Response copies what it is given. The gateway reads the response right after handle() returns,
// on the same thread: a per-thread buffer outlives the method and is not shared with other connections'
// invocations. (It lives in Entry, below, not in a static local of an inline function: such a local
// would be an STB_GNU_UNIQUE symbol, which keeps dlclose from unloading an old version of the plugin.)
struct ResponseBuffers {
    std::string body, url, headers;
};
}  // namespace detail

// The host API's answers (WSGW_OK, ...): see the table in docs/handlers.md.
enum class Result : int {
    Ok = WSGW_OK,
    Gone = WSGW_GONE,
    TooLarge = WSGW_TOO_LARGE,
    Throttled = WSGW_THROTTLED,
    Error = WSGW_ERROR,
};

enum class LogLevel : int { Debug = WSGW_LOG_DEBUG, Info = WSGW_LOG_INFO, Warn = WSGW_LOG_WARN, Error = WSGW_LOG_ERROR };

// The host API as methods. Thread-safe, like the functions it calls: use it from the handler's methods,
// its constructor, or threads the handler starts (and stops in its destructor).
class Host {
public:
    explicit Host(const wsgw_host_api *api) : api_(api) {}

    // One message to the connection: text when `data` is valid UTF-8 and `binary` is false, else binary.
    Result post(std::string_view connectionId, std::string_view data, bool binary = false) const {
        return Result(api_->post_to_connection(api_->host, std::string(connectionId).c_str(), data.data(), data.size(), binary));
    }
    // Closes the connection with 1000; its $disconnect runs.
    Result disconnect(std::string_view connectionId) const {
        return Result(api_->delete_connection(api_->host, std::string(connectionId).c_str()));
    }
    // GET /@connections/{id}'s JSON; nullopt for an unknown connection.
    std::optional<std::string> connection(std::string_view connectionId) const {
        std::string id(connectionId), json(256, '\0');
        for (int attempt = 0; attempt < 4; ++attempt) {  // grows at most a few times: the JSON is small
            long len = api_->get_connection(api_->host, id.c_str(), json.data(), json.size());
            if (len < 0) return std::nullopt;
            if (static_cast<size_t>(len) < json.size()) {
                json.resize(static_cast<size_t>(len));
                return json;
            }
            json.assign(static_cast<size_t>(len) + 1, '\0');
        }
        return std::nullopt;
    }
    void log(LogLevel level, std::string_view message) const {
        api_->log(api_->host, static_cast<int>(level), std::string(message).c_str());
    }

    // Groups (since 0.3): false on an older gateway, whose group methods below answer Result::Error.
    bool hasGroups() const { return WSGW_HOST_API_HAS_GROUPS(api_); }
    Result addToGroup(std::string_view group, std::string_view connectionId) const {
        if (!hasGroups()) return Result::Error;
        return Result(api_->add_to_group(api_->host, std::string(group).c_str(), std::string(connectionId).c_str()));
    }
    Result removeFromGroup(std::string_view group, std::string_view connectionId) const {
        if (!hasGroups()) return Result::Error;
        return Result(api_->remove_from_group(api_->host, std::string(group).c_str(), std::string(connectionId).c_str()));
    }
    Result sendToGroup(std::string_view group, std::string_view data, bool binary = false) const {
        if (!hasGroups()) return Result::Error;
        return Result(api_->send_to_group(api_->host, std::string(group).c_str(), data.data(), data.size(), binary));
    }
    Result sendToAll(std::string_view data, bool binary = false) const {
        if (!hasGroups()) return Result::Error;
        return Result(api_->send_to_all(api_->host, data.data(), data.size(), binary));
    }

    // Users (since 0.4): every connection of a user, on every node (an Azure Web PubSub client's token
    // "sub"). False when the gateway does not offer it; sendToUser then answers Result::Error.
    bool hasUsers() const { return WSGW_HOST_API_HAS_USERS(api_); }
    Result sendToUser(std::string_view userId, std::string_view data, bool binary = false) const {
        if (!hasUsers()) return Result::Error;
        return Result(api_->send_to_user(api_->host, std::string(userId).c_str(), data.data(), data.size(), binary));
    }

    // The C API, for what this wrapper does not cover.
    const wsgw_host_api *api() const { return api_; }

private:
    const wsgw_host_api *api_;
};

// The event being handled; valid until the method it was given to returns.
class Event {
public:
    Event(const wsgw_event &ev, Host host) : ev_(ev), host_(host) {}
    wsgw_event_type type() const { return ev_.type; }
    std::string_view routeKey() const { return ev_.route_key ? ev_.route_key : ""; }
    std::string_view connectionId() const { return ev_.connection_id ? ev_.connection_id : ""; }
    bool isBinary() const { return ev_.is_binary != 0; }
    // The event JSON (docs/event.md): headers, query, identity, authorizer context, close code. Empty if
    // the gateway has none for this event.
    std::string_view json() const {
        size_t len = 0;
        const char *text = host_.api()->event_json(host_.api()->host, &ev_, &len);
        return text ? std::string_view(text, len) : std::string_view();
    }
    const wsgw_event &raw() const { return ev_; }

private:
    const wsgw_event &ev_;
    Host host_;
};

// What the handler answers. On a message route with "routeResponse": true, send() is the reply; on
// $connect, reject() refuses the upgrade. Untouched, it accepts and sends nothing.
class Response {
public:
    Response(wsgw_response &resp, detail::ResponseBuffers &buffers) : resp_(resp), buffers_(buffers) {}

    void send(std::string_view body, bool binary = false) {
        buffers_.body.assign(body.data(), body.size());
        resp_.body = buffers_.body.data();  // never NULL, so an empty body is an empty message
        resp_.body_len = body.size();
        resp_.is_binary = binary;
    }
    // $connect only: refuse the upgrade with `status` (outside 200-299) and `body` as the HTTP body.
    void reject(int status, std::string_view body = {}) {
        send(body);
        resp_.status_code = status;
    }
    // $connect only, in-process handlers only (since 0.2): relay the connection to a WebSocket backend
    // ("ws://host:port/path"), with extra upgrade headers as "Name: value\r\n" lines. False when the
    // gateway is older than that.
    bool relayTo(std::string_view backendUrl, std::string_view backendHeaders = {}) {
        if (!WSGW_RESPONSE_HAS_BACKEND(&resp_)) return false;
        buffers_.url.assign(backendUrl.data(), backendUrl.size());
        buffers_.headers.assign(backendHeaders.data(), backendHeaders.size());
        resp_.backend_url = buffers_.url.c_str();
        resp_.backend_headers = backendHeaders.empty() ? nullptr : buffers_.headers.c_str();
        return true;
    }
    // Fails the event without an exception: an integration error, `why` in the log line.
    void fail(std::string_view why) { failure_.emplace(why); }

    bool failed() const { return failure_.has_value(); }
    const std::string &failure() const { return *failure_; }
    wsgw_response &raw() { return resp_; }

private:
    wsgw_response &resp_;
    detail::ResponseBuffers &buffers_;
    std::optional<std::string> failure_;
};

class Handler {
public:
    explicit Handler(Host host) : host_(host) {}
    virtual ~Handler() = default;
    Handler(const Handler &) = delete;
    Handler &operator=(const Handler &) = delete;

    // $connect: return to accept, response.reject(...) to refuse.
    virtual void onConnect(const Event &event, Response &response) {
        (void)event;
        (void)response;
    }
    // A message routed to this handler; `body` is the message (binary when event.isBinary()).
    virtual void onMessage(const Event &event, std::string_view body, Response &response) {
        (void)event;
        (void)body;
        (void)response;
    }
    // $disconnect: the connection is closed already; the event JSON says how (docs/event.md).
    virtual void onDisconnect(const Event &event) { (void)event; }

    const Host &host() const { return host_; }

private:
    Host host_;
};

namespace detail {

// One handler instance of routes.json: the object, or why it could not be made.
struct Instance {
    Host host;
    Handler *handler = nullptr;
    std::string constructionError;
};

// Logs "<what>: <reason>" at error level; a line lost to bad_alloc is not worth more.
inline void logFailure(const Host &host, const char *what, const char *reason) noexcept {
    try {
        host.log(LogLevel::Error, std::string(what) + ": " + reason);
    } catch (...) {
    }
}

inline const char *reasonOf(std::exception_ptr e) noexcept {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception &ex) {
        return ex.what();
    } catch (...) {
        return "an exception that is not a std::exception";
    }
}

// The C entry points for the handler class T named Name. WSGW_HANDLER_CLASS instantiates it with a Name
// of internal linkage, so nothing of it is a weak or unique symbol shared across plugins or versions.
template <class T, const char *Name> struct Entry {
    static_assert(std::is_base_of_v<Handler, T>, "a wsgw handler class derives from wsgw::Handler");
    static constexpr const char *name = Name;
    static thread_local ResponseBuffers buffers;

    static wsgw_handler descriptor() noexcept { return {sizeof(wsgw_handler), WSGW_ABI_VERSION, Name, &init, &handle, &shutdown}; }

    static void *init(const wsgw_host_api *api, const char *configJson) noexcept {
        Instance *instance = nullptr;
        try {
            instance = new Instance{Host(api), nullptr, {}};
        } catch (...) {
            return nullptr;  // no memory for the instance: every event fails (handle sees NULL)
        }
        try {
            instance->handler = new T(instance->host, std::string_view(configJson ? configJson : "{}"));
        } catch (...) {
            const char *reason = reasonOf(std::current_exception());
            try {
                instance->constructionError = reason;
            } catch (...) {
            }
            std::string what = std::string(name) + " constructor threw";
            logFailure(instance->host, what.c_str(), reason);
        }
        return instance;
    }

    static int handle(void *state, const wsgw_event *ev, wsgw_response *resp) noexcept {
        auto *instance = static_cast<Instance *>(state);
        if (!instance || !ev || !resp) return 1;
        if (!instance->handler) {
            logFailure(instance->host, "handler not constructed", instance->constructionError.c_str());
            return 1;
        }
        const char *method = ev->type == WSGW_CONNECT ? "::onConnect" : ev->type == WSGW_MESSAGE ? "::onMessage" : "::onDisconnect";
        try {
            Event event(*ev, instance->host);
            Response response(*resp, buffers);
            switch (ev->type) {
            case WSGW_CONNECT: instance->handler->onConnect(event, response); break;
            case WSGW_MESSAGE:
                instance->handler->onMessage(event, std::string_view(ev->body ? ev->body : "", ev->body ? ev->body_len : 0), response);
                break;
            case WSGW_DISCONNECT: instance->handler->onDisconnect(event); break;
            }
            if (!response.failed()) return 0;
            logFailure(instance->host, (std::string(name) + method + " failed").c_str(), response.failure().c_str());
            return 1;
        } catch (...) {
            const char *reason = reasonOf(std::current_exception());
            try {
                logFailure(instance->host, (std::string(name) + method + " threw").c_str(), reason);
            } catch (...) {
            }
            return 1;
        }
    }

    static void shutdown(void *state) noexcept {
        auto *instance = static_cast<Instance *>(state);
        if (!instance) return;
        try {
            delete instance->handler;
        } catch (...) {
        }
        delete instance;
    }
};

template <class T, const char *Name> thread_local ResponseBuffers Entry<T, Name>::buffers;

}  // namespace detail

}  // namespace wsgw

// Exports the plugin's one symbol, wsgw_handler_v1, for the handler class CLASS (constructed as
// CLASS(wsgw::Host, std::string_view configJson)) with the descriptor name NAME (a string literal: it names
// the handler in the gateway's logs and metrics, and in the wrapper's log lines). Use it once per plugin,
// at namespace scope.
#define WSGW_HANDLER_CLASS(CLASS, NAME)                                                                    \
    namespace {                                                                                             \
    constexpr char wsgwHandlerName_[] = NAME;                                                               \
    }                                                                                                       \
    extern "C" WSGW_EXPORT const wsgw_handler *wsgw_handler_v1(void) {                                      \
        static const wsgw_handler descriptor = ::wsgw::detail::Entry<CLASS, wsgwHandlerName_>::descriptor(); \
        return &descriptor;                                                                                 \
    }

#endif  // WSGW_HANDLER_HPP
