// wsgw: the flags, the process's settings, `wsgw import` and the --plugin-host entry point; the wiring and
// the order of start-up and shutdown are Gateway's (gateway.h). Everything else lives in one file per concern.
#include "background_log.h"
#include "config_file.h"
#include "fatal_exception.h"
#include "gateway.h"
#include "lambda_environment.h"
#include "log.h"
#include "options.h"
#include "plugin_host.h"
#include "serverless_import.h"

#include <libwebsockets.h>

#include <csignal>
#include <sys/resource.h>
#include <malloc.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <string_view>
#include <unistd.h>

#ifndef WSGW_DEFAULT_HANDLERS_DIR
#define WSGW_DEFAULT_HANDLERS_DIR "handlers"
#endif
#ifndef WSGW_VERSION
#error "WSGW_VERSION comes from meson.build's project version (-DWSGW_VERSION)"
#endif

namespace {

int fail(const std::string &message) {
    std::fprintf(stderr, "wsgw: %s\n", message.c_str());
    wsgw::log::error("start-up failed", {wsgw::log::Field("error", message)});
    return 2;
}

// A SIGTERM or SIGINT before serving began: the start ends where it was, what it had not claimed (the rows of
// an unclean stop, when the table could not be read) left for the next start. Exit 128 + the signal's number,
// as a shell reports a process the signal ended: 143 for SIGTERM, 130 for SIGINT (docs/operations.md).
int stoppedDuringStart(int sig, const std::string &where) {
    const char *name = sig == SIGINT ? "SIGINT" : "SIGTERM";
    std::fprintf(stderr, "wsgw: %s during start-up (%s): stopped before serving\n", name, where.c_str());
    wsgw::log::warn("start-up stopped by a signal before serving; nothing that was not claimed was touched",
                    {wsgw::log::Field("signal", name), wsgw::log::Field("at", where)});
    return 128 + sig;
}

wsgw::log::Level levelFromName(const std::string &n) {
    if (n == "debug") return wsgw::log::Level::Debug;
    if (n == "warn") return wsgw::log::Level::Warn;
    if (n == "error") return wsgw::log::Level::Error;
    return wsgw::log::Level::Info;
}

}  // namespace

// Every connection is a descriptor: the soft limit (often 1024) is raised to the hard one. What happens at
// the limit is AcceptBackoff's.
static void raiseFileLimit() {
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
    if (lim.rlim_cur < lim.rlim_max) {
        rlim_t was = lim.rlim_cur;
        lim.rlim_cur = lim.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &lim) != 0) {
            wsgw::log::warn("cannot raise the file descriptor limit", {wsgw::log::Field("soft", static_cast<uint64_t>(was)),
                                                                       wsgw::log::Field("error", std::strerror(errno))});
            lim.rlim_cur = was;
        }
    }
    // libwebsockets 4.1.6 as Debian builds it (with its debug checks) scans a table of one pointer per
    // descriptor of this limit at every connection close: 7 % of a connection's cost at 20,000 here, and
    // linear in the limit (docs/limits.md). A limit far above what the host will use costs every close.
    constexpr rlim_t kCloseScanWarning = 262144;
    if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur > kCloseScanWarning)
        wsgw::log::warn("the file descriptor limit is very high: libwebsockets scans a table of that size at every connection "
                        "close (about 0.3 us per 1,000 descriptors); set the hard limit to about twice the connections you "
                        "expect (docs/limits.md)",
                        {wsgw::log::Field("limit", static_cast<uint64_t>(lim.rlim_cur))});
}

// wsgw's Lambda runtime clients: installed beside the binary (<prefix>/bin/wsgw and
// <prefix>/share/wsgw/runtimes), else the source tree's runtimes/ (a build directory's binary).
static std::string defaultRuntimesDir() {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        std::string dir(exe, static_cast<size_t>(n));
        dir.erase(dir.rfind('/'));
        std::string installed = dir + "/../share/wsgw/runtimes";
        if (access((installed + "/nodejs/bootstrap.mjs").c_str(), R_OK) == 0) return installed;
    }
    return WSGW_DEFAULT_RUNTIMES_DIR;
}

// `wsgw import serverless.yml`: prints the routes.json of a Serverless Framework project (docs/lambda.md); what
// it leaves out goes to stderr. Exit 2 with file:line:column and what to do on bad input.
static int runImport(int argc, char **argv) {
    if (argc != 3 || std::string_view(argv[2]).rfind("-", 0) == 0) {
        std::fprintf(stderr, "usage: wsgw import serverless.yml > routes.json   (write routes.json beside serverless.yml: "
                             "the functions' \"directory\" is \".\")\n");
        return 2;
    }
    std::string path = argv[2];
    // A regular file of at most 4 MiB (a big project's serverless.yml is tens of KB): `wsgw import /dev/zero`
    // read until memory ran out, and YAML takes about 11 bytes of memory per byte of file to parse.
    std::string error;
    std::optional<std::string> read = wsgw::readConfigFile(path, path.c_str(), &error, 4 * 1024 * 1024);
    if (!read) {
        std::fprintf(stderr, "wsgw import: %s%s%s\n", error.rfind("cannot read", 0) == 0 ? "" : path.c_str(),
                     error.rfind("cannot read", 0) == 0 ? "" : " ", error.c_str());
        return 2;
    }
    std::string text = std::move(*read);
    std::map<std::string, std::string> environment;
    for (char **e = environ; *e; ++e) {
        std::string_view kv = *e;
        if (auto eq = kv.find('='); eq != std::string_view::npos) environment.emplace(kv.substr(0, eq), kv.substr(eq + 1));
    }
    auto imported = wsgw::importServerlessYaml(text, path, environment);
    if (auto *err = std::get_if<std::string>(&imported)) {
        std::fprintf(stderr, "wsgw import: %s\n", err->c_str());
        return 2;
    }
    const auto &result = std::get<wsgw::ServerlessImport>(imported);
    for (const auto &w : result.warnings) std::fprintf(stderr, "wsgw import: warning: %s\n", w.c_str());
    std::fwrite(result.routesJson.data(), 1, result.routesJson.size(), stdout);
    return std::fflush(stdout) == 0 ? 0 : 1;
}

// The process's settings, before anything is made: signals, limits, the allocator, the log level and where
// the Lambda runtime clients are.
static void prepareProcess(const wsgw::Options &opt) {
    std::signal(SIGPIPE, SIG_IGN);
    raiseFileLimit();
    // Messages of many kilobytes are allocated on one thread and freed on another all the time. glibc
    // would give each arena's top back to the kernel after every burst and take page faults to get it
    // again (a quarter of a 16 KiB echo), and one arena per thread multiplies what is kept. So: a few
    // arenas, and up to 16 MiB of freed heap kept in each.
    mallopt(M_ARENA_MAX, 2);
    mallopt(M_TRIM_THRESHOLD, 16 << 20);
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    wsgw::log::setMinLevel(levelFromName(opt.logLevel));
    wsgw::setLambdaRuntimesDir(opt.runtimesDir.empty() ? defaultRuntimesDir() : opt.runtimesDir);
}

int main(int argc, char **argv) {
    wsgw::installFatalExceptionHandler();
    // An isolated handler's worker process is this binary too (see isolated_plugin.h).
    if (argc > 1 && std::string_view(argv[1]) == "--plugin-host") return wsgw::runPluginHost(argc, argv);
    if (argc > 1 && std::string_view(argv[1]) == "import") return runImport(argc, argv);
    auto parsed = wsgw::parseOptions(argc, argv, WSGW_DEFAULT_HANDLERS_DIR);
    if (auto *err = std::get_if<std::string>(&parsed)) {
        std::fprintf(stderr, "wsgw: %s\n", err->c_str());
        return 2;
    }
    const wsgw::Options &opt = std::get<wsgw::Options>(parsed);
    if (opt.help) {
        std::fputs(wsgw::usageText().c_str(), stdout);
        return 0;
    }
    if (opt.version) {
        std::printf("wsgw %s (libwebsockets %s)\n", WSGW_VERSION, lws_get_library_version());
        return 0;
    }
    prepareProcess(opt);
    // Log lines go to stdout from a writer thread from here on, and a stop waits for them a bounded time.
    wsgw::BackgroundLog::Scope logWriter;
    wsgw::Gateway gateway(opt);
    if (std::string err = gateway.start(); !err.empty()) {
        if (int sig = gateway.startStoppedBy()) return stoppedDuringStart(sig, err);
        return fail(err);
    }
    gateway.serveUntilStopped();
    return 0;
}
