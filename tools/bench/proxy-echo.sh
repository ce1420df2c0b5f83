#!/usr/bin/env bash
# The WebSocket proxy's price, in one run: echo throughput (64 x 16 in flight, 91-byte messages) and
# one-message round trips, first straight to a backend (tools/bench/lws-echo-ref), then through wsgw's
# "proxy". Backend and gateway share core 0, the load generator has core 1. One JSON line per run.
# usage: tools/bench/proxy-echo.sh [builddir=build-release] [seconds=5]
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$here/build-release}"
seconds="${2:-5}"
load="$build/tools/bench/wsgw-load"
[ -x "$build/wsgw" ] && [ -x "$load" ] && [ -x "$build/tools/bench/lws-echo-ref" ] ||
  { echo "build first: meson setup $build --buildtype=release && ninja -C $build" >&2; exit 2; }
tmp="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

backend_port=18601 gateway_port=18602
taskset -c 0 "$build/tools/bench/lws-echo-ref" --port "$backend_port" >"$tmp/backend.log" 2>&1 &
pids+=($!)
wait_port "$backend_port"
cat >"$tmp/routes.json" <<JSON
{ "routeSelectionExpression": "\$request.body.action", "proxy": { "url": "ws://127.0.0.1:$backend_port/" },
  "routes": { "\$default": { "handler": "echo" } } }
JSON
taskset -c 0 "$build/wsgw" --routes "$tmp/routes.json" --handlers "$build/handlers" --db "$tmp/wsgw.db" \
  --listen "127.0.0.1:$gateway_port" --management-listen off --access-log off --log-level warn >"$tmp/wsgw.log" 2>&1 &
pids+=($!)
wait_port "$gateway_port"

for target in direct:$backend_port proxied:$gateway_port; do
  name=${target%%:*} port=${target##*:}
  for mode in echo latency; do
    args=(--url "ws://127.0.0.1:$port/" --mode "$mode" --body-bytes 91 --seconds "$seconds")
    [ "$mode" = echo ] && args+=(--connections 64 --inflight 16)
    line=$(taskset -c 1 "$load" "${args[@]}")
    echo "{\"path\":\"$name\",${line#\{}"
  done
done
