// wsgw-load: a WebSocket load generator on raw epoll and non-blocking sockets (no WebSocket library).
// It does the HTTP/1.1 upgrade itself, sends masked client frames and parses server frames, so the
// client costs little CPU next to the server under test. One JSON line on stdout at the end.
//
// Modes: echo, latency, connect, idle, post (see tools/bench/README.md). Every run is bounded by
// --seconds and by a hard stop at seconds + 30. Only 127.0.0.0/8 targets are accepted.
//
// wss:// URLs: each WebSocket connection runs an OpenSSL client (non-blocking, driven by the same epoll
// loop) between the TCP connect and the HTTP upgrade, and from then on every byte goes through
// SSL_write / SSL_read. The server's certificate is not verified unless --ca FILE is given (a loopback
// benchmark against a server the caller started; the usage text and README say so).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_FRAME_BYTES (64u << 20)     // refuse server frames over 64 MiB
#define MAX_HEAD_BYTES 16384            // HTTP response head limit
#define CONNECT_PARALLEL 128            // WebSocket setups in flight at once (echo, idle, post)
#define ATTEMPT_TIMEOUT_NS (5000000000ull)
#define CLOSE_WAIT_NS (1000000000ull)
#define DRAIN_NS (5000000000ull)
#define HARD_EXTRA_S 30

enum mode { M_ECHO, M_LATENCY, M_CONNECT, M_IDLE, M_POST };
static const char *const kModeNames[] = {"echo", "latency", "connect", "idle", "post"};

// CS_TLS: wss only, the TLS handshake between the TCP connect and the HTTP upgrade (CS_HANDSHAKE).
enum cstate { CS_FREE, CS_CONNECTING, CS_TLS, CS_HANDSHAKE, CS_OPEN, CS_CLOSING, CS_DONE };
enum ckind { CK_WS, CK_HTTP };
enum phase { PH_SETUP, PH_RUN, PH_DRAIN, PH_CLOSE, PH_END };

struct buf {
    char *p;
    size_t off, len, cap;
};

struct conn {
    int fd;
    SSL *ssl;                // wss: this connection's TLS session (NULL for ws:// and HTTP)
    int tls_read_wants_write;   // SSL_read asked for writability: retry the read on EPOLLOUT
    int tls_write_wants_read;   // SSL_write asked for readability: retry the flush on EPOLLIN
    enum ckind kind;
    enum cstate st;
    uint32_t events;  // epoll interest currently registered
    struct buf in, out;
    uint64_t t_start;   // connect() call
    uint64_t deadline;  // setup or close-wait deadline (0 = none)
    char accept[32];    // expected Sec-WebSocket-Accept
    // echo: send timestamps of messages in flight, FIFO
    uint64_t *ring;
    int ring_head, ring_count;
    // message assembly
    int in_msg, msg_opcode, msg_bad;
    uint64_t msg_len;
    int sent_close, got_close, established;
    // http
    int http_busy;
    uint64_t http_t0;
};

static struct {
    enum mode mode;
    const char *url, *mgmt_url, *ready_file, *ca_file;
    int tls;             // --url is wss://
    SSL_CTX *ssl_ctx;
    int connections, inflight, body_bytes, targets, source_addresses;
    double seconds;
    long long max_messages;
    struct sockaddr_in ws_addr, http_addr;
    char ws_hostport[128], ws_path[1024], http_hostport[128];
} cfg;

static struct {
    int ep;
    enum mode mode;
    struct conn *conns;
    int nconns;
    enum phase phase;
    uint64_t t_begin, t0, t_stop, hard_deadline, drain_deadline;
    int hard_stop;
    // counters
    long long errors, mismatches, lost, completed, sent, started, non200, delivered, delivered_total, ok_total;
    long long established, failed, close_timeouts;
    int ws_open_wanted, ws_started;
    char *body;       // echo body or post body
    size_t body_len;
    char **ids;       // post: target connection IDs
    int nids;
    long long rr;     // post: round-robin index
    uint64_t rng;
    int error_prints;
    int nws;              // WebSocket slots (the rest of conns are HTTP, post mode)
    int http_started, ids_learned;  // post mode's setup steps done
} g;

static volatile sig_atomic_t stop_requested;  // SIGTERM / SIGINT: end the measured window now

static void on_stop_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

// --ready-file: written once the connections are set up and the measured window (idle: the hold) begins,
// so that a script can act while they are held. Written to FILE.tmp and renamed, so it is never seen half-written.
static void signal_ready(void) {
    if (!cfg.ready_file) return;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", cfg.ready_file);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "wsgw-load: %s: %s\n", tmp, strerror(errno));
        return;
    }
    fprintf(f, "{\"ready\":true,\"pid\":%d,\"established\":%lld,\"failed\":%lld}\n", (int)getpid(), g.established,
            g.failed);
    fclose(f);
    if (rename(tmp, cfg.ready_file) < 0) fprintf(stderr, "wsgw-load: rename %s: %s\n", tmp, strerror(errno));
}

// ---- small utilities ------------------------------------------------------------------------------

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(void) {
    uint64_t x = g.rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    g.rng = x;
    return x;
}

static void error_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void error_note(const char *fmt, ...) {
    g.errors++;
    if (g.error_prints >= 10) return;
    if (++g.error_prints == 10) {
        fprintf(stderr, "wsgw-load: (further errors not printed)\n");
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "wsgw-load: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "wsgw-load: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void buf_reserve(struct buf *b, size_t n) {
    if (b->off > 0 && (b->off == b->len || b->cap - b->len < n)) {
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    if (b->cap - b->len >= n) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < n) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) die("out of memory");
    b->p = p;
    b->cap = cap;
}

static void buf_append(struct buf *b, const void *data, size_t n) {
    buf_reserve(b, n);
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void buf_consume(struct buf *b, size_t n) {
    b->off += n;
    if (b->off >= b->len) b->off = b->len = 0;
}

static size_t buf_avail(const struct buf *b) { return b->len - b->off; }

// ---- latency histogram: 1 us buckets up to ~2.1 s, exact max ---------------------------------------

#define HIST_BUCKETS (1u << 21)
static uint32_t hist[HIST_BUCKETS];
static uint64_t hist_count, hist_max_us;

static void hist_add(uint64_t ns) {
    uint64_t us = ns / 1000;
    if (us > hist_max_us) hist_max_us = us;
    hist[us < HIST_BUCKETS ? us : HIST_BUCKETS - 1]++;
    hist_count++;
}

static uint64_t hist_pct(double p) {
    if (!hist_count) return 0;
    uint64_t rank = (uint64_t)(p * (double)hist_count + 0.999999);
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen >= rank) return i == HIST_BUCKETS - 1 ? hist_max_us : i;
    }
    return hist_max_us;
}

// ---- URL parsing: only 127.0.0.0/8 --------------------------------------------------------------------

static void parse_url(const char *url, const char *scheme, struct sockaddr_in *sa, char *hostport, size_t hpsz,
                      char *path, size_t pathsz) {
    size_t sl = strlen(scheme);
    if (strncasecmp(url, scheme, sl) != 0) die("%s: expected a %s URL", url, scheme);
    const char *h = url + sl;
    const char *end = h + strcspn(h, "/?");
    const char *colon = memchr(h, ':', (size_t)(end - h));
    char host[64];
    size_t hl = (size_t)((colon ? colon : end) - h);
    if (hl == 0 || hl >= sizeof host) die("%s: bad host", url);
    memcpy(host, h, hl);
    host[hl] = 0;
    long port = strcasecmp(scheme, "wss://") == 0 ? 443 : 80;
    if (colon) {
        char *e = NULL;
        port = strtol(colon + 1, &e, 10);
        if (e != end || port < 1 || port > 65535) die("%s: bad port", url);
    }
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    const char *ip = strcasecmp(host, "localhost") == 0 ? "127.0.0.1" : host;
    if (inet_pton(AF_INET, ip, &sa->sin_addr) != 1 || (ntohl(sa->sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "wsgw-load: refusing to connect to '%s': only 127.0.0.0/8 addresses are allowed\n", host);
        exit(2);
    }
    snprintf(hostport, hpsz, "%s:%ld", host, port);
    if (path) snprintf(path, pathsz, "%s", *end ? end : "/");
    if (path && path[0] == '?') {
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "/%s", path);
        snprintf(path, pathsz, "%s", tmp);
    }
}

// ---- epoll plumbing ----------------------------------------------------------------------------------

static void set_events(struct conn *c, uint32_t ev) {
    if (c->events == ev) return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &e) < 0) die("epoll_ctl: %s", strerror(errno));
    c->events = ev;
}

static void on_closed(struct conn *c, int clean);

// ---- TLS (wss://) ------------------------------------------------------------------------------------

static void tls_init(void) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) die("SSL_CTX_new: %s", ERR_error_string(ERR_get_error(), NULL));
    // Partial writes: SSL_write returns what it sent, as send() does, so the out buffer logic stays the same;
    // a moving buffer: the out buffer may be realloc'ed or compacted between a WANT_WRITE and its retry.
    long mode = SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER;
    // Idle mode holds thousands of quiet connections: let OpenSSL free each one's record buffers meanwhile.
    if (cfg.mode == M_IDLE) mode |= SSL_MODE_RELEASE_BUFFERS;
    SSL_CTX_set_mode(ctx, mode);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    // A server that closes the TCP connection without close_notify is an EOF here, as for ws://.
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    // Every connection pays a full handshake, as a new client does: no session resumption.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (cfg.ca_file) {
        if (SSL_CTX_load_verify_locations(ctx, cfg.ca_file, NULL) != 1)
            die("--ca %s: cannot load it as PEM certificates: %s", cfg.ca_file, ERR_error_string(ERR_get_error(), NULL));
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    cfg.ssl_ctx = ctx;
}

// The OpenSSL error queue as one line (and emptied: it is per thread, shared by every connection), plus the
// verification result when the certificate was what failed.
static const char *tls_error_text(struct conn *c, int ssl_err, int ret) {
    static char text[512];
    size_t n = 0;
    text[0] = 0;
    unsigned long e;
    while ((e = ERR_get_error()) != 0 && n + 2 < sizeof text) {
        char one[256];
        ERR_error_string_n(e, one, sizeof one);
        n += (size_t)snprintf(text + n, sizeof text - n, "%s%s", n ? "; " : "", one);
    }
    ERR_clear_error();
    if (c->ssl && SSL_get_verify_result(c->ssl) != X509_V_OK && n + 2 < sizeof text)
        n += (size_t)snprintf(text + n, sizeof text - n, "%scertificate: %s", n ? "; " : "",
                              X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
    if (n == 0) {
        if (ssl_err == SSL_ERROR_SYSCALL && ret == 0) snprintf(text, sizeof text, "the server closed the connection");
        else if (ssl_err == SSL_ERROR_SYSCALL) snprintf(text, sizeof text, "%s", strerror(errno));
        else snprintf(text, sizeof text, "SSL error %d", ssl_err);
    }
    return text;
}

static void conn_fail(struct conn *c, const char *what);
static int conn_flush(struct conn *c);

// Starts TLS on a connected socket: the ClientHello goes out here.
static void tls_start(struct conn *c) {
    c->ssl = SSL_new(cfg.ssl_ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
        conn_fail(c, tls_error_text(c, SSL_ERROR_SSL, -1));
        return;
    }
    SSL_set_connect_state(c->ssl);
    if (cfg.ca_file) {  // the certificate must name the address connected to (IP SAN) or "localhost"
        X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &cfg.ws_addr.sin_addr, ip, sizeof ip);
        if (strncasecmp(cfg.ws_hostport, "localhost:", 10) == 0) X509_VERIFY_PARAM_set1_host(vp, "localhost", 0);
        else X509_VERIFY_PARAM_set1_ip_asc(vp, ip);
    }
    if (strncasecmp(cfg.ws_hostport, "localhost:", 10) == 0) SSL_set_tlsext_host_name(c->ssl, "localhost");
    c->st = CS_TLS;
}

// One step of the non-blocking handshake; once it completes, the upgrade request goes out.
// Returns -1 if the connection was closed.
static int tls_handshake_step(struct conn *c) {
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->st = CS_HANDSHAKE;
        return conn_flush(c);
    }
    int err = SSL_get_error(c->ssl, r);
    if (err == SSL_ERROR_WANT_READ) {
        set_events(c, EPOLLIN);
        return 0;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
        set_events(c, EPOLLIN | EPOLLOUT);
        return 0;
    }
    conn_fail(c, tls_error_text(c, err, r));
    return -1;
}

static void conn_close(struct conn *c, int clean) {
    if (c->st == CS_DONE || c->st == CS_FREE) return;
    epoll_ctl(g.ep, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->ssl) {  // no close_notify: the WebSocket close handshake already ended the conversation
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    c->tls_read_wants_write = c->tls_write_wants_read = 0;
    close(c->fd);
    c->fd = -1;
    c->st = CS_DONE;
    c->in.off = c->in.len = 0;
    c->out.off = c->out.len = 0;
    on_closed(c, clean);
}

static void conn_fail(struct conn *c, const char *what) {
    if (c->st == CS_DONE || c->st == CS_FREE) return;
    const char *phase = c->st == CS_CONNECTING ? "connect"
                        : c->st == CS_TLS      ? "TLS handshake"
                        : c->st == CS_HANDSHAKE ? "upgrade"
                                                : "connection";
    int counts = !(c->sent_close && (g.mode == M_CONNECT || g.phase >= PH_CLOSE));
    if (counts) error_note("%s failed: %s", phase, what);
    conn_close(c, 0);
}

// wss: SSL_write of the out buffer (partial writes on). Returns -1 if the connection was closed.
static int tls_flush(struct conn *c) {
    c->tls_write_wants_read = 0;
    while (buf_avail(&c->out)) {
        size_t len = buf_avail(&c->out);
        int n = SSL_write(c->ssl, c->out.p + c->out.off, len > INT32_MAX ? INT32_MAX : (int)len);
        if (n > 0) {
            buf_consume(&c->out, (size_t)n);
            continue;
        }
        int err = SSL_get_error(c->ssl, n);
        if (err == SSL_ERROR_WANT_WRITE) {
            set_events(c, EPOLLIN | EPOLLOUT);
            return 0;
        }
        if (err == SSL_ERROR_WANT_READ) {  // e.g. a key update in progress: retried on EPOLLIN
            c->tls_write_wants_read = 1;
            set_events(c, EPOLLIN | (c->tls_read_wants_write ? EPOLLOUT : 0));
            return 0;
        }
        conn_fail(c, tls_error_text(c, err, n));
        return -1;
    }
    set_events(c, EPOLLIN | (c->tls_read_wants_write ? EPOLLOUT : 0));
    return 0;
}

// Returns -1 if the connection was closed.
static int conn_flush(struct conn *c) {
    if (c->st == CS_CONNECTING || c->st == CS_TLS) return 0;
    if (c->ssl) return tls_flush(c);
    while (buf_avail(&c->out)) {
        ssize_t n = send(c->fd, c->out.p + c->out.off, buf_avail(&c->out), MSG_NOSIGNAL);
        if (n > 0) {
            buf_consume(&c->out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_events(c, EPOLLIN | EPOLLOUT);
            return 0;
        }
        conn_fail(c, n < 0 ? strerror(errno) : "send returned 0");
        return -1;
    }
    set_events(c, EPOLLIN);
    return 0;
}

// Connections leave from 127.0.0.1 ... 127.0.0.N in turn (--source-addresses N), for holding many open: from
// one address, the kernel's search for a free ephemeral port grows with the connections already open to the
// same server (with 19,900 open, half this client's CPU went to __inet_check_established), so the client, not
// the server, set the pace. IP_BIND_ADDRESS_NO_PORT leaves the port to connect(), which picks it per source
// address. Short-lived connections (connect mode) are cheaper from one address: bind() costs more than the
// search saves when few are open.
static int bind_source_address(int fd) {
    static unsigned next;
    if (cfg.source_addresses <= 1) return 0;
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000001u + next++ % (unsigned)cfg.source_addresses);
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    return bind(fd, (struct sockaddr *)&src, sizeof src);
}

static int conn_start(struct conn *c, enum ckind kind, const struct sockaddr_in *sa) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error_note("socket: %s", strerror(errno));
        return -1;
    }
    if (bind_source_address(fd) < 0) {
        error_note("bind to a source address: %s", strerror(errno));
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->kind = kind;
    c->st = CS_CONNECTING;
    c->in.off = c->in.len = 0;
    c->out.off = c->out.len = 0;
    c->t_start = now_ns();
    c->deadline = c->t_start + ATTEMPT_TIMEOUT_NS;
    c->ring_head = c->ring_count = 0;
    c->in_msg = c->msg_bad = 0;
    c->msg_len = 0;
    c->sent_close = c->got_close = c->established = 0;
    c->http_busy = 0;
    c->ssl = NULL;
    c->tls_read_wants_write = c->tls_write_wants_read = 0;
    c->events = EPOLLIN | EPOLLOUT;
    struct epoll_event e = {.events = c->events, .data.ptr = c};
    if (epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &e) < 0) die("epoll_ctl add: %s", strerror(errno));
    if (kind == CK_WS) {
        unsigned char key[16];
        for (int i = 0; i < 16; i += 8) {
            uint64_t r = rnd();
            memcpy(key + i, &r, 8);
        }
        char key64[32];
        EVP_EncodeBlock((unsigned char *)key64, key, 16);
        char cat[96];
        int cl = snprintf(cat, sizeof cat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key64);
        unsigned char sha[SHA_DIGEST_LENGTH];
        SHA1((unsigned char *)cat, (size_t)cl, sha);
        EVP_EncodeBlock((unsigned char *)c->accept, sha, SHA_DIGEST_LENGTH);
        char req[1400];
        int n = snprintf(req, sizeof req,
                         "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nUser-Agent: wsgw-load\r\n\r\n",
                         cfg.ws_path, cfg.ws_hostport, key64);
        buf_append(&c->out, req, (size_t)n);
    }
    if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) < 0 && errno != EINPROGRESS) {
        conn_fail(c, strerror(errno));
        return -1;
    }
    return 0;
}

// ---- WebSocket frames -------------------------------------------------------------------------------

static void send_frame(struct conn *c, int opcode, const void *payload, size_t len) {
    unsigned char hdr[14];
    size_t h = 0;
    hdr[h++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        hdr[h++] = (unsigned char)(0x80 | len);
    } else if (len <= 0xffff) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (unsigned char)(len >> 8);
        hdr[h++] = (unsigned char)len;
    } else {
        hdr[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) hdr[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    uint32_t mask = (uint32_t)rnd();
    unsigned char mk[4];
    memcpy(mk, &mask, 4);
    memcpy(hdr + h, mk, 4);
    h += 4;
    buf_reserve(&c->out, h + len);
    unsigned char *dst = (unsigned char *)c->out.p + c->out.len;
    memcpy(dst, hdr, h);
    dst += h;
    const unsigned char *src = payload;
    size_t i = 0;
    for (; i + 4 <= len; i += 4) {
        uint32_t w;
        memcpy(&w, src + i, 4);
        w ^= mask;
        memcpy(dst + i, &w, 4);
    }
    for (; i < len; i++) dst[i] = src[i] ^ mk[i & 3];
    c->out.len += h + len;
}

static void send_close(struct conn *c, int code) {
    unsigned char p[2] = {(unsigned char)(code >> 8), (unsigned char)code};
    send_frame(c, 0x8, p, 2);
    c->sent_close = 1;
    c->st = CS_CLOSING;
    c->deadline = now_ns() + CLOSE_WAIT_NS;
}

static void echo_send_one(struct conn *c) {
    send_frame(c, 0x1, g.body, g.body_len);
    c->ring[(c->ring_head + c->ring_count) % cfg.inflight] = now_ns();
    c->ring_count++;
    g.sent++;
}

static int echo_may_send(void) {
    return g.phase == PH_RUN && (cfg.max_messages <= 0 || g.sent < cfg.max_messages);
}

static void enter_drain(uint64_t t) {
    g.phase = PH_DRAIN;
    g.t_stop = t;
    g.drain_deadline = t + DRAIN_NS;
}

static void on_message(struct conn *c) {
    if (g.mode == M_ECHO || g.mode == M_LATENCY) {
        if (c->ring_count == 0) {
            error_note("unexpected message (%" PRIu64 " bytes) with nothing in flight", c->msg_len);
            return;
        }
        uint64_t sent_at = c->ring[c->ring_head];
        c->ring_head = (c->ring_head + 1) % cfg.inflight;
        c->ring_count--;
        if (c->msg_bad || c->msg_len != g.body_len || c->msg_opcode != 0x1) {
            g.mismatches++;
            error_note("reply mismatch: %" PRIu64 " bytes opcode %d, expected %zu bytes text equal to the request",
                       c->msg_len, c->msg_opcode, g.body_len);
        }
        if (g.phase == PH_RUN) {
            uint64_t t = now_ns();
            hist_add(t - sent_at);
            g.completed++;
            if (cfg.max_messages > 0 && g.completed >= cfg.max_messages) enter_drain(t);
        }
        if (echo_may_send()) echo_send_one(c);
    } else if (g.mode == M_POST) {
        g.delivered_total++;
        if (g.phase == PH_RUN) g.delivered++;
    }
}

static void on_data(struct conn *c, const unsigned char *p, size_t n) {
    if ((g.mode == M_ECHO || g.mode == M_LATENCY) && !c->msg_bad) {
        if (c->msg_len + n > g.body_len || memcmp(p, g.body + c->msg_len, n) != 0) c->msg_bad = 1;
    }
    c->msg_len += n;
}

static void on_ws_open(struct conn *c);

// Parses frames from c->in. Returns -1 if the connection was closed.
static int process_frames(struct conn *c) {
    for (;;) {
        size_t avail = buf_avail(&c->in);
        if (avail < 2) return 0;
        unsigned char *b = (unsigned char *)c->in.p + c->in.off;
        int fin = b[0] & 0x80, op = b[0] & 0x0f, masked = b[1] & 0x80;
        if (b[0] & 0x70) {
            conn_fail(c, "frame with RSV bits set (no extension was negotiated)");
            return -1;
        }
        uint64_t len = b[1] & 0x7f;
        size_t h = 2;
        if (len == 126) {
            if (avail < 4) return 0;
            len = ((uint64_t)b[2] << 8) | b[3];
            h = 4;
        } else if (len == 127) {
            if (avail < 10) return 0;
            len = 0;
            for (int i = 0; i < 8; i++) len = (len << 8) | b[2 + i];
            h = 10;
        }
        if (len > MAX_FRAME_BYTES) {
            conn_fail(c, "frame over 64 MiB");
            return -1;
        }
        size_t mh = masked ? 4 : 0;
        if (avail < h + mh + len) {
            buf_reserve(&c->in, h + mh + (size_t)len - avail);
            return 0;
        }
        unsigned char *pl = b + h + mh;
        if (masked)
            for (uint64_t i = 0; i < len; i++) pl[i] ^= b[h + (i & 3)];
        size_t total = h + mh + (size_t)len;
        switch (op) {
        case 0x1:
        case 0x2:
            if (c->in_msg) {
                conn_fail(c, "new data frame inside a fragmented message");
                return -1;
            }
            c->in_msg = 1;
            c->msg_opcode = op;
            c->msg_len = 0;
            c->msg_bad = 0;
            on_data(c, pl, (size_t)len);
            if (fin) {
                c->in_msg = 0;
                on_message(c);
            }
            break;
        case 0x0:
            if (!c->in_msg) {
                conn_fail(c, "continuation frame outside a message");
                return -1;
            }
            on_data(c, pl, (size_t)len);
            if (fin) {
                c->in_msg = 0;
                on_message(c);
            }
            break;
        case 0x8:
            c->got_close = 1;
            if (!c->sent_close) {
                int code = len >= 2 ? (pl[0] << 8 | pl[1]) : 1000;
                if (g.phase < PH_CLOSE && g.mode != M_CONNECT)
                    error_note("server closed the connection (code %d)", len >= 2 ? code : 1005);
                send_close(c, len >= 2 ? code : 1000);
            }
            c->st = CS_CLOSING;
            break;
        case 0x9:
            if (!c->sent_close) send_frame(c, 0xA, pl, (size_t)len);
            break;
        case 0xA:
            break;
        default:
            conn_fail(c, "unknown opcode");
            return -1;
        }
        buf_consume(&c->in, total);
        if (c->st == CS_DONE) return -1;
    }
}

static int process_upgrade(struct conn *c) {
    char *p = c->in.p + c->in.off;
    size_t avail = buf_avail(&c->in);
    char *end = memmem(p, avail, "\r\n\r\n", 4);
    if (!end) {
        if (avail <= MAX_HEAD_BYTES) return 0;
        conn_fail(c, "upgrade response head too large");
        return -1;
    }
    size_t head = (size_t)(end - p) + 4;
    if (avail < 12 || strncmp(p, "HTTP/1.1 101", 12) != 0) {
        char line[80];
        size_t ll = strcspn(p, "\r\n");
        snprintf(line, sizeof line, "%.*s", (int)(ll < 70 ? ll : 70), p);
        conn_fail(c, line);
        return -1;
    }
    int ok = 0;
    for (char *l = memmem(p, head, "\r\n", 2); l && l + 2 < end; l = memmem(l + 2, (size_t)(end - l - 2) + 2, "\r\n", 2)) {
        char *k = l + 2;
        if (strncasecmp(k, "Sec-WebSocket-Accept:", 21) == 0) {
            char *v = k + 21;
            while (*v == ' ' || *v == '\t') v++;
            size_t vl = strcspn(v, "\r\n");
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
            ok = vl == strlen(c->accept) && memcmp(v, c->accept, vl) == 0;
            break;
        }
    }
    if (!ok) {
        conn_fail(c, "missing or wrong Sec-WebSocket-Accept");
        return -1;
    }
    buf_consume(&c->in, head);
    c->st = CS_OPEN;
    c->deadline = 0;
    on_ws_open(c);
    if (c->st == CS_DONE) return -1;
    return 0;
}

// ---- HTTP client (post mode) -------------------------------------------------------------------------

static void http_send_post(struct conn *c) {
    const char *id = g.ids[g.rr++ % g.nids];
    char head[512];
    int n = snprintf(head, sizeof head,
                     "POST /@connections/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     id, cfg.http_hostport, g.body_len);
    buf_append(&c->out, head, (size_t)n);
    buf_append(&c->out, g.body, g.body_len);
    c->http_busy = 1;
    c->http_t0 = now_ns();
    g.sent++;
}

static int post_may_send(void) {
    return g.phase == PH_RUN && (cfg.max_messages <= 0 || g.sent < cfg.max_messages);
}

static int process_http(struct conn *c) {
    for (;;) {
        char *p = c->in.p + c->in.off;
        size_t avail = buf_avail(&c->in);
        if (!avail) return 0;
        char *end = memmem(p, avail, "\r\n\r\n", 4);
        if (!end) {
            if (avail > MAX_HEAD_BYTES) {
                conn_fail(c, "HTTP response head too large");
                return -1;
            }
            return 0;
        }
        size_t head = (size_t)(end - p) + 4;
        int status = 0;
        if (sscanf(p, "HTTP/1.%*d %d", &status) != 1) {
            conn_fail(c, "malformed HTTP status line");
            return -1;
        }
        long long clen = -1;
        int close_after = 0;
        for (char *l = memmem(p, head, "\r\n", 2); l && l + 2 < end; l = memmem(l + 2, (size_t)(end - l - 2) + 2, "\r\n", 2)) {
            char *k = l + 2;
            if (strncasecmp(k, "Content-Length:", 15) == 0) clen = strtoll(k + 15, NULL, 10);
            else if (strncasecmp(k, "Connection:", 11) == 0) {
                char *v = k + 11;
                while (*v == ' ') v++;
                if (strncasecmp(v, "close", 5) == 0) close_after = 1;
            }
        }
        if (clen < 0) {
            if (status == 204 || status == 304 || status / 100 == 1) clen = 0;
            else {
                conn_fail(c, "HTTP response without Content-Length");
                return -1;
            }
        }
        if (avail < head + (size_t)clen) {
            buf_reserve(&c->in, head + (size_t)clen - avail);
            return 0;
        }
        buf_consume(&c->in, head + (size_t)clen);
        if (!c->http_busy) {
            conn_fail(c, "HTTP response without a request");
            return -1;
        }
        c->http_busy = 0;
        uint64_t t = now_ns();
        if (status == 200) {
            g.ok_total++;
            if (g.phase == PH_RUN) {
                g.completed++;
                hist_add(t - c->http_t0);
            }
        } else {
            g.non200++;
            error_note("POST answered %d", status);
        }
        if (g.phase == PH_RUN && cfg.max_messages > 0 && g.completed + g.non200 >= cfg.max_messages) enter_drain(t);
        if (close_after) {
            conn_close(c, 1);
            return -1;
        }
        if (post_may_send()) http_send_post(c);
    }
}

// ---- mode hooks ----------------------------------------------------------------------------------------

static void on_ws_open(struct conn *c) {
    uint64_t t = now_ns();
    c->established = 1;
    g.established++;
    switch (g.mode) {
    case M_CONNECT:
        if (g.phase == PH_RUN) hist_add(t - c->t_start);
        send_close(c, 1000);
        break;
    case M_IDLE:
        hist_add(t - c->t_start);
        break;
    default:
        break;
    }
}

static void on_closed(struct conn *c, int clean) {
    if (c->kind == CK_HTTP) {
        if (c->http_busy && g.phase < PH_CLOSE) error_note("HTTP connection closed with a request outstanding");
        if (g.phase < PH_CLOSE && !clean) error_note("HTTP connection lost");
        return;
    }
    if (!c->established) {
        g.failed++;
        return;
    }
    switch (g.mode) {
    case M_CONNECT:
        if (clean && c->sent_close) {
            if (g.phase == PH_RUN) g.completed++;
        } else if (!clean) {
            // conn_fail already counted it
        }
        break;
    case M_IDLE:
        if (g.phase == PH_RUN) {
            g.lost++;
            error_note("an idle connection was lost during the hold");
        }
        break;
    default:
        if (g.phase < PH_CLOSE && !c->sent_close) {
            g.lost += c->ring_count;  // replies that can no longer arrive
            c->ring_count = 0;
            if (clean) error_note("server closed a connection during the run");
        }
        break;
    }
}

// ---- event handling ------------------------------------------------------------------------------------

// Whatever arrived in c->in: the upgrade response, frames or HTTP responses. Returns -1 if the connection was closed.
static int process_input(struct conn *c) {
    int r = 0;
    if (c->kind == CK_HTTP) r = process_http(c);
    else if (c->st == CS_HANDSHAKE) {
        r = process_upgrade(c);
        if (r == 0 && c->st != CS_HANDSHAKE) r = process_frames(c);
    } else r = process_frames(c);
    return (r < 0 || c->st == CS_DONE) ? -1 : 0;
}

// The end of the server's stream (recv 0 or close_notify): clean once the close handshake started.
static void on_eof(struct conn *c) {
    if (c->kind == CK_WS && (c->sent_close || c->got_close)) conn_close(c, 1);
    else if (c->kind == CK_HTTP && !c->http_busy && g.phase >= PH_CLOSE) conn_close(c, 1);
    else conn_fail(c, "connection closed by the server");
}

// wss, after the TLS handshake: SSL_read until it wants more from the socket (a record OpenSSL already holds
// would get no epoll event of its own), processing each chunk as it comes, then flush what that queued.
static void tls_event(struct conn *c, uint32_t ev) {
    if ((ev & EPOLLOUT) || (c->tls_write_wants_read && (ev & EPOLLIN))) {
        if (conn_flush(c) < 0) return;
    }
    if (!(ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) && !(c->tls_read_wants_write && (ev & EPOLLOUT))) return;
    c->tls_read_wants_write = 0;
    for (;;) {
        buf_reserve(&c->in, 16384);
        size_t room = c->in.cap - c->in.len;
        int n = SSL_read(c->ssl, c->in.p + c->in.len, room > INT32_MAX ? INT32_MAX : (int)room);
        if (n > 0) {
            c->in.len += (size_t)n;
            if (process_input(c) < 0) return;
            continue;
        }
        int err = SSL_get_error(c->ssl, n);
        if (err == SSL_ERROR_WANT_READ) break;
        if (err == SSL_ERROR_WANT_WRITE) {  // renegotiation-like traffic with a full socket buffer
            c->tls_read_wants_write = 1;
            break;
        }
        if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && n == 0 && ERR_peek_error() == 0)) {
            ERR_clear_error();
            on_eof(c);
            return;
        }
        if (err == SSL_ERROR_SYSCALL && errno == ECONNRESET && c->kind == CK_WS && c->sent_close) {
            ERR_clear_error();
            conn_close(c, 1);
            return;
        }
        conn_fail(c, tls_error_text(c, err, n));
        return;
    }
    conn_flush(c);
}

static void handle_event(struct conn *c, uint32_t ev) {
    if (c->st == CS_DONE || c->st == CS_FREE) return;
    if (c->st == CS_CONNECTING) {
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            conn_fail(c, strerror(err));
            return;
        }
        if (c->kind == CK_WS && cfg.tls) {
            tls_start(c);
            if (c->st == CS_TLS) tls_handshake_step(c);
            return;
        } else if (c->kind == CK_WS) {
            c->st = CS_HANDSHAKE;
        } else {
            c->st = CS_OPEN;
            c->deadline = 0;
            c->established = 1;
            if (post_may_send()) http_send_post(c);
        }
        if (conn_flush(c) < 0) return;
    }
    if (c->st == CS_TLS) {
        tls_handshake_step(c);
        return;
    }
    if (c->ssl) {
        tls_event(c, ev);
        return;
    }
    if (ev & EPOLLOUT) {
        if (conn_flush(c) < 0) return;
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        buf_reserve(&c->in, 65536);
        ssize_t n = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len, 0);
        if (n == 0) {
            on_eof(c);
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            if (c->kind == CK_WS && c->sent_close && errno == ECONNRESET) conn_close(c, 1);
            else conn_fail(c, strerror(errno));
            return;
        }
        c->in.len += (size_t)n;
        if (process_input(c) < 0) return;
        conn_flush(c);
    }
}

static int count_state(enum ckind kind, int open_only) {
    int n = 0;
    for (int i = 0; i < g.nconns; i++) {
        struct conn *c = &g.conns[i];
        if (c->kind != kind) continue;
        if (open_only ? (c->st == CS_OPEN) : (c->st != CS_DONE && c->st != CS_FREE)) n++;
    }
    return n;
}

// Per-connection deadlines: setup timeouts and close waits.
static void sweep(uint64_t t) {
    for (int i = 0; i < g.nconns; i++) {
        struct conn *c = &g.conns[i];
        if (c->st == CS_DONE || c->st == CS_FREE || !c->deadline || t < c->deadline) continue;
        if (c->st == CS_CLOSING) {
            g.close_timeouts++;
            conn_close(c, 1);
        } else if (c->st == CS_CONNECTING || c->st == CS_TLS || c->st == CS_HANDSHAKE) {
            conn_fail(c, "timed out");
        }
    }
}

// Opens more WebSocket connections (slots [0, want)) while fewer than `parallel` are being set up.
static void open_more_ws(int want, int parallel) {
    int setting_up = 0;
    for (int i = 0; i < want; i++)
        if (g.conns[i].st == CS_CONNECTING || g.conns[i].st == CS_TLS || g.conns[i].st == CS_HANDSHAKE) setting_up++;
    while (g.ws_started < want && setting_up < parallel) {
        conn_start(&g.conns[g.ws_started++], CK_WS, &cfg.ws_addr);
        setting_up++;
    }
}

static void begin_close(void) {
    g.phase = PH_CLOSE;
    g.drain_deadline = now_ns() + 2000000000ull;
    for (int i = 0; i < g.nconns; i++) {
        struct conn *c = &g.conns[i];
        if (c->st == CS_DONE || c->st == CS_FREE) continue;
        if (c->kind == CK_HTTP || c->st != CS_OPEN) {
            conn_close(c, 1);
            continue;
        }
        send_close(c, 1000);
        conn_flush(c);
    }
}

// ---- post mode: learn connection IDs from GET /@connections ---------------------------------------------

static char *http_get_blocking(const char *path, int *status) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return NULL;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&cfg.http_addr, sizeof cfg.http_addr) < 0) {
        close(fd);
        return NULL;
    }
    char req[2048];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, cfg.http_hostport);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return NULL;
    }
    struct buf b = {0};
    for (;;) {
        buf_reserve(&b, 65536);
        ssize_t r = recv(fd, b.p + b.len, b.cap - b.len - 1, 0);
        if (r <= 0) break;
        b.len += (size_t)r;
        if (b.len > (64u << 20)) break;
    }
    close(fd);
    if (!b.p) return NULL;
    b.p[b.len] = 0;
    *status = 0;
    sscanf(b.p, "HTTP/1.%*d %d", status);
    char *body = strstr(b.p, "\r\n\r\n");
    if (!body) {
        free(b.p);
        return NULL;
    }
    char *out = strdup(body + 4);
    free(b.p);
    return out;
}

// Finds "key":"value" occurrences; returns pointer after the value, copies the value into out.
static const char *scan_string_field(const char *s, const char *key, char *out, size_t outsz) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    for (const char *p = strstr(s, pat); p; p = strstr(p + 1, pat)) {
        const char *q = p + strlen(pat);
        while (isspace((unsigned char)*q)) q++;
        if (*q != ':') continue;
        q++;
        while (isspace((unsigned char)*q)) q++;
        if (*q != '"') continue;
        q++;
        size_t l = strcspn(q, "\"");
        if (l >= outsz) l = outsz - 1;
        memcpy(out, q, l);
        out[l] = 0;
        return q + strcspn(q, "\"");
    }
    return NULL;
}

static void forget_ids(void) {
    for (int i = 0; i < g.nids; i++) free(g.ids[i]);
    free(g.ids);
    g.ids = NULL;
    g.nids = 0;
}

static int learn_ids_once(void) {
    char cursor[256] = "";
    for (int page = 0; page < 1000; page++) {
        char path[512];
        snprintf(path, sizeof path, "/@connections?limit=1000%s%s", cursor[0] ? "&cursor=" : "", cursor);
        int status = 0;
        char *body = http_get_blocking(path, &status);
        if (!body || status != 200) {
            error_note("GET %s failed (status %d)", path, status);
            free(body);
            return -1;
        }
        char id[256];
        for (const char *p = body; (p = scan_string_field(p, "connectionId", id, sizeof id)) != NULL;) {
            g.ids = realloc(g.ids, sizeof(char *) * (size_t)(g.nids + 1));
            g.ids[g.nids++] = strdup(id);
        }
        int more = scan_string_field(body, "nextCursor", cursor, sizeof cursor) != NULL && cursor[0];
        free(body);
        if (!more) return 0;
    }
    return 0;
}

// The gateway lists a connection once its upgrade has finished on the network thread, a moment after the 101
// this client has already read: a list taken at once can miss the last ones. Listed again until it has
// `cfg.targets` connections, for up to 2 s.
static int learn_ids(void) {
    for (int attempt = 0;; attempt++) {
        forget_ids();
        if (learn_ids_once() < 0) return -1;
        if (g.nids >= cfg.targets || attempt == 40) return 0;
        struct timespec pause = {0, 50 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

// ---- main ------------------------------------------------------------------------------------------------

static void usage(void) {
    fprintf(stderr,
            "usage: wsgw-load --url ws[s]://127.0.0.1:PORT/path --mode echo|latency|connect|idle|post\n"
            "                 [--connections N] [--inflight K] [--body-bytes B] [--seconds S] [--max-messages M]\n"
            "                 [--management-url http://127.0.0.1:PORT] [--targets T]   (post mode)\n"
            "                 [--ready-file FILE]   (written when the measured window / idle hold begins)\n"
            "                 [--source-addresses N]   (connect from 127.0.0.1 ... 127.0.0.N in turn; default 1)\n"
            "                 [--ca FILE]   (wss: verify the server's certificate against these PEM CAs)\n"
            "wss:// does a TLS handshake per connection; WITHOUT --ca THE SERVER'S CERTIFICATE IS NOT VERIFIED\n"
            "(this is a loopback benchmark against a server you started).\n"
            "SIGTERM or SIGINT ends the measured window early (the result is still printed).\n");
    exit(2);
}

static long parse_num(const char *flag, const char *v, long lo, long hi) {
    char *e = NULL;
    long n = strtol(v, &e, 10);
    if (!*v || *e || n < lo || n > hi) die("%s: expected a number from %ld to %ld, got '%s'", flag, lo, hi, v);
    return n;
}

static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) fprintf(stderr, "wsgw-load: setrlimit: %s\n", strerror(errno));
    }
}

static void print_pcts(FILE *f) {
    fprintf(f, ",\"p50us\":%" PRIu64 ",\"p90us\":%" PRIu64 ",\"p99us\":%" PRIu64 ",\"maxus\":%" PRIu64, hist_pct(0.50),
            hist_pct(0.90), hist_pct(0.99), hist_max_us);
}

// The command line into cfg (usage() and exit on a mistake).
static void parse_args(int argc, char **argv) {
    int mode_set = 0, conns_set = 0, inflight_set = 0;
    cfg.inflight = 16;
    cfg.body_bytes = 91;
    cfg.seconds = 5;
    cfg.targets = 64;
    cfg.source_addresses = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) usage();
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--url")) cfg.url = v;
        else if (!strcmp(a, "--management-url")) cfg.mgmt_url = v;
        else if (!strcmp(a, "--ready-file")) cfg.ready_file = v;
        else if (!strcmp(a, "--ca")) cfg.ca_file = v;
        else if (!strcmp(a, "--mode")) {
            int found = 0;
            for (int m = 0; m < 5; m++)
                if (!strcmp(v, kModeNames[m])) cfg.mode = (enum mode)m, found = 1;
            if (!found) die("--mode: expected echo, latency, connect, idle or post, got '%s'", v);
            mode_set = 1;
        } else if (!strcmp(a, "--connections")) cfg.connections = (int)parse_num(a, v, 1, 1000000), conns_set = 1;
        else if (!strcmp(a, "--inflight")) cfg.inflight = (int)parse_num(a, v, 1, 100000), inflight_set = 1;
        else if (!strcmp(a, "--body-bytes")) cfg.body_bytes = (int)parse_num(a, v, 1, 16 << 20);
        else if (!strcmp(a, "--targets")) cfg.targets = (int)parse_num(a, v, 1, 100000);
        else if (!strcmp(a, "--source-addresses")) cfg.source_addresses = (int)parse_num(a, v, 1, 254);
        else if (!strcmp(a, "--max-messages")) cfg.max_messages = parse_num(a, v, 0, 1L << 40);
        else if (!strcmp(a, "--seconds")) {
            char *e = NULL;
            cfg.seconds = strtod(v, &e);
            if (!*v || *e || !(cfg.seconds > 0) || cfg.seconds > 3600) die("--seconds: expected 0 < S <= 3600, got '%s'", v);
        } else {
            fprintf(stderr, "wsgw-load: unknown flag %s\n", a);
            usage();
        }
    }
    if (!cfg.url || !mode_set) usage();
    g.mode = cfg.mode;
    if (g.mode == M_LATENCY) {
        if ((conns_set && cfg.connections != 1) || (inflight_set && cfg.inflight != 1))
            fprintf(stderr, "wsgw-load: latency mode uses 1 connection and 1 message in flight\n");
        cfg.connections = 1;
        cfg.inflight = 1;
    }
    if (!conns_set && g.mode != M_LATENCY)
        cfg.connections = g.mode == M_ECHO ? 64 : g.mode == M_CONNECT ? 16 : g.mode == M_IDLE ? 100 : 16;
    if ((g.mode == M_ECHO || g.mode == M_LATENCY) && cfg.body_bytes < 40) die("--body-bytes: echo bodies are at least 40 bytes");
    cfg.tls = strncasecmp(cfg.url, "wss://", 6) == 0;
    if (!cfg.tls && strncasecmp(cfg.url, "ws://", 5) != 0) die("--url %s: expected a ws:// or wss:// URL", cfg.url);
    parse_url(cfg.url, cfg.tls ? "wss://" : "ws://", &cfg.ws_addr, cfg.ws_hostport, sizeof cfg.ws_hostport, cfg.ws_path,
              sizeof cfg.ws_path);
    if (cfg.ca_file && !cfg.tls) die("--ca %s: only for a wss:// --url", cfg.ca_file);
    if (cfg.tls) tls_init();
    if (g.mode == M_POST) {
        if (!cfg.mgmt_url) die("post mode needs --management-url http://127.0.0.1:PORT");
        parse_url(cfg.mgmt_url, "http://", &cfg.http_addr, cfg.http_hostport, sizeof cfg.http_hostport, NULL, 0);
    }
}

// Signals, the clock, epoll, the bodies and the connection slots.
static void prepare_run(void) {
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;  // no SA_RESTART: epoll_wait returns EINTR at once
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    alarm((unsigned)cfg.seconds + HARD_EXTRA_S + 10);  // last resort if the loop below were ever stuck
    if (g.mode == M_IDLE) raise_nofile();
    g.rng = now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
    if (!g.rng) g.rng = 1;
    g.t_begin = now_ns();
    g.hard_deadline = g.t_begin + (uint64_t)((cfg.seconds + HARD_EXTRA_S) * 1e9);
    g.ep = epoll_create1(EPOLL_CLOEXEC);
    if (g.ep < 0) die("epoll_create1: %s", strerror(errno));

    // Bodies.
    if (g.mode == M_ECHO || g.mode == M_LATENCY) {
        g.body_len = (size_t)cfg.body_bytes;
        g.body = malloc(g.body_len + 1);
        static const char pre[] = "{\"action\":\"echo\",\"data\":\"";
        memcpy(g.body, pre, sizeof pre - 1);
        memset(g.body + sizeof pre - 1, 'x', g.body_len - (sizeof pre - 1) - 2);
        memcpy(g.body + g.body_len - 2, "\"}", 2);
        g.body[g.body_len] = 0;
    } else if (g.mode == M_POST) {
        g.body = strdup("{\"status\":\"shipped\",\"order\":12345}");
        g.body_len = strlen(g.body);
    }

    g.nws = g.mode == M_POST ? cfg.targets : cfg.connections;
    g.nconns = g.nws + (g.mode == M_POST ? cfg.connections : 0);
    g.conns = calloc((size_t)g.nconns, sizeof *g.conns);
    if (!g.conns) die("out of memory");
    for (int i = 0; i < g.nconns; i++) {
        g.conns[i].fd = -1;
        g.conns[i].st = CS_FREE;
        g.conns[i].kind = i < g.nws ? CK_WS : CK_HTTP;
        if (g.mode == M_ECHO || g.mode == M_LATENCY) {
            g.conns[i].ring = calloc((size_t)cfg.inflight, sizeof(uint64_t));
            if (!g.conns[i].ring) die("out of memory");
        }
    }

    g.phase = g.mode == M_CONNECT ? PH_RUN : PH_SETUP;
    if (g.mode == M_CONNECT) {
        g.t0 = now_ns();
        g.t_stop = g.t0 + (uint64_t)(cfg.seconds * 1e9);
        signal_ready();
    }
}

// PH_SETUP: open the connections; once all are settled, start the measured window.
static void phase_setup(uint64_t t) {
    if (stop_requested) {
        error_note("stopped by a signal before the connections were set up");
        g.t0 = g.t_stop = t;
        begin_close();
        return;
    }
    open_more_ws(g.nws, CONNECT_PARALLEL);
    int settled = (int)(g.established + g.failed);
    if (settled < g.nws) return;
    if (g.mode == M_IDLE) {
        g.phase = PH_RUN;
        g.t0 = t;
        g.t_stop = t + (uint64_t)(cfg.seconds * 1e9);
        signal_ready();
        return;
    }
    if (g.failed > 0) {  // echo/post need every connection
        g.t0 = g.t_stop = t;
        begin_close();
        return;
    }
    if (g.mode == M_POST) {
        if (!g.ids_learned) {
            g.ids_learned = 1;
            if (learn_ids() < 0 || g.nids < cfg.targets) {
                if (g.nids < cfg.targets)
                    error_note("listed %d connections, expected at least %d", g.nids, cfg.targets);
                g.t0 = g.t_stop = t;
                begin_close();
                return;
            }
        }
        if (!g.http_started) {
            g.http_started = 1;
            for (int i = g.nws; i < g.nconns; i++) conn_start(&g.conns[i], CK_HTTP, &cfg.http_addr);
        }
        if (count_state(CK_HTTP, 1) < cfg.connections) {
            if (count_state(CK_HTTP, 0) < cfg.connections) {  // one failed to connect
                g.t0 = g.t_stop = t;
                begin_close();
            }
            return;
        }
        g.phase = PH_RUN;
        g.t0 = now_ns();
        g.t_stop = g.t0 + (uint64_t)(cfg.seconds * 1e9);
        signal_ready();
        for (int i = g.nws; i < g.nconns; i++)
            if (post_may_send()) {
                http_send_post(&g.conns[i]);
                conn_flush(&g.conns[i]);
            }
        return;
    }
    // echo / latency: start the clock and fill the pipelines
    g.phase = PH_RUN;
    g.t0 = now_ns();
    g.t_stop = g.t0 + (uint64_t)(cfg.seconds * 1e9);
    signal_ready();
    for (int i = 0; i < g.nws; i++) {
        for (int k = 0; k < cfg.inflight && echo_may_send(); k++) echo_send_one(&g.conns[i]);
        conn_flush(&g.conns[i]);
    }
}

// PH_RUN: end the window when due; connect mode opens the next connections, post mode reopens closed ones.
static void phase_run(uint64_t t) {
    if (stop_requested && t < g.t_stop) g.t_stop = t;
    if (t >= g.t_stop) {
        if (g.mode == M_IDLE) {
            g.t_stop = t;
            begin_close();
        } else {
            enter_drain(t);
        }
        return;
    }
    if (g.mode == M_CONNECT) {
        for (int i = 0; i < g.nconns; i++) {
            struct conn *c = &g.conns[i];
            if (c->st != CS_FREE && c->st != CS_DONE) continue;
            if (cfg.max_messages > 0 && g.started >= cfg.max_messages) break;
            g.started++;
            conn_start(c, CK_WS, &cfg.ws_addr);
        }
        if (cfg.max_messages > 0 && g.started >= cfg.max_messages && count_state(CK_WS, 0) == 0) enter_drain(t);
    }
    if (g.mode == M_POST) {  // reopen HTTP connections the server closed (Connection: close)
        for (int i = g.nws; i < g.nconns; i++)
            if (g.conns[i].st == CS_DONE) conn_start(&g.conns[i], CK_HTTP, &cfg.http_addr);
    }
    if (g.mode == M_IDLE && count_state(CK_WS, 0) == 0) {
        g.t_stop = t;
        begin_close();
    }
}

// PH_DRAIN: wait (until the drain deadline) for the replies still owed, then note what never came.
static void phase_drain(uint64_t t) {
    int busy = 0;
    for (int i = 0; i < g.nconns && !busy; i++) {
        struct conn *c = &g.conns[i];
        if (c->st == CS_DONE || c->st == CS_FREE) continue;
        if (g.mode == M_CONNECT) busy = 1;
        else if (c->kind == CK_WS && c->ring_count) busy = 1;
        else if (c->kind == CK_HTTP && c->http_busy) busy = 1;
    }
    if (g.mode == M_POST && g.delivered_total < g.ok_total) busy = 1;
    if (busy && t < g.drain_deadline) return;
    if (busy) {
        for (int i = 0; i < g.nconns; i++) {
            struct conn *c = &g.conns[i];
            if (c->st == CS_DONE || c->st == CS_FREE) continue;
            if (c->kind == CK_WS && c->ring_count) {
                g.lost += c->ring_count;
                error_note("%d replies still missing after the drain", c->ring_count);
            }
            if (c->kind == CK_HTTP && c->http_busy) error_note("a POST still unanswered after the drain");
            if (g.mode == M_CONNECT) error_note("a connect attempt still unfinished after the drain");
        }
        if (g.mode == M_POST && g.delivered_total < g.ok_total)
            error_note("%lld of %lld accepted POSTs never arrived on a WebSocket", g.ok_total - g.delivered_total,
                       g.ok_total);
    }
    begin_close();
}

// PH_CLOSE: every connection closed, or the deadline: the end.
static void phase_close(uint64_t t) {
    if (count_state(CK_WS, 0) + count_state(CK_HTTP, 0) == 0 || t >= g.drain_deadline) {
        for (int i = 0; i < g.nconns; i++) conn_close(&g.conns[i], 1);
        g.phase = PH_END;
    }
}

// The result line (one JSON object on stdout).
static void print_result(void) {
    double secs = g.t_stop > g.t0 ? (double)(g.t_stop - g.t0) / 1e9 : 0;
    double rate = secs > 0 ? (double)g.completed / secs : 0;
    FILE *o = stdout;
    fprintf(o, "{\"mode\":\"%s\",\"target\":\"%s\"", kModeNames[g.mode], cfg.url);
    if (cfg.tls) fprintf(o, ",\"tls\":true");
    switch (g.mode) {
    case M_ECHO:
    case M_LATENCY:
        fprintf(o, ",\"connections\":%d,\"inflight\":%d,\"bodyBytes\":%d,\"seconds\":%.2f,\"messages\":%lld,"
                   "\"messagesPerSecond\":%.0f,\"errors\":%lld,\"mismatches\":%lld,\"lost\":%lld",
                cfg.connections, cfg.inflight, cfg.body_bytes, secs, g.completed, rate, g.errors, g.mismatches, g.lost);
        print_pcts(o);
        break;
    case M_CONNECT:
        fprintf(o, ",\"connections\":%d,\"seconds\":%.2f,\"connects\":%lld,\"connectsPerSecond\":%.0f,\"errors\":%lld,"
                   "\"closeTimeouts\":%lld",
                cfg.connections, secs, g.completed, rate, g.errors, g.close_timeouts);
        print_pcts(o);
        break;
    case M_IDLE:
        fprintf(o, ",\"connections\":%d,\"seconds\":%.2f,\"established\":%lld,\"failed\":%lld,\"lost\":%lld,\"errors\":%lld",
                cfg.connections, secs, g.established, g.failed, g.lost, g.errors);
        print_pcts(o);
        break;
    case M_POST:
        fprintf(o, ",\"management\":\"%s\",\"connections\":%d,\"targets\":%d,\"bodyBytes\":%zu,\"seconds\":%.2f,"
                   "\"posts\":%lld,\"postsPerSecond\":%.0f,\"non200\":%lld,\"delivered\":%lld,\"deliveredPerSecond\":%.0f,"
                   "\"errors\":%lld",
                cfg.mgmt_url, cfg.connections, cfg.targets, g.body_len, secs, g.completed, rate, g.non200, g.delivered,
                secs > 0 ? (double)g.delivered / secs : 0, g.errors);
        print_pcts(o);
        break;
    }
    if (g.hard_stop) fprintf(o, ",\"hardStop\":true");
    fprintf(o, "}\n");
    fflush(o);
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    prepare_run();
    struct epoll_event evs[512];
    while (g.phase != PH_END) {
        uint64_t t = now_ns();
        if (t >= g.hard_deadline) {
            g.hard_stop = 1;
            error_note("hard stop after %.0f s", cfg.seconds + HARD_EXTRA_S);
            break;
        }
        // Phase transitions and new connections, outside of event handling (slots may be reused).
        switch (g.phase) {
        case PH_SETUP: phase_setup(t); break;
        case PH_RUN: phase_run(t); break;
        case PH_DRAIN: phase_drain(t); break;
        case PH_CLOSE: phase_close(t); break;
        case PH_END: break;
        }
        if (g.phase == PH_END) break;

        int n = epoll_wait(g.ep, evs, 512, 20);
        if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) handle_event(evs[i].data.ptr, evs[i].events);
        sweep(now_ns());
    }
    for (int i = 0; i < g.nconns; i++) conn_close(&g.conns[i], 1);
    print_result();
    long long done = g.mode == M_IDLE ? g.established : g.completed;
    return (g.errors > 0 || done == 0) ? 1 : 0;
}
