"""A Superset-style dashboard replayed by concurrent Flight SQL clients: lakegate without and
with `CACHE TABLE`, and Spark 4 local mode with `CACHE TABLE` on the same tables, in one run.

The data are the demo's: `adserver_logs` (Parquet, partitioned by dt), `users` in a throw-away
PostgreSQL, `programs` in a throw-away Apache Cassandra (both started here, as the other
benchmarks do). The dashboard is the NCIS query and ten chart queries (group-bys by day, type,
program, age band, gender, country). Each of N clients (threads, each with its own ADBC
connection, as Superset's workers have) runs every query `--rounds` times, starting at a
different query; latencies are per query, queries/s is all queries over the wall time.

lakegate modes:
  no cache                  every chart reads PostgreSQL, Cassandra and the Parquet files
  cached                    after `CACHE TABLE users`, `CACHE TABLE programs`, `CACHE TABLE
                            adserver_logs`; identical queries reuse one answer ([cache] answers_mb)
  cached, answers computed  the same caches, `[cache] answers_mb = 0`: every chart is computed
The harness's floor: Apache Arrow's example Flight SQL server (Go, see benches/latency) answering
`SELECT 1` for every chart, through the same clients: what N Python ADBC clients on this machine
measure of a server that does nothing. Python's ADBC clients cost the two cores more than a
cached answer does, so the cached modes and the floor are also replayed by `loadgen/` (Apache
Arrow's own Go Flight SQL client, N goroutines with a connection each; built with `go build` on
first use): the same charts, the same order, the same percentiles.
Spark: one SparkSession (local[2], as a Thrift Server would hold it) with the PostgreSQL JDBC
driver and the Spark Cassandra connector, the three tables cached with `CACHE TABLE`, the same
SQL submitted from N threads. Every mode's answers are compared with Spark's.

Usage, from the repository root:

    eval "$(bash scripts/setup.sh | grep '^export ')"   # PostgreSQL on PATH, Java, .venv
    cargo build --release
    .venv/bin/python benches/dashboard/run.py [--rows 1000000] [--rounds 3] [--clients 1,8,32] [--no-spark]

Goals (issue 16): cached p95 under 50 ms at 32 clients on this 2-core machine; at least 10x
Spark's queries/s with the cache on both sides.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PG_JDBC = "42.7.14"


def sibling(name: str):
    """The `run.py` of another benchmark, for its service fixtures."""
    spec = importlib.util.spec_from_file_location(f"{name}_bench", ROOT / "benches" / name / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


postgres_bench = sibling("postgres")
cassandra_bench = sibling("cassandra")
latency_bench = sibling("latency")

NCIS = """SELECT COUNT(*) AS impressions FROM adserver_logs A
  JOIN users U ON A.uid = U.uid JOIN programs P ON A.pid = P.id
WHERE A.type = 'impression' AND U.age BETWEEN 25 AND 49 AND U.gender = 'F' AND P.name = 'NCIS'"""

CHARTS = [
    NCIS,
    "SELECT dt, count(*) AS n FROM adserver_logs GROUP BY dt ORDER BY dt",
    "SELECT type, count(*) AS n FROM adserver_logs GROUP BY type ORDER BY type",
    "SELECT dt, type, count(*) AS n FROM adserver_logs WHERE dt >= '2018-03-20' GROUP BY dt, type ORDER BY dt, type",
    "SELECT P.name, count(*) AS n FROM adserver_logs A JOIN programs P ON A.pid = P.id GROUP BY P.name ORDER BY n DESC, P.name LIMIT 10",
    "SELECT P.network, count(*) AS n FROM adserver_logs A JOIN programs P ON A.pid = P.id WHERE A.type = 'click' GROUP BY P.network ORDER BY P.network",
    "SELECT CAST(U.age / 10 AS INT) * 10 AS age_band, count(*) AS n FROM adserver_logs A JOIN users U ON A.uid = U.uid GROUP BY 1 ORDER BY 1",
    "SELECT U.gender, count(*) AS n FROM adserver_logs A JOIN users U ON A.uid = U.uid WHERE A.dt = '2018-03-05' GROUP BY U.gender ORDER BY U.gender",
    "SELECT U.country, count(DISTINCT A.uid) AS viewers FROM adserver_logs A JOIN users U ON A.uid = U.uid GROUP BY U.country ORDER BY viewers DESC, U.country LIMIT 10",
    "SELECT country, count(*) AS n, avg(age) AS mean_age FROM users GROUP BY country ORDER BY country",
    "SELECT genre, count(*) AS n FROM programs GROUP BY genre ORDER BY genre",
]


def percentiles(ms: list[float]) -> tuple[float, float]:
    s = sorted(ms)
    return statistics.median(s), s[min(len(s) - 1, int(len(s) * 0.95 + 0.5) - 1)]


def normalize(rows) -> list[tuple]:
    """Rows comparable across engines: floats rounded, everything as text."""
    out = []
    for row in rows:
        out.append(tuple(f"{v:.6g}" if isinstance(v, float) else str(v) for v in row))
    return out


def replay(run_query, clients: int, rounds: int) -> dict:
    """`clients` threads, each running every chart `rounds` times; run_query(client, sql)."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        mine = []
        try:
            for r in range(rounds):
                for k in range(len(CHARTS)):
                    sql = CHARTS[(index + k) % len(CHARTS)]
                    started = time.perf_counter()
                    run_query(index, sql)
                    mine.append((time.perf_counter() - started) * 1000)
        except Exception as e:  # reported, and the mode fails
            errors.append(f"client {index}: {e}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if errors:
        raise RuntimeError("; ".join(errors[:3]))
    p50, p95 = percentiles(latencies)
    return {"clients": clients, "queries": len(latencies), "p50_ms": p50, "p95_ms": p95, "qps": len(latencies) / wall}


class LakegateServer:
    def __init__(self, base: list[str], env: dict[str, str]):
        self.process = subprocess.Popen(base + ["serve", "--listen", "127.0.0.1:0", "--admin-listen", "off"], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.url = None
        for line in self.process.stdout:
            m = re.match(r"lakegate Flight SQL listening on (\S+)", line)
            if m:
                self.url = m.group(1)
                break
        if not self.url:
            raise RuntimeError("lakegate serve did not start")
        self.connections: dict[int, object] = {}

    def query(self, client: int, sql: str):
        if client not in self.connections:
            self.connections[client] = flightsql.connect(self.url)
        cursor = self.connections[client].cursor()
        cursor.execute(sql)
        rows = cursor.fetchall()
        cursor.close()
        return rows

    def stop(self) -> None:
        for c in self.connections.values():
            c.close()
        self.process.terminate()
        self.process.wait()


def pg_jdbc_jar() -> str:
    home = Path.home() / ".cache/lakegate/postgresql-jdbc"
    jar = home / f"postgresql-{PG_JDBC}.jar"
    if not jar.exists():
        home.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mvn", "-q", "-B", "dependency:copy", f"-Dartifact=org.postgresql:postgresql:{PG_JDBC}",
                        f"-DoutputDirectory={home}"], check=True)
    return str(jar)


def spark_mode(logs_dir: Path, cluster, contact_point: str, clients: list[int], rounds: int, answers: dict) -> list[dict]:
    from pyspark.sql import SparkSession

    host, port = contact_point.rsplit(":", 1)
    spark = (
        SparkSession.builder.master("local[2]").appName("lakegate-dashboard-bench")
        .config("spark.jars", ",".join(cassandra_bench.connector_jars() + [pg_jdbc_jar()]))
        .config("spark.driver.memory", "4g")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.scheduler.mode", "FAIR")
        .config("spark.cassandra.connection.host", host).config("spark.cassandra.connection.port", port)
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    spark.read.parquet(str(logs_dir)).createOrReplaceTempView("adserver_logs")
    (spark.read.format("jdbc").option("url", f"jdbc:postgresql://127.0.0.1:{cluster.port}/postgres").option("driver", "org.postgresql.Driver")
     .option("dbtable", "public.users").option("user", postgres_bench.USER).option("password", postgres_bench.PASSWORD)
     .load().createOrReplaceTempView("users"))
    (spark.read.format("org.apache.spark.sql.cassandra").option("keyspace", "lakegate_demo").option("table", "programs")
     .load().createOrReplaceTempView("programs"))
    for table in ["adserver_logs", "users", "programs"]:
        spark.sql(f"CACHE TABLE {table}")
    for sql in CHARTS:
        theirs = normalize(r for r in spark.sql(sql).collect())
        if theirs != answers[sql]:
            raise AssertionError(f"Spark and lakegate disagree on {sql}:\n{theirs[:5]}\n{answers[sql][:5]}")
    print("Spark's answers equal lakegate's on all charts", flush=True)
    results = []
    for n in clients:
        r = replay(lambda _client, sql: spark.sql(sql).collect(), n, rounds)
        results.append({"mode": "Spark 4, CACHE TABLE", **r})
        print(json.dumps(results[-1]), flush=True)
    spark.stop()
    return results


def loadgen_binary() -> Path:
    binary = Path.home() / ".cache/lakegate/go-bin/dashboard-loadgen"
    sources = HERE / "loadgen"
    newest = max(f.stat().st_mtime for f in sources.iterdir())
    if not binary.exists() or binary.stat().st_mtime < newest:
        binary.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["go", "build", "-o", str(binary), "."], cwd=sources, check=True,
                       env={**os.environ, "GOFLAGS": "-mod=mod"})
    return binary


def go_replay(url: str, queries: list[str], clients: int, rounds: int) -> dict:
    """`replay` by the Go clients: each runs every query `rounds` times from a different start."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(queries, f)
        f.flush()
        out = subprocess.run([str(loadgen_binary()), "-addr", url.split("://", 1)[-1], "-clients", str(clients),
                              "-rounds", str(rounds), "-queries", f.name], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr}")
    r = json.loads(out.stdout)
    return {k: r[k] for k in ["clients", "queries", "p50_ms", "p95_ms", "qps"]}


def floor_mode(clients: list[int], rounds: int) -> list[dict]:
    port = latency_bench.free_port()
    peer = subprocess.Popen([str(latency_bench.peer_binary()), "-host", "127.0.0.1", "-port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    connections: dict[int, object] = {}

    def select1(client: int, _sql: str):
        if client not in connections:
            connections[client] = flightsql.connect(f"grpc://127.0.0.1:{port}")
        cursor = connections[client].cursor()
        cursor.execute("SELECT 1")
        rows = cursor.fetchall()
        cursor.close()
        return rows

    try:
        deadline = time.time() + 30
        while True:
            try:
                select1(-1, "")
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        results = []
        for n in clients:
            results.append({"mode": "floor: peer server, SELECT 1", **replay(select1, n, rounds)})
            print(json.dumps(results[-1]), flush=True)
        for n in clients:
            r = go_replay(f"grpc://127.0.0.1:{port}", ["SELECT 1"] * len(CHARTS), n, rounds)
            results.append({"mode": "floor: peer server, SELECT 1, Go clients", **r})
            print(json.dumps(results[-1]), flush=True)
        return results
    finally:
        for c in connections.values():
            c.close()
        peer.terminate()
        peer.wait(timeout=30)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lakegate", type=Path, default=None)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--clients", default="1,8,32")
    p.add_argument("--no-spark", action="store_true")
    a = p.parse_args()
    binary = postgres_bench.lakegate_binary(str(a.lakegate) if a.lakegate else None)
    clients = [int(c) for c in a.clients.split(",")]
    root = Path(tempfile.mkdtemp(prefix="lakegate-dashboard-"))
    pg_root = Path(tempfile.mkdtemp(prefix="lakegate-dashboard-pg-"))  # owned by the server's user
    cluster = postgres_bench.Cluster(pg_root)
    node = cassandra_bench.Node(None)
    server = None
    results: list[dict] = []
    try:
        data = root / "lakegate"
        env = {**cluster.env(), "LAKEGATE_CASSANDRA_CONTACT_POINTS": node.contact_point}
        base = [str(binary), "--data-dir", str(data)]
        url = f"postgres://{postgres_bench.USER}@127.0.0.1:{cluster.port}/postgres"
        subprocess.run(base + ["demo", "--rows", str(a.rows), "--postgres", url], env=env, check=True, stdout=subprocess.DEVNULL)
        server = LakegateServer(base, env)
        answers = {sql: normalize(server.query(-1, sql)) for sql in CHARTS}
        for n in clients:
            results.append({"mode": "lakegate, no cache", **replay(server.query, n, a.rounds)})
            print(json.dumps(results[-1]), flush=True)
        for table in ["users", "programs", "adserver_logs"]:
            server.query(-1, f"CACHE TABLE {table}")
        # The same caches with every answer computed, then with identical queries' answers reused.
        no_reuse = root / "no-reuse.toml"
        no_reuse.write_text("[cache]\nanswers_mb = 0\n")
        for mode, config in [("lakegate, cached, answers computed", ["--config", str(no_reuse)]), ("lakegate, cached", [])]:
            server.stop()
            server = LakegateServer(base + config, env)
            for sql in CHARTS:
                if normalize(server.query(-1, sql)) != answers[sql]:
                    raise AssertionError(f"the cache changed the answer of {sql}")
            for n in clients:
                results.append({"mode": mode, **replay(server.query, n, a.rounds)})
                print(json.dumps(results[-1]), flush=True)
            for n in clients:
                results.append({"mode": f"{mode}, Go clients", **go_replay(server.url, CHARTS, n, a.rounds)})
                print(json.dumps(results[-1]), flush=True)
        server.stop()
        server = None
        results += floor_mode(clients, a.rounds)
        if not a.no_spark:
            logs_dir = data / "warehouse" / "demo" / "adserver_logs"
            results += spark_mode(logs_dir, cluster, node.contact_point, clients, a.rounds, answers)
    finally:
        if server:
            server.stop()
        node.stop()
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(pg_root, ignore_errors=True)

    print(f"\n{a.rows:,} log rows, {len(CHARTS)} charts x {a.rounds} rounds per client")
    print(f"{'mode':48} {'clients':>7} {'p50 ms':>8} {'p95 ms':>8} {'queries/s':>10}")
    for r in results:
        print(f"{r['mode']:48} {r['clients']:>7} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['qps']:>10.1f}")
    spark = {r["clients"]: r["qps"] for r in results if r["mode"].startswith("Spark")}
    for r in results:
        if r["mode"].startswith("lakegate, cached") and r["clients"] in spark:
            print(f"{r['mode']} / cached Spark at {r['clients']} clients: {r['qps'] / spark[r['clients']]:.1f}x queries/s")
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
