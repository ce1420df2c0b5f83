#include "loopback_certificate.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <fstream>
#include <memory>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace wsgw {

namespace {

constexpr long kValidDays = 397;      // what browsers accept for a server certificate; any client takes it
constexpr long kRenewBeforeDays = 7;  // a certificate closer than this to its end is made again
constexpr const char *kCaName = "management-tls-ca.pem";
constexpr const char *kBundleName = "management-tls-ca-bundle.pem";
constexpr const char *kCertName = "management-tls-cert.pem";
constexpr const char *kKeyName = "management-tls-key.pem";

struct Free {
    void operator()(X509 *p) const { X509_free(p); }
    void operator()(EVP_PKEY *p) const { EVP_PKEY_free(p); }
    void operator()(BIO *p) const { BIO_free(p); }
    void operator()(X509_EXTENSION *p) const { X509_EXTENSION_free(p); }
};
using X509Ptr = std::unique_ptr<X509, Free>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Free>;
using BioPtr = std::unique_ptr<BIO, Free>;

std::string opensslError(const char *what) {
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown error";
    if (e) ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return std::string(what) + ": " + buf;
}

bool readFile(const std::string &path, std::string &out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::stringstream ss;
    ss << in.rdbuf();
    out = ss.str();
    return true;
}

// Writes to a temporary name, then renames: a reader never sees half a file.
std::string writeFileAtomically(const std::string &path, const std::string &bytes, mode_t mode) {
    std::string tmp = path + ".tmp." + std::to_string(getpid());
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) return "cannot write " + tmp + ": " + std::strerror(errno);
    size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            std::string err = "cannot write " + tmp + ": " + std::strerror(errno);
            close(fd);
            unlink(tmp.c_str());
            return err;
        }
        done += static_cast<size_t>(n);
    }
    fchmod(fd, mode);
    close(fd);
    if (rename(tmp.c_str(), path.c_str()) != 0) {
        std::string err = "cannot rename " + tmp + " to " + path + ": " + std::strerror(errno);
        unlink(tmp.c_str());
        return err;
    }
    return {};
}

X509Ptr firstCertificate(const std::string &pem) {
    BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    return X509Ptr(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
}

std::string pemOf(X509 *cert) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(bio.get(), cert);
    char *data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(n));
}

std::string pemOf(EVP_PKEY *key) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
    char *data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(n));
}

// The files in place belong together and stay valid long enough: reuse them.
bool reusable(const LoopbackCertificateFiles &f) {
    std::string caPem, certPem, keyPem;
    if (!readFile(f.caFile, caPem) || !readFile(f.certFile, certPem) || !readFile(f.keyFile, keyPem)) return false;
    X509Ptr ca = firstCertificate(caPem), leaf = firstCertificate(certPem);
    BioPtr keyBio(BIO_new_mem_buf(keyPem.data(), static_cast<int>(keyPem.size())));
    KeyPtr key(keyBio ? PEM_read_bio_PrivateKey(keyBio.get(), nullptr, nullptr, nullptr) : nullptr);
    bool ok = ca && leaf && key;
    if (ok) ok = X509_check_private_key(leaf.get(), key.get()) == 1;
    if (ok) {
        KeyPtr caPublic(X509_get_pubkey(ca.get()));
        ok = caPublic && X509_verify(leaf.get(), caPublic.get()) == 1;
    }
    if (ok) {
        std::time_t renewAt = std::time(nullptr) + kRenewBeforeDays * 86400;
        ok = X509_cmp_time(X509_get0_notAfter(leaf.get()), &renewAt) > 0 && X509_cmp_time(X509_get0_notAfter(ca.get()), &renewAt) > 0 &&
             X509_check_ip_asc(leaf.get(), "127.0.0.1", 0) == 1;
    }
    ERR_clear_error();
    return ok;
}

bool addExtension(X509 *cert, X509 *issuer, int nid, const char *value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    std::unique_ptr<X509_EXTENSION, Free> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
    return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

// A version 3 certificate for `key`, named CN=`commonName`, valid from an hour ago for kValidDays.
X509Ptr newCertificate(EVP_PKEY *key, const std::string &commonName) {
    X509Ptr cert(X509_new());
    if (!cert) return nullptr;
    X509_set_version(cert.get(), 2);
    unsigned char serial[16];
    if (RAND_bytes(serial, sizeof serial) != 1) return nullptr;
    serial[0] &= 0x7f;  // positive
    BIGNUM *bn = BN_bin2bn(serial, sizeof serial, nullptr);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), kValidDays * 86400);
    X509_set_pubkey(cert.get(), key);
    X509_NAME *name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char *>("wsgw"), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char *>(commonName.c_str()), -1, -1, 0);
    return cert;
}

}  // namespace

std::variant<LoopbackCertificateFiles, std::string> ensureLoopbackCertificate(const std::string &directory,
                                                                              const std::string &systemCaBundle) {
    if (mkdir(directory.c_str(), 0755) != 0 && errno != EEXIST)
        return "cannot create the data directory " + directory + " for the management API's loopback certificate: " +
               std::strerror(errno);
    LoopbackCertificateFiles files;
    files.caFile = directory + "/" + kCaName;
    files.bundleFile = directory + "/" + kBundleName;
    files.certFile = directory + "/" + kCertName;
    files.keyFile = directory + "/" + kKeyName;

    std::string caPem;
    if (reusable(files)) {
        readFile(files.caFile, caPem);
    } else {
        KeyPtr caKey(EVP_EC_gen("P-256")), leafKey(EVP_EC_gen("P-256"));
        if (!caKey || !leafKey) return opensslError("making the management API's loopback key");
        unsigned char tag[6];
        RAND_bytes(tag, sizeof tag);
        char tagHex[13];
        for (size_t i = 0; i < sizeof tag; ++i) std::snprintf(tagHex + 2 * i, 3, "%02x", tag[i]);
        // A name of its own per CA: two gateways' CAs are never confused by a verifier's name lookup.
        X509Ptr ca = newCertificate(caKey.get(), std::string("wsgw loopback CA ") + tagHex);
        X509Ptr leaf = newCertificate(leafKey.get(), "127.0.0.1");
        if (!ca || !leaf) return opensslError("making the management API's loopback certificate");
        X509_set_issuer_name(ca.get(), X509_get_subject_name(ca.get()));
        X509_set_issuer_name(leaf.get(), X509_get_subject_name(ca.get()));
        bool ok = addExtension(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
                  addExtension(ca.get(), ca.get(), NID_key_usage, "critical,keyCertSign,cRLSign") &&
                  addExtension(ca.get(), ca.get(), NID_subject_key_identifier, "hash") &&
                  addExtension(ca.get(), ca.get(), NID_authority_key_identifier, "keyid:always") &&
                  X509_sign(ca.get(), caKey.get(), EVP_sha256()) > 0 &&
                  addExtension(leaf.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE") &&
                  addExtension(leaf.get(), ca.get(), NID_key_usage, "critical,digitalSignature") &&
                  addExtension(leaf.get(), ca.get(), NID_ext_key_usage, "serverAuth") &&
                  addExtension(leaf.get(), ca.get(), NID_subject_alt_name, "IP:127.0.0.1,IP:::1,DNS:localhost") &&
                  addExtension(leaf.get(), ca.get(), NID_subject_key_identifier, "hash") &&
                  addExtension(leaf.get(), ca.get(), NID_authority_key_identifier, "keyid:always") &&
                  X509_sign(leaf.get(), caKey.get(), EVP_sha256()) > 0;
        if (!ok) return opensslError("signing the management API's loopback certificate");
        caPem = pemOf(ca.get());
        // The key first: a certificate is never in place without its key.
        if (std::string err = writeFileAtomically(files.keyFile, pemOf(leafKey.get()), 0600); !err.empty()) return err;
        if (std::string err = writeFileAtomically(files.certFile, pemOf(leaf.get()) + caPem, 0644); !err.empty()) return err;
        if (std::string err = writeFileAtomically(files.caFile, caPem, 0644); !err.empty()) return err;
        files.made = true;
    }
    // The bundle is made again at every start: the system's CAs may have changed since.
    std::string system;
    readFile(systemCaBundle, system);  // none (a minimal container): the bundle is our CA alone
    if (!system.empty() && system.back() != '\n') system += '\n';
    if (std::string err = writeFileAtomically(files.bundleFile, caPem + system, 0644); !err.empty()) return err;
    return files;
}

}  // namespace wsgw
