// The host API's argument checks and exception barrier, once for both sides (see host_api_checks.h).
#include "host_api_checks.h"

#include <cstring>

namespace wsgw {

namespace {

// Data may be NULL only when there is none of it.
bool validData(const void *data, size_t len) { return data || len == 0; }

std::string_view bytesOf(const void *data, size_t len) {
    return len ? std::string_view(static_cast<const char *>(data), len) : std::string_view();
}

}  // namespace

long copyOut(const std::string &text, char *buf, size_t cap) {
    if (buf && cap > text.size()) {
        std::memcpy(buf, text.data(), text.size());
        buf[text.size()] = '\0';
    } else if (buf && cap > 0) {
        std::memcpy(buf, text.data(), cap);
    }
    return static_cast<long>(text.size());
}

int checkedPost(HostOperations *ops, const char *connectionId, const void *data, size_t len, int isBinary) noexcept {
    if (!ops || !connectionId || !validData(data, len)) return WSGW_ERROR;
    try {
        return ops->post(connectionId, bytesOf(data, len), isBinary != 0);
    } catch (...) {
        return WSGW_ERROR;
    }
}

int checkedDelete(HostOperations *ops, const char *connectionId) noexcept {
    if (!ops || !connectionId) return WSGW_ERROR;
    try {
        return ops->deleteConnection(connectionId);
    } catch (...) {
        return WSGW_ERROR;
    }
}

bool checkedDescribe(HostOperations *ops, const char *connectionId, std::string &json) noexcept {
    if (!ops || !connectionId) return false;
    try {
        return ops->describe(connectionId, json);
    } catch (...) {
        return false;
    }
}

long checkedGet(HostOperations *ops, const char *connectionId, char *buf, size_t cap) noexcept {
    try {
        std::string json;
        if (!checkedDescribe(ops, connectionId, json)) return -1;
        return copyOut(json, buf, cap);
    } catch (...) {  // the string's own allocation
        return -1;
    }
}

const char *checkedEventJson(HostOperations *ops, const wsgw_event *ev, size_t *len) noexcept {
    if (!ops || !ev) return nullptr;
    try {
        return ops->eventJson(*ev, len);
    } catch (...) {
        return nullptr;
    }
}

void checkedLog(HostOperations *ops, int level, const char *message) noexcept {
    if (!ops) return;
    try {
        ops->log(level, message ? message : "");
    } catch (...) {  // a log line lost to bad_alloc is not worth failing the caller
    }
}

int checkedAddToGroup(HostOperations *ops, const char *group, const char *connectionId) noexcept {
    if (!ops || !group || !connectionId) return WSGW_ERROR;
    try {
        return ops->addToGroup(group, connectionId);
    } catch (...) {
        return WSGW_ERROR;
    }
}

int checkedRemoveFromGroup(HostOperations *ops, const char *group, const char *connectionId) noexcept {
    if (!ops || !group || !connectionId) return WSGW_ERROR;
    try {
        return ops->removeFromGroup(group, connectionId);
    } catch (...) {
        return WSGW_ERROR;
    }
}

int checkedSendToGroup(HostOperations *ops, const char *group, const void *data, size_t len, int isBinary) noexcept {
    // An empty name would mean every connection to the layer below; send_to_all is the way to say that.
    if (!ops || !group || !*group || !validData(data, len)) return WSGW_ERROR;
    try {
        return ops->sendToGroup(group, bytesOf(data, len), isBinary != 0);
    } catch (...) {
        return WSGW_ERROR;
    }
}

int checkedSendToAll(HostOperations *ops, const void *data, size_t len, int isBinary) noexcept {
    if (!ops || !validData(data, len)) return WSGW_ERROR;
    try {
        return ops->sendToAll(bytesOf(data, len), isBinary != 0);
    } catch (...) {
        return WSGW_ERROR;
    }
}

#ifdef WSGW_HOST_API_HAS_USERS
int checkedSendToUser(HostOperations *ops, const char *userId, const void *data, size_t len, int isBinary) noexcept {
    if (!ops || !userId || !*userId || !validData(data, len)) return WSGW_ERROR;
    try {
        return ops->sendToUser(userId, bytesOf(data, len), isBinary != 0);
    } catch (...) {
        return WSGW_ERROR;
    }
}
#endif

}  // namespace wsgw
