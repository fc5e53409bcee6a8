"""TPC-H benchmark: lakegate against DuckDB in-process (and, optionally, Spark
local[2]) on the same Parquet files, all 22 queries.

Usage, from the repository root:

    bash scripts/setup.sh                 # .venv with duckdb 1.5.5 + its tpch extension
    cargo build --release                 # -> $CARGO_TARGET_DIR/release/lakegate
    .venv/bin/python benches/tpch/run.py  # generate data once, time, compare

Options:
    --lakegate PATH     lakegate binary (default: $CARGO_TARGET_DIR/release/lakegate,
                        CARGO_TARGET_DIR defaulting to ~/.cache/lakegate/target as in
                        scripts/setup.sh)
    --skip-lakegate     time DuckDB (and Spark) only
    --flight            also run the queries through `lakegate serve` with the ADBC
                        Flight SQL driver (results fetched as Arrow tables), and time
                        the transfer of all of lineitem (MB/s on loopback)
    --cluster           also run the queries through `lakegate serve --cluster` on a
                        Ballista cluster of the same binary on this machine (a
                        `lakegate scheduler` and two `lakegate executor`s, each with
                        --concurrent-tasks 1), with ADBC as --flight does; implies
                        --flight (the in-process reference), prints cluster/flight
                        per query and in total, and the shuffle bytes each query
                        reads (its job's shuffle readers, from the scheduler's API)
    --spark             also time Spark local[2]; needs pyspark and Java 17
                        (`.venv/bin/pip install -r benches/requirements.txt`; done
                        for you when running from a venv)
    --queries 1,6,13    a subset (default: all 22)
    --runs N            timed runs per query after one warm-up (default 3)
    --stat median|best  which of the N runs the table and totals use (default median)
    --sf N              scale factor (default 1); data goes to data/sf<N>/
    --refresh-queries   rewrite queries/qNN.sql from DuckDB's tpch_queries()
    --keep-data-dir     keep lakegate's throw-away data directory

What it does:
 1. Generates TPC-H Parquet once into benches/tpch/data/sf1/<table>.parquet with
    DuckDB's tpch extension (dbgen), ~15 s for SF1. Present files are reused.
 2. Reads the query texts from benches/tpch/queries/qNN.sql; when missing they are
    written from DuckDB's tpch_queries(). Every engine runs the same text (only a
    trailing ';' is dropped where an API wants a single statement).
 3. DuckDB: views over the Parquet files; per query one warm-up and N timed runs,
    each fetching the whole result as Arrow.
 4. lakegate: registers the 8 tables in a throw-away data directory with
    `lakegate --data-dir DIR sql -e "CREATE EXTERNAL TABLE ..."`, then runs one
    `lakegate --data-dir DIR sql --timing --format csv -f FILE` over a script holding,
    per query, the warm-up and the N runs, and reads the per-statement
    `(N rows, 0.123 s)` lines from stderr in statement order. If a statement fails,
    the query is marked failed and a new process carries on with the next query.
 5. Spark (--spark): local[2], the files read as temp views, `collect()` per run.
 6. Prints per-query times, the lakegate/DuckDB ratio, whether row counts agree,
    and totals; writes the same to benches/tpch/results.json. lakegate's stdout
    and stderr are kept in benches/tpch/out/.

Exit status: 0 when every selected query ran on every engine with matching row
counts, 1 otherwise (results are written either way).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
QUERY_DIR = HERE / "queries"
OUT_DIR = HERE / "out"
RESULTS = HERE / "results.json"

TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]
ALL_QUERIES = list(range(1, 23))
DUCKDB_VERSION = "1.5.5"

# One line per statement on lakegate's stderr with --timing.
TIMING_RE = re.compile(r"\((\d+) rows?, ([0-9.]+) s\)")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# data and queries


def tpch_extension_path() -> Path:
    """The tpch extension shipped in the duckdb-extension-tpch wheel. DuckDB
    would otherwise download it, which this environment cannot do."""
    try:
        import duckdb_extension_tpch
    except ImportError:
        sys.exit(
            "duckdb-extension-tpch is missing: run `bash scripts/setup.sh` and use .venv/bin/python"
        )
    path = (
        Path(duckdb_extension_tpch.__file__).parent
        / "extensions"
        / f"v{DUCKDB_VERSION}"
        / "tpch.duckdb_extension"
    )
    if not path.is_file():
        sys.exit(f"tpch extension not found at {path}")
    return path


def duckdb_with_tpch():
    import duckdb

    if duckdb.__version__ != DUCKDB_VERSION:
        sys.exit(
            f"duckdb {duckdb.__version__} found, {DUCKDB_VERSION} needed (its tpch "
            "extension wheel must match): run `bash scripts/setup.sh` and use .venv/bin/python"
        )
    con = duckdb.connect()
    con.execute(f"LOAD '{tpch_extension_path()}'")
    return con


def generate_data(data_dir: Path, sf: float) -> None:
    if all((data_dir / f"{t}.parquet").is_file() for t in TABLES):
        log(f"data: reusing {data_dir}")
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    log(f"data: generating TPC-H SF{sf:g} into {data_dir}")
    started = time.perf_counter()
    con = duckdb_with_tpch()
    con.execute(f"CALL dbgen(sf={sf})")
    for t in TABLES:
        # Written under a temporary name and renamed, so an interrupted run
        # never leaves a truncated file that a later run would take as done.
        tmp = data_dir / f".{t}.parquet.tmp"
        con.execute(f"COPY {t} TO '{tmp}' (FORMAT parquet)")
        os.replace(tmp, data_dir / f"{t}.parquet")
    con.close()
    log(f"data: generated in {time.perf_counter() - started:.1f} s")


def load_queries(selected: list[int], refresh: bool) -> dict[int, str]:
    missing = [n for n in ALL_QUERIES if not (QUERY_DIR / f"q{n:02d}.sql").is_file()]
    if refresh or missing:
        QUERY_DIR.mkdir(parents=True, exist_ok=True)
        con = duckdb_with_tpch()
        for n, text in con.execute("SELECT query_nr, query FROM tpch_queries() ORDER BY 1").fetchall():
            if refresh or n in missing:
                (QUERY_DIR / f"q{n:02d}.sql").write_text(text.strip() + "\n")
        con.close()
        log(f"queries: wrote {QUERY_DIR}/qNN.sql from DuckDB's tpch_queries()")
    return {n: (QUERY_DIR / f"q{n:02d}.sql").read_text().strip() for n in selected}


def single_statement(sql: str) -> str:
    return sql.rstrip().rstrip(";").rstrip()


# ---------------------------------------------------------------------------
# engines


def summarize(times: list[float], rows: int) -> dict:
    return {
        "times": [round(t, 6) for t in times],
        "best": min(times),
        "median": statistics.median(times),
        "rows": rows,
    }


def time_in_process(engine: str, queries: dict[int, str], runs: int, run_one) -> dict[int, dict]:
    """Times `run_one(sql) -> row count` per query: one warm-up, then `runs` timed runs.
    A failing query is recorded (first line of its error) and the others still run."""
    results = {}
    for n, sql in queries.items():
        sql = single_statement(sql)
        times, rows = [], -1
        try:
            for i in range(1 + runs):
                started = time.perf_counter()
                rows = run_one(sql)
                elapsed = time.perf_counter() - started
                if i > 0:
                    times.append(elapsed)
            results[n] = summarize(times, rows)
            log(f"{engine:<8} q{n:02d} {results[n]['median']:8.3f} s  {rows} rows")
        except Exception as e:  # a failing query must not stop the others
            results[n] = {"error": (str(e).splitlines() or [repr(e)])[0]}
            log(f"{engine:<8} q{n:02d} FAILED: {results[n]['error']}")
    return results


def run_duckdb(data_dir: Path, queries: dict[int, str], runs: int) -> dict[int, dict]:
    import duckdb

    con = duckdb.connect()
    for t in TABLES:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{data_dir / t}.parquet')")

    def run_one(sql: str) -> int:
        rel = con.execute(sql)
        table = rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.fetch_arrow_table()
        return table.num_rows

    results = time_in_process("duckdb", queries, runs, run_one)
    con.close()
    return results


def sql_string(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def run_lakegate(
    binary: Path, data_dir: Path, queries: dict[int, str], runs: int, keep: bool
) -> tuple[dict[int, dict], str]:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for stale in OUT_DIR.glob("lakegate-*"):
        stale.unlink()
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="lakegate-tpch-"))
    catalog_dir = work / "data"
    try:
        ddl = ";\n".join(
            f"CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION {sql_string(str(data_dir / t) + '.parquet')}"
            for t in TABLES
        )
        reg = subprocess.run(
            [binary, "--data-dir", catalog_dir, "sql", "-e", ddl],
            capture_output=True,
            text=True,
        )
        if reg.returncode != 0:
            sys.exit(f"lakegate: registering the tables failed ({reg.returncode}):\n{reg.stderr}")

        results: dict[int, dict] = {}
        pending = list(queries)
        per_query = 1 + runs
        attempt = 0
        while pending:
            attempt += 1
            script = work / f"bench-{attempt}.sql"
            script.write_text(
                "".join(f"{single_statement(queries[n])};\n\n" * per_query for n in pending)
            )
            stdout_path = OUT_DIR / f"lakegate-{attempt}.stdout.csv"
            stderr_path = OUT_DIR / f"lakegate-{attempt}.stderr.txt"
            log(f"lakegate: running {len(pending)} queries x {per_query} in one process")
            with open(stdout_path, "wb") as out, open(stderr_path, "w+") as err:
                proc = subprocess.run(
                    [binary, "--data-dir", catalog_dir, "sql", "--timing", "--format", "csv", "-f", script],
                    stdout=out,
                    stderr=err,
                    text=True,
                )
                err.seek(0)
                stderr = err.read()
            stats = [(int(r), float(s)) for r, s in TIMING_RE.findall(stderr)]

            done = min(len(stats) // per_query, len(pending))
            for k in range(done):
                n = pending[k]
                chunk = stats[k * per_query : (k + 1) * per_query]
                if len({r for r, _ in chunk}) != 1:
                    # Runs of one query disagreeing means a statement failed
                    # without stopping the CLI and the lines no longer line up
                    # with the statements: any attribution would be a guess.
                    sys.exit(
                        f"lakegate: row counts {[r for r, _ in chunk]} for the runs of q{n:02d} differ; "
                        f"timing lines do not line up with statements, see {stderr_path}"
                    )
                results[n] = summarize([s for _, s in chunk[1:]], chunk[-1][0])
                log(f"lakegate q{n:02d} {results[n]['median']:8.3f} s  {chunk[-1][0]} rows")
            pending = pending[done:]
            if not pending:
                break
            # The process stopped inside query pending[0]: record why and go on
            # with the rest in a fresh process.
            n = pending.pop(0)
            if proc.returncode == 0 and not stats:
                sys.exit(
                    f"lakegate printed no `(N rows, T s)` lines on stderr ({stderr_path}): "
                    "has the --timing output format changed?"
                )
            lines = [l for l in stderr.strip().splitlines() if not TIMING_RE.search(l)]
            tail = "\n".join(lines[-15:])
            why = f"exit {proc.returncode}" if proc.returncode else "fewer timing lines than statements"
            results[n] = {"error": f"{why}: {tail}"}
            log(f"lakegate q{n:02d} FAILED ({why}); stderr in {stderr_path}:\n{tail}")
        return results, version
    finally:
        if keep:
            log(f"lakegate: data directory kept at {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, what: str, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    sys.exit(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


class Cluster:
    """A `lakegate scheduler` and `executors` `lakegate executor`s on free loopback ports."""

    def __init__(self, binary: Path, executors: int):
        self.dir = Path(tempfile.mkdtemp(prefix="lakegate-tpch-cluster-"))
        port = free_port()
        self.scheduler = f"127.0.0.1:{port}"
        self.procs = [self.spawn(binary, "scheduler", ["scheduler", "--listen", self.scheduler])]
        wait_listening(port, "the scheduler")
        self.work_dirs = []
        for i in range(executors):
            flight, grpc = free_port(), free_port()
            work = self.dir / f"work-{i}"
            work.mkdir()
            self.work_dirs.append(work)
            args = ["executor", "--scheduler", self.scheduler, "--listen", f"127.0.0.1:{flight}",
                    "--grpc-port", str(grpc), "--concurrent-tasks", "1", "--work-dir", str(work)]
            self.procs.append(self.spawn(binary, f"executor-{i}", args))
            wait_listening(flight, f"executor {i}")
            wait_listening(grpc, f"executor {i}")

    def spawn(self, binary: Path, name: str, args: list[str]) -> subprocess.Popen:
        log_file = open(self.dir / f"{name}.log", "w")
        return subprocess.Popen([binary, "--data-dir", self.dir / f"{name}-data", *args], stdout=subprocess.DEVNULL, stderr=log_file)

    def last_job_shuffle_bytes(self) -> int:
        """The bytes the last job's stages read from shuffles (the `decoded_bytes` of its
        `ShuffleReaderExec`s, as Arrow), from the scheduler's REST API: executors delete a
        job's shuffle files as soon as it ends, so the files cannot be measured."""
        import urllib.request

        def get(path: str):
            with urllib.request.urlopen(f"http://{self.scheduler}{path}", timeout=10) as response:
                return json.load(response)

        jobs = get("/api/jobs")
        if not jobs:
            return 0
        last = max(jobs, key=lambda job: job["start_time"])
        plan = get(f"/api/job/{last['job_id']}").get("stage_plan") or ""
        units = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
        return int(sum(float(n) * units[u] for n, u in re.findall(r"decoded_bytes=([0-9.]+) ?([KMGT]?)", plan)))

    def stop(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def run_flight(
    binary: Path, data_dir: Path, queries: dict[int, str], runs: int, cluster: Cluster | None = None
) -> tuple[dict[int, dict], dict]:
    """The queries end to end through `lakegate serve` (with `--cluster` on `cluster`, if given)
    with the ADBC Flight SQL driver (the Jupyter path): each result is fetched whole as an Arrow
    table. Also times the transfer of all of lineitem (6M rows x 16 columns at SF1) to measure
    Flight throughput. On a cluster, each query's result also holds the bytes its last run read
    from shuffles."""
    import adbc_driver_flightsql.dbapi as flightsql

    work = Path(tempfile.mkdtemp(prefix="lakegate-tpch-flight-"))
    ddl = ";\n".join(
        f"CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION {sql_string(str(data_dir / t) + '.parquet')}"
        for t in TABLES
    )
    subprocess.run([binary, "--data-dir", work, "sql", "-e", ddl], check=True, capture_output=True)
    on_cluster = ["--cluster", cluster.scheduler] if cluster else []
    server = subprocess.Popen(
        [binary, "--data-dir", work, *on_cluster, "serve", "--listen", "127.0.0.1:0", "--admin-listen", "off"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()
        url = line.strip().rsplit(" ", 1)[-1]
        if not url.startswith("grpc://"):
            sys.exit(f"lakegate serve did not start: {line!r}")
        conn = flightsql.connect(url)
        cur = conn.cursor()

        def run_one(sql: str) -> int:
            cur.execute(sql)
            return cur.fetch_arrow_table().num_rows

        engine = "cluster" if cluster else "flight"
        results = {}
        for n in queries:
            results.update(time_in_process(engine, {n: queries[n]}, runs, run_one))
            if cluster and "error" not in results[n]:
                results[n]["shuffle_bytes_per_run"] = cluster.last_job_shuffle_bytes()
        started = time.perf_counter()
        cur.execute("SELECT * FROM lineitem")
        table = cur.fetch_arrow_table()
        seconds = time.perf_counter() - started
        transfer = {"rows": table.num_rows, "mb": table.nbytes / 1e6, "seconds": seconds, "mb_per_s": table.nbytes / 1e6 / seconds}
        log(f"{engine:<8} lineitem: {table.num_rows} rows, {transfer['mb']:.0f} MB in {seconds:.2f} s = {transfer['mb_per_s']:.0f} MB/s")
        cur.close()
        conn.close()
        return results, transfer
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def ensure_pyspark() -> None:
    try:
        import pyspark  # noqa: F401
        return
    except ImportError:
        pass
    req = REPO / "benches" / "requirements.txt"
    if sys.prefix == sys.base_prefix:
        sys.exit(f"pyspark is missing: pip install -r {req} (into a venv)")
    log(f"spark: installing {req} into {sys.prefix}")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", req], check=True)


def run_spark(data_dir: Path, queries: dict[int, str], runs: int) -> tuple[dict[int, dict], str]:
    ensure_pyspark()
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("lakegate-tpch")
        .config("spark.driver.memory", "8g")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        for t in TABLES:
            spark.read.parquet(str(data_dir / f"{t}.parquet")).createOrReplaceTempView(t)
        results = time_in_process("spark", queries, runs, lambda sql: len(spark.sql(sql).collect()))
        return results, spark.version
    finally:
        spark.stop()


# ---------------------------------------------------------------------------
# report


def fmt_time(r: dict | None, stat: str) -> str:
    if r is None:
        return "-"
    return "FAILED" if "error" in r else f"{r[stat]:.3f}"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def report(queries, engines: dict[str, dict[int, dict]], stat: str) -> tuple[list[dict], dict, bool]:
    names = list(engines)
    others = [e for e in names if e != "duckdb"]
    rows, all_ok = [], True
    for n in queries:
        row = {"query": f"q{n:02d}"}
        base = engines["duckdb"].get(n, {})
        for e in names:
            row[e] = engines[e].get(n)
        for e in others:
            r = engines[e].get(n, {})
            ok = "error" not in r and "error" not in base and r.get("rows") == base.get("rows")
            row[f"{e}_rows_ok"] = ok
            row[f"{e}_ratio"] = ratio(r.get(stat), base.get(stat))
            all_ok &= ok
        all_ok &= "error" not in base
        rows.append(row)

    # Totals over the queries every engine completed, so the ratio compares
    # like with like; the count says if any were left out.
    complete = [n for n in queries if all("error" not in engines[e].get(n, {"error": 1}) for e in names)]
    totals = {"queries": len(complete), "of": len(queries)}
    for e in names:
        totals[e] = sum(engines[e][n][stat] for n in complete)
    for e in others:
        totals[f"{e}_ratio"] = ratio(totals[e], totals["duckdb"])

    header = ["query"] + [f"{e} s" for e in names]
    for e in others:
        header += [f"{e}/duckdb", f"{e} rows ok"]
    table = [header]
    for row in rows:
        line = [row["query"]] + [fmt_time(row[e], stat) for e in names]
        for e in others:
            r, base = row[e] or {}, row["duckdb"] or {}
            if row[f"{e}_rows_ok"]:
                rows_ok = "ok"
            elif "error" in r or "error" in base:
                rows_ok = "error"
            else:
                rows_ok = f"MISMATCH {r.get('rows')} vs {base.get('rows')}"
            line += [fmt_ratio(row[f"{e}_ratio"]), rows_ok]
        table.append(line)
    label = "total" if totals["queries"] == totals["of"] else f"total ({totals['queries']}/{totals['of']})"
    line = [label] + [f"{totals[e]:.3f}" for e in names]
    for e in others:
        line += [fmt_ratio(totals[f"{e}_ratio"]), ""]
    table.append(line)

    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    print(f"\nTPC-H, {stat} of the timed runs, seconds")
    for i, r in enumerate(table):
        if i == len(table) - 1:
            print("  ".join("-" * w for w in widths))
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    return rows, totals, all_ok


# ---------------------------------------------------------------------------


def report_cluster(queries, engines: dict[str, dict[int, dict]], stat: str, totals: dict) -> None:
    """The cluster against lakegate in-process (both through serve and ADBC), per query and in
    total, with each query's shuffle bytes per run."""
    print(f"\nCluster (scheduler + 2 executors) vs in-process, both through serve + ADBC, {stat}, seconds")
    print(f"{'query':<6} {'in-process':>10} {'cluster':>9} {'ratio':>6} {'shuffle MB':>10}")
    for n in queries:
        local, remote = engines["flight"].get(n, {}), engines["cluster"].get(n, {})
        if "error" in local or "error" in remote:
            print(f"q{n:02d}    {'error':>10}")
            continue
        shuffle = remote.get("shuffle_bytes_per_run", 0) / 1e6
        print(f"q{n:02d}    {local[stat]:>10.3f} {remote[stat]:>9.3f} {fmt_ratio(ratio(remote[stat], local[stat])):>6} {shuffle:>10.1f}")
    totals["cluster_vs_in_process"] = ratio(totals.get("cluster"), totals.get("flight"))
    print(f"total  {totals.get('flight', 0):>10.3f} {totals.get('cluster', 0):>9.3f} {fmt_ratio(totals['cluster_vs_in_process']):>6}")


def default_lakegate() -> Path:
    target = os.environ.get("CARGO_TARGET_DIR") or str(Path.home() / ".cache" / "lakegate" / "target")
    return Path(target) / "release" / "lakegate"


def parse_queries(arg: str | None) -> list[int]:
    if not arg:
        return ALL_QUERIES
    picked = sorted({int(x.strip().lstrip("qQ")) for x in arg.split(",") if x.strip()})
    bad = [n for n in picked if n not in ALL_QUERIES]
    if bad:
        raise argparse.ArgumentTypeError(f"no such TPC-H query: {bad}")
    return picked


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lakegate", type=Path, default=default_lakegate())
    p.add_argument("--skip-lakegate", action="store_true")
    p.add_argument("--spark", action="store_true")
    p.add_argument("--flight", action="store_true", help="also run every query through lakegate serve with ADBC")
    p.add_argument("--cluster", action="store_true", help="also through serve --cluster on a scheduler and 2 executors")
    p.add_argument("--queries", type=parse_queries, default=ALL_QUERIES)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--stat", choices=["median", "best"], default="median")
    p.add_argument("--sf", type=float, default=1)
    p.add_argument("--refresh-queries", action="store_true")
    p.add_argument("--keep-data-dir", action="store_true")
    args = p.parse_args()
    if args.runs < 1:
        p.error("--runs must be at least 1")

    binary = args.lakegate.resolve()
    if not args.skip_lakegate and not binary.is_file():
        p.error(
            f"lakegate binary not found at {binary}: build it with `cargo build --release`, "
            "pass --lakegate PATH, or use --skip-lakegate"
        )

    load = os.getloadavg()[0]
    if load > 0.5 * (os.cpu_count() or 1):
        log(f"warning: load average {load:.1f} on {os.cpu_count()} cpus; timings will be noisy")

    data_dir = HERE / "data" / f"sf{args.sf:g}"
    generate_data(data_dir, args.sf)
    queries = load_queries(args.queries, args.refresh_queries)

    import duckdb

    engines: dict[str, dict[int, dict]] = {}
    versions = {"duckdb": duckdb.__version__}
    engines["duckdb"] = run_duckdb(data_dir, queries, args.runs)
    if not args.skip_lakegate:
        engines["lakegate"], versions["lakegate"] = run_lakegate(
            binary, data_dir, queries, args.runs, args.keep_data_dir
        )
    transfer = cluster_transfer = None
    if args.flight or args.cluster:
        engines["flight"], transfer = run_flight(binary, data_dir, queries, args.runs)
    if args.cluster:
        cluster = Cluster(binary, executors=2)
        try:
            engines["cluster"], cluster_transfer = run_flight(binary, data_dir, queries, args.runs, cluster)
        finally:
            cluster.stop()
    if args.spark:
        engines["spark"], versions["spark"] = run_spark(data_dir, queries, args.runs)

    rows, totals, all_ok = report(queries, engines, args.stat)
    if args.cluster:
        report_cluster(queries, engines, args.stat, totals)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "tpch",
                "scale_factor": args.sf,
                "data": str(data_dir),
                "runs": args.runs,
                "warmups": 1,
                "stat": args.stat,
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_at_start": load},
                "versions": versions,
                "queries": rows,
                "totals": totals,
                "all_ok": all_ok,
                "flight_transfer": transfer,
                "cluster_transfer": cluster_transfer,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwritten: {RESULTS}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
