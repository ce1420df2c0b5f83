#!/usr/bin/env bash
# Echo throughput with the echo plugin in-process and the same plugin isolated in worker processes, in one
# run: the price of "isolation": "process". The gateway (and its workers) are pinned to core 0, the load
# generator (tools/bench/wsgw-load) to core 1. Prints one JSON line per mode.
# usage: tools/bench/isolation-echo.sh [builddir=build-release] [seconds=5] [workers=2]
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$here/build-release}"
seconds="${2:-5}"
workers="${3:-2}"
[ -x "$build/wsgw" ] && [ -x "$build/tools/bench/wsgw-load" ] || { echo "no $build/wsgw: build first (meson setup $build --buildtype=release && ninja -C $build)" >&2; exit 2; }
tmp="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
port=18290
for mode in in-process process; do
  port=$((port + 1))
  cat > "$tmp/routes-$mode.json" <<JSON
{ "routeSelectionExpression": "\$request.body.action",
  "handlers": { "echo": { "isolation": "$mode"$([ "$mode" = process ] && echo ", \"workers\": $workers") } },
  "routes": { "echo": { "handler": "echo", "routeResponse": true }, "\$default": { "handler": "echo", "routeResponse": true } } }
JSON
  taskset -c 0 "$build/wsgw" --routes "$tmp/routes-$mode.json" --handlers "$build/handlers" --db "$tmp/$mode.db" \
    --listen "127.0.0.1:$port" --management-listen off --log-level warn --node-id "bench-$mode" >"$tmp/$mode.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  line=$(taskset -c 1 "$build/tools/bench/wsgw-load" --url "ws://127.0.0.1:$port/" --mode echo --connections 64 \
    --inflight 16 --body-bytes 91 --seconds "$seconds")
  echo "{\"isolation\":\"$mode\"${mode:+$([ "$mode" = process ] && echo ",\"workers\":$workers")},${line#\{}"
  kill -TERM "$pid"; wait "$pid" || true; pid=""
done
