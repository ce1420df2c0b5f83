// A "lambda" handler instance (SPEC section 11): a pool of up to `concurrency` long-lived function
// processes, each running a Lambda Runtime API client (wsgw's own runtimes/nodejs or runtimes/python, or
// any `command`) against a Runtime API the gateway serves to that process alone on 127.0.0.1, so the
// gateway always knows which process runs which invocation. Each process serves one invocation at a time.
//
// One supervisor thread per process slot starts the process (in its own process group, in `directory`,
// with Lambda's environment), and polls everything of it: the Runtime API socket and connections, the
// process's exit (a pidfd), its stdout and stderr (each line becomes a gateway log line with the function's
// name and the running invocation's request ID) and a wake-up from invoke(). A crash, an error reply, a
// result past the route's deadline (the process group is killed) or resident memory over `memoryMb`
// (checked every 50 ms while an invocation runs) fails that one invocation, and the slot starts a new
// process; a function that cannot start is restarted ever slower (up to every 5 s). An accept() on the
// Runtime API socket that fails for lack of descriptors leaves that socket out of poll() for 100 ms
// (AcceptShortage) instead of spinning on it while the gateway is at its descriptor limit.
//
// invoke() is called on an invoker worker thread (never a network thread) and blocks it until the result,
// like an isolated plugin.
#pragma once

#include "accept_shortage.h"
#include "config.h"
#include "host_api.h"
#include "isolated_plugin.h"

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace wsgw {

// Where wsgw's runtime clients are (runtimes/nodejs/bootstrap.mjs, runtimes/python/bootstrap.py): set once
// at start-up from --runtimes or the default beside the binary.
void setLambdaRuntimesDir(std::string dir);
const std::string &lambdaRuntimesDir();

// The AWS credentials in every function's environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN): made once per gateway process from the CSPRNG, so an SDK that insists on credentials
// finds some; the management API may accept them for SigV4 (callbacks, a later step of SPEC 11).
struct LambdaCredentials {
    std::string accessKeyId, secretAccessKey, sessionToken;
};
const LambdaCredentials &lambdaCredentials();

// Callbacks (SPEC 11): what function processes trust and where their events say the management API is.
// caFile (NODE_EXTRA_CA_CERTS) holds the certificate(s) of the management API's loopback TLS endpoint;
// bundleFile (AWS_CA_BUNDLE, SSL_CERT_FILE, which replace a client's trust store) holds them plus the
// system's CAs, so a function's other HTTPS calls still verify. Set before functions start.
struct LambdaCallbackTrust {
    std::string caFile, bundleFile;
};
void setLambdaCallbackTrust(LambdaCallbackTrust trust);
// The loopback TLS endpoint's "host:port": requestContext.domainName of every lambda invocation, so
// https://{domainName}/{stage} is the endpoint of an unmodified ApiGatewayManagementApi client. Set once it
// listens; until then events carry the connection's Host.
void setLambdaCallbackEndpoint(std::string hostPort);
std::string lambdaCallbackEndpoint();

// Hot reload (SPEC 11): a digest of the names, sizes and modification times of the files under a function's
// directory (node_modules and dot-directories too, at most 100,000 entries), part of the handler's identity:
// when it changes, the reload starts new processes and the old ones finish what they run.
std::string lambdaDirectoryFingerprint(const std::string &directory);
// The directories to watch for that (the directory and its subdirectories, without node_modules and
// dot-directories, whose churn would reload on every npm install; at most 1,000).
std::vector<std::string> lambdaWatchedDirectories(const std::string &directory);

class LambdaFunction {
public:
    // Starts the processes and waits (up to 15 s) until one has asked for its first invocation; the error
    // says why none did (its init error, its exit status, a missing directory or runtime client).
    static std::variant<std::unique_ptr<LambdaFunction>, std::string> start(const HandlerSpec &spec);
    ~LambdaFunction();
    LambdaFunction(const LambdaFunction &) = delete;
    LambdaFunction &operator=(const LambdaFunction &) = delete;

    // Runs one invocation in a free process; returns at the result, the process's death or `deadline`
    // (then the process is killed: rc != 0, a "Task timed out" failure; timedOut stays false, as on AWS a
    // function's timeout is the function's error, not the endpoint's).
    IsolatedReply invoke(const InvocationEvent &event, std::chrono::steady_clock::time_point deadline);

    const std::string &name() const { return name_; }

private:
    struct Slot;
    explicit LambdaFunction(const HandlerSpec &spec);
    void supervise(Slot &slot);
    bool runProcess(Slot &slot);  // one process's life; true when it asked for an invocation
    std::vector<std::string> processEnvironment(const Slot &slot) const;
    std::vector<std::string> processArgv() const;

    std::string name_;
    LambdaSpec spec_;
    std::string functionArn_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool stopping_ = false;
    std::string lastStartError_;   // why the last process did not become ready
    unsigned startFailures_ = 0;   // processes that ended before becoming ready, since one last did
    AcceptShortage acceptShortage_;  // guarded by mutex_; every slot's Runtime API listener: one warning per 10 s for all
    std::vector<std::unique_ptr<Slot>> slots_;
};

}  // namespace wsgw
