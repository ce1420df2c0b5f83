#include "lws_upgrade_rules.h"

#include "text.h"
#include "utf8.h"

#include <algorithm>
#include <cctype>
#include <vector>

namespace wsgw {

namespace {

// A header line as received: its name, and its value from just after the colon to the end of the line.
struct RawHeader {
    std::string_view name, value;
};

// The head has passed the HTTP parser: CRLF line ends, a request line, then "name:value" lines.
std::vector<RawHeader> rawHeaders(std::string_view rawHead, size_t headLength) {
    std::vector<RawHeader> out;
    std::string_view head = rawHead.substr(0, headLength);
    size_t pos = head.find("\r\n");
    while (pos != std::string_view::npos) {
        size_t start = pos + 2, end = head.find("\r\n", start);
        if (end == std::string_view::npos || end == start) break;
        std::string_view line = head.substr(start, end - start);
        size_t colon = line.find(':');
        if (colon != std::string_view::npos) out.push_back({line.substr(0, colon), line.substr(colon + 1)});
        pos = end;
    }
    return out;
}

// The header names in libwebsockets' table (lib/roles/http/lextable-strings.h with WebSocket, HTTP/2 and
// the uncommon headers built in); the pseudo-headers of HTTP/2 (":path"...) cannot be HTTP/1.1 names.
constexpr std::string_view kKnownHeaders[] = {
    "host", "connection", "upgrade", "origin", "sec-websocket-draft", "sec-websocket-extensions",
    "sec-websocket-key1", "sec-websocket-key2", "sec-websocket-protocol", "sec-websocket-accept",
    "sec-websocket-nonce", "http2-settings", "accept", "access-control-request-headers", "if-modified-since",
    "if-none-match", "accept-encoding", "accept-language", "pragma", "cache-control", "authorization", "cookie",
    "content-length", "content-type", "date", "range", "referer", "sec-websocket-key", "sec-websocket-version",
    "sec-websocket-origin", "accept-charset", "accept-ranges", "access-control-allow-origin", "age", "allow",
    "content-disposition", "content-encoding", "content-language", "content-location", "content-range", "etag",
    "expect", "expires", "from", "if-match", "if-range", "if-unmodified-since", "last-modified", "link",
    "location", "max-forwards", "proxy-authenticate", "proxy-authorization", "refresh", "retry-after", "server",
    "set-cookie", "strict-transport-security", "transfer-encoding", "user-agent", "vary", "via",
    "www-authenticate", "x-real-ip", "x-forwarded-for", "te", "replay-nonce", "x-auth-token",
};

// Methods in the same table written without the space that ends the others ("get "): a header line whose
// name merely begins with one of them is read as a second request line from there.
constexpr std::string_view kMethodPrefixes[] = {"put", "patch", "delete"};

std::string_view methodPrefixOf(std::string_view name) {
    for (std::string_view m : kMethodPrefixes)
        if (name.size() >= m.size() && equalsIgnoreCase(name.substr(0, m.size()), m)) return m;
    return {};
}

// A known header's value as libwebsockets keeps it: spaces (not tabs) before it dropped, the rest kept.
std::string_view withoutLeadingSpaces(std::string_view v) {
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    return v;
}

// libwebsockets percent-decodes the target (and what it takes for one): a malformed escape gets its HTML 403,
// an escaped NUL a silent close. "" when every escape is well formed.
std::string escapeProblem(std::string_view text, std::string_view where) {
    auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') continue;
        std::string at = " at byte " + std::to_string(i + 1) + " of " + std::string(where);
        if (i + 2 >= text.size() || !hex(text[i + 1]) || !hex(text[i + 2])) {
            std::string r = "malformed percent-escape ";
            appendQuoted(r, text.substr(i, 3));
            return r + at + ": each % must be followed by two hex digits (write a literal % as %25)";
        }
        if (text[i + 1] == '0' && text[i + 2] == '0')
            return "an escaped NUL byte (%00)" + at + ": NUL is not accepted in a path or query";
        i += 2;
    }
    return {};
}

// Upgrade is compared with "websocket" byte for byte, and Sec-WebSocket-Key is hashed as kept: a tab
// before either, or a space or tab after, fails the upgrade (the second only in the client, which gets a
// Sec-WebSocket-Accept computed over the padding).
std::optional<LwsRefusal> paddedValue(const std::vector<RawHeader> &headers) {
    for (const RawHeader &h : headers) {
        bool upgrade = equalsIgnoreCase(h.name, "Upgrade");
        if (!upgrade && !equalsIgnoreCase(h.name, "Sec-WebSocket-Key")) continue;
        if (withoutLeadingSpaces(h.value) == trimOws(h.value)) continue;
        if (upgrade) {
            return LwsRefusal{400, "the Upgrade header's value has a tab before \"websocket\" or a space or tab after it: "
                                   "the WebSocket library compares it byte for byte and would refuse the upgrade; send "
                                   "exactly \"Upgrade: websocket\""};
        }
        return LwsRefusal{400, "the Sec-WebSocket-Key header's value has a tab before the key or a space or tab after it: "
                               "the WebSocket library would compute Sec-WebSocket-Accept over those bytes too and the "
                               "client would reject the answer; send the 24-character key alone"};
    }
    return std::nullopt;
}

// The Connection header as libwebsockets copies it: every Connection line, joined with commas; each line
// after the first starts with a space it adds, and keeps its own leading spaces unless the first was empty
// (then it drops every space in them).
std::string lwsConnectionCopy(const std::vector<RawHeader> &headers) {
    std::string out;
    bool first = true, firstEmpty = false;
    for (const RawHeader &h : headers) {
        if (!equalsIgnoreCase(h.name, "Connection")) continue;
        if (first) {
            out = std::string(withoutLeadingSpaces(h.value));
            firstEmpty = out.empty();
            first = false;
            continue;
        }
        out += ", ";
        for (char c : h.value)
            if (!(firstEmpty && c == ' ')) out += c;
    }
    return out;
}

bool isListSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }
bool isListSeparator(char c) { return std::string_view("(),/:;<=>?@[\\]{}").find(c) != std::string_view::npos; }

// libwebsockets' tokenizer reports a token of digits (an integer), of digits '.' digits (a float), or with
// a second '.' after such a float (an error): none of them is a token to the Connection check.
bool readAsNumber(std::string_view t) {
    auto digit = [](char c) { return c >= '0' && c <= '9'; };
    size_t k = 0;
    while (k < t.size() && digit(t[k])) ++k;
    if (k == 0) return false;
    if (k == t.size()) return true;
    if (t[k] != '.') return false;
    for (++k; k < t.size() && digit(t[k]);) ++k;
    return k == t.size() || t[k] == '.';
}

size_t firstInvalidUtf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        size_t n = utf8SequenceLength(reinterpret_cast<const uint8_t *>(s.data() + i), s.size() - i);
        if (n == 0) return i;
        i += n;
    }
    return std::string_view::npos;
}

// libwebsockets walks the Connection list until a token that "upgrade" begins with (case-insensitive) and
// fails on anything else first: a quote, '=' after a token, a separator other than a comma between tokens,
// two tokens without a comma, a number, bytes that are not UTF-8, or the end. Where it fails; npos when it
// finds the token.
size_t connectionListFailure(std::string_view list) {
    const size_t badUtf8 = firstInvalidUtf8(list);
    bool afterToken = false;  // the next element must be a comma
    size_t i = 0;
    for (;;) {
        while (i < list.size() && isListSpace(list[i])) ++i;
        if (i >= list.size() || list[i] == '"') return i;
        if (isListSeparator(list[i])) {
            if (list[i] != ',' || !afterToken) return i;
            afterToken = false;
            ++i;
            continue;
        }
        if (afterToken) return i;
        size_t start = i;
        for (; i < list.size() && !isListSpace(list[i]) && !isListSeparator(list[i]) && list[i] != '"'; ++i)
            if (i == badUtf8) return i;
        size_t next = i;
        while (next < list.size() && isListSpace(list[next])) ++next;
        if (next < list.size() && (list[next] == '=' || list[next] == '"')) return next;
        std::string_view token = list.substr(start, i - start);
        if (readAsNumber(token)) return start;
        if (token.size() <= 7 && equalsIgnoreCase(token, std::string_view("upgrade").substr(0, token.size())))
            return std::string_view::npos;
        afterToken = true;
    }
}

std::optional<LwsRefusal> connectionProblem(const std::vector<RawHeader> &headers) {
    std::string copy = lwsConnectionCopy(headers);
    if (copy.size() > kLwsMaxConnectionBytes) {
        return LwsRefusal{431, "the Connection header is " + std::to_string(copy.size()) +
                                   " bytes as the WebSocket library reads it (every Connection line joined with "
                                   "commas), over the " + std::to_string(kLwsMaxConnectionBytes) +
                                   " it reads: send Connection: Upgrade"};
    }
    size_t at = connectionListFailure(copy);
    if (at == std::string::npos) return std::nullopt;
    std::string r = "the Connection header ";
    appendQuoted(r, copy);
    r += " cannot be read by the WebSocket library as a comma-separated list up to its Upgrade token: it gives up at ";
    if (at < copy.size()) {
        r += "byte " + std::to_string(at + 1) + " (";
        appendQuoted(r, std::string_view(copy).substr(at, 16));
        r += ")";
    } else {
        r += "the end";
    }
    r += "; send Connection: Upgrade, with any other tokens before it separated by commas (no quotes, '=', numbers or "
         "other separators)";
    return LwsRefusal{400, std::move(r)};
}

// What the parts of the request cost in fragments, to say which ones to cut.
struct FragmentCount {
    size_t queryParameters = 0, pathSeparators = 0, knownHeaderLines = 0, methodLikeHeaders = 0;
    std::vector<std::pair<std::string_view, size_t>> byName;  // known header names, in order, with counts
    size_t total() const { return 2 + queryParameters + pathSeparators + knownHeaderLines + methodLikeHeaders; }
};

int lwsHexDigitValue(char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }

// The target's cost: '?' starts the query's first fragment, and each '&' or ';' as sent (not escaped) one
// more, empty parameters too. In the path libwebsockets skips one that follows a '/' (escaped or not), "/."
// or "/..": a segment that far is still being normalised.
void countTarget(std::string_view target, FragmentCount &count) {
    size_t q = target.find('?');
    std::string_view path = target.substr(0, q);
    enum { Segment, Slash, Dot, DotDot } state = Segment;
    for (size_t i = 0; i < path.size(); ++i) {
        char c = path[i];
        bool escaped = c == '%' && i + 2 < path.size();  // well formed: escapeProblem() came first
        if (escaped) {
            c = static_cast<char>(lwsHexDigitValue(path[i + 1]) * 16 + lwsHexDigitValue(path[i + 2]));
            i += 2;
        }
        if (c == '/') state = Slash;
        else if (c == '.' && state == Slash) state = Dot;
        else if (c == '.' && state == Dot) state = DotDot;
        else {
            if ((c == '&' || c == ';') && !escaped && state == Segment) ++count.pathSeparators;
            state = Segment;
        }
    }
    if (q == std::string_view::npos) return;
    count.queryParameters = 1;
    for (char c : target.substr(q + 1))
        if (c == '&' || c == ';') ++count.queryParameters;
}

// A header whose name begins with a method (kMethodPrefixes) costs one fragment for that "method", one for
// what follows its first space (appended to the HTTP version), and one per '&', ';' or '?' before that
// space; the same method twice fails, and so does a malformed escape before that space.
std::optional<LwsRefusal> countMethodLikeHeader(const RawHeader &h, std::string_view prefix, std::vector<std::string_view> &seen,
                                                FragmentCount &count) {
    std::string_view line(h.name.data() + prefix.size(), h.value.data() + h.value.size() - h.name.data() - prefix.size());
    std::string_view uriPart = line.substr(0, line.find(' '));
    for (std::string_view other : seen) {
        if (other == prefix) {
            std::string r = "header ";
            appendQuoted(r, h.name);
            return LwsRefusal{400, r + " begins with \"" + std::string(prefix) + "\" like another header of this request, and "
                                       "the WebSocket library reads such a name as an HTTP method: a request has only "
                                       "one; rename the header (e.g. with an \"X-\" prefix)"};
        }
    }
    seen.push_back(prefix);
    if (std::string problem = escapeProblem(uriPart, "header " + std::string(h.name) + ", whose name the WebSocket "
                                                     "library reads as an HTTP method and its value as a URL");
        !problem.empty())
        return LwsRefusal{400, problem};
    count.methodLikeHeaders += 1 + (uriPart.size() < line.size() ? 1 : 0);
    for (char c : uriPart)
        if (c == '&' || c == ';' || c == '?') ++count.methodLikeHeaders;
    return std::nullopt;
}

std::string fragmentRefusalReason(const FragmentCount &count) {
    std::string r = "the upgrade request has more parts than the WebSocket library keeps: ";
    if (count.queryParameters) r += std::to_string(count.queryParameters) + " query parameters (each '&' or ';' starts one, even an empty one), ";
    if (count.pathSeparators) r += std::to_string(count.pathSeparators) + " '&' or ';' in the path, ";
    r += std::to_string(count.knownHeaderLines) + " lines of headers it knows by name (";
    for (size_t i = 0; i < count.byName.size() && i < 8; ++i) {
        if (i) r += ", ";
        appendPrintable(r, count.byName[i].first, 40);
        if (count.byName[i].second > 1) r += " x" + std::to_string(count.byName[i].second);
    }
    if (count.byName.size() > 8) r += ", ...";
    r += ")";
    if (count.methodLikeHeaders) r += ", " + std::to_string(count.methodLikeHeaders) + " for headers named like an HTTP method (Put..., Patch..., Delete...)";
    r += " and 2 for the request line need " + std::to_string(count.total()) + " places of its " +
         std::to_string(kLwsMaxFragments) + ": send fewer query parameters or such headers (headers it does not know, "
         "such as X-Forwarded-Host, cost none), or move the data into the first message";
    return r;
}

}  // namespace

bool isLwsKnownHeader(std::string_view name) {
    for (std::string_view known : kKnownHeaders)
        if (equalsIgnoreCase(name, known)) return true;
    return false;
}

// The order gives the most specific answer first. libwebsockets' header data space (9216 bytes) cannot run
// out: the gateway takes at most 8192 bytes and 100 header lines; libwebsockets stores no line in more than
// its own length plus 6 bytes, and each fragment boundary of the target in 2 bytes instead of 1 (at most 94).
std::optional<LwsRefusal> libwebsocketsRefusal(std::string_view rawHead, const HttpMessageHead &head) {
    if (std::string problem = escapeProblem(head.target, "the request target"); !problem.empty()) return LwsRefusal{400, problem};
    const std::vector<RawHeader> headers = rawHeaders(rawHead, head.length);
    if (auto refusal = paddedValue(headers)) return refusal;
    if (auto refusal = connectionProblem(headers)) return refusal;

    FragmentCount count;
    countTarget(head.target, count);
    std::vector<std::string_view> methodsSeen;
    for (const RawHeader &h : headers) {
        if (std::string_view prefix = methodPrefixOf(h.name); !prefix.empty()) {
            if (auto refusal = countMethodLikeHeader(h, prefix, methodsSeen, count)) return refusal;
            continue;
        }
        // The gateway takes Sec-WebSocket-Protocol out of the head before libwebsockets reads it.
        if (!isLwsKnownHeader(h.name) || equalsIgnoreCase(h.name, "Sec-WebSocket-Protocol")) continue;
        ++count.knownHeaderLines;
        auto it = std::find_if(count.byName.begin(), count.byName.end(), [&](const auto &e) { return equalsIgnoreCase(e.first, h.name); });
        if (it == count.byName.end()) count.byName.emplace_back(h.name, 1);
        else ++it->second;
    }
    if (count.total() > kLwsMaxFragments) return LwsRefusal{431, fragmentRefusalReason(count)};
    return std::nullopt;
}

}  // namespace wsgw
