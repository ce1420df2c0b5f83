#include "sigv4.h"

#include "text.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>

namespace wsgw {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr std::string_view kService = "execute-api";
constexpr std::string_view kTerminator = "aws4_request";
constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";
constexpr int64_t kMaxSkewSeconds = 15 * 60;

using Digest = std::array<unsigned char, 32>;
using HeaderList = std::vector<std::pair<std::string, std::string>>;

// OpenSSL may dereference the data pointer even for zero lengths; an empty string_view can carry nullptr.
const unsigned char *bytesOf(std::string_view s) {
    static const unsigned char kEmpty = 0;
    return s.empty() ? &kEmpty : reinterpret_cast<const unsigned char *>(s.data());
}

Digest sha256(std::string_view data) {
    Digest out{};
    unsigned int len = 0;
    EVP_Digest(bytesOf(data), data.size(), out.data(), &len, EVP_sha256(), nullptr);
    return out;
}

Digest hmacSha256(std::string_view key, std::string_view data) {
    Digest out{};
    unsigned int len = 0;
    HMAC(EVP_sha256(), bytesOf(key), static_cast<int>(key.size()), bytesOf(data), data.size(), out.data(), &len);
    return out;
}

std::string_view asView(const Digest &d) { return {reinterpret_cast<const char *>(d.data()), d.size()}; }

std::string hex(const Digest &d) { return toHex(asView(d)); }

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

std::string_view trimWhitespace(std::string_view s) {
    while (!s.empty() && isSpace(s.front())) s.remove_prefix(1);
    while (!s.empty() && isSpace(s.back())) s.remove_suffix(1);
    return s;
}

bool isUnreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

void uriEncode(std::string_view s, std::string &out) {
    static const char kDigits[] = "0123456789ABCDEF";
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (isUnreserved(c)) {
            out.push_back(ch);
        } else {
            out.push_back('%');
            out.push_back(kDigits[c >> 4]);
            out.push_back(kDigits[c & 15]);
        }
    }
}

// The SDKs sign the path they send, normalised ('.', '..' and empty segments dropped) and URI-encoded once
// more, so a wire '%40' is signed as '%2540' and a wire '@' as '%40'.
std::string canonicalUri(std::string_view rawPath) {
    if (rawPath.empty()) return "/";
    std::vector<std::string_view> segments;
    size_t start = 0;
    while (start <= rawPath.size()) {
        size_t slash = rawPath.find('/', start);
        if (slash == std::string_view::npos) slash = rawPath.size();
        std::string_view segment = rawPath.substr(start, slash - start);
        if (segment == "..") {
            if (!segments.empty()) segments.pop_back();
        } else if (!segment.empty() && segment != ".") {
            segments.push_back(segment);
        }
        start = slash + 1;
    }
    std::string out;
    if (rawPath.front() == '/') out.push_back('/');
    for (size_t i = 0; i < segments.size(); ++i) {
        if (i) out.push_back('/');
        uriEncode(segments[i], out);
    }
    if (!segments.empty() && rawPath.back() == '/') out.push_back('/');
    return out;
}

std::string canonicalQuery(std::string_view rawQuery) {
    std::vector<std::pair<std::string, std::string>> params;
    size_t start = 0;
    while (start <= rawQuery.size()) {
        size_t amp = rawQuery.find('&', start);
        if (amp == std::string_view::npos) amp = rawQuery.size();
        std::string_view part = rawQuery.substr(start, amp - start);
        if (!part.empty()) {
            size_t eq = part.find('=');
            std::string_view key = part.substr(0, eq);
            std::string_view value = eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1);
            std::string encodedKey, encodedValue;
            uriEncode(percentDecodeLenient(key), encodedKey);
            uriEncode(percentDecodeLenient(value), encodedValue);
            params.emplace_back(std::move(encodedKey), std::move(encodedValue));
        }
        start = amp + 1;
    }
    std::sort(params.begin(), params.end());
    std::string out;
    for (const auto &[key, value] : params) {
        if (!out.empty()) out.push_back('&');
        out += key;
        out.push_back('=');
        out += value;
    }
    return out;
}

// Values of every header named `lowerName`, trimmed, inner whitespace runs collapsed, joined with ','.
// Returns false when the request has no such header.
bool canonicalHeaderValue(const HeaderList &headers, std::string_view lowerName, std::string &out) {
    bool found = false;
    out.clear();
    for (const auto &[name, value] : headers) {
        if (!equalsIgnoreCase(name, lowerName)) continue;
        if (found) out.push_back(',');
        found = true;
        bool pendingSpace = false;
        for (char c : trimWhitespace(value)) {
            if (isSpace(c)) {
                pendingSpace = true;
                continue;
            }
            if (pendingSpace) out.push_back(' ');
            pendingSpace = false;
            out.push_back(c);
        }
    }
    return found;
}

const std::string *findSingleHeader(const HeaderList &headers, std::string_view lowerName, int &count) {
    const std::string *value = nullptr;
    count = 0;
    for (const auto &[name, v] : headers) {
        if (equalsIgnoreCase(name, lowerName)) {
            value = &v;
            ++count;
        }
    }
    return value;
}

// signedNames must be lower-case, sorted and unique.
Digest computeSignature(std::string_view method, std::string_view rawPath, std::string_view rawQuery,
                        const HeaderList &headers, const std::vector<std::string> &signedNames,
                        std::string_view payloadHash, std::string_view amzDate, std::string_view scope,
                        std::string_view scopeDate, std::string_view region, std::string_view service,
                        std::string_view secret) {
    std::string canonical;
    canonical.reserve(512 + rawPath.size() * 3 + rawQuery.size() * 3);
    canonical.append(method);
    canonical.push_back('\n');
    canonical += canonicalUri(rawPath);
    canonical.push_back('\n');
    canonical += canonicalQuery(rawQuery);
    canonical.push_back('\n');
    std::string value;
    for (const auto &name : signedNames) {
        canonicalHeaderValue(headers, name, value);
        canonical += name;
        canonical.push_back(':');
        canonical += value;
        canonical.push_back('\n');
    }
    canonical.push_back('\n');
    for (size_t i = 0; i < signedNames.size(); ++i) {
        if (i) canonical.push_back(';');
        canonical += signedNames[i];
    }
    canonical.push_back('\n');
    canonical.append(payloadHash);

    std::string stringToSign;
    stringToSign.append(kAlgorithm).append("\n").append(amzDate).append("\n").append(scope).append("\n");
    stringToSign += hex(sha256(canonical));

    std::string secretKey = "AWS4";
    secretKey.append(secret);
    Digest key = hmacSha256(secretKey, scopeDate);
    OPENSSL_cleanse(secretKey.data(), secretKey.size());
    key = hmacSha256(asView(key), region);
    key = hmacSha256(asView(key), service);
    key = hmacSha256(asView(key), kTerminator);
    Digest signature = hmacSha256(asView(key), stringToSign);
    OPENSSL_cleanse(key.data(), key.size());
    return signature;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> parts;
    size_t start = 0;
    while (true) {
        size_t pos = s.find(sep, start);
        if (pos == std::string_view::npos) {
            parts.push_back(s.substr(start));
            return parts;
        }
        parts.push_back(s.substr(start, pos - start));
        start = pos + 1;
    }
}

bool allDigits(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int parseInt(std::string_view digits) {
    int v = 0;
    for (char c : digits) v = v * 10 + (c - '0');
    return v;
}

int64_t daysFromCivil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// YYYYMMDDTHHMMSSZ (ISO 8601 basic, UTC) -> seconds since the epoch.
bool parseAmzDate(std::string_view s, int64_t &epoch) {
    if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z') return false;
    if (!allDigits(s.substr(0, 8)) || !allDigits(s.substr(9, 6))) return false;
    int year = parseInt(s.substr(0, 4)), month = parseInt(s.substr(4, 2)), day = parseInt(s.substr(6, 2));
    int hour = parseInt(s.substr(9, 2)), minute = parseInt(s.substr(11, 2)), second = parseInt(s.substr(13, 2));
    static const int kDaysInMonth[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return false;
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > kDaysInMonth[month - 1] + (month == 2 && leap ? 1 : 0)) return false;
    epoch = daysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 86400 + hour * 3600 +
            minute * 60 + second;
    return true;
}

struct ParsedAuthorization {
    std::string_view accessKeyId, scopeDate, region, service, terminator;
    std::vector<std::string> signedNames;
    Digest signature{};
};

SigV4Result fail(std::string reason) {
    SigV4Result r;
    r.reason = std::move(reason);
    return r;
}

// Empty return: parsed. Otherwise the reason it is malformed.
std::string parseAuthorization(std::string_view header, ParsedAuthorization &out) {
    header = trimWhitespace(header);
    if (header == kAlgorithm)  // the scheme is right; what follows it is missing
        return "Authorization AWS4-HMAC-SHA256 has no parameters: it needs Credential=, SignedHeaders= and Signature= "
               "(AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/execute-api/aws4_request, SignedHeaders=..., Signature=...)";
    if (header.size() <= kAlgorithm.size() || header.substr(0, kAlgorithm.size()) != kAlgorithm ||
        !isSpace(header[kAlgorithm.size()])) {
        size_t space = header.find(' ');
        return "unsupported Authorization scheme '" + std::string(header.substr(0, std::min<size_t>(space, 32))) +
               "' (expected AWS4-HMAC-SHA256)";
    }
    std::string_view credential, signedHeaders, signature;
    bool haveCredential = false, haveSignedHeaders = false, haveSignature = false;
    for (std::string_view part : split(header.substr(kAlgorithm.size()), ',')) {
        part = trimWhitespace(part);
        size_t eq = part.find('=');
        if (eq == std::string_view::npos) return "Authorization component without '=': malformed header";
        std::string_view name = part.substr(0, eq), value = part.substr(eq + 1);
        bool *seen = nullptr;
        std::string_view *slot = nullptr;
        if (name == "Credential") {
            seen = &haveCredential;
            slot = &credential;
        } else if (name == "SignedHeaders") {
            seen = &haveSignedHeaders;
            slot = &signedHeaders;
        } else if (name == "Signature") {
            seen = &haveSignature;
            slot = &signature;
        } else {
            return "unknown Authorization component '" + std::string(name.substr(0, 32)) + "'";
        }
        if (*seen) return "Authorization repeats " + std::string(name);
        if (std::any_of(value.begin(), value.end(), isSpace))
            return "Authorization " + std::string(name) + " contains whitespace (components are separated by commas)";
        *seen = true;
        *slot = value;
    }
    if (!haveCredential) return "Authorization lacks Credential";
    if (!haveSignedHeaders) return "Authorization lacks SignedHeaders";
    if (!haveSignature) return "Authorization lacks Signature";

    auto scope = split(credential, '/');
    if (scope.size() != 5 || std::any_of(scope.begin(), scope.end(), [](std::string_view p) { return p.empty(); }))
        return "Credential must be AccessKeyId/YYYYMMDD/region/service/aws4_request";
    out.accessKeyId = scope[0];
    out.scopeDate = scope[1];
    out.region = scope[2];
    out.service = scope[3];
    out.terminator = scope[4];
    if (out.scopeDate.size() != 8 || !allDigits(out.scopeDate)) return "Credential scope date is not YYYYMMDD";
    if (out.terminator != kTerminator) return "Credential scope must end in aws4_request";

    out.signedNames.clear();
    for (std::string_view name : split(signedHeaders, ';')) {
        if (name.empty()) return "SignedHeaders has an empty name";
        if (toLowerAscii(name) != name) return "SignedHeaders must be lower-case";
        if (!out.signedNames.empty() && !(out.signedNames.back() < name))
            return "SignedHeaders must be sorted and unique";
        out.signedNames.emplace_back(name);
    }

    if (signature.size() != 64) return "Signature must be 64 hex digits";
    for (size_t i = 0; i < 32; ++i) {
        int hi = hexDigitValue(signature[2 * i]), lo = hexDigitValue(signature[2 * i + 1]);
        if (hi < 0 || lo < 0) return "Signature must be 64 hex digits";
        out.signature[i] = static_cast<unsigned char>(hi * 16 + lo);
    }
    return {};
}

}  // namespace

SigV4Result verifySigV4(std::string_view method, std::string_view rawPath, std::string_view rawQuery,
                        const HeaderList &headers, std::string_view body,
                        const std::vector<SigV4Credential> &credentials, int64_t nowEpochSeconds) {
    int count = 0;
    const std::string *authorization = findSingleHeader(headers, "authorization", count);
    if (count == 0) return fail("missing Authorization header");
    if (count > 1) return fail("more than one Authorization header");
    ParsedAuthorization auth;
    if (std::string error = parseAuthorization(*authorization, auth); !error.empty()) return fail(std::move(error));

    const std::string *amzDateHeader = findSingleHeader(headers, "x-amz-date", count);
    if (count == 0) return fail("missing X-Amz-Date header");
    if (count > 1) return fail("more than one X-Amz-Date header");
    std::string_view amzDate = trimWhitespace(*amzDateHeader);
    int64_t requestTime = 0;
    if (!parseAmzDate(amzDate, requestTime)) return fail("X-Amz-Date is not YYYYMMDDTHHMMSSZ");
    if (nowEpochSeconds > requestTime + kMaxSkewSeconds || nowEpochSeconds < requestTime - kMaxSkewSeconds) {
        bool behind = nowEpochSeconds > requestTime;
        // Unsigned subtraction: the true difference always fits, the signed one may overflow.
        uint64_t skew = behind ? static_cast<uint64_t>(nowEpochSeconds) - static_cast<uint64_t>(requestTime)
                               : static_cast<uint64_t>(requestTime) - static_cast<uint64_t>(nowEpochSeconds);
        return fail("clock skew: X-Amz-Date " + std::string(amzDate) + " is " + std::to_string(skew) + " s " +
                    (behind ? "behind" : "ahead of") + " the server clock (at most " +
                    std::to_string(kMaxSkewSeconds) + " s allowed)");
    }
    if (auth.scopeDate != amzDate.substr(0, 8)) return fail("Credential scope date differs from X-Amz-Date");
    if (auth.service != kService)
        return fail("Credential scope service is '" + std::string(auth.service.substr(0, 32)) +
                    "', expected execute-api");
    if (!std::binary_search(auth.signedNames.begin(), auth.signedNames.end(), std::string_view("host")))
        return fail("host is not among SignedHeaders");

    std::string headerValue;
    for (const auto &name : auth.signedNames)
        if (!canonicalHeaderValue(headers, name, headerValue))
            return fail("signed header '" + name.substr(0, 64) + "' is not in the request");

    std::string payloadHash = hex(sha256(body));
    const std::string *contentSha = findSingleHeader(headers, "x-amz-content-sha256", count);
    if (count > 1) return fail("more than one x-amz-content-sha256 header");
    if (contentSha) {
        std::string_view declared = trimWhitespace(*contentSha);
        if (declared != kUnsignedPayload && declared != payloadHash)
            return fail("x-amz-content-sha256 does not match the body");
        payloadHash = std::string(declared);
    }

    bool knownKey = false;
    std::string scope;
    scope.append(auth.scopeDate).append("/").append(auth.region).append("/").append(auth.service).append("/");
    scope.append(kTerminator);
    for (const auto &cred : credentials) {
        if (cred.accessKeyId != auth.accessKeyId) continue;
        knownKey = true;
        Digest expected = computeSignature(method, rawPath, rawQuery, headers, auth.signedNames, payloadHash, amzDate,
                                           scope, auth.scopeDate, auth.region, auth.service, cred.secretAccessKey);
        if (CRYPTO_memcmp(expected.data(), auth.signature.data(), expected.size()) == 0) {
            SigV4Result ok;
            ok.ok = true;
            ok.accessKeyId = cred.accessKeyId;
            return ok;
        }
    }
    if (!knownKey) return fail("unknown access key id");
    return fail("signature does not match");
}

std::string signSigV4(std::string_view method, std::string_view rawPath, std::string_view rawQuery,
                      const HeaderList &headers, std::string_view body, const SigV4Credential &cred,
                      std::string_view region, std::string_view service, std::string_view amzDate,
                      const std::vector<std::string> &signedHeaderNames) {
    std::vector<std::string> names;
    names.reserve(signedHeaderNames.size());
    for (const auto &n : signedHeaderNames) names.push_back(toLowerAscii(n));
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());

    int count = 0;
    const std::string *contentSha = findSingleHeader(headers, "x-amz-content-sha256", count);
    std::string payloadHash = contentSha ? std::string(trimWhitespace(*contentSha)) : hex(sha256(body));

    std::string_view scopeDate = amzDate.substr(0, 8);
    std::string scope;
    scope.append(scopeDate).append("/").append(region).append("/").append(service).append("/").append(kTerminator);
    Digest signature = computeSignature(method, rawPath, rawQuery, headers, names, payloadHash, amzDate, scope,
                                        scopeDate, region, service, cred.secretAccessKey);

    std::string out;
    out.append(kAlgorithm).append(" Credential=").append(cred.accessKeyId).append("/").append(scope);
    out.append(", SignedHeaders=");
    for (size_t i = 0; i < names.size(); ++i) {
        if (i) out.push_back(';');
        out += names[i];
    }
    out.append(", Signature=").append(hex(signature));
    return out;
}

}  // namespace wsgw
