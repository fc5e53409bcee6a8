#!/usr/bin/env bash
# A throw-away Apache Superset 6.1 on 127.0.0.1, for checking lakegate as a
# Superset database (tests/clients/superset_api.py drives it over its REST API).
#
#   scripts/services/superset.sh install   venv at $LAKEGATE_SUPERSET_VENV
#                                          (~/.cache/lakegate/superset-venv),
#                                          reused while superset-requirements.txt
#                                          is unchanged
#   scripts/services/superset.sh start     install, then start on a free port with
#                                          a fresh sqlite metadata DB in a temp dir;
#                                          prints SUPERSET_URL=..., SUPERSET_USER=...,
#                                          SUPERSET_PASSWORD=..., SUPERSET_PID=...
#   scripts/services/superset.sh stop      stop it (by its pid) and remove the temp dir
#   scripts/services/superset.sh status
#
# One instance at a time; its temp dir is recorded in $LAKEGATE_SUPERSET_STATE
# (~/.cache/lakegate/superset.state). The metadata DB after `db upgrade`,
# `fab create-admin` and `init` is kept as a template, so later starts copy it
# instead of running those again.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/superset-requirements.txt"
cache="$HOME/.cache/lakegate"
venv="${LAKEGATE_SUPERSET_VENV:-$cache/superset-venv}"
state="${LAKEGATE_SUPERSET_STATE:-$cache/superset.state}"
template="$cache/superset-template"
admin_user="admin"
admin_password="${LAKEGATE_SUPERSET_PASSWORD:-admin}"
start_timeout="${LAKEGATE_SUPERSET_START_TIMEOUT:-180}"

die() { echo "superset.sh: $*" >&2; exit 1; }
stamp_of() { sha256sum "$req" | cut -d' ' -f1; }

install() {
    local want; want="$(stamp_of)"
    if [[ -x $venv/bin/superset && -f $venv/.lakegate-stamp && $(cat "$venv/.lakegate-stamp") == "$want" ]] &&
        "$venv/bin/python" -c 'import sys' 2>/dev/null; then
        echo "superset venv up to date: $venv" >&2
        return
    fi
    local t0=$SECONDS
    if ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
        rm -rf "$venv"
        python3 -m venv "$venv"
    fi
    echo "installing $(basename "$req") into $venv" >&2
    "$venv/bin/python" -m pip install --disable-pip-version-check --no-input --progress-bar off \
        -q -r "$req" >&2
    echo "$want" >"$venv/.lakegate-stamp"
    echo "superset installed in $((SECONDS - t0)) s" >&2
}

running_pid() {
    [[ -f $state ]] || return 1
    local dir pid; dir="$(cat "$state")"
    pid="$(cat "$dir/superset.pid" 2>/dev/null)" || return 1
    kill -0 "$pid" 2>/dev/null && echo "$pid"
}

start() {
    if pid="$(running_pid)"; then die "already running (pid $pid, $(cat "$state")): stop it first"; fi
    install
    local t0=$SECONDS dir port
    dir="$(mktemp -d "${TMPDIR:-/tmp}/lakegate-superset.XXXXXX")"
    port="$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    cat >"$dir/superset_config.py" <<EOF
SECRET_KEY = "$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
SQLALCHEMY_DATABASE_URI = "sqlite:///$dir/superset.db"
WTF_CSRF_ENABLED = True
EOF
    export SUPERSET_CONFIG_PATH="$dir/superset_config.py" FLASK_APP=superset
    export SUPERSET_LOAD_EXAMPLES=no
    if [[ -f $template/superset.db && $(cat "$template/stamp" 2>/dev/null) == "$(stamp_of)-$admin_password" ]]; then
        cp "$template/superset.db" "$dir/superset.db"
    else
        echo "creating the metadata DB (db upgrade, create-admin, init)" >&2
        {
            "$venv/bin/superset" db upgrade &&
            "$venv/bin/superset" fab create-admin --username "$admin_user" --firstname Lake \
                --lastname Gate --email admin@localhost --password "$admin_password" &&
            "$venv/bin/superset" init
        } >"$dir/setup.log" 2>&1 || { tail -n 30 "$dir/setup.log" >&2; die "metadata DB set-up failed (log: $dir/setup.log)"; }
        mkdir -p "$template"
        cp "$dir/superset.db" "$template/superset.db"
        echo "$(stamp_of)-$admin_password" >"$template/stamp"
    fi
    nohup "$venv/bin/superset" run -h 127.0.0.1 -p "$port" --with-threads \
        >"$dir/superset.log" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$dir/superset.pid"
    echo "$dir" >"$state"
    until curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; do
        kill -0 "$pid" 2>/dev/null || { tail -n 30 "$dir/superset.log" >&2; die "superset exited (log: $dir/superset.log)"; }
        (( SECONDS - t0 < start_timeout )) || { stop; die "not ready after ${start_timeout} s"; }
        sleep 0.2
    done
    echo "superset ready in $((SECONDS - t0)) s (log: $dir/superset.log)" >&2
    printf 'SUPERSET_URL=http://127.0.0.1:%s\nSUPERSET_USER=%s\nSUPERSET_PASSWORD=%s\nSUPERSET_PID=%s\nSUPERSET_DIR=%s\n' \
        "$port" "$admin_user" "$admin_password" "$pid" "$dir"
}

stop() {
    [[ -f $state ]] || { echo "superset not running" >&2; return 0; }
    local dir pid; dir="$(cat "$state")"
    if pid="$(cat "$dir/superset.pid" 2>/dev/null)" && kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        echo "stopped superset (pid $pid)" >&2
    fi
    rm -rf "$dir" "$state"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) if pid="$(running_pid)"; then echo "running: pid $pid, dir $(cat "$state")"; else echo "not running"; exit 1; fi ;;
    *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
