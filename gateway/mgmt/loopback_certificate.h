// The certificate of the management API's loopback TLS endpoint for lambda functions (docs/lambda.md): a
// private CA made by the gateway and a server certificate it signs for 127.0.0.1, ::1 and localhost, kept in
// the data directory and reused while valid, so an unmodified AWS SDK in a function process (which trusts the
// CA through NODE_EXTRA_CA_CERTS, AWS_CA_BUNDLE or SSL_CERT_FILE) verifies https://127.0.0.1:port/.
// The CA's private key is never written: it signs one server certificate and is dropped, so nobody can
// mint other certificates the functions would trust.
#pragma once

#include <string>
#include <variant>

namespace wsgw {

struct LoopbackCertificateFiles {
    std::string caFile;      // the CA certificate (PEM): NODE_EXTRA_CA_CERTS
    std::string bundleFile;  // the CA, then the system's CAs: AWS_CA_BUNDLE and SSL_CERT_FILE (they replace a store)
    std::string certFile;    // the server certificate, then the CA (the chain the endpoint presents)
    std::string keyFile;     // its private key (mode 0600)
    bool made = false;       // new files were written (else valid ones were reused)
};

// Reuses the files in `directory` (created if missing) when they are whole, belong together and stay
// valid for at least 7 more days; else makes new ones (EC P-256, valid 397 days), each written to a
// temporary name and renamed. The error says which file and what went wrong.
std::variant<LoopbackCertificateFiles, std::string> ensureLoopbackCertificate(const std::string &directory,
                                                                              const std::string &systemCaBundle =
                                                                                  "/etc/ssl/certs/ca-certificates.crt");

}  // namespace wsgw
