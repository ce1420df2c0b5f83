// AWS Signature Version 4 (AWS4-HMAC-SHA256) for the management API: verifies requests signed by the AWS SDKs'
// ApiGatewayManagementApi clients (service execute-api, any region) against configured key pairs, and signs
// requests the same way for tests and tools. The canonical URI URI-encodes the wire path once more, as every
// non-S3 AWS signer does, so the SDKs' requests verify unchanged.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wsgw {

struct SigV4Credential {
    std::string accessKeyId, secretAccessKey;
};

struct SigV4Result {
    bool ok = false;
    std::string accessKeyId;
    std::string reason;  // reason says what failed, never the secret
};

// headers: as received (names in any case). rawPath: the request path exactly as on the wire (still
// percent-encoded). rawQuery: the part after '?', without it.
SigV4Result verifySigV4(std::string_view method, std::string_view rawPath, std::string_view rawQuery,
                        const std::vector<std::pair<std::string, std::string>> &headers, std::string_view body,
                        const std::vector<SigV4Credential> &credentials, int64_t nowEpochSeconds);

// Signing side (tests, tools): returns the Authorization header value. The payload hash is the
// x-amz-content-sha256 header when present, else sha256(body); amzDate is YYYYMMDDTHHMMSSZ.
std::string signSigV4(std::string_view method, std::string_view rawPath, std::string_view rawQuery,
                      const std::vector<std::pair<std::string, std::string>> &headers, std::string_view body,
                      const SigV4Credential &cred, std::string_view region, std::string_view service,
                      std::string_view amzDate, const std::vector<std::string> &signedHeaderNames);

}  // namespace wsgw
