// lws-echo-ref: the reference point for wsgw benchmarks. A bare libwebsockets echo server written the
// naive way: on RECEIVE the message (fragments accumulated until lws_is_final_fragment) is copied into a
// per-connection FIFO and a writable callback is requested; each SERVER_WRITEABLE does exactly one
// lws_write of the head message and asks again while more are queued. No gateway, no routing, no storage:
// whatever wsgw costs on top of this is the gateway's own overhead.
//
// usage: lws-echo-ref [--port P] [--libev | --libuv]
//   --port P   listen on 127.0.0.1:P (default 0: any free port); prints {"listening":PORT} once bound
//   --libev    run on libev through lws' event-lib plugin instead of lws' default poll loop
//   --libuv    the same on libuv (lws' libuv plugin, which handles SIGINT and SIGTERM itself)
// SIGTERM / SIGINT end it cleanly.
#define _GNU_SOURCE
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define MAX_MESSAGE_BYTES (16u << 20)  // 16 MiB; larger messages are closed with 1009
#define RX_BUFFER_BYTES 65536          // lws' per-connection receive buffer (a message may span many)
#define PAUSE_RX_BYTES (64u << 20)     // stop reading a connection while this much echo is queued on it
#define RESUME_RX_BYTES (16u << 20)

struct msg {
    struct msg *next;
    size_t len;
    int binary;
    unsigned char buf[];  // LWS_PRE bytes of headroom, then the payload
};

struct pss {
    struct msg *head, *tail;
    size_t queued_bytes;
    int rx_paused;
    unsigned char *acc;  // fragments of the message being received
    size_t acc_len, acc_cap;
    int acc_binary;
};

static volatile sig_atomic_t interrupted;
static struct lws_context *volatile context;
enum event_lib { EL_POLL, EL_LIBEV, EL_LIBUV };
static enum event_lib event_lib = EL_POLL;

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
    if (event_lib == EL_LIBEV) {
        // lws' libev loop has a SIGINT watcher that breaks ev_run; route SIGTERM to it.
        raise(SIGINT);
    } else if (context) {
        lws_cancel_service(context);
    }
}

static int enqueue(struct pss *p, const unsigned char *data, size_t len, int binary) {
    struct msg *m = malloc(sizeof *m + LWS_PRE + len);
    if (!m) return -1;
    m->next = NULL;
    m->len = len;
    m->binary = binary;
    if (len) memcpy(m->buf + LWS_PRE, data, len);
    if (p->tail) p->tail->next = m;
    else p->head = m;
    p->tail = m;
    p->queued_bytes += len;
    return 0;
}

static void free_all(struct pss *p) {
    while (p->head) {
        struct msg *m = p->head;
        p->head = m->next;
        free(m);
    }
    p->tail = NULL;
    p->queued_bytes = 0;
    free(p->acc);
    p->acc = NULL;
    p->acc_len = p->acc_cap = 0;
}

static int callback_echo(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
    struct pss *p = user;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        memset(p, 0, sizeof *p);
        return 0;

    case LWS_CALLBACK_RECEIVE: {
        int first = lws_is_first_fragment(wsi), final = lws_is_final_fragment(wsi);
        if (first) {
            p->acc_len = 0;
            p->acc_binary = lws_frame_is_binary(wsi);
        }
        if (first && final) {  // the whole message in one callback: copy it once
            if (enqueue(p, in, len, p->acc_binary)) return -1;
        } else {
            if (p->acc_len + len > MAX_MESSAGE_BYTES) {
                static const char why[] = "message over 16 MiB";
                lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)why, sizeof why - 1);
                return -1;
            }
            if (p->acc_len + len > p->acc_cap) {
                size_t cap = p->acc_cap ? p->acc_cap : 4096;
                while (cap < p->acc_len + len) cap *= 2;
                unsigned char *n = realloc(p->acc, cap);
                if (!n) return -1;
                p->acc = n;
                p->acc_cap = cap;
            }
            if (len) memcpy(p->acc + p->acc_len, in, len);
            p->acc_len += len;
            if (!final) return 0;
            if (enqueue(p, p->acc, p->acc_len, p->acc_binary)) return -1;
            p->acc_len = 0;
        }
        if (!p->rx_paused && p->queued_bytes > PAUSE_RX_BYTES) {
            p->rx_paused = 1;
            lws_rx_flow_control(wsi, 0);
        }
        lws_callback_on_writable(wsi);
        return 0;
    }

    case LWS_CALLBACK_SERVER_WRITEABLE: {
        struct msg *m = p->head;
        if (!m) return 0;
        int n = lws_write(wsi, m->buf + LWS_PRE, m->len, m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
        if (n < (int)m->len) return -1;
        p->head = m->next;
        if (!p->head) p->tail = NULL;
        p->queued_bytes -= m->len;
        free(m);
        if (p->rx_paused && p->queued_bytes < RESUME_RX_BYTES) {
            p->rx_paused = 0;
            lws_rx_flow_control(wsi, 1);
        }
        if (p->head) lws_callback_on_writable(wsi);
        return 0;
    }

    case LWS_CALLBACK_CLOSED:
        free_all(p);
        return 0;

    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

// The first entry is the default: it serves connections that ask for no subprotocol, on any path.
static const struct lws_protocols protocols[] = {
    {.name = "lws-echo-ref",
     .callback = callback_echo,
     .per_session_data_size = sizeof(struct pss),
     .rx_buffer_size = RX_BUFFER_BYTES},
    {.name = NULL, .callback = NULL},
};

static void usage(void) {
    fprintf(stderr, "usage: lws-echo-ref [--port P] [--libev | --libuv]\n");
    exit(2);
}

int main(int argc, char **argv) {
    long port = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) {
            char *end = NULL;
            port = strtol(argv[++i], &end, 10);
            if (!*argv[i] || *end || port < 0 || port > 65535) {
                fprintf(stderr, "lws-echo-ref: --port: expected 0 to 65535, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--libev")) {
            event_lib = EL_LIBEV;
        } else if (!strcmp(argv[i], "--libuv")) {
            event_lib = EL_LIBUV;
        } else {
            usage();
        }
    }

    // lws sizes its fd table from RLIMIT_NOFILE at context creation: take the hard limit first.
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    lws_set_log_level(LLL_ERR | LLL_WARN, NULL);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = (int)port;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.pt_serv_buf_size = RX_BUFFER_BYTES;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    if (event_lib == EL_LIBEV) info.options |= LWS_SERVER_OPTION_LIBEV;
    if (event_lib == EL_LIBUV) info.options |= LWS_SERVER_OPTION_LIBUV;

    struct lws_context *ctx = lws_create_context(&info);
    if (!ctx) {
        if (event_lib == EL_LIBEV)
            fprintf(stderr, "lws-echo-ref: could not start on libev: the lws event-lib plugin "
                            "(libwebsockets-evlib_ev.so, Debian package libwebsockets-evlib-ev) did not load, "
                            "or the port is taken\n");
        else if (event_lib == EL_LIBUV)
            fprintf(stderr, "lws-echo-ref: could not start on libuv: the lws event-lib plugin "
                            "(libwebsockets-evlib_uv.so, Debian package libwebsockets-evlib-uv) did not load, "
                            "or the port is taken\n");
        else
            fprintf(stderr, "lws-echo-ref: lws_create_context failed (is port %ld taken?)\n", port);
        return 1;
    }
    context = ctx;

    struct lws_vhost *vh = lws_get_vhost_by_name(ctx, "default");
    int bound = vh ? lws_get_vhost_listen_port(vh) : -1;
    if (bound <= 0) {
        fprintf(stderr, "lws-echo-ref: could not learn the listening port\n");
        lws_context_destroy(ctx);
        return 1;
    }
    printf("{\"listening\":%d}\n", bound);
    fflush(stdout);

    while (!interrupted) {
        if (lws_service(ctx, 0) < 0) break;
        // With an event library lws_service() runs the loop until it is broken (SIGINT watcher).
        if (event_lib != EL_POLL) break;
    }

    context = NULL;
    lws_context_destroy(ctx);
    return 0;
}
