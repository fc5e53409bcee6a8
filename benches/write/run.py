"""Nightly-batch write benchmark: 10M rows into 30 `dt` partitions, one sorted file
per partition, lakegate against DuckDB and (with --spark) Spark local[2] in one run.

Usage, from the repository root:

    bash scripts/setup.sh                  # .venv with duckdb (and pyspark for --spark)
    cargo build --release                  # -> $CARGO_TARGET_DIR/release/lakegate
    .venv/bin/python benches/write/run.py [--rows 10000000] [--spark] [--runs 3]

Every engine reads the same source Parquet file and writes Hive partitions `dt=.../`:
  lakegate  INSERT OVERWRITE TABLE t PARTITION (dt) SELECT ... DISTRIBUTE BY dt SORT BY user_id
  DuckDB    COPY (SELECT ... ORDER BY dt, user_id) TO dir (FORMAT parquet, PARTITION_BY (dt))
  Spark     the same INSERT OVERWRITE as lakegate (dynamic partition overwrite)
Times are wall clock of the write (lakegate: the whole process, start-up included);
throughput is source rows per second. Afterwards each output is checked: files per
partition, and whether every file is sorted by user_id. Results go to
benches/write/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def lakegate_binary(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    target = os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache/lakegate/target"))
    return Path(target) / "release" / "lakegate"


def generate(path: Path, rows: int) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"generating {rows:,} rows into {path}", flush=True)
    duckdb.sql(
        f"""COPY (SELECT (hash(i) % 5000000)::BIGINT AS user_id,
                        (i % 1000)::INTEGER AS pid,
                        CASE WHEN i % 10 = 0 THEN 'click' ELSE 'impression' END AS type,
                        (hash(i * 7) % 10000) / 100.0 AS cost,
                        strftime(DATE '2018-03-01' + (hash(i * 13) % 30)::INTEGER, '%Y-%m-%d') AS dt
                 FROM range({rows}) t(i))
            TO '{path}' (FORMAT parquet)"""
    )


def check(out: Path) -> dict:
    """Files per partition and whether each file is sorted by user_id."""
    con = duckdb.connect()
    partitions = sorted(p for p in out.iterdir() if p.is_dir() and "=" in p.name)
    files = {p.name: sorted(p.glob("*.parquet")) for p in partitions}
    unsorted = 0
    for group in files.values():
        for f in group:
            bad = con.sql(
                f"SELECT count(*) FROM (SELECT user_id < lag(user_id) OVER (ORDER BY file_row_number) AS down "
                f"FROM read_parquet('{f}', file_row_number=true)) WHERE down"
            ).fetchone()[0]
            unsorted += bad > 0
    rows = con.sql(f"SELECT count(*) FROM read_parquet('{out}/*/*.parquet')").fetchone()[0]
    counts = [len(v) for v in files.values()]
    return {
        "partitions": len(files),
        "files_per_partition": [min(counts, default=0), max(counts, default=0)],
        "unsorted_files": unsorted,
        "rows": rows,
    }


def time_lakegate(binary: Path, source: Path, out: Path, data_dir: Path) -> float:
    setup = (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS src STORED AS PARQUET LOCATION '{source}'; "
        f"CREATE EXTERNAL TABLE IF NOT EXISTS events (user_id BIGINT, pid INT, type STRING, cost DOUBLE) "
        f"USING PARQUET PARTITIONED BY (dt STRING) LOCATION '{out}'"
    )
    subprocess.run([binary, "--data-dir", data_dir, "sql", "-e", setup], check=True, capture_output=True)
    insert = (
        "INSERT OVERWRITE TABLE events PARTITION (dt) "
        "SELECT user_id, pid, type, cost, dt FROM src DISTRIBUTE BY dt SORT BY user_id"
    )
    start = time.perf_counter()
    subprocess.run([binary, "--data-dir", data_dir, "sql", "-e", insert], check=True, capture_output=True)
    return time.perf_counter() - start


def time_duckdb(source: Path, out: Path) -> float:
    con = duckdb.connect()
    start = time.perf_counter()
    con.sql(
        f"COPY (SELECT user_id, pid, type, cost, dt FROM read_parquet('{source}') ORDER BY dt, user_id) "
        f"TO '{out}' (FORMAT parquet, PARTITION_BY (dt), OVERWRITE_OR_IGNORE)"
    )
    return time.perf_counter() - start


def spark_session():
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.memory", "4g")
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )


def time_spark(spark, source: Path, out: Path) -> float:
    spark.sql("DROP TABLE IF EXISTS events")
    spark.read.parquet(str(source)).createOrReplaceTempView("src")
    spark.sql(
        f"CREATE TABLE events (user_id BIGINT, pid INT, type STRING, cost DOUBLE, dt STRING) "
        f"USING PARQUET PARTITIONED BY (dt) LOCATION '{out}'"
    )
    start = time.perf_counter()
    spark.sql(
        "INSERT OVERWRITE TABLE events PARTITION (dt) "
        "SELECT user_id, pid, type, cost, dt FROM src DISTRIBUTE BY dt SORT BY user_id"
    )
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--spark", action="store_true")
    parser.add_argument("--lakegate")
    args = parser.parse_args()

    source = HERE / "data" / f"events-{args.rows}.parquet"
    generate(source, args.rows)
    binary = lakegate_binary(args.lakegate)
    if not binary.exists():
        print(f"{binary} is missing: cargo build --release", file=sys.stderr)
        return 1

    work = Path(tempfile.mkdtemp(prefix="lakegate-write-bench-"))
    results: dict[str, dict] = {}
    spark = spark_session() if args.spark else None
    try:
        engines = [
            ("lakegate", lambda out: time_lakegate(binary, source, out, work / "lakegate-data")),
            ("duckdb", lambda out: time_duckdb(source, out)),
        ]
        if spark is not None:
            engines.append(("spark", lambda out: time_spark(spark, source, out)))
        for name, run in engines:
            times = []
            for i in range(args.runs):
                out = work / f"{name}-out"
                if name != "lakegate":
                    shutil.rmtree(out, ignore_errors=True)
                out.mkdir(exist_ok=True)
                seconds = run(out)
                times.append(seconds)
                print(f"{name:9} run {i + 1}: {seconds:7.2f} s", flush=True)
            median = statistics.median(times)
            results[name] = {"seconds": times, "median": median, "rows_per_s": args.rows / median, **check(work / f"{name}-out")}
    finally:
        if spark is not None:
            spark.stop()
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"{'engine':9} {'median s':>9} {'Mrows/s':>8} {'files/partition':>16} {'unsorted':>9} {'rows':>11}")
    for name, r in results.items():
        files = "{}-{}".format(*r["files_per_partition"])
        print(f"{name:9} {r['median']:9.2f} {r['rows_per_s'] / 1e6:8.2f} {files:>16} {r['unsorted_files']:9} {r['rows']:11,}")
    lakegate = results["lakegate"]["median"]
    for peer in ("duckdb", "spark"):
        if peer in results:
            print(f"lakegate throughput = {results[peer]['median'] / lakegate:.2f}x {peer}")
    (HERE / "results.json").write_text(json.dumps({"rows": args.rows, "results": results}, indent=2))
    ok = all(r["rows"] == args.rows for r in results.values())
    ok &= results["lakegate"]["files_per_partition"] == [1, 1] and results["lakegate"]["unsorted_files"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
