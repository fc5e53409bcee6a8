//! lakegate on a real Ballista cluster: a `lakegate scheduler` and two `lakegate executor`s
//! started from the real binary on free loopback ports, clients pointed at them with
//! `--cluster`, and the same queries run in-process as the reference.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::cluster::Cluster;
use crate::common::{Lakegate, Run, free_port, venv_bin};

/// `lakegate -v --cluster <scheduler> sql --format csv -e <sql>`.
pub(crate) fn on_cluster(lakegate: &Lakegate, scheduler: &str, sql: &str) -> Run {
    lakegate.run(&["-v", "--cluster", scheduler, "sql", "--format", "csv", "-e", sql])
}

/// The line the client logs for each query it sends to the cluster.
const SENT: &str = "query runs on the cluster";

/// CSV rows compared as values: numbers within a relative 1e-9 (sums add up in another order
/// on a cluster), everything else exactly; rows sorted, as a query without ORDER BY has none.
#[track_caller]
fn assert_same_rows(what: &str, expected: &str, actual: &str) {
    let rows = |text: &str| {
        let mut rows: Vec<Vec<String>> = text.lines().map(|l| l.split(',').map(str::to_owned).collect()).collect();
        rows.sort();
        rows
    };
    let (expected, actual) = (rows(expected), rows(actual));
    assert_eq!(expected.len(), actual.len(), "{what}: row counts differ\nexpected: {expected:?}\nactual: {actual:?}");
    for (e, a) in expected.iter().zip(&actual) {
        let same = e.len() == a.len()
            && e.iter().zip(a).all(|(x, y)| match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
                _ => x == y,
            });
        assert!(same, "{what}: rows differ\nexpected: {e:?}\nactual:   {a:?}");
    }
}

const TPCH_TABLES: [&str; 8] = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"];

/// TPC-H Parquet files of scale factor `sf`, written by DuckDB's dbgen.
fn tpch_data(dir: &Path, sf: f64) {
    let script = format!(
        "import duckdb, duckdb_extension_tpch, pathlib\n\
         ext = pathlib.Path(duckdb_extension_tpch.__file__).parent / 'extensions' / ('v' + duckdb.__version__) / 'tpch.duckdb_extension'\n\
         con = duckdb.connect()\ncon.execute(f\"LOAD '{{ext}}'\")\ncon.execute('CALL dbgen(sf={sf})')\n\
         for t in {TPCH_TABLES:?}:\n    con.execute(f\"COPY {{t}} TO '{dir}/{{t}}.parquet' (FORMAT parquet)\")\n",
        dir = dir.display()
    );
    let output = Command::new(venv_bin("python")).args(["-c", &script]).output().expect("python runs");
    assert!(output.status.success(), "dbgen: {}", String::from_utf8_lossy(&output.stderr));
}

fn tpch_lakegate(data: &Path) -> Lakegate {
    let lakegate = Lakegate::new();
    let ddl: Vec<String> = TPCH_TABLES
        .iter()
        .map(|t| format!("CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION '{}/{t}.parquet'", data.display()))
        .collect();
    lakegate.sql(&ddl.join(";\n")).success();
    lakegate
}

fn tpch_query(n: usize) -> String {
    let path: PathBuf =
        [env!("CARGO_MANIFEST_DIR"), "benches", "tpch", "queries", &format!("q{n:02}.sql")].iter().collect();
    std::fs::read_to_string(path).expect("query text").trim().trim_end_matches(';').to_owned()
}

#[test]
fn tpch_gives_the_same_rows_on_a_cluster_as_in_process() {
    let data = tempfile::tempdir().expect("temp dir");
    tpch_data(data.path(), 0.01);
    let lakegate = tpch_lakegate(data.path());
    let cluster = Cluster::start(2);
    for n in 1..=22 {
        let sql = tpch_query(n);
        let local = lakegate.sql(&sql).success();
        let distributed = on_cluster(&lakegate, &cluster.scheduler, &sql).success();
        assert!(distributed.stderr.contains(SENT), "q{n} did not run on the cluster:\n{}", distributed.stderr);
        assert_same_rows(&format!("TPC-H q{n}"), &local.stdout, &distributed.stdout);
    }
    // Both executors ran tasks.
    for executor in ["executor-1", "executor-2"] {
        assert!(cluster.log(executor).contains("Execute task"), "{executor} ran no task:\n{}", cluster.log(executor));
    }
}

#[test]
fn a_scheduler_that_is_down_is_named_in_the_error() {
    let data = tempfile::tempdir().expect("temp dir");
    let lakegate = Lakegate::new();
    let file = data.path().join("t.parquet");
    lakegate.sql(&format!("COPY (SELECT 1 AS x) TO '{}' STORED AS PARQUET", file.display())).success();
    lakegate.sql(&format!("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{}'", file.display())).success();
    let down = format!("127.0.0.1:{}", free_port());
    let run = on_cluster(&lakegate, &down, "SELECT count(*) FROM t").failure();
    assert!(run.stderr.contains(&down), "the error names the scheduler:\n{}", run.stderr);
    // Statements that act on the catalog do not need the cluster.
    on_cluster(&lakegate, &down, "SHOW TABLES").success();
    // An executor without its scheduler says so and stops.
    let executor = lakegate.run(&["executor", "--scheduler", &down, "--listen", &format!("127.0.0.1:{}", free_port())]);
    let executor = executor.failure();
    assert!(executor.stderr.contains("scheduler"), "{}", executor.stderr);
}

#[test]
fn an_executor_killed_mid_query_leaves_the_cluster_serving() {
    let data = tempfile::tempdir().expect("temp dir");
    let lakegate = Lakegate::new();
    let location = data.path().join("big");
    lakegate
        .sql(&format!(
            "COPY (SELECT i AS x, i % 1000 AS k, md5(CAST(i AS VARCHAR)) AS s FROM generate_series(1, 2000000) t(i)) \
             TO '{}/' STORED AS PARQUET OPTIONS (max_row_group_size 50000);\n\
             CREATE EXTERNAL TABLE big STORED AS PARQUET LOCATION '{}/'",
            location.display(),
            location.display()
        ))
        .success();
    let sql = "SELECT count(*), count(DISTINCT s), max(k) FROM big";
    let expected = lakegate.sql(sql).success().stdout;
    let mut cluster = Cluster::start(2);
    let client = lakegate
        .command()
        .args(["-v", "--cluster", &cluster.scheduler, "sql", "--format", "csv", "-e", sql])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("client starts");
    // Killed as soon as it runs a task of the query.
    let mut busy = None;
    crate::common::wait_for("a task of the query", Duration::from_secs(60), || {
        busy = ["executor-1", "executor-2"].into_iter().find(|e| cluster.log(e).contains("Execute task"));
        busy.is_some()
    });
    cluster.kill(busy.expect("an executor runs the query"));
    let output = client.wait_with_output().expect("the client ends");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if output.status.success() {
        assert_same_rows("the query that lost an executor", &expected, &stdout);
    } else {
        assert!(stderr.to_lowercase().contains("executor"), "the error names the executor:\n{stderr}");
    }
    // The cluster goes on serving with the executor that is left.
    let after = on_cluster(&lakegate, &cluster.scheduler, sql).success();
    assert!(after.stderr.contains(SENT), "{}", after.stderr);
    assert_same_rows("the next query", &expected, &after.stdout);
}

#[test]
fn geodata_runs_on_the_executors() {
    let geo: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "data", "geo", "states.tsv"].iter().collect();
    let config =
        format!("[[geodata.layers]]\nname = \"state\"\npath = \"{}\"\nattributes = [\"state\"]\n", geo.display());
    let data = tempfile::tempdir().expect("temp dir");
    let config_file = data.path().join("lakegate.toml");
    std::fs::write(&config_file, &config).expect("config written");
    let lakegate = Lakegate::new().with_env("LAKEGATE_CONFIG", &config_file.display().to_string());
    let points = data.path().join("points.parquet");
    // A grid over the contiguous United States, some points in the sea.
    lakegate
        .sql(&format!(
            "COPY (SELECT -125.0 + (i % 60) AS lon, 25.0 + (i / 60) * 0.5 AS lat \
             FROM generate_series(0, 2999) t(i)) TO '{}' STORED AS PARQUET;\n\
             CREATE EXTERNAL TABLE points STORED AS PARQUET LOCATION '{}'",
            points.display(),
            points.display()
        ))
        .success();
    let sql = "SELECT geodata(lon, lat).state AS state, count(*) AS n FROM points GROUP BY 1";
    let local = lakegate.sql(sql).success();
    assert!(local.stdout.contains("California"), "{}", local.stdout);
    let cluster = Cluster::start_with(2, Some(&config), &[]);
    let distributed = on_cluster(&lakegate, &cluster.scheduler, sql).success();
    assert!(distributed.stderr.contains(SENT), "{}", distributed.stderr);
    assert_same_rows("geodata by state", &local.stdout, &distributed.stdout);
}

/// As a new user would: `serve --cluster`, a query from ADBC, and `system.queries` saying where
/// it ran.
#[test]
fn serve_runs_queries_on_the_cluster_and_system_queries_says_so() {
    let data = tempfile::tempdir().expect("temp dir");
    let file = data.path().join("t.parquet");
    let cluster = Cluster::start(2);
    let lakegate = Lakegate::new().with_env("LAKEGATE_CLUSTER_SCHEDULER", &cluster.scheduler);
    lakegate
        .sql(&format!(
            "COPY (SELECT i AS x FROM generate_series(1, 1000) t(i)) TO '{}' STORED AS PARQUET;\n\
             CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{}'",
            file.display(),
            file.display()
        ))
        .success();
    let server = crate::flight::Server::spawn(lakegate, "", &["--listen", "127.0.0.1:0"]).expect("serve starts");
    let script = "import sys, adbc_driver_flightsql.dbapi as f\n\
        c = f.connect(sys.argv[1]).cursor()\n\
        c.execute('SELECT sum(x) FROM t')\n\
        print(c.fetchall()[0][0])\n\
        c.execute(\"SELECT \\\"read\\\" FROM system.queries WHERE sql = 'SELECT sum(x) FROM t'\")\n\
        print(c.fetchall()[0][0])\n";
    let output = Command::new(venv_bin("python")).args(["-c", script, server.url()]).output().expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("500500"));
    let read = lines.next().unwrap_or_default();
    assert!(read.starts_with("cluster 1 rows"), "system.queries says it ran on the cluster: {read}");
}

/// The canonical cross-source question with its users in PostgreSQL: the PostgreSQL scan runs
/// on the executors, which connect with their own `PG_PASSWORD`; psql counts the users. A table
/// read in several queries (`partitionColumn`) stays in the client.
#[test]
fn a_join_of_parquet_and_postgres_runs_on_the_executors() {
    use crate::common::postgres::{PASSWORD, Postgres};
    let pg = Postgres::shared();
    let db = pg.database();
    pg.psql(
        &db,
        "CREATE TABLE users (uid int PRIMARY KEY, age int, gender text); \
         INSERT INTO users SELECT i, 18 + i % 50, CASE WHEN i % 2 = 0 THEN 'F' ELSE 'M' END FROM generate_series(1, 5000) i;",
    );
    let data = tempfile::tempdir().expect("temp dir");
    let events = data.path().join("events.parquet");
    let lakegate = Lakegate::new().with_env("PG_PASSWORD", PASSWORD);
    let users = |name: &str, options: &str| {
        format!(
            "CREATE EXTERNAL TABLE {name} STORED AS POSTGRES LOCATION '{}' OPTIONS ('table' 'users', \
             'password' '${{env:PG_PASSWORD}}'{options})",
            pg.url(&db)
        )
    };
    lakegate
        .sql(&format!(
            "COPY (SELECT i AS id, i % 5000 + 1 AS uid FROM generate_series(1, 200000) t(i)) TO '{}' STORED AS PARQUET;\n\
             CREATE EXTERNAL TABLE events STORED AS PARQUET LOCATION '{}';\n{};\n{}",
            events.display(),
            events.display(),
            users("users", ""),
            users("users_split", ", 'partitionColumn' 'uid', 'numPartitions' '4'"),
        ))
        .success();
    let question = |users: &str| {
        format!(
            "SELECT count(*) FROM events e JOIN {users} u ON e.uid = u.uid \
             WHERE u.age BETWEEN 25 AND 49 AND u.gender = 'F'"
        )
    };
    // Each user has 40 events (200,000 over 5,000 users).
    let women = pg.psql(&db, "SELECT count(*) FROM users WHERE age BETWEEN 25 AND 49 AND gender = 'F'");
    let expected = women.trim().parse::<u64>().expect("a count") * 40;
    let cluster = Cluster::start_with(2, None, &[("PG_PASSWORD", PASSWORD)]);
    let distributed = on_cluster(&lakegate, &cluster.scheduler, &question("users")).success();
    assert!(distributed.stderr.contains(SENT), "{}", distributed.stderr);
    assert_eq!(distributed.first_count(), expected);
    let split = on_cluster(&lakegate, &cluster.scheduler, &question("users_split")).success();
    assert!(!split.stderr.contains(SENT), "a split read stays in the client:\n{}", split.stderr);
    assert_eq!(split.first_count(), expected);
}
