#!/usr/bin/env bash
# lakegate's test command. On a fresh Debian machine (as root, or a user with
# sudo) it installs what the tests need, builds the workspace and runs every
# test: unit tests, tests/integration.rs and the sqllogictest files run by
# tests/slt.rs. Set-up steps are skipped when already done (scripts/setup.sh).
#
#   bash scripts/test.sh                      set up, build, run all tests
#   bash scripts/test.sh --setup-only         set up only
#   bash scripts/test.sh [CARGO TEST ARGS]    extra args go to `cargo test`,
#       e.g. `bash scripts/test.sh --test integration flight_sql`
#       or   `bash scripts/test.sh -- --nocapture`
#
# Before the tests it checks the formatting (cargo fmt --check), clippy (-D warnings) and
# that the main crate's modules import one way (scripts/check-layers.py).
#
# The fixtures start their own services (PostgreSQL, moto's S3, ...) on free
# loopback ports and stop them afterwards. Cassandra is the exception: it takes
# ~20 s to start, so this script starts one node for the whole run
# (scripts/services/cassandra.sh, while the build runs), exports
# LAKEGATE_TEST_CASSANDRA=127.0.0.1:PORT for the tests and stops it on exit.
# With LAKEGATE_TEST_CASSANDRA already set, that node is used instead.
#
# Test runner: plain `cargo test`, not cargo-nextest. nextest is not in the
# toolchain and `cargo install cargo-nextest` compiles for many minutes on a
# 2-core machine, longer than the whole suite; the tests link into few
# binaries (one per crate, tests/integration.rs, tests/slt.rs), so nextest's
# process-per-test parallelism would gain little; and cargo test also runs the
# doctests, which nextest does not.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh

setup_only=false
cargo_test_args=()
for arg in "$@"; do
    if [[ $arg == --setup-only ]]; then
        setup_only=true
    else
        cargo_test_args+=("$arg")
    fi
done

started=$SECONDS
lakegate_setup
if $setup_only; then
    lakegate_section "set-up done in $((SECONDS - started)) s (--setup-only: not building or testing)"
    exit 0
fi

# Cassandra starts in the background while the workspace builds.
cassandra_log=""
if [[ -z ${LAKEGATE_TEST_CASSANDRA:-} ]]; then
    export LAKEGATE_CASSANDRA_STATE
    LAKEGATE_CASSANDRA_STATE="$(mktemp -d "${TMPDIR:-/tmp}/lakegate-test-cassandra.XXXXXX")/state"
    cassandra_log="$(dirname "$LAKEGATE_CASSANDRA_STATE")/start.out"
    stop_cassandra() {
        # A start still under way records its pid when done; only then can it be stopped.
        wait "$cassandra_starter" 2>/dev/null || true
        bash scripts/services/cassandra.sh stop
        rm -rf "$(dirname "$LAKEGATE_CASSANDRA_STATE")"
    }
    trap stop_cassandra EXIT
    lakegate_section "starting Cassandra in the background"
    bash scripts/services/cassandra.sh start >"$cassandra_log" 2>&1 &
    cassandra_starter=$!
fi

# Compile everything first, benches and examples included, so a target that no
# longer builds fails here even if no test touches it, and so compile errors
# are not interleaved with test output.
lakegate_section "cargo build --workspace --all-targets"
build_started=$SECONDS
if ! cargo build --workspace --all-targets; then
    lakegate_section "BUILD FAILED (see the compiler errors above)"
    exit 1
fi
echo "built in $((SECONDS - build_started)) s"

# The project's habits, enforced: one format (rustfmt.toml) and no clippy warnings.
lakegate_section "cargo fmt --check; cargo clippy -D warnings"
if ! cargo fmt --all --check; then
    lakegate_section "NOT FORMATTED: run cargo fmt --all"
    exit 1
fi
if ! cargo clippy --workspace --all-targets --quiet -- -D warnings; then
    lakegate_section "CLIPPY WARNINGS (see above)"
    exit 1
fi
if ! python3 scripts/check-layers.py >/dev/null; then
    lakegate_section "MODULE IMPORTS BREAK THE LAYERING (see above; README: Architecture)"
    exit 1
fi

if [[ -n $cassandra_log ]]; then
    lakegate_section "waiting for Cassandra"
    if wait "$cassandra_starter"; then
        LAKEGATE_TEST_CASSANDRA="$(sed -n 's/^CASSANDRA_CONTACT_POINT=//p' "$cassandra_log")"
        export LAKEGATE_TEST_CASSANDRA
        grep -v '^CASSANDRA_' "$cassandra_log" || true
    else
        # The Cassandra tests then fail, naming the missing node; the others still run.
        cat "$cassandra_log"
        lakegate_section "CASSANDRA DID NOT START (see above)"
    fi
fi

# --no-fail-fast: one failing test binary must not hide the results of the
# others; cargo still exits non-zero if anything failed.
lakegate_section "cargo test --workspace --no-fail-fast${cargo_test_args[*]:+ ${cargo_test_args[*]}}"
test_started=$SECONDS
status=0
cargo test --workspace --no-fail-fast "${cargo_test_args[@]}" || status=$?

if [[ $status -eq 0 ]]; then
    lakegate_section "all tests passed (tests $((SECONDS - test_started)) s, total $((SECONDS - started)) s)"
else
    lakegate_section "TESTS FAILED (cargo test exit $status; total $((SECONDS - started)) s)"
fi
exit "$status"
