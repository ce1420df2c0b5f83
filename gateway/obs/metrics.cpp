#include "metrics.h"

#include <algorithm>
#include <cstdio>

namespace wsgw {

std::string prometheusLabel(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

void LatencyHistogram::observeMicros(uint64_t us) {
    size_t i = 0;
    while (i < kBoundsUs.size() && us > kBoundsUs[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    sumUs_.fetch_add(us, std::memory_order_relaxed);
}

uint64_t LatencyHistogram::count() const {
    uint64_t n = 0;
    for (const auto &b : buckets_) n += b.load(std::memory_order_relaxed);
    return n;
}

namespace {

std::string seconds(uint64_t us) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", static_cast<double>(us) / 1e6);
    return buf;
}

void counterHeader(std::string &out, const char *name, const char *help, const char *type = "counter") {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
}

}  // namespace

void LatencyHistogram::render(std::string &out, std::string_view name, std::string_view routeLabel) const {
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= kBoundsUs.size(); ++i) {
        cumulative += buckets_[i].load(std::memory_order_relaxed);
        out.append(name).append("_bucket{route=\"").append(routeLabel).append("\",le=\"");
        out += i < kBoundsUs.size() ? seconds(kBoundsUs[i]) : std::string("+Inf");
        out += "\"} " + std::to_string(cumulative) + '\n';
    }
    out.append(name).append("_sum{route=\"").append(routeLabel).append("\"} ") += seconds(sumUs_.load(std::memory_order_relaxed)) + '\n';
    // The count is the +Inf bucket's: one atomic add per observation fewer, and the two always agree.
    out.append(name).append("_count{route=\"").append(routeLabel).append("\"} ") += std::to_string(cumulative) + '\n';
}

RouteMetrics *Metrics::route(std::string_view key) {
    std::lock_guard lock(mutex_);
    auto it = routes_.find(key);
    if (it != routes_.end()) return it->second.get();
    auto m = std::make_unique<RouteMetrics>();
    m->route = std::string(key);
    RouteMetrics *raw = m.get();
    routes_.emplace(std::string(key), std::move(m));
    return raw;
}

std::string Metrics::render(const Gauges &g) const {
    std::string out;
    out.reserve(8192);
    counterHeader(out, "wsgw_connections", "Live WebSocket connections on this node.", "gauge");
    out += "wsgw_connections " + std::to_string(g.connections) + '\n';
    counterHeader(out, "wsgw_network_thread_connections", "Live connections by the network thread that owns them.", "gauge");
    for (size_t i = 0; i < g.connectionsByThread.size(); ++i)
        out += "wsgw_network_thread_connections{thread=\"" + std::to_string(i) + "\"} " + std::to_string(g.connectionsByThread[i]) + '\n';

    std::lock_guard lock(mutex_);
    struct Counter {
        const char *name, *help;
        std::atomic<uint64_t> RouteMetrics::*field;
    };
    static const Counter counters[] = {
        {"wsgw_connect_count_total", "Connection attempts that reached $connect (AWS ConnectCount).", &RouteMetrics::connects},
        {"wsgw_integration_error_total",
         "Invocations whose handler failed: non-zero return, exception, or a non-2xx $connect answer (AWS IntegrationError).",
         &RouteMetrics::integrationErrors},
        {"wsgw_client_error_total",
         "Requests refused before any handler ran: no matching route, or a malformed upgrade (AWS ClientError).",
         &RouteMetrics::clientErrors},
        {"wsgw_execution_error_total",
         "Invocations that could not complete: timeouts and crashed isolated workers (AWS ExecutionError).",
         &RouteMetrics::executionErrors},
    };
    for (const Counter &c : counters) {
        counterHeader(out, c.name, c.help);
        for (const auto &[key, m] : routes_) {
            // Only $connect is ever connected to; pushes by ID have no handler that could fail.
            if (c.field == &RouteMetrics::connects ? key != "$connect" : key == kPushRoute) continue;
            out.append(c.name).append("{route=\"").append(prometheusLabel(key)).append("\"} ");
            out += std::to_string(((*m).*(c.field)).load(std::memory_order_relaxed)) + '\n';
        }
    }
    counterHeader(out, "wsgw_message_count_total",
                  "Messages from clients (direction=\"in\") and frames sent to clients (direction=\"out\"), as AWS MessageCount.");
    for (const auto &[key, m] : routes_) {
        std::string label = prometheusLabel(key);
        out += "wsgw_message_count_total{route=\"" + label + "\",direction=\"in\"} " +
               std::to_string(m->messagesIn.load(std::memory_order_relaxed)) + '\n';
        out += "wsgw_message_count_total{route=\"" + label + "\",direction=\"out\"} " +
               std::to_string(m->messagesOut.load(std::memory_order_relaxed)) + '\n';
    }
    counterHeader(out, "wsgw_integration_latency_seconds", "Time spent in the handler (AWS IntegrationLatency).", "histogram");
    for (const auto &[key, m] : routes_)
        if (key != kPushRoute) m->integrationLatency.render(out, "wsgw_integration_latency_seconds", prometheusLabel(key));
    counterHeader(out, "wsgw_latency_seconds",
                  "From the message (or upgrade request) arriving to its response being queued (AWS Latency).", "histogram");
    for (const auto &[key, m] : routes_)
        if (key != kPushRoute) m->latency.render(out, "wsgw_latency_seconds", prometheusLabel(key));

    counterHeader(out, "wsgw_received_bytes_total", "Message payload bytes received from clients.");
    out += "wsgw_received_bytes_total " + std::to_string(bytesIn.load(std::memory_order_relaxed)) + '\n';
    counterHeader(out, "wsgw_sent_bytes_total", "Message payload bytes sent to clients.");
    out += "wsgw_sent_bytes_total " + std::to_string(bytesOut.load(std::memory_order_relaxed)) + '\n';
    counterHeader(out, "wsgw_slow_consumer_closes_total", "Connections closed with 1008 because their send queue went over maxSendQueueBytes.");
    out += "wsgw_slow_consumer_closes_total " + std::to_string(slowConsumerCloses.load(std::memory_order_relaxed)) + '\n';
    counterHeader(out, "wsgw_reads_paused_total", "Times a connection's socket stopped being read because its pending messages reached a bound.");
    out += "wsgw_reads_paused_total " + std::to_string(readsPaused.load(std::memory_order_relaxed)) + '\n';
    counterHeader(out, "wsgw_inline_invocations_total", "Messages whose inline handler (routes.json \"inline\": true) ran on the network thread instead of a worker.");
    out += "wsgw_inline_invocations_total " + std::to_string(inlineInvocations.load(std::memory_order_relaxed)) + '\n';
    counterHeader(out, "wsgw_inline_overruns_total", "Inline handler calls that held their network thread longer than their route's timeoutMs.");
    out += "wsgw_inline_overruns_total " + std::to_string(inlineOverruns.load(std::memory_order_relaxed)) + '\n';
    counterHeader(out, "wsgw_accept_errors_total", "accept() failures for lack of file descriptors or memory, on either listener.");
    out += "wsgw_accept_errors_total " + std::to_string(acceptErrors.load(std::memory_order_relaxed)) + '\n';
    counterHeader(out, "wsgw_pending_per_ip_refusals_total", "Sockets closed at accept: their address already had maxConnectionsPerIp sockets not yet upgraded.");
    out += "wsgw_pending_per_ip_refusals_total " + std::to_string(pendingPerIpRefusals.load(std::memory_order_relaxed)) + '\n';
    counterHeader(out, "wsgw_send_queue_bytes", "What the send queues are charged against maxSendQueueBytes: payload plus 64 bytes per queued frame.", "gauge");
    out += "wsgw_send_queue_bytes " + std::to_string(std::max<int64_t>(0, sendQueueBytes.load(std::memory_order_relaxed))) + '\n';
    counterHeader(out, "wsgw_pending_bytes", "Bytes of received messages waiting for their handler.", "gauge");
    out += "wsgw_pending_bytes " + std::to_string(std::max<int64_t>(0, pendingBytes.load(std::memory_order_relaxed))) + '\n';
    counterHeader(out, "wsgw_table_write_queue_depth", "Connection-table writes queued and not yet committed.", "gauge");
    out += "wsgw_table_write_queue_depth " + std::to_string(g.tableWriteQueue) + '\n';
    counterHeader(out, "wsgw_reloads_total", "Route table reloads that were applied.");
    out += "wsgw_reloads_total " + std::to_string(g.reloads) + '\n';
    counterHeader(out, "wsgw_reload_failures_total", "Reloads refused (invalid routes.json or plugin); the running table stayed.");
    out += "wsgw_reload_failures_total " + std::to_string(g.reloadFailures) + '\n';
    counterHeader(out, "wsgw_log_lines_dropped_total",
                  "Log lines lost because stdout (or the access log's file) did not take them: its reader stopped, or a full disk.");
    out += "wsgw_log_lines_dropped_total{log=\"application\"} " + std::to_string(g.logLinesDropped) + '\n';
    out += "wsgw_log_lines_dropped_total{log=\"access\"} " + std::to_string(g.accessLogLinesLost) + '\n';
    return out;
}

}  // namespace wsgw
