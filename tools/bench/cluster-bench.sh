#!/usr/bin/env bash
# Cluster push benchmark (see cluster-bench.mjs): same-node vs cross-node POST /@connections and a
# broadcast to 10,000 connections over three nodes, in one run. Raises the fd limit first: the Node
# client holds every connection. usage: tools/bench/cluster-bench.sh [BUILD_DIR] [args of cluster-bench.mjs]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
ulimit -n "$(ulimit -Hn)"
build="${1:-build-release}"
shift || true
exec node "$here/cluster-bench.mjs" "$build" "$@"
