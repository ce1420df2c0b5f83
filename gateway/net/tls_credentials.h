// Owns: a listener's certificate and key as OpenSSL's server context (SSL_CTX), and replacing them while
// the gateway runs. An operator renews a certificate by writing the new files and sending SIGHUP: new
// handshakes use the new certificate, connections already open keep theirs, nothing is dropped. A renewal
// that cannot be used (a key that does not match, a file half written) keeps the running certificate and
// logs why. A certificate that expires within 14 days, or has expired, is warned about at start and at
// every reload.
//
// One instance per pair of files, shared by every loop that terminates TLS with them (each network thread,
// the management listener). Thread-safe: the reload runs on the route reloader's thread.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <variant>

typedef struct ssl_ctx_st SSL_CTX;

namespace wsgw {

// The first error on this thread's OpenSSL error queue, as text; the queue is cleared.
std::string opensslError();

class TlsCredentials {
public:
    // The instance for these files (made, and the files checked, on first use); or what is wrong with them,
    // naming the file.
    static std::variant<std::shared_ptr<TlsCredentials>, std::string> forFiles(const std::string &certFile, const std::string &keyFile);
    // SIGHUP: every instance in use re-reads its files.
    static void reloadAll();

    ~TlsCredentials();
    TlsCredentials(const TlsCredentials &) = delete;
    TlsCredentials &operator=(const TlsCredentials &) = delete;

    // The current context, with a reference the caller frees (SSL_CTX_free) once its SSL_new is done.
    SSL_CTX *acquire() const;
    // Re-reads the files: "" (and the new context in place), or why they cannot be used (the old one stays).
    std::string reload();
    const std::string &certFile() const { return certFile_; }

private:
    TlsCredentials(std::string certFile, std::string keyFile, SSL_CTX *ctx, std::string fingerprint);

    const std::string certFile_, keyFile_;
    mutable std::mutex mutex_;
    SSL_CTX *ctx_;
    std::string fingerprint_;  // SHA-256 of the leaf certificate: a reload says whether it changed
};

}  // namespace wsgw
