"""A Hive metastore of 1,000 tables and a table of 10,000 partitions: how long lakegate takes to
list it and to plan a one-partition query, against Spark on the same metastore, same run.

Starts a real metastore (scripts/services/hive-metastore.sh), fills it with Spark (pyspark, its
Hive client), then times, each the median of --rounds after a warm-up:
  - SHOW TABLES of the 1,000-table database;
  - the listing an inspector makes (Spark: spark.catalog.listTables; lakegate: Flight SQL
    GetTables through ADBC's adbc_get_objects, as Jupyter and Superset list tables);
  - planning `SELECT count(*) ... WHERE dt = <one day>` over the 10,000-partition table and over a
    10-partition one (Spark: the executed plan; lakegate: EXPLAIN through ADBC): the metastore
    answers one partition either way, so the two should cost the same.
lakegate runs as `lakegate serve` with cache_seconds = 0, so every statement asks the metastore.

Usage, from the repository root:

    bash scripts/setup.sh
    cargo build                              # or --release; pass --lakegate PATH
    .venv/bin/python benches/metastore/run.py [--tables 1000] [--partitions 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
from pyspark.sql import SparkSession

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts/services/hive-metastore.sh"


def default_lakegate() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache/lakegate/target")))
    release = target / "release" / "lakegate"
    return release if release.exists() else target / "debug" / "lakegate"


def median_ms(rounds: int, call) -> float:
    call()  # warm-up: connections, JIT, caches of the client
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def fill(spark, tables: int, partitions: int) -> None:
    spark.sql("CREATE DATABASE bench")
    start = time.perf_counter()
    for i in range(tables):
        spark.sql(f"CREATE TABLE bench.t{i:04d} (id BIGINT, name STRING) USING parquet")
    print(f"created {tables} tables in {time.perf_counter() - start:.0f} s", flush=True)
    for name, count in (("big", partitions), ("small", 10)):
        spark.sql(f"CREATE TABLE bench.{name} (id BIGINT) USING parquet PARTITIONED BY (dt STRING)")
        days = [f"d{i:05d}" for i in range(count)]
        for chunk in range(0, count, 500):
            specs = " ".join(f"PARTITION (dt='{d}')" for d in days[chunk:chunk + 500])
            spark.sql(f"ALTER TABLE bench.{name} ADD {specs}")
        spark.sql(f"INSERT INTO bench.{name} PARTITION (dt='d00005') VALUES (1), (2)")
    print(f"added {partitions} + 10 partitions", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", type=int, default=1000)
    p.add_argument("--partitions", type=int, default=10000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--lakegate", type=Path, default=default_lakegate())
    a = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lakegate-metastore-bench."))
    env = dict(os.environ, LAKEGATE_HMS_STATE=str(work / "hms.state"))
    started = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True)
    if started.returncode != 0:
        print(started.stdout, started.stderr, file=sys.stderr)
        return 1
    uri = re.search(r"HIVE_METASTORE_URI=(\S+)", started.stdout).group(1)
    server = None
    try:
        spark = (
            SparkSession.builder.master("local[2]")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.warehouse.dir", f"file://{work}/warehouse")
            .config("spark.hadoop.hive.metastore.uris", uri)
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .enableHiveSupport()
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        fill(spark, a.tables, a.partitions)

        def spark_plan(table):
            return lambda: spark.sql(f"SELECT count(*) FROM bench.{table} WHERE dt = 'd00005'")._jdf.queryExecution().executedPlan()

        results = {
            "show_tables": {"spark": median_ms(a.rounds, lambda: spark.sql("SHOW TABLES IN bench").collect())},
            "inspector_listing": {"spark": median_ms(a.rounds, lambda: spark.catalog.listTables("bench"))},
            "plan_one_of_10000_partitions": {"spark": median_ms(a.rounds, spark_plan("big"))},
            "plan_one_of_10_partitions": {"spark": median_ms(a.rounds, spark_plan("small"))},
        }
        answer = spark.sql("SELECT count(*) FROM bench.big WHERE dt = 'd00005'").collect()[0][0]

        data = work / "lakegate"
        data.mkdir()
        (data / "lakegate.toml").write_text(
            f'[[catalogs]]\nname = "hive"\nkind = "hive_metastore"\nuri = "{uri}"\ncache_seconds = 0\n'
        )
        server = subprocess.Popen(
            [str(a.lakegate), "--data-dir", str(data), "serve", "--listen", "127.0.0.1:0", "--admin-listen", "off"],
            cwd=data, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        url = None
        for line in server.stdout:
            found = re.search(r"grpc://127\.0\.0\.1:\d+", line)
            if found:
                url = found.group(0)
                break
        if url is None:
            print("lakegate serve did not start", file=sys.stderr)
            return 1
        with flightsql.connect(url) as conn, conn.cursor() as cur:
            def run(sql):
                return lambda: (cur.execute(sql), cur.fetchall())

            def listing():
                conn.adbc_get_objects(depth="tables", catalog_filter="hive", db_schema_filter="bench").read_all()

            results["show_tables"]["lakegate"] = median_ms(a.rounds, run("SHOW TABLES IN hive.bench"))
            results["inspector_listing"]["lakegate"] = median_ms(a.rounds, listing)
            explain = "EXPLAIN SELECT count(*) FROM hive.bench.{} WHERE dt = 'd00005'"
            results["plan_one_of_10000_partitions"]["lakegate"] = median_ms(a.rounds, run(explain.format("big")))
            results["plan_one_of_10_partitions"]["lakegate"] = median_ms(a.rounds, run(explain.format("small")))
            cur.execute("SELECT count(*) FROM hive.bench.big WHERE dt = 'd00005'")
            same = cur.fetchall()[0][0] == answer
        print(f"\nmetastore: {a.tables} tables, one table of {a.partitions} partitions; lakegate {a.lakegate.parent.name} build")
        print(f"{'':32} {'lakegate ms':>12} {'Spark ms':>10} {'Spark / lakegate':>17}")
        for name, r in results.items():
            print(f"{name:32} {r['lakegate']:12.1f} {r['spark']:10.1f} {r['spark'] / r['lakegate']:16.1f}x")
        print(f"one-day count agrees with Spark: {same}")
        (Path(__file__).parent / "results.json").write_text(json.dumps(
            {"tables": a.tables, "partitions": a.partitions, "build": a.lakegate.parent.name, "results": results}, indent=1))
        spark.stop()
        return 0 if same else 1
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True)


if __name__ == "__main__":
    sys.exit(main())
