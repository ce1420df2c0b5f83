#include "handshake.h"

#include "http_message.h"
#include "log.h"
#include "lws_upgrade_rules.h"
#include "text.h"

#include <algorithm>
#include <optional>

namespace wsgw {

namespace {

constexpr size_t kHostHintMax = 100;

bool isBase64Char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

HeadParse refuse(int status, std::string reason, HeaderList extra = {}) {
    HeadParse p;
    p.result = HeadResult::Refuse;
    p.refusal.status = status;
    p.refusal.reason = std::move(reason);
    p.refusal.extraHeaders = std::move(extra);
    return p;
}

// One lookup of a header that the upgrade checks need: its first value and how often it occurred.
struct Seen {
    std::string_view value;
    size_t count = 0;
    void add(std::string_view v) {
        if (count++ == 0) value = v;
    }
};

HeadParse duplicate(std::string_view name) {
    std::string r = "duplicate ";
    r += name;
    r += " header: send it once (RFC 6455 4.1)";
    return refuse(400, std::move(r));
}

bool isValidWebSocketKey(std::string_view key) {
    if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
    for (size_t i = 0; i < 22; ++i) {
        if (!isBase64Char(static_cast<unsigned char>(key[i]))) return false;
    }
    return true;
}

// The headers the upgrade checks look at, gathered in one pass over the request.
struct UpgradeHeaders {
    Seen upgrade, version, key, host;
    size_t connectionCount = 0;
    bool connectionHasUpgrade = false;
    std::string_view firstConnection;

    explicit UpgradeHeaders(const HttpMessageHead &head) {
        for (const auto &[name, value] : head.headers) {
            std::string_view n = name, v = value;
            if (equalsIgnoreCase(n, "Upgrade")) upgrade.add(v);
            else if (equalsIgnoreCase(n, "Sec-WebSocket-Version")) version.add(v);
            else if (equalsIgnoreCase(n, "Sec-WebSocket-Key")) key.add(v);
            else if (equalsIgnoreCase(n, "Host")) host.add(v);
            else if (equalsIgnoreCase(n, "Connection")) {
                if (connectionCount++ == 0) firstConnection = v;
                connectionHasUpgrade = connectionHasUpgrade || listHasToken(v, "upgrade");
            }
        }
    }
};

// Each check below returns the refusal of the first rule broken, or nothing.
using Verdict = std::optional<HeadParse>;

// Upgrade: websocket, on a GET.
Verdict checkUpgradeAndMethod(const UpgradeHeaders &h, const HttpMessageHead &head) {
    if (h.upgrade.count == 0) {
        std::string r = "this is a WebSocket endpoint: connect with a WebSocket client, e.g. wscat -c ws://";
        if (h.host.count > 0 && !h.host.value.empty()) appendPrintable(r, h.host.value, kHostHintMax);
        else r += "HOST";
        r += "/";
        return refuse(426, std::move(r), {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}, {"Sec-WebSocket-Version", "13"}});
    }
    if (h.upgrade.count > 1) return duplicate("Upgrade");
    // Only "websocket" itself: libwebsockets refuses a list such as "h2c, websocket" after $connect would
    // have run, with a page of its own, so the gateway refuses it here with a reason.
    if (!equalsIgnoreCase(trimOws(h.upgrade.value), "websocket")) {
        std::string r = "Upgrade header is ";
        appendQuoted(r, h.upgrade.value);
        r += " but this endpoint only upgrades to WebSocket: send Upgrade: websocket, and nothing else (RFC 6455 4.1)";
        return refuse(400, std::move(r));
    }
    if (head.method != "GET") {
        std::string r = "method ";
        appendQuoted(r, head.method);
        r += " cannot open a WebSocket: the upgrade request must be GET (RFC 6455 4.1)";
        return refuse(405, std::move(r), {{"Allow", "GET"}});
    }
    return std::nullopt;
}

Verdict checkConnection(const UpgradeHeaders &h) {
    if (h.connectionCount == 0)
        return refuse(400, "missing Connection header: a WebSocket client must send Connection: Upgrade (RFC 6455 4.1)");
    if (!h.connectionHasUpgrade) {
        std::string r = "Connection header ";
        appendQuoted(r, h.firstConnection);
        r += " lacks the token \"Upgrade\": a WebSocket client must send Connection: Upgrade (RFC 6455 4.1)";
        return refuse(400, std::move(r));
    }
    return std::nullopt;
}

Verdict checkVersionAndKey(const UpgradeHeaders &h) {
    if (h.version.count > 1) return duplicate("Sec-WebSocket-Version");
    if (h.version.count == 0 || h.version.value != "13") {
        std::string r;
        if (h.version.count == 0) {
            r = "missing Sec-WebSocket-Version header: this gateway speaks WebSocket version 13, send "
                "Sec-WebSocket-Version: 13 (RFC 6455 4.1)";
        } else {
            r = "unsupported Sec-WebSocket-Version ";
            appendQuoted(r, h.version.value);
            r += ": this gateway speaks only version 13 (RFC 6455), use a client that sends Sec-WebSocket-Version: 13";
        }
        return refuse(426, std::move(r), {{"Sec-WebSocket-Version", "13"}});
    }
    if (h.key.count > 1) return duplicate("Sec-WebSocket-Key");
    if (h.key.count == 0) return refuse(400, "missing Sec-WebSocket-Key header: a WebSocket client must send it (RFC 6455 4.1)");
    if (!isValidWebSocketKey(h.key.value)) {
        std::string r = "invalid Sec-WebSocket-Key ";
        appendQuoted(r, h.key.value);
        r += ": it must be the base64 of 16 random bytes, 24 characters ending in \"==\" (RFC 6455 4.1)";
        return refuse(400, std::move(r));
    }
    return std::nullopt;
}

Verdict checkHost(const UpgradeHeaders &h) {
    if (h.host.count == 0) return refuse(400, "missing Host header: HTTP/1.1 requires it (RFC 7230 5.4), send Host: <host>:<port>");
    if (h.host.count > 1) return refuse(400, "more than one Host header: send it once (RFC 7230 5.4)");
    // libwebsockets closes an upgrade with an empty Host without an answer.
    if (h.host.value.empty())
        return refuse(400, "empty Host header: HTTP/1.1 requires the server's host in it (RFC 7230 5.4), send Host: <host>:<port>");
    return std::nullopt;
}

// The header checks of RFC 6455 4.2.1, in the order that gives the most useful answer first: a plain HTTP
// request learns that this is a WebSocket endpoint before it learns anything about WebSocket headers.
bool checkUpgradeHeaders(const HttpMessageHead &head, HeadParse &out) {
    UpgradeHeaders h(head);
    Verdict v = checkUpgradeAndMethod(h, head);
    if (!v) v = checkConnection(h);
    if (!v) v = checkVersionAndKey(h);
    if (!v) v = checkHost(h);
    if (!v) return true;
    out = std::move(*v);
    return false;
}

}  // namespace

const std::string *UpgradeRequest::header(std::string_view name) const { return findHeader(headers, name); }

HeadParse parseUpgradeHead(std::string_view bytes, size_t maxHeadBytes) {
    // A TLS ClientHello starts with record type 22; answering in plain text at once beats waiting for a head.
    if (!bytes.empty() && bytes[0] == 0x16) {
        return refuse(400, "the client sent a TLS handshake to a plain-text listener: connect with ws:// instead of "
                           "wss://, or start wsgw with --tls-cert and --tls-key");
    }
    HttpParserOptions options;
    options.kind = HttpMessageKind::Request;
    options.maxHeadBytes = maxHeadBytes;
    options.maxHeaders = kMaxUpgradeHeaders;
    options.headOnly = true;  // what follows the blank line is WebSocket frames
    options.checkRequestLine = [](const HttpMessageHead &head, HttpParseError *error) {
        if (head.version == "HTTP/1.1") return true;
        error->status = 400;
        if (head.version.substr(0, 5) != "HTTP/") {
            error->reason = "malformed request line: expected \"GET /path HTTP/1.1\", got ";
            appendQuoted(error->reason, head.method + " " + head.target + " " + head.version);
        } else {
            error->reason = "WebSocket needs HTTP/1.1: the request line says ";
            appendQuoted(error->reason, head.version);
            error->reason += " (RFC 6455 4.1); send the upgrade as HTTP/1.1";
        }
        return false;
    };
    // Stateless for the caller: the listener calls again with all the bytes so far.
    HttpMessageParser parser(std::move(options));
    HttpParseState state = parser.feed(bytes);
    if (state == HttpParseState::NeedMore) return {};
    if (state == HttpParseState::Error) return refuse(parser.error().status, parser.error().reason);

    const HttpMessageHead &head = parser.head();
    HeadParse out;
    if (!checkUpgradeHeaders(head, out)) return out;
    // What follows an upgrade's head is read as WebSocket frames: a body would fail as "not masked", far
    // from its cause. An empty Content-Length is harmless.
    for (const char *bodyHeader : {"Transfer-Encoding", "Content-Length"}) {
        const std::string *value = findHeader(head.headers, bodyHeader);
        if (!value || (std::string_view(bodyHeader) == "Content-Length" && trimOws(*value) == "0")) continue;
        std::string r = std::string("an upgrade request has no body, but this one has ") + bodyHeader + " ";
        appendQuoted(r, *value);
        return refuse(400, r + ": send the WebSocket upgrade as a GET without a body");
    }
    // libwebsockets reads the head again once $connect has run, and fails some that pass the checks above.
    if (auto refusal = libwebsocketsRefusal(bytes, head)) return refuse(refusal->status, std::move(refusal->reason));

    out.result = HeadResult::Upgrade;
    UpgradeRequest &req = out.request;
    req.method = head.method;
    req.target = head.target;
    size_t q = head.target.find('?');
    req.path = head.target.substr(0, q);
    if (q != std::string::npos) req.rawQuery = head.target.substr(q + 1);
    req.headers = head.headers;
    req.headLength = head.length;
    return out;
}

std::string renderHttpRefusal(int status, std::string_view reason, const HeaderList &extraHeaders) {
    // Reasons may carry a handler's text: escaped as every JSON string we write, bytes that are not UTF-8
    // becoming U+FFFD, so the body stays valid JSON.
    std::string body;
    body.reserve(reason.size() + 16);
    body += "{\"message\":";
    log::appendJsonString(body, reason);
    body += '}';

    std::string s;
    s.reserve(160 + body.size() + extraHeaders.size() * 48);
    s += "HTTP/1.1 ";
    s += std::to_string(status);
    s += ' ';
    s += httpReasonPhrase(status);
    s += "\r\nContent-Type: application/json\r\nContent-Length: ";
    s += std::to_string(body.size());
    s += "\r\nConnection: close\r\n";
    // A CR or LF in a header would split the response; such bytes are dropped.
    auto appendHeaderText = [&s](std::string_view t) {
        for (char ch : t) {
            if (ch != '\r' && ch != '\n' && ch != '\0') s += ch;
        }
    };
    for (const auto &[name, value] : extraHeaders) {
        appendHeaderText(name);
        s += ": ";
        appendHeaderText(value);
        s += "\r\n";
    }
    s += "\r\n";
    s += body;
    return s;
}

const char *httpReasonPhrase(int status) {
    switch (status) {
        case 100: return "Continue";
        case 101: return "Switching Protocols";
        case 200: return "OK";
        case 201: return "Created";
        case 202: return "Accepted";
        case 204: return "No Content";
        case 301: return "Moved Permanently";
        case 302: return "Found";
        case 303: return "See Other";
        case 304: return "Not Modified";
        case 307: return "Temporary Redirect";
        case 308: return "Permanent Redirect";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 402: return "Payment Required";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 406: return "Not Acceptable";
        case 407: return "Proxy Authentication Required";
        case 408: return "Request Timeout";
        case 409: return "Conflict";
        case 410: return "Gone";
        case 411: return "Length Required";
        case 412: return "Precondition Failed";
        case 413: return "Payload Too Large";
        case 414: return "URI Too Long";
        case 415: return "Unsupported Media Type";
        case 416: return "Range Not Satisfiable";
        case 417: return "Expectation Failed";
        case 418: return "I'm a teapot";
        case 421: return "Misdirected Request";
        case 422: return "Unprocessable Entity";
        case 423: return "Locked";
        case 424: return "Failed Dependency";
        case 425: return "Too Early";
        case 426: return "Upgrade Required";
        case 428: return "Precondition Required";
        case 429: return "Too Many Requests";
        case 431: return "Request Header Fields Too Large";
        case 451: return "Unavailable For Legal Reasons";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 502: return "Bad Gateway";
        case 503: return "Service Unavailable";
        case 504: return "Gateway Timeout";
        case 505: return "HTTP Version Not Supported";
        case 507: return "Insufficient Storage";
        case 508: return "Loop Detected";
        case 511: return "Network Authentication Required";
        default: break;
    }
    if (status >= 100 && status < 200) return "Informational";
    if (status >= 200 && status < 300) return "Success";
    if (status >= 300 && status < 400) return "Redirection";
    if (status >= 400 && status < 500) return "Client Error";
    if (status >= 500 && status < 600) return "Server Error";
    return "Unknown";
}

namespace {

std::vector<std::string> offers(const UpgradeRequest &request) {
    std::vector<std::string> out;
    for (const auto &[name, value] : request.headers) {
        if (!equalsIgnoreCase(name, "Sec-WebSocket-Protocol")) continue;
        size_t start = 0;
        while (start <= value.size()) {
            size_t comma = value.find(',', start);
            if (comma == std::string::npos) comma = value.size();
            std::string_view token(value.data() + start, comma - start);
            while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
            while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
            if (!token.empty()) out.emplace_back(token);
            start = comma + 1;
        }
    }
    return out;
}

}  // namespace

std::string chooseSubprotocol(const UpgradeRequest &request, const std::vector<std::string> &accepted) {
    for (const std::string &offer : offers(request))
        for (const std::string &a : accepted)
            if (offer == a) return offer;  // subprotocol names are case-sensitive tokens
    return {};
}

std::string offeredSubprotocols(const UpgradeRequest &request) {
    std::string out;
    for (const std::string &offer : offers(request)) out += (out.empty() ? "" : ", ") + offer;
    return out;
}

std::string withoutHeader(std::string_view bytes, size_t headLength, std::string_view name) {
    std::string out;
    out.reserve(bytes.size());
    size_t pos = 0, end = std::min(headLength, bytes.size());
    while (pos < end) {
        size_t eol = bytes.find("\r\n", pos);
        size_t next = eol == std::string_view::npos || eol + 2 > end ? end : eol + 2;
        std::string_view line = bytes.substr(pos, next - pos);
        size_t colon = line.find(':');
        bool drop = pos > 0 && colon != std::string_view::npos && equalsIgnoreCase(line.substr(0, colon), name);
        if (!drop) out.append(line);
        pos = next;
    }
    out.append(bytes.substr(end));
    return out;
}

}  // namespace wsgw
