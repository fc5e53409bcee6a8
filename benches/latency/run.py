"""Per-query latency of small queries through Flight SQL, the cost a dashboard pays per chart.

Starts `lakegate serve` (no users, loopback) over a throw-away data directory holding one
Parquet table of 1M rows, then times on one connection each:
  - `SELECT 1`, and
  - a point query `SELECT name FROM points WHERE id = ?` (a prepared statement, bound),
through the ADBC Flight SQL driver (as Jupyter uses it) and the Arrow Flight SQL JDBC driver
(as DBeaver/Tableau use it), and prints p50/p95 in milliseconds against the goal.

The peer, in the same run: Apache Arrow's own example Flight SQL server (Go, over SQLite,
`go install`ed on first use into ~/.cache/lakegate/go-bin) answering the same `SELECT 1`
through the same ADBC driver: the floor the client stack sets, whatever the server. (The JDBC
driver cannot query it: its prepared statements return no result schema, so the driver
takes every statement for an update.) The JDBC driver's first thousands of calls run while
the JVM compiles it, so JDBC is timed after `--jdbc-warmup` untimed calls.

Usage, from the repository root:

    bash scripts/setup.sh                   # .venv with the ADBC driver
    cargo build --release                   # -> $CARGO_TARGET_DIR/release/lakegate
    .venv/bin/python benches/latency/run.py [--calls 500] [--jdbc-warmup 3000] [--lakegate PATH] [--no-peer]

Goal: p50 under 2 ms on loopback for both queries and both drivers.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql

ROOT = Path(__file__).resolve().parents[2]


def default_lakegate() -> Path:
    target = os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache/lakegate/target"))
    return Path(target) / "release" / "lakegate"


def percentiles(ms: list[float]) -> tuple[float, float]:
    s = sorted(ms)
    return statistics.median(s), s[min(len(s) - 1, int(len(s) * 0.95 + 0.5) - 1)]


PEER_MODULE = "github.com/apache/arrow-go/v18/arrow/flight/flightsql/example/cmd/sqlite_flightsql_server@v18.8.0"


def peer_binary() -> Path:
    """Apache Arrow's example Flight SQL server, built with `go install` on first use."""
    bin_dir = Path.home() / ".cache/lakegate/go-bin"
    binary = bin_dir / "sqlite_flightsql_server"
    if not binary.exists():
        env = {**os.environ, "GOBIN": str(bin_dir), "GOFLAGS": "-mod=mod"}
        subprocess.run(["go", "install", PEER_MODULE], env=env, check=True)
    return binary


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peer_select1(calls: int) -> tuple[float, float]:
    """ADBC `SELECT 1` against the peer server, p50/p95."""
    port = free_port()
    peer = subprocess.Popen([str(peer_binary()), "-host", "127.0.0.1", "-port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while True:
            try:
                conn = flightsql.connect(f"grpc://127.0.0.1:{port}")
                cur = conn.cursor()
                cur.execute("SELECT 1")
                cur.fetchall()
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)

        def select1(_):
            cur.execute("SELECT 1")
            cur.fetchall()

        result = percentiles(time_calls(calls, select1))
        conn.close()
        return result
    finally:
        peer.terminate()
        peer.wait(timeout=30)


def time_calls(n: int, call) -> list[float]:
    for _ in range(10):  # warm-up: connection, plan caches, page cache
        call(1)
    out = []
    for i in range(n):
        t = time.perf_counter()
        call(i + 1)
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lakegate", type=Path, default=default_lakegate())
    p.add_argument("--calls", type=int, default=500)
    p.add_argument("--jdbc-warmup", type=int, default=3000)
    p.add_argument("--no-peer", action="store_true", help="skip Apache Arrow's example server")
    a = p.parse_args()
    if not a.lakegate.exists():
        print(f"lakegate binary not found at {a.lakegate}: build it with `cargo build --release`", file=sys.stderr)
        return 1

    data = Path(tempfile.mkdtemp(prefix="lakegate-latency-"))
    base = [str(a.lakegate), "--data-dir", str(data)]
    subprocess.run(base + ["sql", "-e",
                           "CREATE TABLE points (id BIGINT, name STRING) USING PARQUET; "
                           "INSERT INTO points SELECT value, concat('p', CAST(value AS STRING)) FROM generate_series(1, 1000000)"],
                   check=True, capture_output=True)
    server = subprocess.Popen(base + ["serve", "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    results: dict[str, tuple[float, float]] = {}
    try:
        url = None
        for line in server.stdout:
            m = re.match(r"lakegate Flight SQL listening on (\S+)", line)
            if m:
                url = m.group(1)
                break
        if url is None:
            print("lakegate serve did not start", file=sys.stderr)
            return 1

        conn = flightsql.connect(url)
        cur = conn.cursor()

        def select1(_):
            cur.execute("SELECT 1")
            cur.fetchall()

        def point(i):
            cur.execute("SELECT name FROM points WHERE id = ?", (i,))
            cur.fetchall()

        results["ADBC SELECT 1"] = percentiles(time_calls(a.calls, select1))
        results["ADBC point query"] = percentiles(time_calls(a.calls, point))
        conn.close()

        jdbc = subprocess.run(["sh", str(ROOT / "tests/clients/jdbc/run.sh"), "--url", url, "--latency", str(a.calls),
                               "--warmup", str(a.jdbc_warmup), "--point-query", "SELECT name FROM points WHERE id = ?"],
                              capture_output=True, text=True)
        for m in re.finditer(r"latency (\w+) p50_ms=([\d.]+) p95_ms=([\d.]+)", jdbc.stdout):
            name = {"select1": "JDBC SELECT 1", "point": "JDBC point query"}[m.group(1)]
            results[name] = (float(m.group(2)), float(m.group(3)))
        if jdbc.returncode != 0:
            print(f"JDBC client failed:\n{jdbc.stdout}\n{jdbc.stderr}", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)
    peer = None if a.no_peer else peer_select1(a.calls)

    print(f"\n{'query':<22} {'p50 ms':>8} {'p95 ms':>8}   goal p50 < 2 ms ({a.calls} calls, one connection)")
    ok = True
    for name, (p50, p95) in results.items():
        ok &= p50 < 2.0
        print(f"{name:<22} {p50:>8.3f} {p95:>8.3f}   {'met' if p50 < 2.0 else 'NOT met'}")
    if peer:
        print(f"{'peer ADBC SELECT 1':<22} {peer[0]:>8.3f} {peer[1]:>8.3f}   Apache Arrow's example Go server, same driver")
        print(f"lakegate / peer, ADBC SELECT 1 p50: {results['ADBC SELECT 1'][0] / peer[0]:.2f}x")
    return 0 if ok and len(results) == 4 else 1


if __name__ == "__main__":
    sys.exit(main())
