// Owns: a function process's argv and Lambda's environment, and the gateway-wide settings in it
// (lambda_environment.h).
#include "lambda_environment.h"

#include "connection_id.h"
#include "text.h"

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <mutex>

namespace wsgw {

namespace {

std::mutex g_runtimesMutex;
std::string g_runtimesDir = "runtimes";

std::mutex g_callbackMutex;
LambdaCallbackTrust g_callbackTrust;
std::string g_callbackEndpoint;

std::string randomCredentialText(size_t n, const char *alphabet) {
    std::string out;
    unsigned char bytes[64];
    size_t len = std::strlen(alphabet);
    while (out.size() < n) {
        fillRandom(bytes, sizeof bytes);
        for (unsigned char b : bytes) {
            if (out.size() == n) break;
            if (b < 256 / len * len) out += alphabet[b % len];  // no modulo bias
        }
    }
    return out;
}

// AWS_LAMBDA_LOG_STREAM_NAME: "YYYY/MM/DD/[$LATEST]" and 32 random hex digits, as Lambda names them.
std::string newLogStreamName() {
    char day[16];
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    std::strftime(day, sizeof day, "%Y/%m/%d", &tm);
    unsigned char stream[16];
    fillRandom(stream, sizeof stream);
    return std::string(day) + "/[$LATEST]" + toHex(std::string_view(reinterpret_cast<const char *>(stream), sizeof stream));
}

}  // namespace

void setLambdaRuntimesDir(std::string dir) {
    std::lock_guard lock(g_runtimesMutex);
    g_runtimesDir = std::move(dir);
}

const std::string &lambdaRuntimesDir() {
    std::lock_guard lock(g_runtimesMutex);
    return g_runtimesDir;
}

void setLambdaCallbackTrust(LambdaCallbackTrust trust) {
    // Absolute: function processes run in their own directories, where a path relative to the gateway's
    // working directory (from a relative --db) would not name the file, and the SDK would not trust us.
    for (std::string *file : {&trust.caFile, &trust.bundleFile})
        if (!file->empty()) *file = std::filesystem::absolute(*file).lexically_normal().string();
    std::lock_guard lock(g_callbackMutex);
    g_callbackTrust = std::move(trust);
}

void setLambdaCallbackEndpoint(std::string hostPort) {
    std::lock_guard lock(g_callbackMutex);
    g_callbackEndpoint = std::move(hostPort);
}

std::string lambdaCallbackEndpoint() {
    std::lock_guard lock(g_callbackMutex);
    return g_callbackEndpoint;
}

const LambdaCredentials &lambdaCredentials() {
    static const LambdaCredentials creds = [] {
        LambdaCredentials c;
        c.accessKeyId = "ASIA" + randomCredentialText(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
        c.secretAccessKey = randomCredentialText(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
        c.sessionToken = randomCredentialText(64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
        return c;
    }();
    return creds;
}

std::string lambdaRegion() {
    const char *r = std::getenv("AWS_REGION");
    if (!r || !*r) r = std::getenv("AWS_DEFAULT_REGION");
    return r && *r ? r : "us-east-1";
}

std::vector<std::string> lambdaProcessArgv(const LambdaSpec &spec) {
    if (!spec.command.empty()) return spec.command;
    if (spec.runtime == "nodejs") return {"node", lambdaRuntimesDir() + "/nodejs/bootstrap.mjs"};
    return {"python3", lambdaRuntimesDir() + "/python/bootstrap.py"};
}

std::vector<std::string> lambdaProcessEnvironment(const std::string &function, const LambdaSpec &spec, int runtimeApiPort) {
    const char *path = std::getenv("PATH");
    const char *home = std::getenv("HOME");
    std::string region = lambdaRegion();
    const LambdaCredentials &creds = lambdaCredentials();
    // Lambda's environment, not the gateway's: the gateway's own secrets stay out of function processes.
    std::vector<std::string> env = {
        std::string("PATH=") + (path && *path ? path : "/usr/local/bin:/usr/bin:/bin"),
        "LANG=C.UTF-8",
        "TZ=:UTC",
        "LAMBDA_TASK_ROOT=" + spec.directory,
        "LAMBDA_RUNTIME_DIR=" + lambdaRuntimesDir() + (spec.runtime.empty() ? "" : "/" + spec.runtime),
        "AWS_LAMBDA_RUNTIME_API=127.0.0.1:" + std::to_string(runtimeApiPort),
        "AWS_LAMBDA_FUNCTION_NAME=" + function,
        "AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + std::to_string(spec.memoryMb ? spec.memoryMb : 128),
        "AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/" + function,
        "AWS_LAMBDA_LOG_STREAM_NAME=" + newLogStreamName(),
        "AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
        "AWS_REGION=" + region,
        "AWS_DEFAULT_REGION=" + region,
        "AWS_ACCESS_KEY_ID=" + creds.accessKeyId,
        "AWS_SECRET_ACCESS_KEY=" + creds.secretAccessKey,
        "AWS_SESSION_TOKEN=" + creds.sessionToken,
    };
    if (home && *home) env.push_back(std::string("HOME=") + home);
    {
        // Callbacks over https:// to the management API's loopback endpoint verify against its certificate.
        std::lock_guard lock(g_callbackMutex);
        if (!g_callbackTrust.caFile.empty()) env.push_back("NODE_EXTRA_CA_CERTS=" + g_callbackTrust.caFile);
        if (!g_callbackTrust.bundleFile.empty()) {
            env.push_back("AWS_CA_BUNDLE=" + g_callbackTrust.bundleFile);
            env.push_back("SSL_CERT_FILE=" + g_callbackTrust.bundleFile);
        }
    }
    if (!spec.handler.empty()) env.push_back("_HANDLER=" + spec.handler);
    if (spec.runtime == "python") env.push_back("PYTHONUNBUFFERED=1");  // lines reach the log as written
    for (const auto &[k, v] : spec.environment) env.push_back(k + "=" + v);
    return env;
}

}  // namespace wsgw
