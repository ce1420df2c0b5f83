/* wsgw handler plugin ABI, version 1.
 *
 * A handler is a shared object that exports one C symbol, wsgw_handler_v1(), returning a descriptor the
 * gateway checks (size, abi_version) before calling anything else. Structs only ever grow at the end;
 * every struct starts with its size so that both sides can tell which fields the other one knows.
 *
 * Threading: handle() never runs on the network thread. Calls for one connection are serialised and come
 * in arrival order; calls for different connections run in parallel, so state shared across connections
 * needs its own lock. The host API functions are thread-safe and may be called from any thread, including
 * threads the plugin starts itself and from inside handle().
 */
#ifndef WSGW_HANDLER_H
#define WSGW_HANDLER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WSGW_ABI_VERSION 1

typedef struct wsgw_host wsgw_host; /* opaque */

typedef enum { WSGW_CONNECT = 1, WSGW_MESSAGE = 2, WSGW_DISCONNECT = 3 } wsgw_event_type;

enum { WSGW_OK = 0, WSGW_GONE = 1, WSGW_TOO_LARGE = 2, WSGW_THROTTLED = 3, WSGW_ERROR = 4 };

enum { WSGW_LOG_DEBUG = 0, WSGW_LOG_INFO = 1, WSGW_LOG_WARN = 2, WSGW_LOG_ERROR = 3 };

typedef struct wsgw_event {
    size_t size;               /* sizeof(wsgw_event) as the gateway built it */
    wsgw_event_type type;
    const char *route_key;     /* "$connect", "sendmessage", "$default", ... */
    const char *connection_id;
    const char *body;          /* MESSAGE only; not NUL-terminated */
    size_t body_len;
    int is_binary;
} wsgw_event;

typedef struct wsgw_response {
    size_t size;
    int status_code;           /* preset 200; on $connect a non-2xx rejects the upgrade */
    const char *body;          /* copied by the gateway when handle() returns */
    size_t body_len;
    int is_binary;
    /* Since wsgw 0.2 (check WSGW_RESPONSE_HAS_BACKEND first). On $connect only: relay this connection to
     * a WebSocket backend, "ws://host:port/path" (the client's path suffix and query are not added), with
     * extra upgrade headers as "Name: value\r\n" lines (NULL for none). Copied when handle() returns. */
    const char *backend_url;
    const char *backend_headers;
} wsgw_response;

/* Whether the gateway's wsgw_response has the backend fields (an older gateway passes a smaller struct). */
#define WSGW_RESPONSE_HAS_BACKEND(resp) \
    ((resp)->size >= offsetof(wsgw_response, backend_headers) + sizeof(const char *))

typedef struct wsgw_host_api {
    size_t size;
    uint32_t abi_version;
    wsgw_host *host;
    /* Return WSGW_OK, WSGW_GONE, WSGW_TOO_LARGE, ... */
    int (*post_to_connection)(wsgw_host *, const char *connection_id, const void *data, size_t len,
                              int is_binary);
    int (*delete_connection)(wsgw_host *, const char *connection_id);
    /* Writes the same JSON as GET /@connections/{id}; returns the full length (call again if > cap),
     * or -1 when the connection is unknown. The output is NUL-terminated when it fits. */
    long (*get_connection)(wsgw_host *, const char *connection_id, char *buf, size_t cap);
    /* The full API Gateway-shaped event JSON of this invocation, built on first use. Valid only while
     * handle() runs for that event. */
    const char *(*event_json)(wsgw_host *, const wsgw_event *, size_t *len);
    void (*log)(wsgw_host *, int level, const char *message);

    /* Since wsgw 0.3 (check WSGW_HOST_API_HAS_GROUPS first): named groups of connections, cluster-wide.
     * A group exists while it has members; a closed connection leaves its groups by itself. Group names
     * are 1 to 128 characters of A-Z a-z 0-9 - _ . ~ : @. Each call returns WSGW_OK; WSGW_GONE when the
     * connection is unknown or closed; WSGW_TOO_LARGE when the data is over the message limit or the
     * connection is already in 256 groups; WSGW_ERROR for a bad group name or when the cluster could not
     * be reached. Sends are text when the data is valid UTF-8 (unless is_binary), like post_to_connection,
     * and reach every member once, the caller's own connection included when it is a member. */
    int (*add_to_group)(wsgw_host *, const char *group, const char *connection_id);
    int (*remove_from_group)(wsgw_host *, const char *group, const char *connection_id);
    int (*send_to_group)(wsgw_host *, const char *group, const void *data, size_t len, int is_binary);
    int (*send_to_all)(wsgw_host *, const void *data, size_t len, int is_binary);

    /* Since wsgw 0.4 (check WSGW_HOST_API_HAS_USERS first): every connection of a user, on every node. A
     * user ID is the "sub" of an Azure Web PubSub client's access token (docs/webpubsub.md). Returns WSGW_OK
     * (also when the user has no connection), WSGW_TOO_LARGE over the message limit, WSGW_ERROR for an empty
     * user ID. Subprotocol clients get the data as a message from the server. */
    int (*send_to_user)(wsgw_host *, const char *user_id, const void *data, size_t len, int is_binary);
} wsgw_host_api;

#define WSGW_HOST_API_HAS_GROUPS(api) \
    ((api)->size >= offsetof(wsgw_host_api, send_to_all) + sizeof((api)->send_to_all) && (api)->send_to_all)
#define WSGW_HOST_API_HAS_USERS(api) \
    ((api)->size >= offsetof(wsgw_host_api, send_to_user) + sizeof((api)->send_to_user) && (api)->send_to_user)

typedef struct wsgw_handler {
    size_t size;
    uint32_t abi_version;
    const char *name;
    void *(*init)(const wsgw_host_api *api, const char *config_json);      /* optional */
    int (*handle)(void *state, const wsgw_event *ev, wsgw_response *resp); /* 0 = ok, else error */
    void (*shutdown)(void *state);                                         /* optional */
} wsgw_handler;

#if defined(__GNUC__)
#define WSGW_EXPORT __attribute__((visibility("default")))
#else
#define WSGW_EXPORT
#endif

/* The one exported symbol. Define it with WSGW_EXPORT so it stays visible under -fvisibility=hidden. */
WSGW_EXPORT const wsgw_handler *wsgw_handler_v1(void);

#ifdef __cplusplus
}
#endif

#endif /* WSGW_HANDLER_H */
