// Owns: the certificate and key of a TLS listener and their replacement at SIGHUP (tls_credentials.h).
#include "tls_credentials.h"

#include "config_file.h"
#include "log.h"

#include <openssl/asn1.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <ctime>
#include <map>
#include <optional>
#include <utility>
#include <vector>

namespace wsgw {

namespace {

constexpr int kExpiryWarningDays = 14;
constexpr size_t kMaxPemFileBytes = 1 << 20;  // a certificate chain or a key; far more than either needs

// The files are read by our own reader, not OpenSSL's file loaders: a FIFO named as a certificate or key
// (an operator's mistake, or a file replaced before SIGHUP) made those wait for a writer for ever, and with
// them the start-up, or every later reload and the shutdown.
std::variant<std::string, std::string> readPem(const std::string &path, const char *what) {
    std::string error;
    std::optional<std::string> bytes = readConfigFile(path, what, &error, kMaxPemFileBytes);
    if (!bytes) return std::variant<std::string, std::string>(std::in_place_index<1>, path + ": " + error);
    return std::variant<std::string, std::string>(std::in_place_index<0>, std::move(*bytes));
}

// SSL_CTX_use_certificate_chain_file from bytes: the first certificate is the leaf, the rest its chain.
bool useCertificateChain(SSL_CTX *ctx, const std::string &pem) {
    BIO *bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    if (!bio) return false;
    X509 *leaf = PEM_read_bio_X509_AUX(bio, nullptr, nullptr, nullptr);
    bool ok = leaf && SSL_CTX_use_certificate(ctx, leaf) == 1;
    X509_free(leaf);
    if (ok) ok = SSL_CTX_clear_chain_certs(ctx) == 1;
    while (ok) {
        X509 *next = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
        if (!next) {
            // The end of the file reads as "no start line"; anything else is a broken certificate.
            unsigned long e = ERR_peek_last_error();
            if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) ERR_clear_error();
            else ok = false;
            break;
        }
        if (SSL_CTX_add0_chain_cert(ctx, next) != 1) {
            X509_free(next);
            ok = false;
        }
    }
    BIO_free(bio);
    return ok;
}

bool usePrivateKey(SSL_CTX *ctx, const std::string &pem) {
    BIO *bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    if (!bio) return false;
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    bool ok = key && SSL_CTX_use_PrivateKey(ctx, key) == 1;
    EVP_PKEY_free(key);
    BIO_free(bio);
    return ok;
}

struct Built {
    SSL_CTX *ctx = nullptr;
    std::string fingerprint;
};

// A server context for the files: the options every TLS listener of the gateway uses.
std::variant<Built, std::string> buildContext(const std::string &certFile, const std::string &keyFile) {
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) return "TLS: " + opensslError();
    auto fail = [&](const std::string &what) -> std::variant<Built, std::string> {
        SSL_CTX_free(ctx);
        return what + ": " + opensslError();
    };
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    uint64_t options = SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE;
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    options |= SSL_OP_IGNORE_UNEXPECTED_EOF;  // a client that just closes its TCP connection has left, as over ws://
#endif
    SSL_CTX_set_options(ctx, options);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    // One read(2) takes what the socket has (up to a record's worth and more) instead of two per record,
    // header then body. What it takes beyond the record being read waits inside OpenSSL, which
    // TlsPendingReads covers (SSL_has_pending sees it).
    SSL_CTX_set_read_ahead(ctx, 1);
    auto certPem = readPem(certFile, "the TLS certificate");
    if (certPem.index() == 1) {
        SSL_CTX_free(ctx);
        return std::get<1>(certPem);
    }
    auto keyPem = readPem(keyFile, "the TLS key");
    if (keyPem.index() == 1) {
        SSL_CTX_free(ctx);
        return std::get<1>(keyPem);
    }
    if (!useCertificateChain(ctx, std::get<0>(certPem)))
        return fail("cannot use " + certFile + " as a PEM certificate chain");
    bool keyUsed = usePrivateKey(ctx, std::get<0>(keyPem));
    OPENSSL_cleanse(std::get<0>(keyPem).data(), std::get<0>(keyPem).size());  // the key's only other copy is OpenSSL's
    if (!keyUsed) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
            return fail("the key in " + keyFile + " does not match the certificate in " + certFile);
        return fail("cannot use " + keyFile + " as a PEM private key");
    }
    if (SSL_CTX_check_private_key(ctx) != 1) return fail("the key in " + keyFile + " does not match the certificate in " + certFile);
    Built built{ctx, {}};
    if (X509 *leaf = SSL_CTX_get0_certificate(ctx)) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        if (X509_digest(leaf, EVP_sha256(), md, &len) == 1) {
            char hex[3];
            for (unsigned i = 0; i < len; ++i) {
                std::snprintf(hex, sizeof hex, "%02x", md[i]);
                built.fingerprint += hex;
            }
        }
    }
    return built;
}

// A warning when the certificate is expired or expires within kExpiryWarningDays.
void warnIfExpiring(SSL_CTX *ctx, const std::string &certFile) {
    X509 *leaf = SSL_CTX_get0_certificate(ctx);
    if (!leaf) return;
    const ASN1_TIME *notAfter = X509_get0_notAfter(leaf);
    int days = 0, seconds = 0;
    if (ASN1_TIME_diff(&days, &seconds, nullptr, notAfter) != 1) return;  // from now to notAfter
    if (days > kExpiryWarningDays) return;
    std::tm tm{};
    std::string when;
    if (ASN1_TIME_to_tm(notAfter, &tm) == 1) {
        char buf[32];
        std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
        when = buf;
    }
    bool expired = days < 0 || (days == 0 && seconds <= 0);
    log::warn(expired ? "TLS certificate has expired: clients will refuse it; write the renewed files and send SIGHUP"
                      : "TLS certificate expires soon: write the renewed files and send SIGHUP",
              {log::Field("file", certFile), log::Field("notAfter", when), log::Field("days", static_cast<int64_t>(days))});
}

std::mutex gRegistryMutex;
std::map<std::pair<std::string, std::string>, std::weak_ptr<TlsCredentials>> gRegistry;

}  // namespace

std::string opensslError() {
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (!e) return "unknown OpenSSL error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

TlsCredentials::TlsCredentials(std::string certFile, std::string keyFile, SSL_CTX *ctx, std::string fingerprint)
    : certFile_(std::move(certFile)), keyFile_(std::move(keyFile)), ctx_(ctx), fingerprint_(std::move(fingerprint)) {}

TlsCredentials::~TlsCredentials() { SSL_CTX_free(ctx_); }

std::variant<std::shared_ptr<TlsCredentials>, std::string> TlsCredentials::forFiles(const std::string &certFile, const std::string &keyFile) {
    std::lock_guard lock(gRegistryMutex);
    auto &slot = gRegistry[{certFile, keyFile}];
    if (auto existing = slot.lock()) return existing;
    auto built = buildContext(certFile, keyFile);
    if (auto *error = std::get_if<std::string>(&built)) return *error;
    Built &b = std::get<Built>(built);
    warnIfExpiring(b.ctx, certFile);
    std::shared_ptr<TlsCredentials> made(new TlsCredentials(certFile, keyFile, b.ctx, std::move(b.fingerprint)));
    slot = made;
    return made;
}

void TlsCredentials::reloadAll() {
    std::vector<std::shared_ptr<TlsCredentials>> live;
    {
        std::lock_guard lock(gRegistryMutex);
        for (auto it = gRegistry.begin(); it != gRegistry.end();) {
            if (auto c = it->second.lock()) {
                live.push_back(std::move(c));
                ++it;
            } else {
                it = gRegistry.erase(it);
            }
        }
    }
    for (auto &c : live) c->reload();  // outside the registry's lock: reading files takes time
}

SSL_CTX *TlsCredentials::acquire() const {
    std::lock_guard lock(mutex_);
    SSL_CTX_up_ref(ctx_);
    return ctx_;
}

std::string TlsCredentials::reload() {
    auto built = buildContext(certFile_, keyFile_);
    if (auto *error = std::get_if<std::string>(&built)) {
        log::error("TLS certificate not reloaded: the running one stays; fix the files and send SIGHUP again",
                   {log::Field("cert", certFile_), log::Field("key", keyFile_), log::Field("error", *error)});
        return *error;
    }
    Built &b = std::get<Built>(built);
    warnIfExpiring(b.ctx, certFile_);
    bool changed;
    SSL_CTX *old;
    {
        std::lock_guard lock(mutex_);
        changed = b.fingerprint != fingerprint_;
        old = ctx_;
        ctx_ = b.ctx;
        fingerprint_ = b.fingerprint;
    }
    SSL_CTX_free(old);  // connections still open hold their own references to it
    log::info(changed ? "TLS certificate reloaded: new handshakes use the new certificate" : "TLS certificate reloaded (unchanged)",
              {log::Field("cert", certFile_), log::Field("sha256", b.fingerprint)});
    return {};
}

}  // namespace wsgw
