#!/usr/bin/env bash
# promtool, Prometheus's own tool, for the test that lints lakegate's /metrics output
# with `promtool check metrics` (names, units, help texts, as Prometheus expects them).
#
#   scripts/services/promtool.sh install   build it with `go install` from the Go module
#                                          proxy into ~/.cache/lakegate/promtool (does
#                                          nothing when it is there; a few minutes the
#                                          first time)
#   scripts/services/promtool.sh path      install, then print the binary's path
#
# Settings: LAKEGATE_PROMTOOL_VERSION (v0.316.0, the Go module version of Prometheus 3).
set -euo pipefail

version="${LAKEGATE_PROMTOOL_VERSION:-v0.316.0}"
dir="$HOME/.cache/lakegate/promtool/$version"
binary="$dir/promtool"

die() { echo "promtool.sh: $*" >&2; exit 1; }

install() {
    [[ -x $binary ]] && return
    command -v go >/dev/null 2>&1 || die "go not found: install Go (the module proxy serves Prometheus)"
    mkdir -p "$dir"
    echo "building promtool $version into $dir" >&2
    GOBIN="$dir" go install "github.com/prometheus/prometheus/cmd/promtool@$version" >&2
    [[ -x $binary ]] || die "go install finished without $binary"
}

case "${1:-}" in
    install) install ;;
    path) install; echo "$binary" ;;
    *) die "usage: promtool.sh install|path" ;;
esac
