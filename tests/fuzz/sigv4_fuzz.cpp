// Fuzz target: SigV4 verification of management API requests. The input is split at newlines into method,
// path, query, Authorization, X-Amz-Date, Host, one extra "name:value" header, and the rest is the body.
// Nothing may crash, leak or hit undefined behaviour; a fuzzed request re-signed with signSigV4 must verify.
#include "sigv4.h"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

std::string_view nextLine(std::string_view &rest) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view rest(reinterpret_cast<const char *>(data), size);
    std::string method(nextLine(rest)), path(nextLine(rest)), query(nextLine(rest));
    std::string authorization(nextLine(rest)), amzDate(nextLine(rest)), host(nextLine(rest));
    std::string_view extra = nextLine(rest);
    std::string_view body = rest;

    std::vector<std::pair<std::string, std::string>> headers{{"Host", host}, {"X-Amz-Date", amzDate}};
    size_t colon = extra.find(':');
    if (colon != std::string_view::npos)
        headers.emplace_back(std::string(extra.substr(0, colon)), std::string(extra.substr(colon + 1)));
    headers.emplace_back("Authorization", authorization);

    const wsgw::SigV4Credential cred{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"};
    const std::vector<wsgw::SigV4Credential> creds{{"AKIDOTHER", "x"}, cred};
    const int64_t nowFor20261122 = 1795362413;
    for (int64_t now : {nowFor20261122, int64_t{0}, INT64_MAX, INT64_MIN}) {
        wsgw::SigV4Result r = wsgw::verifySigV4(method, path, query, headers, body, creds, now);
        if (r.ok == !r.reason.empty()) std::abort();
        if (r.reason.find(cred.secretAccessKey) != std::string::npos) std::abort();
    }

    // The same request signed properly (fixed date, the extra header signed when its name is usable) verifies,
    // unless the extra header is itself one the verifier interprets.
    std::vector<std::pair<std::string, std::string>> signedRequest{{"host", host}, {"x-amz-date", "20261122T154653Z"}};
    std::vector<std::string> names{"host"};
    std::string extraName;
    if (colon != std::string_view::npos) {
        extraName = std::string(extra.substr(0, colon));
        bool usable = !extraName.empty();
        for (char &c : extraName) {
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
            if (c == ';' || c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' ||
                c == '=' || c == '/')
                usable = false;
        }
        if (extraName == "host" || extraName == "x-amz-date" || extraName == "authorization" ||
            extraName == "x-amz-content-sha256")
            usable = false;
        if (usable) {
            signedRequest.emplace_back(std::string(extra.substr(0, colon)), std::string(extra.substr(colon + 1)));
            names.push_back(extraName);
        }
    }
    signedRequest.emplace_back("authorization", wsgw::signSigV4(method, path, query, signedRequest, body, cred,
                                                                "us-east-1", "execute-api", "20261122T154653Z", names));
    wsgw::SigV4Result r = wsgw::verifySigV4(method, path, query, signedRequest, body, creds, nowFor20261122);
    if (!r.ok || r.accessKeyId != cred.accessKeyId) std::abort();
    return 0;
}
