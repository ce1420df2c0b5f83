#include "event.h"

#include "base64.h"
#include "log.h"
#include "text.h"

#include <wsgw/handler.h>

#include <chrono>
#include <cstdio>
#include <ctime>

namespace wsgw {

namespace {

const char *kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

std::tm utc(int64_t epochMs) {
    time_t secs = static_cast<time_t>(epochMs / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    return tm;
}

void key(std::string &out, std::string_view k) {
    log::appendJsonString(out, k);
    out += ':';
}

void stringField(std::string &out, std::string_view k, std::string_view v) {
    key(out, k);
    log::appendJsonString(out, v);
    out += ',';
}

void numberField(std::string &out, std::string_view k, int64_t v) {
    key(out, k);
    out += std::to_string(v);
    out += ',';
}

void closeObject(std::string &out) {
    if (out.back() == ',') out.back() = '}';
    else out += '}';
}

void appendIdentity(std::string &out, const ConnectionInfo &c) {
    key(out, "identity");
    out += '{';
    stringField(out, "sourceIp", c.sourceIp);
    stringField(out, "userAgent", c.userAgent);
    if (c.admission && !c.admission->apiKeyId.empty()) stringField(out, "apiKeyId", c.admission->apiKeyId);
    closeObject(out);
    out += ',';
}

using Pairs = std::vector<std::pair<std::string, std::string>>;

// True when pairs[i] is the first pair with its name: a repeated name is written once, at its first place.
bool firstOfName(const Pairs &pairs, size_t i) {
    for (size_t j = 0; j < i; ++j)
        if (pairs[j].first == pairs[i].first) return false;
    return true;
}

// {"name": ["value", ...]}: every value of a name, in order, under the name's first occurrence. It runs on
// the network thread for every connection's table row, so it builds no groups; a request's few headers
// rarely repeat a name (and the head parser allows at most 100 of them).
void appendMultiValue(std::string &out, const Pairs &pairs) {
    out += '{';
    for (size_t i = 0; i < pairs.size(); ++i) {
        if (!firstOfName(pairs, i)) continue;
        key(out, pairs[i].first);
        out += '[';
        log::appendJsonString(out, pairs[i].second);
        for (size_t j = i + 1; j < pairs.size(); ++j) {
            if (pairs[j].first != pairs[i].first) continue;
            out += ',';
            log::appendJsonString(out, pairs[j].second);
        }
        out += "],";
    }
    closeObject(out);
}

// AWS's single-value map keeps the last value of a repeated name; the multi-value map keeps all, in order.
void singleAndMulti(std::string &out, std::string_view single, std::string_view multi, const Pairs &pairs) {
    key(out, single);
    out += '{';
    for (size_t i = 0; i < pairs.size(); ++i) {
        if (!firstOfName(pairs, i)) continue;
        size_t last = i;
        for (size_t j = i + 1; j < pairs.size(); ++j)
            if (pairs[j].first == pairs[i].first) last = j;
        stringField(out, pairs[i].first, pairs[last].second);
    }
    closeObject(out);
    out += ',';
    key(out, multi);
    appendMultiValue(out, pairs);
    out += ',';
}

std::string formDecode(std::string_view s) { return percentDecodeLenient(s, /*plusIsSpace=*/true); }

}  // namespace

int64_t nowEpochMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string formatRequestTime(int64_t epochMs) {
    std::tm tm = utc(epochMs);
    char buf[40];
    std::snprintf(buf, sizeof buf, "%02d/%s/%04d:%02d:%02d:%02d +0000", tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900,
                  tm.tm_hour, tm.tm_min, tm.tm_sec);
    return buf;
}

std::string formatIso8601Millis(int64_t epochMs) {
    std::tm tm = utc(epochMs);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(epochMs % 1000));
    return buf;
}

std::vector<std::pair<std::string, std::string>> parseQueryString(std::string_view raw) {
    std::vector<std::pair<std::string, std::string>> out;
    while (!raw.empty()) {
        size_t amp = raw.find('&');
        std::string_view part = raw.substr(0, amp);
        raw = amp == std::string_view::npos ? std::string_view() : raw.substr(amp + 1);
        if (part.empty()) continue;
        size_t eq = part.find('=');
        if (eq == std::string_view::npos) out.emplace_back(formDecode(part), std::string());
        else out.emplace_back(formDecode(part.substr(0, eq)), formDecode(part.substr(eq + 1)));
    }
    return out;
}

std::string base64Encode(std::string_view bytes) {
    return encodeBase64(reinterpret_cast<const unsigned char *>(bytes.data()), bytes.size(), kBase64Standard, true);
}

std::string buildEventJson(const ConnectionInfo &c, const EventFields &e) {
    std::string out;
    out.reserve(512 + e.body.size() * (e.isBinary ? 2 : 1) + c.headers.size() * 64);
    out += '{';
    key(out, "requestContext");
    out += '{';
    stringField(out, "routeKey", e.routeKey);
    const char *eventType = e.type == WSGW_CONNECT ? "CONNECT" : e.type == WSGW_DISCONNECT ? "DISCONNECT" : "MESSAGE";
    stringField(out, "eventType", eventType);
    stringField(out, "messageDirection", "IN");
    stringField(out, "connectionId", c.connectionId);
    if (e.type == WSGW_MESSAGE) stringField(out, "messageId", e.messageId);
    stringField(out, "requestId", e.requestId);
    stringField(out, "extendedRequestId", e.requestId);
    stringField(out, "domainName", e.domainName.empty() ? std::string_view(c.domainName) : e.domainName);
    stringField(out, "stage", e.stage.empty() ? std::string_view("$default") : e.stage);
    stringField(out, "apiId", "wsgw");
    numberField(out, "connectedAt", c.connectedAtMs);
    numberField(out, "requestTimeEpoch", e.requestTimeEpochMs);
    stringField(out, "requestTime", formatRequestTime(e.requestTimeEpochMs));
    appendIdentity(out, c);
    if (!c.authorizerJson.empty()) {
        key(out, "authorizer");
        out += c.authorizerJson;
        out += ',';
    }
    if (e.type == WSGW_DISCONNECT) {
        numberField(out, "disconnectStatusCode", e.disconnectStatusCode);
        stringField(out, "disconnectReason", e.disconnectReason);
    }
    closeObject(out);
    out += ',';
    if (e.type == WSGW_CONNECT) {
        singleAndMulti(out, "headers", "multiValueHeaders", c.headers);
        if (!c.rawQuery.empty()) {
            singleAndMulti(out, "queryStringParameters", "multiValueQueryStringParameters", parseQueryString(c.rawQuery));
        }
    }
    if (e.type == WSGW_MESSAGE) {
        if (e.isBinary) stringField(out, "body", base64Encode(e.body));
        else stringField(out, "body", e.body);
    }
    key(out, "isBase64Encoded");
    out += (e.type == WSGW_MESSAGE && e.isBinary) ? "true" : "false";
    out += '}';
    return out;
}

std::string multiValueJson(const std::vector<std::pair<std::string, std::string>> &pairs) {
    size_t bytes = 2;
    for (const auto &[name, value] : pairs) bytes += name.size() + value.size() + 8;
    std::string out;
    out.reserve(bytes);
    appendMultiValue(out, pairs);
    return out;
}

std::string connectionDescriptionJson(const ConnectionInfo &c, int64_t lastActiveAtMs) {
    std::string out = "{";
    stringField(out, "connectedAt", formatIso8601Millis(c.connectedAtMs));
    appendIdentity(out, c);
    stringField(out, "lastActiveAt", formatIso8601Millis(lastActiveAtMs));
    closeObject(out);
    return out;
}

}  // namespace wsgw
