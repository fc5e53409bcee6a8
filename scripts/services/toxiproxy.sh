#!/usr/bin/env bash
# Toxiproxy (Shopify's fault-injecting TCP proxy) for lakegate's fault tests: the
# tests put it between lakegate and moto's S3, PostgreSQL and Cassandra and add
# latency, resets and stalls through its HTTP API.
#
#   scripts/services/toxiproxy.sh install   build it with `go install` from the Go
#                                           module proxy into ~/.cache/lakegate/toxiproxy
#                                           (does nothing when it is there)
#   scripts/services/toxiproxy.sh start     install, start one on a free loopback
#                                           port, wait until its API answers, print
#                                           TOXIPROXY_URL=http://127.0.0.1:PORT and
#                                           TOXIPROXY_PID=...
#   scripts/services/toxiproxy.sh stop PID  stop that instance
#
# Settings: LAKEGATE_TOXIPROXY_VERSION (v2.12.0).
set -euo pipefail

version="${LAKEGATE_TOXIPROXY_VERSION:-v2.12.0}"
dir="$HOME/.cache/lakegate/toxiproxy/$version"
binary="$dir/toxiproxy-server"

die() { echo "toxiproxy.sh: $*" >&2; exit 1; }

install() {
    [[ -x $binary ]] && return
    command -v go >/dev/null 2>&1 || die "go not found: install Go (the module proxy serves Toxiproxy)"
    mkdir -p "$dir"
    echo "building toxiproxy $version into $dir" >&2
    GOBIN="$dir" go install "github.com/Shopify/toxiproxy/v2/cmd/server@$version" >&2
    mv "$dir/server" "$binary"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    install
    local port pid deadline
    port="$(free_port)"
    "$binary" -host 127.0.0.1 -port "$port" >/dev/null 2>&1 &
    pid=$!
    deadline=$((SECONDS + 30))
    until curl -fsS "http://127.0.0.1:$port/version" >/dev/null 2>&1 ||
        python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/version', timeout=1)" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || die "toxiproxy exited at start"
        ((SECONDS < deadline)) || { kill "$pid"; die "toxiproxy did not answer on port $port within 30 s"; }
        sleep 0.1
    done
    echo "TOXIPROXY_URL=http://127.0.0.1:$port"
    echo "TOXIPROXY_PID=$pid"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) [[ -n ${2:-} ]] || die "usage: toxiproxy.sh stop PID"; kill "$2" 2>/dev/null || true ;;
    *) die "usage: toxiproxy.sh install|start|stop PID" ;;
esac
