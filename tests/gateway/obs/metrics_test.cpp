// The Prometheus text of GET /metrics: counter lines per route, cumulative histogram buckets in seconds,
// label escaping, and the gauges handed in at render time.
#include "metrics.h"

#include <doctest/doctest.h>

#include <string>

using namespace wsgw;

namespace {
bool has(const std::string &text, const std::string &line) { return text.find("\n" + line + "\n") != std::string::npos; }
}  // namespace

TEST_SUITE("metrics") {
    TEST_CASE("counters per route, connect count only for $connect, pushes only as messages out") {
        Metrics m;
        RouteMetrics *connect = m.route("$connect");
        RouteMetrics *echo = m.route("echo");
        CHECK(m.route("echo") == echo);  // one stable entry per key
        RouteMetrics::add(connect->connects);
        RouteMetrics::add(connect->connects);
        RouteMetrics::add(echo->messagesIn);
        RouteMetrics::add(echo->messagesOut);
        RouteMetrics::add(echo->integrationErrors);
        RouteMetrics::add(m.route(Metrics::kPushRoute)->messagesOut);
        m.bytesIn += 91;
        std::string text = m.render({3, 7, 2, 1, {}});
        CHECK(has(text, "wsgw_connections 3"));
        CHECK(has(text, "wsgw_connect_count_total{route=\"$connect\"} 2"));
        CHECK(text.find("wsgw_connect_count_total{route=\"echo\"}") == std::string::npos);
        CHECK(has(text, "wsgw_message_count_total{route=\"echo\",direction=\"in\"} 1"));
        CHECK(has(text, "wsgw_message_count_total{route=\"echo\",direction=\"out\"} 1"));
        CHECK(has(text, "wsgw_message_count_total{route=\"@connections\",direction=\"out\"} 1"));
        CHECK(text.find("wsgw_integration_error_total{route=\"@connections\"}") == std::string::npos);
        CHECK(has(text, "wsgw_integration_error_total{route=\"echo\"} 1"));
        CHECK(has(text, "wsgw_client_error_total{route=\"echo\"} 0"));
        CHECK(has(text, "wsgw_received_bytes_total 91"));
        CHECK(has(text, "wsgw_table_write_queue_depth 7"));
        CHECK(has(text, "wsgw_reloads_total 2"));
        CHECK(has(text, "wsgw_reload_failures_total 1"));
        CHECK(has(text, "# TYPE wsgw_connect_count_total counter"));
        CHECK(has(text, "# TYPE wsgw_latency_seconds histogram"));
    }

    TEST_CASE("histogram buckets are cumulative, in seconds, ending in +Inf") {
        Metrics m;
        RouteMetrics *r = m.route("echo");
        r->integrationLatency.observeMicros(80);       // <= 100 us
        r->integrationLatency.observeMicros(3000);     // <= 5 ms
        r->integrationLatency.observeMicros(9000000);  // over every bound
        std::string text = m.render({});
        CHECK(has(text, "wsgw_integration_latency_seconds_bucket{route=\"echo\",le=\"0.0001\"} 1"));
        CHECK(has(text, "wsgw_integration_latency_seconds_bucket{route=\"echo\",le=\"0.0025\"} 1"));
        CHECK(has(text, "wsgw_integration_latency_seconds_bucket{route=\"echo\",le=\"0.005\"} 2"));
        CHECK(has(text, "wsgw_integration_latency_seconds_bucket{route=\"echo\",le=\"5\"} 2"));
        CHECK(has(text, "wsgw_integration_latency_seconds_bucket{route=\"echo\",le=\"+Inf\"} 3"));
        CHECK(has(text, "wsgw_integration_latency_seconds_count{route=\"echo\"} 3"));
        CHECK(has(text, "wsgw_integration_latency_seconds_sum{route=\"echo\"} 9.00308"));
    }

    TEST_CASE("route keys are escaped as label values") {
        CHECK(prometheusLabel("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
        Metrics m;
        m.route("say \"hi\"");
        CHECK(m.render({}).find("{route=\"say \\\"hi\\\"\"}") != std::string::npos);
    }
}
