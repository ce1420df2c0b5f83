// Counters and latency histograms for GET /metrics (Prometheus text format). Per route, the AWS API Gateway
// WebSocket metrics under Prometheus names: ConnectCount, MessageCount (direction in/out), IntegrationError,
// ClientError, ExecutionError, IntegrationLatency and the end-to-end latency; plus bytes in/out. Route
// entries are created when a route table is built and never freed, so the hot path holds a plain pointer
// and pays one relaxed atomic increment per counter. Gauges owned elsewhere are passed in at render time.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>
#include <string>
#include <string_view>

namespace wsgw {

class LatencyHistogram {
public:
    void observeMicros(uint64_t us);
    void render(std::string &out, std::string_view name, std::string_view routeLabel) const;
    uint64_t count() const;  // the observations so far (the buckets' total)

    static constexpr std::array<uint64_t, 14> kBoundsUs = {100,    250,    500,    1000,   2500,   5000,    10000,
                                                           25000,  50000,  100000, 250000, 500000, 1000000, 5000000};

private:
    std::array<std::atomic<uint64_t>, kBoundsUs.size() + 1> buckets_{};  // the last is +Inf
    std::atomic<uint64_t> sumUs_{0};
};

struct RouteMetrics {
    std::string route;
    std::atomic<uint64_t> connects{0}, messagesIn{0}, messagesOut{0};
    std::atomic<uint64_t> integrationErrors{0}, clientErrors{0}, executionErrors{0};
    LatencyHistogram integrationLatency, latency;

    static void add(std::atomic<uint64_t> &c, uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
};

class Metrics {
public:
    static constexpr std::string_view kPushRoute = "@connections";  // frames pushed by connection ID

    // The entry for a route key (also "@connections" for pushes); stable for the life of the process.
    RouteMetrics *route(std::string_view key);

    std::atomic<uint64_t> bytesIn{0}, bytesOut{0};
    // the bounds of docs/limits.md. Counters: connections closed because their send queue overflowed, times a
    // lane paused reading its socket, accept() failures for lack of descriptors or memory (both listeners),
    // sockets closed at accept because their address already had maxConnectionsPerIp not yet upgraded.
    std::atomic<uint64_t> slowConsumerCloses{0}, readsPaused{0}, acceptErrors{0}, pendingPerIpRefusals{0};
    // Gauges, summed over every connection: bytes queued towards clients and not yet taken by their sockets,
    // and message bytes read from clients that wait for their handler.
    std::atomic<int64_t> sendQueueBytes{0}, pendingBytes{0};
    // Messages whose "inline" handler was called on the network thread instead of a worker.
    std::atomic<uint64_t> inlineInvocations{0};
    std::atomic<uint64_t> inlineOverruns{0};  // inline calls that held their network thread past timeoutMs

    struct Gauges {
        uint64_t connections = 0;
        uint64_t tableWriteQueue = 0;
        uint64_t reloads = 0;
        uint64_t reloadFailures = 0;
        std::vector<uint64_t> connectionsByThread;  // live connections of each network thread
        uint64_t logLinesDropped = 0;     // application log (BackgroundLog::droppedLines)
        uint64_t accessLogLinesLost = 0;  // access log (AccessLog::linesLost)
    };
    std::string render(const Gauges &gauges) const;

private:
    mutable std::mutex mutex_;
    std::map<std::string, std::unique_ptr<RouteMetrics>, std::less<>> routes_;
};

// A Prometheus label value: backslash, double quote and newline escaped.
std::string prometheusLabel(std::string_view value);

}  // namespace wsgw
