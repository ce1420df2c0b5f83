// The management API's loopback certificate for lambda callbacks (docs/lambda.md): made once, verifiable for
// 127.0.0.1 against its CA, reused while valid, made again when a file is damaged; the bundle is the CA then
// the system's CAs.
#include "loopback_certificate.h"

#include <doctest/doctest.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace wsgw;

namespace {

std::string slurp(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Verifies the first certificate of certFile for 127.0.0.1 against caFile alone, as a TLS client does.
bool verifiesFor127(const std::string &caFile, const std::string &certFile) {
    X509_STORE *store = X509_STORE_new();
    X509_STORE_load_file(store, caFile.c_str());
    FILE *f = std::fopen(certFile.c_str(), "r");
    X509 *leaf = f ? PEM_read_X509(f, nullptr, nullptr, nullptr) : nullptr;
    if (f) std::fclose(f);
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, leaf, nullptr);
    X509_VERIFY_PARAM_set1_ip_asc(X509_STORE_CTX_get0_param(ctx), "127.0.0.1");
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
    bool ok = leaf && X509_verify_cert(ctx) == 1;
    X509_STORE_CTX_free(ctx);
    X509_free(leaf);
    X509_STORE_free(store);
    return ok;
}

}  // namespace

TEST_SUITE("loopback certificate") {
    TEST_CASE("made, verifiable for 127.0.0.1, reused, made again when damaged; the bundle is CA + system CAs") {
        char tmpl[] = "/tmp/wsgw-loopcert-XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        std::string dir = std::string(tmpl) + "/data";  // created by the call
        // "The system's CAs": another gateway's CA, a real certificate the bundle must keep.
        auto other = ensureLoopbackCertificate(std::string(tmpl) + "/other", "/nonexistent");
        REQUIRE(std::holds_alternative<LoopbackCertificateFiles>(other));
        std::string systemBundle = std::get<LoopbackCertificateFiles>(other).caFile;
        std::string systemPem = slurp(systemBundle);
        REQUIRE(systemPem.find("BEGIN CERTIFICATE") != std::string::npos);

        auto first = ensureLoopbackCertificate(dir, systemBundle);
        REQUIRE_MESSAGE(std::holds_alternative<LoopbackCertificateFiles>(first), std::get<std::string>(first));
        const auto &f = std::get<LoopbackCertificateFiles>(first);
        CHECK(f.made);
        CHECK(verifiesFor127(f.caFile, f.certFile));
        CHECK(verifiesFor127(f.bundleFile, f.certFile));
        struct stat st{};
        REQUIRE(stat(f.keyFile.c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
        std::string ca = slurp(f.caFile), bundle = slurp(f.bundleFile), cert = slurp(f.certFile);
        CHECK(bundle.rfind(ca, 0) == 0);
        CHECK(bundle == ca + systemPem);
        CHECK(verifiesFor127(systemBundle, f.certFile) == false);  // another CA does not vouch for it
        CHECK(cert.find(ca) != std::string::npos);  // the endpoint presents its chain
        CHECK(ca.find("PRIVATE KEY") == std::string::npos);
        CHECK(slurp(f.keyFile).find("PRIVATE KEY") != std::string::npos);

        auto second = ensureLoopbackCertificate(dir, systemBundle);
        REQUIRE(std::holds_alternative<LoopbackCertificateFiles>(second));
        CHECK_FALSE(std::get<LoopbackCertificateFiles>(second).made);
        CHECK(slurp(f.certFile) == cert);

        std::ofstream(f.keyFile, std::ios::trunc) << "not a key";
        auto third = ensureLoopbackCertificate(dir, systemBundle);
        REQUIRE(std::holds_alternative<LoopbackCertificateFiles>(third));
        CHECK(std::get<LoopbackCertificateFiles>(third).made);
        CHECK(slurp(f.certFile) != cert);
        CHECK(verifiesFor127(f.caFile, f.certFile));
        CHECK_FALSE(verifiesFor127(f.caFile + ".missing", f.certFile));

        std::string cmd = std::string("rm -rf ") + tmpl;
        CHECK(std::system(cmd.c_str()) == 0);
    }

    TEST_CASE("a data directory that cannot be made is a clear error") {
        auto r = ensureLoopbackCertificate("/proc/no/such/dir");
        REQUIRE(std::holds_alternative<std::string>(r));
        CHECK(std::get<std::string>(r).find("/proc/no/such/dir") != std::string::npos);
    }
}
