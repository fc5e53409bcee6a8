"""PostgreSQL source benchmark: a 10M-row table on a throw-away local PostgreSQL, read by
lakegate and by psql in the same run.

Usage, from the repository root:

    eval "$(bash scripts/setup.sh | grep '^export ')"   # PostgreSQL binaries on PATH
    cargo build --release                               # -> $CARGO_TARGET_DIR/release/lakegate
    python3 benches/postgres/run.py [--rows 10000000] [--runs 3] [--keep]

Four measurements, each the median of --runs, whole processes timed (start-up included):
  selective  the same SELECT, keeping 0.1% of the rows by a filter on an unindexed column:
             `lakegate sql -e` (filter pushed down) against `psql -c`, both printing the rows
             to /dev/null. Also reports how many rows lakegate's scan received, from
             EXPLAIN ANALYZE's output_rows: it must be the 0.1%, not the table.
  grouped    a GROUP BY with count/sum/min/max/avg that lakegate pushes to PostgreSQL, against the
             same SQL in psql; the scan must receive only the groups (EXPLAIN ANALYZE).
  top-n      ORDER BY ... LIMIT 10 over the table, pushed the same way; the scan must receive
             10 rows.
  full scan  every row and column into Arrow (`EXPLAIN ANALYZE SELECT *`, which runs the
             scan and drops the batches) against `psql -c "COPY t TO STDOUT (FORMAT binary)"`
             to /dev/null: the fastest way PostgreSQL sends a table.
Results go to benches/postgres/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
USER = "lakegate"
PASSWORD = "bench-secret"


def lakegate_binary(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    target = os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache/lakegate/target"))
    return Path(target) / "release" / "lakegate"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its server programs as `postgres` then."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class Cluster:
    def __init__(self, root: Path):
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        pwfile = root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "postgres", str(root)], check=True)
        subprocess.run(
            as_postgres(["initdb", "-D", str(self.data), "-U", USER, "--auth-local=trust", "--auth-host=scram-sha-256",
                         "-E", "UTF8", "--locale=C.UTF-8", f"--pwfile={pwfile}"]),
            check=True, stdout=subprocess.DEVNULL)
        subprocess.run(
            as_postgres(["pg_ctl", "-D", str(self.data), "-l", str(root / "log"), "-w", "start", "-o",
                         f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=512MB"]),
            check=True, stdout=subprocess.DEVNULL)

    def env(self) -> dict[str, str]:
        return {**os.environ, "PGPASSWORD": PASSWORD, "PG_PASSWORD": PASSWORD}

    def psql(self, sql: str, out=subprocess.PIPE) -> str:
        done = subprocess.run(["psql", "-X", "-q", "-At", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", "postgres",
                               "-v", "ON_ERROR_STOP=1", "-c", sql], env=self.env(), stdout=out, check=True, text=True)
        return (done.stdout or "").strip()

    def stop(self) -> None:
        subprocess.run(as_postgres(["pg_ctl", "-D", str(self.data), "-m", "fast", "stop"]), stdout=subprocess.DEVNULL)


def timed(runs: int, command: list[str], env: dict[str, str]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def rows_moved(analyzed: str) -> int:
    """The rows lakegate's PostgreSQL scan received, from EXPLAIN ANALYZE ("10.00 K" and the like)."""
    count, unit = re.search(r"PostgresScanExec[^\n]*?output_rows=([\d.]+)\s?([KMB]?)", analyzed).groups()
    return round(float(count) * {"": 1, "K": 1e3, "M": 1e6, "B": 1e9}[unit])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lakegate", help="the lakegate binary (default: the release build)")
    parser.add_argument("--keep", action="store_true", help="leave the cluster's directory behind")
    args = parser.parse_args()
    binary = lakegate_binary(args.lakegate)
    root = Path(tempfile.mkdtemp(prefix="lakegate-pg-bench-"))
    cluster = Cluster(root)
    try:
        print(f"PostgreSQL on port {cluster.port}; generating {args.rows:,} rows", flush=True)
        cluster.psql(
            f"""CREATE TABLE events AS
                SELECT i::int8 AS id, (i::int8 * 7919 % {args.rows})::int4 AS uid,
                       CASE WHEN i % 10 = 0 THEN 'click' ELSE 'impression' END AS type,
                       (i % 10000) / 100.0 AS cost, TIMESTAMPTZ '2018-03-01' + i * INTERVAL '1 second' AS ts,
                       md5(i::text) AS token
                FROM generate_series(1, {args.rows}) i""")
        cluster.psql("VACUUM ANALYZE events")
        size = cluster.psql("SELECT pg_size_pretty(pg_total_relation_size('events'))")
        print(f"table events: {size}", flush=True)

        data_dir = root / "lakegate"
        lg = [str(binary), "--data-dir", str(data_dir)]
        env = cluster.env()
        location = f"postgres://{USER}@127.0.0.1:{cluster.port}/postgres"
        subprocess.run([*lg, "sql", "-e", f"CREATE EXTERNAL TABLE events STORED AS POSTGRES LOCATION '{location}' "
                        "OPTIONS ('table' 'events', 'password' '${env:PG_PASSWORD}')"], env=env, check=True, stdout=subprocess.DEVNULL)

        cutoff = args.rows // 1000
        selective = f"SELECT id, uid, type, cost, ts, token FROM events WHERE uid < {cutoff}"
        analyzed = subprocess.run([*lg, "sql", "--format", "csv", "-e", f"EXPLAIN ANALYZE {selective}"], env=env, check=True,
                                  capture_output=True, text=True).stdout
        moved = rows_moved(analyzed)
        expected = int(cluster.psql(f"SELECT count(*) FROM events WHERE uid < {cutoff}"))
        assert moved == expected, f"the scan received {moved} rows, the query keeps {expected}"
        psql = ["psql", "-X", "-q", "-At", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", USER, "-d", "postgres", "-c"]
        t_psql_select = timed(args.runs, [*psql, selective], env)
        t_lg_select = timed(args.runs, [*lg, "sql", "--format", "csv", "-e", selective], env)

        pushed = {}
        for name, sql, rows in [
            ("grouped", "SELECT type, count(*), sum(uid), min(ts), max(id), avg(uid) FROM events GROUP BY type", 2),
            ("top_n", "SELECT id, uid, ts FROM events ORDER BY uid DESC, id LIMIT 10", 10),
        ]:
            analyzed = subprocess.run([*lg, "sql", "-e", f"EXPLAIN ANALYZE {sql}"], env=env, check=True,
                                      capture_output=True, text=True).stdout
            moved_rows = rows_moved(analyzed)
            assert moved_rows == rows, f"{name}: the scan received {moved_rows} rows, not the {rows} pushed results"
            t_psql = timed(args.runs, [*psql, sql], env)
            t_lg = timed(args.runs, [*lg, "sql", "--format", "csv", "-e", sql], env)
            pushed[name] = {"sql": sql, "rows_moved": moved_rows, "psql_s": t_psql, "lakegate_s": t_lg,
                            "lakegate_over_psql": t_lg / t_psql}

        psql_copy = ["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", USER, "-d", "postgres",
                     "-c", "COPY events TO STDOUT (FORMAT binary)"]
        t_copy = timed(args.runs, psql_copy, env)
        t_lg_scan = timed(args.runs, [*lg, "sql", "-e", "EXPLAIN ANALYZE SELECT * FROM events"], env)

        results = {
            "rows": args.rows,
            "table_size": size,
            "selective": {"rows_kept": expected, "rows_moved": moved, "moved_fraction": moved / args.rows,
                          "psql_s": t_psql_select, "lakegate_s": t_lg_select, "lakegate_over_psql": t_lg_select / t_psql_select},
            **pushed,
            "full_scan": {"psql_copy_binary_s": t_copy, "lakegate_s": t_lg_scan,
                          "psql_rows_per_s": args.rows / t_copy, "lakegate_rows_per_s": args.rows / t_lg_scan,
                          "lakegate_throughput_over_psql": t_copy / t_lg_scan},
        }
        (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        s, f = results["selective"], results["full_scan"]
        print(f"\nselective ({expected:,} of {args.rows:,} rows; lakegate's scan received {moved:,} = {100 * s['moved_fraction']:.3f}%)")
        print(f"  psql      {t_psql_select:7.3f} s")
        print(f"  lakegate  {t_lg_select:7.3f} s   time ratio lakegate/psql = {s['lakegate_over_psql']:.2f} (target <= 1.2)")
        for name, p in pushed.items():
            print(f"{name} (pushed; the scan received {p['rows_moved']} rows): {p['sql']}")
            print(f"  psql      {p['psql_s']:7.3f} s")
            print(f"  lakegate  {p['lakegate_s']:7.3f} s   time ratio lakegate/psql = {p['lakegate_over_psql']:.2f} (target <= 1.2)")
        print(f"full scan into Arrow ({args.rows:,} rows x 6 columns)")
        print(f"  psql COPY binary > /dev/null  {t_copy:7.3f} s  {f['psql_rows_per_s'] / 1e6:5.2f} M rows/s")
        print(f"  lakegate                      {t_lg_scan:7.3f} s  {f['lakegate_rows_per_s'] / 1e6:5.2f} M rows/s"
              f"   throughput ratio lakegate/psql = {f['lakegate_throughput_over_psql']:.2f} (target >= 1)")
    finally:
        cluster.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
