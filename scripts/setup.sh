#!/usr/bin/env bash
# Prepares a Debian machine for lakegate's tests and benchmarks, idempotently:
# system packages, the project venv (.venv) and the environment the test
# fixtures read. Every step checks first and does nothing when its work is done,
# so a second run costs well under a second.
#
#   bash scripts/setup.sh      set up, then print the variables to export
#   eval "$(bash scripts/setup.sh 2>/dev/null | grep '^export ')"
#                              the same, exporting them into this shell
#
# scripts/test.sh sources this file and calls lakegate_setup before it builds
# and runs the tests.
#
# It also installs Apache Superset into a venv of its own
# (scripts/services/superset.sh install) for the Superset test, builds promtool
# (scripts/services/promtool.sh install, for the metrics test) and Toxiproxy
# (scripts/services/toxiproxy.sh install, for the fault tests) with `go install`, and resolves Apache Cassandra's jars from Maven Central
# (scripts/services/cassandra.sh install) for the Cassandra source tests, and the
# hadoop-aws jars Spark's s3a needs (tests/clients/spark_hive.py --fetch-s3a-jars).
#
# Environment it exports:
#   LAKEGATE_VENV     the venv; fixtures start $LAKEGATE_VENV/bin/moto_server
#   CARGO_TARGET_DIR  kept if set, else ~/.cache/lakegate/target, so that every
#                     clone on this machine (CI's fresh ones too) shares one
#                     build cache
#   PATH              gains the PostgreSQL server binaries (initdb, pg_ctl,
#                     postgres), which Debian keeps off PATH

# The directory of the checkout, whatever the caller's working directory.
LAKEGATE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# System packages the tests need. PostgreSQL is the throw-away server the
# postgres/redshift fixtures start (initdb + pg_ctl on a free port).
LAKEGATE_APT_PACKAGES=(postgresql)

lakegate_section() {
    printf '\n==> %s\n' "$*"
}

lakegate_die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Runs a command as root: directly when we are root, else through sudo.
lakegate_as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        # -n when no password is needed, so that CI without a terminal never
        # hangs on a prompt; plain sudo lets a person type one.
        if sudo -n true 2>/dev/null; then sudo -n "$@"; else sudo "$@"; fi
    else
        lakegate_die "need root to run '$*': run as root or install sudo"
    fi
}

lakegate_deb_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

lakegate_ensure_apt_packages() {
    local wanted=("${LAKEGATE_APT_PACKAGES[@]}")

    # Compilers for the C parts of the tree (bundled SQLite, zstd).
    command -v cc >/dev/null 2>&1 || wanted+=(build-essential)
    # openssl-sys links the system OpenSSL through pkg-config; the tree uses
    # rustls today, so these come in only if a dependency starts needing them.
    if grep -q '^name = "openssl-sys"' "$LAKEGATE_ROOT/Cargo.lock" 2>/dev/null; then
        wanted+=(pkg-config libssl-dev)
    fi
    # The Flight SQL JDBC client check (tests/clients/jdbc) builds with Maven and
    # runs on Java 17+; the TLS test makes its certificates with openssl.
    command -v java >/dev/null 2>&1 || wanted+=(openjdk-17-jdk-headless)
    command -v mvn >/dev/null 2>&1 || wanted+=(maven)
    command -v openssl >/dev/null 2>&1 || wanted+=(openssl)
    # The venv needs venv + ensurepip; Debian's own python3 ships them apart.
    if ! command -v python3 >/dev/null 2>&1; then
        wanted+=(python3 python3-venv)
    elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        wanted+=(python3-venv)
    fi

    local missing=() pkg
    for pkg in "${wanted[@]}"; do
        lakegate_deb_installed "$pkg" || missing+=("$pkg")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        echo "system packages present: ${wanted[*]}"
        return
    fi
    command -v apt-get >/dev/null 2>&1 ||
        lakegate_die "missing packages (${missing[*]}) and no apt-get: install them by hand"
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    lakegate_as_root apt-get update -qq
    lakegate_as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
}

# Puts the newest installed PostgreSQL's server binaries on PATH.
lakegate_export_postgres_path() {
    local bindir
    bindir=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    if [[ -n $bindir && -x $bindir/pg_ctl ]]; then
        case ":$PATH:" in
            *":$bindir:"*) ;;
            *) export PATH="$bindir:$PATH" ;;
        esac
    fi
    command -v pg_ctl >/dev/null 2>&1 ||
        lakegate_die "pg_ctl not found after installing postgresql"
    echo "postgres: $(command -v pg_ctl)"
}

lakegate_hash() {
    sha256sum "$@" | sha256sum | cut -d' ' -f1
}

# Creates .venv and installs scripts/requirements-test.txt into it. pip runs
# only when the requirements file (or the interpreter) changed since the last
# successful install, as recorded in a stamp file inside the venv.
lakegate_ensure_venv() {
    local venv="$LAKEGATE_ROOT/.venv"
    local req="$LAKEGATE_ROOT/scripts/requirements-test.txt"
    local stamp="$venv/.lakegate-requirements.sha256"

    # A venv whose base interpreter is gone (pyenv upgrade, moved checkout)
    # cannot be repaired in place: start over.
    if [[ -d $venv ]] && ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
        echo "removing broken venv $venv"
        rm -rf "$venv"
    fi
    if [[ ! -x $venv/bin/python ]]; then
        echo "creating venv $venv ($(python3 --version 2>&1))"
        python3 -m venv "$venv"
    fi

    local want
    want="$(lakegate_hash "$req")-$("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])')"
    if [[ -f $stamp && $(cat "$stamp") == "$want" && -x $venv/bin/moto_server ]]; then
        echo "venv up to date: $venv"
        return
    fi
    echo "installing $(basename "$req") into $venv"
    rm -f "$stamp"
    "$venv/bin/python" -m pip install --disable-pip-version-check --no-input \
        --progress-bar off -q -r "$req"
    [[ -x $venv/bin/moto_server ]] || lakegate_die "moto_server missing from $venv after pip install"
    echo "$want" >"$stamp"
}

lakegate_ensure_rust() {
    command -v cargo >/dev/null 2>&1 ||
        lakegate_die "cargo not found: install Rust (rustup) and put ~/.cargo/bin on PATH"
    # The test command checks formatting and lints; minimal rustup profiles lack both tools.
    if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
        command -v rustup >/dev/null 2>&1 ||
            lakegate_die "cargo fmt / cargo clippy missing and no rustup to add them: install rustfmt and clippy"
        rustup component add rustfmt clippy
    fi
    echo "rust: $(rustc --version)"
}

lakegate_setup() {
    lakegate_section "system packages"
    lakegate_ensure_apt_packages
    lakegate_export_postgres_path

    lakegate_section "python venv"
    lakegate_ensure_venv
    export LAKEGATE_VENV="$LAKEGATE_ROOT/.venv"

    lakegate_section "Apache Superset (its own venv, for the BI-tool test)"
    bash "$LAKEGATE_ROOT/scripts/services/superset.sh" install

    lakegate_section "Apache Cassandra (jars from Maven Central, for the Cassandra tests)"
    bash "$LAKEGATE_ROOT/scripts/services/cassandra.sh" install

    lakegate_section "Apache Hive standalone metastore (jars from Maven Central, for the metastore tests)"
    bash "$LAKEGATE_ROOT/scripts/services/hive-metastore.sh" install

    lakegate_section "Spark's s3a: hadoop-aws and AWS SDK v2 modules from Maven Central, for the metastore test"
    "$LAKEGATE_VENV/bin/python" "$LAKEGATE_ROOT/tests/clients/spark_hive.py" --fetch-s3a-jars

    lakegate_section "Toxiproxy (built from the Go module proxy, for the fault tests)"
    bash "$LAKEGATE_ROOT/scripts/services/toxiproxy.sh" install

    lakegate_section "promtool (built from the Go module proxy, to lint /metrics)"
    bash "$LAKEGATE_ROOT/scripts/services/promtool.sh" install

    lakegate_section "rust toolchain"
    lakegate_ensure_rust
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lakegate/target}"
    mkdir -p "$CARGO_TARGET_DIR"
    echo "CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    lakegate_setup
    lakegate_section "environment (eval or export these to use the set-up by hand)"
    printf 'export LAKEGATE_VENV=%q\n' "$LAKEGATE_VENV"
    printf 'export CARGO_TARGET_DIR=%q\n' "$CARGO_TARGET_DIR"
    printf 'export PATH=%q\n' "$PATH"
fi
