"""Cassandra read benchmark: a full-table count and a full scan into Arrow, lakegate against
Spark local[2] with the Spark Cassandra connector, on the same table in one run.

Usage, from the repository root:

    bash scripts/setup.sh                  # .venv, Cassandra's jars
    .venv/bin/pip install -r benches/requirements.txt   # pyspark
    cargo build --release                  # -> $CARGO_TARGET_DIR/release/lakegate
    .venv/bin/python benches/cassandra/run.py [--rows 5000000] [--contact-point HOST:PORT]

Without --contact-point it starts a Cassandra 5.0 node of its own
(scripts/services/cassandra.sh, its own state file) and stops it at the end. The table
bench.programs_<time> (id bigint PRIMARY KEY, name text, genre text, seasons int, rating double)
is created over CQL and filled through Spark's connector. Then, in turn:
  lakegate  `lakegate serve`, queried with the ADBC Flight SQL driver: SELECT count(*), and
            SELECT * fetched into a pyarrow Table
  Spark     spark.read.format("org.apache.spark.sql.cassandra")...count(), and
            DataFrame.toArrow() of the whole table
Times are wall clock in this process (Spark's session start is not counted; lakegate's
server start is not counted either). Results go to benches/cassandra/results.json.

Spark 4 (pyspark 4.3) runs Scala 2.13; the connector build used is
com.datastax.spark:spark-cassandra-connector_2.13:3.5.1, resolved with Maven into
~/.cache/lakegate/spark-cassandra-connector (Spark's own --packages resolution fails here on a
commons-lang3 download), with the jars Spark already ships left out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CONNECTOR = "3.5.1"
# Jars of the connector's tree that Spark 4 already has (other versions of them clash).
PROVIDED = ("scala-library", "scala-reflect", "slf4j-api", "commons-lang3", "metrics-core", "HdrHistogram")


def lakegate_binary(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    target = os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache/lakegate/target"))
    return Path(target) / "release" / "lakegate"


def connector_jars() -> list[str]:
    home = Path.home() / ".cache/lakegate/spark-cassandra-connector" / CONNECTOR
    lib = home / "lib"
    if not (lib / ".complete").exists():
        home.mkdir(parents=True, exist_ok=True)
        (home / "pom.xml").write_text(
            f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>lakegate.bench</groupId><artifactId>spark-cassandra</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies><dependency><groupId>com.datastax.spark</groupId>
    <artifactId>spark-cassandra-connector_2.13</artifactId><version>{CONNECTOR}</version></dependency></dependencies>
</project>
"""
        )
        subprocess.run(
            ["mvn", "-q", "-B", "-f", str(home / "pom.xml"), "dependency:copy-dependencies",
             f"-DoutputDirectory={lib}", "-DincludeScope=runtime"],
            check=True,
        )
        (lib / ".complete").touch()
    return sorted(str(j) for j in lib.glob("*.jar") if not j.name.startswith(PROVIDED))


class Node:
    """A Cassandra node of the benchmark's own, or one given by --contact-point."""

    def __init__(self, contact_point: str | None):
        self.state = None
        if contact_point:
            self.contact_point = contact_point
            return
        self.state = tempfile.mkdtemp(prefix="lakegate-bench-cassandra.")
        started = time.perf_counter()
        out = self.script("start")
        self.contact_point = next(l.split("=", 1)[1] for l in out.splitlines() if l.startswith("CASSANDRA_CONTACT_POINT="))
        self.startup_s = time.perf_counter() - started
        print(f"Cassandra up at {self.contact_point} in {self.startup_s:.1f} s", flush=True)

    def script(self, action: str) -> str:
        env = dict(os.environ, LAKEGATE_CASSANDRA_STATE=f"{self.state}/state")
        return subprocess.run(
            ["bash", str(ROOT / "scripts/services/cassandra.sh"), action], env=env, check=True, capture_output=True, text=True
        ).stdout

    def stop(self) -> None:
        if self.state:
            self.script("stop")
            shutil.rmtree(self.state, ignore_errors=True)


def spark_session(contact_point: str):
    from pyspark.sql import SparkSession

    host, port = contact_point.rsplit(":", 1)
    return (
        SparkSession.builder.master("local[2]")
        .appName("lakegate-cassandra-bench")
        .config("spark.jars", ",".join(connector_jars()))
        .config("spark.driver.memory", "4g")
        .config("spark.cassandra.connection.host", host)
        .config("spark.cassandra.connection.port", port)
        .getOrCreate()
    )


def cql(contact_point: str, statement: str) -> None:
    """Runs one CQL statement over the native protocol (v4): STARTUP, then QUERY."""
    host, port = contact_point.rsplit(":", 1)

    def frame(opcode: int, body: bytes) -> bytes:
        return struct.pack(">BBhBi", 4, 0, 0, opcode, len(body)) + body

    def read(sock) -> tuple[int, bytes]:
        header = sock.recv(9, socket.MSG_WAITALL)
        _, _, _, opcode, length = struct.unpack(">BBhBi", header)
        body = sock.recv(length, socket.MSG_WAITALL) if length else b""
        if opcode == 0x00:  # ERROR: int code, then the message
            raise RuntimeError(f"CQL error on {statement!r}: {body[6:].decode(errors='replace')}")
        return opcode, body

    with socket.create_connection((host, int(port)), timeout=60) as sock:
        version = b"CQL_VERSION"
        sock.sendall(frame(0x01, struct.pack(">HH", 1, len(version)) + version + struct.pack(">H", 5) + b"3.0.0"))
        read(sock)
        text = statement.encode()
        sock.sendall(frame(0x07, struct.pack(">i", len(text)) + text + struct.pack(">HB", 0x0001, 0)))
        read(sock)


def load(spark, contact_point: str, table: str, rows: int) -> float:
    cql(contact_point, "CREATE KEYSPACE IF NOT EXISTS bench WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}")
    cql(contact_point, f"CREATE TABLE bench.{table} (id bigint PRIMARY KEY, name text, genre text, seasons int, rating double)")
    started = time.perf_counter()
    spark.range(rows).selectExpr(
        "id",
        "concat('program ', id) AS name",
        "element_at(array('drama', 'comedy', 'news', 'sports'), CAST(id % 4 + 1 AS INT)) AS genre",
        "CAST(id % 20 AS INT) AS seasons",
        "(id % 1000) / 100.0 AS rating",
    ).write.format("org.apache.spark.sql.cassandra").options(keyspace="bench", table=table).mode("append").save()
    return time.perf_counter() - started


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def bench_spark(spark, table: str, rows: int) -> dict:
    df = spark.read.format("org.apache.spark.sql.cassandra").options(keyspace="bench", table=table).load()
    count_s, count = timed(df.count)
    assert count == rows, f"Spark counted {count}, expected {rows}"
    scan_s, table = timed(df.toArrow)
    assert table.num_rows == rows, f"Spark scanned {table.num_rows}"
    return {"count_s": count_s, "scan_s": scan_s}


def bench_lakegate(binary: Path, contact_point: str, table: str, rows: int) -> dict:
    import adbc_driver_flightsql.dbapi as flightsql

    with tempfile.TemporaryDirectory(prefix="lakegate-bench.") as data_dir:
        base = [str(binary), "--data-dir", data_dir]
        subprocess.run(
            base + ["sql", "-e", f"CREATE EXTERNAL TABLE programs STORED AS CASSANDRA LOCATION 'cassandra://{contact_point}/bench/{table}'"],
            check=True,
        )
        server = subprocess.Popen(base + ["serve", "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
        try:
            url = None
            for line in server.stdout:
                if line.startswith("lakegate Flight SQL listening on "):
                    url = line.split(" on ", 1)[1].strip()
                    break
            assert url, "lakegate serve did not start"
            with flightsql.connect(url) as conn, conn.cursor() as cur:
                def count():
                    cur.execute("SELECT count(*) FROM programs")
                    return cur.fetchone()[0]

                def scan():
                    cur.execute("SELECT * FROM programs")
                    return cur.fetch_arrow_table()

                count_s, n = timed(count)
                assert n == rows, f"lakegate counted {n}, expected {rows}"
                scan_s, table = timed(scan)
                assert table.num_rows == rows, f"lakegate scanned {table.num_rows}"
        finally:
            server.terminate()
            server.wait()
    return {"count_s": count_s, "scan_s": scan_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--contact-point")
    parser.add_argument("--lakegate")
    args = parser.parse_args()
    binary = lakegate_binary(args.lakegate)
    if not binary.exists():
        sys.exit(f"{binary} not found: cargo build --release first (or --lakegate PATH)")

    node = Node(args.contact_point)
    try:
        spark = spark_session(node.contact_point)
        spark.sparkContext.setLogLevel("ERROR")
        table = f"programs_{int(time.time())}"
        load_s = load(spark, node.contact_point, table, args.rows)
        print(f"loaded {args.rows:,} rows through Spark in {load_s:.1f} s ({args.rows / load_s:,.0f} rows/s)", flush=True)
        results = {"rows": args.rows, "load_s": load_s, "cassandra_startup_s": getattr(node, "startup_s", None)}
        results["lakegate"] = bench_lakegate(binary, node.contact_point, table, args.rows)
        results["spark"] = bench_spark(spark, table, args.rows)
        spark.stop()
    finally:
        node.stop()

    print(f"\n{'':10} {'count (s)':>10} {'rows/s':>12} {'scan (s)':>10} {'rows/s':>12}")
    for engine in ("lakegate", "spark"):
        r = results[engine]
        print(f"{engine:10} {r['count_s']:10.2f} {args.rows / r['count_s']:12,.0f} {r['scan_s']:10.2f} {args.rows / r['scan_s']:12,.0f}")
    for kind in ("count", "scan"):
        ratio = results["spark"][f"{kind}_s"] / results["lakegate"][f"{kind}_s"]
        results[f"{kind}_speedup"] = ratio
        print(f"{kind}: lakegate is {ratio:.1f}x Spark's rows/s")
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
