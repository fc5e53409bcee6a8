"""Per-query latency of small queries through Flight SQL, the cost a dashboard pays per chart.

Starts `lakegate serve` (no users, loopback) over a throw-away data directory holding one
Parquet table of 1M rows, then times on one connection each:
  - `SELECT 1`, and
  - a point query `SELECT name FROM points WHERE id = ?` (a prepared statement, bound),
through the ADBC Flight SQL driver (as Jupyter uses it) and the Arrow Flight SQL JDBC driver
(as DBeaver/Tableau use it), and prints p50/p95 in milliseconds against the goal.

Usage, from the repository root:

    bash scripts/setup.sh                   # .venv with the ADBC driver
    cargo build --release                   # -> $CARGO_TARGET_DIR/release/lakegate
    .venv/bin/python benches/latency/run.py [--calls 500] [--lakegate PATH]

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
                               "--point-query", "SELECT name FROM points WHERE id = ?"],
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

    print(f"\n{'query':<22} {'p50 ms':>8} {'p95 ms':>8}   goal p50 < 2 ms ({a.calls} calls, one connection)")
    ok = True
    for name, (p50, p95) in results.items():
        ok &= p50 < 2.0
        print(f"{name:<22} {p50:>8.3f} {p95:>8.3f}   {'met' if p50 < 2.0 else 'NOT met'}")
    return 0 if ok and len(results) == 4 else 1


if __name__ == "__main__":
    sys.exit(main())
