// The C entry points of wsgw_host_api (<wsgw/handler.h>), written once for both sides that offer it: the
// gateway's own (host_api.cpp, for in-process plugins) and an isolated worker's (plugin_host.cpp, which
// forwards each call over its socket). What a plugin may pass is checked here, and here only: NULL
// connection IDs, groups and data (data may be NULL only when its length is 0), the empty group name of
// send_to_group. Every entry point is noexcept: whatever the side throws (bad_alloc under a worker's
// memory limit, a broken promise) becomes the call's error value instead of unwinding through the
// plugin's C frames. A side says what a checked call does by implementing HostOperations.
#pragma once

#include <wsgw/handler.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace wsgw {

// What one side does for a call whose arguments passed the checks. The pointers are non-NULL and the
// C strings NUL-terminated; a method may throw (the entry point turns that into the error value).
class HostOperations {
public:
    virtual ~HostOperations() = default;
    virtual int post(const char *connectionId, std::string_view data, bool binary) = 0;
    virtual int deleteConnection(const char *connectionId) = 0;
    // The GET /@connections/{id} JSON into `json`; false when the connection is unknown.
    virtual bool describe(const char *connectionId, std::string &json) = 0;
    // The event JSON of `ev` while it is being handled; NULL for any other event.
    virtual const char *eventJson(const wsgw_event &ev, size_t *len) = 0;
    virtual void log(int level, const char *message) = 0;
    virtual int addToGroup(const char *group, const char *connectionId) = 0;
    virtual int removeFromGroup(const char *group, const char *connectionId) = 0;
    virtual int sendToGroup(const char *group, std::string_view data, bool binary) = 0;  // group is not empty
    virtual int sendToAll(std::string_view data, bool binary) = 0;
#ifdef WSGW_HOST_API_HAS_USERS
    virtual int sendToUser(const char *userId, std::string_view data, bool binary) = 0;  // userId is not empty
#endif
};

// get_connection's contract: copy as much as fits (NUL-terminated when all of it does), return the length.
long copyOut(const std::string &text, char *buf, size_t cap);

// The checked calls. `ops` NULL (no host behind the plugin's wsgw_host pointer) fails like a bad argument.
int checkedPost(HostOperations *ops, const char *connectionId, const void *data, size_t len, int isBinary) noexcept;
int checkedDelete(HostOperations *ops, const char *connectionId) noexcept;
long checkedGet(HostOperations *ops, const char *connectionId, char *buf, size_t cap) noexcept;
// The gateway's answer to a worker's Get: the whole JSON, false when unknown (or on any failure).
bool checkedDescribe(HostOperations *ops, const char *connectionId, std::string &json) noexcept;
const char *checkedEventJson(HostOperations *ops, const wsgw_event *ev, size_t *len) noexcept;
void checkedLog(HostOperations *ops, int level, const char *message) noexcept;
int checkedAddToGroup(HostOperations *ops, const char *group, const char *connectionId) noexcept;
int checkedRemoveFromGroup(HostOperations *ops, const char *group, const char *connectionId) noexcept;
int checkedSendToGroup(HostOperations *ops, const char *group, const void *data, size_t len, int isBinary) noexcept;
int checkedSendToAll(HostOperations *ops, const void *data, size_t len, int isBinary) noexcept;
#ifdef WSGW_HOST_API_HAS_USERS
int checkedSendToUser(HostOperations *ops, const char *userId, const void *data, size_t len, int isBinary) noexcept;
#endif

// Fills `api` (size, ABI version, host pointer and every function) with entry points that find the side's
// operations with `OperationsOf(host pointer the plugin passed)` and make the checked call. A template
// because a C function pointer carries no state: each side gets its own set of entry points.
template <HostOperations *(*OperationsOf)(wsgw_host *)>
void fillHostApi(wsgw_host_api &api, wsgw_host *host) {
    api.size = sizeof(wsgw_host_api);
    api.abi_version = WSGW_ABI_VERSION;
    api.host = host;
    api.post_to_connection = [](wsgw_host *h, const char *id, const void *data, size_t len, int isBinary) noexcept {
        return checkedPost(OperationsOf(h), id, data, len, isBinary);
    };
    api.delete_connection = [](wsgw_host *h, const char *id) noexcept { return checkedDelete(OperationsOf(h), id); };
    api.get_connection = [](wsgw_host *h, const char *id, char *buf, size_t cap) noexcept {
        return checkedGet(OperationsOf(h), id, buf, cap);
    };
    api.event_json = [](wsgw_host *h, const wsgw_event *ev, size_t *len) noexcept {
        return checkedEventJson(OperationsOf(h), ev, len);
    };
    api.log = [](wsgw_host *h, int level, const char *message) noexcept { checkedLog(OperationsOf(h), level, message); };
    api.add_to_group = [](wsgw_host *h, const char *group, const char *id) noexcept {
        return checkedAddToGroup(OperationsOf(h), group, id);
    };
    api.remove_from_group = [](wsgw_host *h, const char *group, const char *id) noexcept {
        return checkedRemoveFromGroup(OperationsOf(h), group, id);
    };
    api.send_to_group = [](wsgw_host *h, const char *group, const void *data, size_t len, int isBinary) noexcept {
        return checkedSendToGroup(OperationsOf(h), group, data, len, isBinary);
    };
    api.send_to_all = [](wsgw_host *h, const void *data, size_t len, int isBinary) noexcept {
        return checkedSendToAll(OperationsOf(h), data, len, isBinary);
    };
#ifdef WSGW_HOST_API_HAS_USERS
    api.send_to_user = [](wsgw_host *h, const char *user, const void *data, size_t len, int isBinary) noexcept {
        return checkedSendToUser(OperationsOf(h), user, data, len, isBinary);
    };
#endif
}

}  // namespace wsgw
