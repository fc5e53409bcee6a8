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

/// [`on_cluster`] started in the background, its output piped.
fn spawn_on_cluster(lakegate: &Lakegate, scheduler: &str, sql: &str) -> std::process::Child {
    lakegate
        .command()
        .args(["-v", "--cluster", scheduler, "sql", "--format", "csv", "-e", sql])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("client starts")
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

/// CSV rows without their header line.
fn without_header(csv: &str) -> &str {
    csv.trim().split_once('\n').map_or("", |(_, rows)| rows)
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

/// `big`: 2M rows of a number, a key and an md5 text, in row groups of 50,000.
fn big_table(lakegate: &Lakegate, dir: &Path) {
    let location = dir.join("big");
    lakegate
        .sql(&format!(
            "COPY (SELECT i AS x, i % 1000 AS k, md5(CAST(i AS VARCHAR)) AS s FROM generate_series(1, 2000000) t(i)) \
             TO '{}/' STORED AS PARQUET OPTIONS (max_row_group_size 50000);\n\
             CREATE EXTERNAL TABLE big STORED AS PARQUET LOCATION '{}/'",
            location.display(),
            location.display()
        ))
        .success();
}

#[test]
fn an_executor_killed_mid_query_leaves_the_cluster_serving() {
    let data = tempfile::tempdir().expect("temp dir");
    let lakegate = Lakegate::new();
    big_table(&lakegate, data.path());
    let sql = "SELECT count(*), count(DISTINCT s), max(k) FROM big";
    let expected = lakegate.sql(sql).success().stdout;
    let mut cluster = Cluster::start(2);
    // A time limit, so a job the cluster never finishes fails the test rather than hanging it.
    let client = spawn_on_cluster(&lakegate, &cluster.scheduler, &format!("SET statement_timeout = '120s'; {sql}"));
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

/// Strings come back from the executors as big as their rows, not with the Parquet pages their
/// views point into: `big`'s 2,000,000 md5 texts (32 bytes each) are fetched as about their
/// Arrow size, 16 bytes of view and 32 of text a row.
#[test]
fn strings_come_back_from_the_cluster_as_big_as_their_rows() {
    let data = tempfile::tempdir().expect("temp dir");
    let lakegate = Lakegate::new();
    big_table(&lakegate, data.path());
    let cluster = Cluster::start(2);
    let output = data.path().join("rows.csv");
    let sql = "SELECT s FROM big; SELECT read FROM system.queries WHERE sql = 'SELECT s FROM big'";
    let args = [
        "-v",
        "--cluster",
        &cluster.scheduler,
        "sql",
        "--format",
        "csv",
        "-o",
        output.to_str().expect("utf-8"),
        "-e",
        sql,
    ];
    let run = lakegate.run(&args).success();
    assert!(run.stderr.contains(SENT), "{}", run.stderr);
    let written = std::fs::read_to_string(&output).expect("the rows");
    let read = written.lines().last().expect("the query's read column");
    let fetched = read.split("cluster ").nth(1).unwrap_or_else(|| panic!("read from the cluster: {read}"));
    let words: Vec<&str> = fetched.split_whitespace().collect();
    assert_eq!(words[..2], ["2000000", "rows"], "{read}");
    let unit = match words[3].trim_end_matches(['"', ',']) {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        other => panic!("a byte unit: {other} in {read}"),
    };
    let bytes = words[2].parse::<f64>().expect("a size") * unit;
    let rows_size = 2_000_000.0 * (16.0 + 32.0);
    assert!(bytes < 1.5 * rows_size, "fetched {bytes} bytes for {rows_size} bytes of rows: {read}");
}

/// A query stopped in the client (here by its time limit; KILL QUERY and a client that goes
/// away end the same way) has its job cancelled on the cluster, which then serves the next.
#[test]
fn a_query_stopped_in_the_client_is_cancelled_on_the_cluster() {
    let data = tempfile::tempdir().expect("temp dir");
    let lakegate = Lakegate::new();
    big_table(&lakegate, data.path());
    let cluster = Cluster::start(2);
    let sql = "SET statement_timeout = '3s'; \
               SELECT count(*) FROM big a JOIN big b ON a.k = b.k WHERE a.s < b.s";
    let stopped = on_cluster(&lakegate, &cluster.scheduler, sql).failure();
    assert!(stopped.stderr.contains(SENT), "{}", stopped.stderr);
    assert!(stopped.stderr.contains("time limit"), "{}", stopped.stderr);
    // Found by the name the client gave it: a pushed job's id arrives only with its first task.
    assert!(stopped.stderr.contains("cluster job cancelled"), "{}", stopped.stderr);
    assert!(stopped.stderr.contains("job=lakegate-"), "{}", stopped.stderr);
    crate::common::wait_for("the job cancelled on the scheduler", Duration::from_secs(30), || {
        cluster.log("scheduler").contains("Job cancelled")
    });
    let after = on_cluster(&lakegate, &cluster.scheduler, "SELECT count(*) FROM big").success();
    assert_eq!(after.first_count(), 2_000_000);
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

/// As a new user would: `serve --cluster`, a query from ADBC, and `system.queries` saying it
/// ran on the cluster, and on which executors.
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
        c.execute(\"SELECT \\\"read\\\", executors FROM system.queries WHERE sql = 'SELECT sum(x) FROM t'\")\n\
        print(*c.fetchall()[0], sep='\\n')\n";
    let output = Command::new(venv_bin("python")).args(["-c", script, server.url()]).output().expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("500500"));
    let read = lines.next().unwrap_or_default();
    assert!(read.starts_with("cluster 1 rows"), "system.queries says it ran on the cluster: {read}");
    // The executors the fixture started; the one-row answer's last stage ran on one of them.
    let ran_on: Vec<&str> = lines.next().unwrap_or_default().split(", ").filter(|e| !e.is_empty()).collect();
    assert!(!ran_on.is_empty(), "system.queries names the executors: {stdout}");
    assert!(
        ran_on.iter().all(|e| cluster.executors.iter().any(|started| started == e)),
        "{ran_on:?} vs {:?}",
        cluster.executors
    );
}

/// The README's "Try it on one machine", as a new user types it: its four commands exactly as
/// written (their fixed ports, `./.lakegate` in a fresh directory), then the NCIS question from
/// ADBC and `system.queries` naming one of the two executors.
#[test]
fn the_readmes_cluster_walk_through_works_as_written() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README");
    let block = readme
        .split_once("Try it on one machine:\n\n```bash\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .expect("the README's cluster walk-through");
    let commands: Vec<Vec<&str>> = block
        .lines()
        .map(|line| {
            line.split('#').next().unwrap_or_default().trim().trim_end_matches('&').split_whitespace().collect()
        })
        .collect();
    assert_eq!(commands.len(), 4, "{block}");
    // Its ports are fixed: wait for any test's connection that happens to hold one to go.
    for port in [50050, 50051, 50061, 50062, 50063, 50064, 9090] {
        crate::common::wait_for(&format!("port {port} free"), Duration::from_secs(30), || {
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        });
    }
    let home = tempfile::tempdir().expect("temp dir");
    let mut nodes = Nodes(Vec::new());
    for (i, command) in commands.iter().enumerate() {
        assert_eq!(command[0], "lakegate", "{block}");
        let log = std::fs::File::create(home.path().join(format!("{i}.log"))).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_lakegate"))
            .args(&command[1..])
            .current_dir(home.path())
            .env_remove("LAKEGATE_CONFIG")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("lakegate starts");
        nodes.0.push(child);
        if i < 3 {
            // The next command needs this node: the scheduler for the executors, both for serve.
            let port = command.iter().find_map(|a| a.strip_prefix("127.0.0.1:")).expect("a port");
            let port: u16 = port.parse().expect("a port");
            crate::common::wait_for(&format!("{command:?}"), Duration::from_secs(60), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
        }
    }
    let serve_log = || std::fs::read_to_string(home.path().join("3.log")).unwrap_or_default();
    crate::common::wait_for("serve --demo", Duration::from_secs(120), || {
        serve_log().contains("Flight SQL listening on grpc://127.0.0.1:50051")
    });
    let demo = serve_log();
    let question = demo.split_once("SELECT COUNT(*)").and_then(|(_, rest)| rest.split_once(';')).expect("the question");
    let question = format!("SELECT COUNT(*){}", question.0);
    let answer = demo.lines().find_map(|l| l.trim().trim_matches('|').trim().parse::<u64>().ok()).expect("an answer");
    let script = "import sys, adbc_driver_flightsql.dbapi as f\n\
        c = f.connect('grpc://127.0.0.1:50051').cursor()\n\
        c.execute(sys.argv[1])\n\
        print(c.fetchall()[0][0])\n\
        c.execute('SELECT sql, read, executors FROM system.queries')\n\
        print(*[r[2] for r in c.fetchall() if r[0] == sys.argv[1] and r[1].startswith('cluster')], sep='\\n')\n";
    let output = Command::new(venv_bin("python")).args(["-c", script, &question]).output().expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let mut lines = stdout.lines();
    assert_eq!(lines.next().and_then(|l| l.parse::<u64>().ok()), Some(answer), "the demo's answer, from ADBC");
    let executors = lines.next().unwrap_or_default();
    assert!(["127.0.0.1:50061", "127.0.0.1:50063"].contains(&executors), "ran on an executor: {stdout}\n{demo}");
}

/// Processes killed when the test ends, passed or not.
struct Nodes(Vec<std::process::Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// PostgreSQL table `users` of 5,000 users aged 18-67, every `women_every`-th a woman.
fn create_users(pg: &crate::common::postgres::Postgres, db: &str, women_every: u32) {
    pg.psql(
        db,
        &format!(
            "CREATE TABLE users (uid int PRIMARY KEY, age int, gender text); \
             INSERT INTO users SELECT i, 18 + i % 50, CASE WHEN i % {women_every} = 0 THEN 'F' ELSE 'M' END \
             FROM generate_series(1, 5000) i;"
        ),
    );
}

/// The canonical cross-source question with its users in PostgreSQL: the PostgreSQL scan runs
/// on the executors, which connect with their own `PG_PASSWORD`; psql counts the users. A table
/// read in several queries (`partitionColumn`) runs there too, each query a task, and each row
/// comes back once; so does a Redshift table (its wire path, against PostgreSQL's protocol).
#[test]
fn a_join_of_parquet_and_postgres_runs_on_the_executors() {
    use crate::common::postgres::{PASSWORD, Postgres};
    let pg = Postgres::shared();
    let db = pg.database();
    create_users(pg, &db, 2);
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
    let redshift = format!("jdbc:redshift://127.0.0.1:{}/{db}?user=lakegate&password=${{env:PG_PASSWORD}}", pg.port);
    lakegate
        .sql(&format!(
            "CREATE TABLE users_redshift USING com.databricks.spark.redshift OPTIONS (url '{redshift}', \
             dbtable 'users', partitionColumn 'uid', lowerBound '1', upperBound '5000', numPartitions '3')"
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
    assert!(split.stderr.contains(SENT), "a split read runs on the executors:\n{}", split.stderr);
    assert_eq!(split.first_count(), expected);
    let psql = pg.psql(&db, "COPY (SELECT uid, age, gender FROM users) TO STDOUT (FORMAT csv)");
    for table in ["users_split", "users_redshift"] {
        let read =
            on_cluster(&lakegate, &cluster.scheduler, &format!("SELECT uid, age, gender FROM {table}")).success();
        assert!(read.stderr.contains(SENT), "{}", read.stderr);
        assert_same_rows(table, psql.trim(), without_header(&read.stdout));
    }
}

/// What a node needs to read moto's S3 and the test PostgreSQL.
fn node_env(s3: &crate::common::S3Server) -> Vec<(&str, &str)> {
    let mut env = s3.vars().to_vec();
    env.push(("PG_PASSWORD", crate::common::postgres::PASSWORD));
    env
}

/// A Redshift table with a `tempdir` is read by UNLOAD on an executor: the executor rebuilds
/// the table from its spec and sends the statement over its own connection. PostgreSQL speaks
/// Redshift's protocol but has no UNLOAD, so the statement's own syntax error, coming back from
/// the executor, is the proof that it ran there (the whole path against a real Redshift is
/// `redshift_live_unload_round_trip`).
#[test]
fn a_redshift_unload_runs_on_an_executor() {
    use crate::common::S3Server;
    use crate::common::postgres::{PASSWORD, Postgres};
    let pg = Postgres::shared();
    let db = pg.database();
    create_users(pg, &db, 2);
    let s3 = S3Server::start();
    s3.create_bucket("lake");
    let lakegate = s3.env(Lakegate::new()).with_env("PG_PASSWORD", PASSWORD);
    let redshift = format!("jdbc:redshift://127.0.0.1:{}/{db}?user=lakegate&password=${{env:PG_PASSWORD}}", pg.port);
    lakegate
        .sql(&format!(
            "CREATE TABLE users_bulk USING com.databricks.spark.redshift OPTIONS (url '{redshift}', \
             dbtable 'users', tempdir 's3a://lake/tmp', aws_iam_role 'arn:aws:iam::123456789012:role/unload')"
        ))
        .success();
    let cluster = Cluster::start_with(2, None, &node_env(&s3));
    let read = on_cluster(&lakegate, &cluster.scheduler, "SELECT uid, age FROM users_bulk").failure();
    assert!(read.stderr.contains(SENT), "{}", read.stderr);
    // The task's error, as the scheduler reports it (the quotes come escaped).
    let error = read.stderr.lines().find(|line| line.starts_with("error:")).unwrap_or_default();
    assert!(error.contains("Task failed"), "{}", read.stderr);
    assert!(error.contains("syntax error at or near") && error.contains("UNLOAD"), "{}", read.stderr);
}

/// `rows` events over 5 days (`dt`), user ids shuffled, tagged `version`, as Parquet under `dir`.
fn events_source(lakegate: &Lakegate, dir: &Path, name: &str, rows: u64, version: &str) {
    lakegate
        .sql(&format!(
            "COPY (SELECT (value * 7919) % {rows} AS user_id, '{version}' AS version, \
             concat('2018-03-0', CAST(value % 5 + 1 AS STRING)) AS dt FROM generate_series(0, {last}) \
             ORDER BY value) TO '{dir}/' STORED AS PARQUET OPTIONS (max_row_group_size 100000);\n\
             CREATE DATABASE IF NOT EXISTS lake;\n\
             CREATE EXTERNAL TABLE lake.{name} STORED AS PARQUET LOCATION '{dir}/'",
            last = rows - 1,
            dir = dir.display()
        ))
        .success();
}

fn create_events(lakegate: &Lakegate, name: &str, dir: &Path) {
    lakegate
        .sql(&format!(
            "CREATE EXTERNAL TABLE lake.{name} (user_id BIGINT, version STRING) USING PARQUET \
             PARTITIONED BY (dt STRING) LOCATION '{}'",
            dir.display()
        ))
        .success();
}

/// Files of a commit still staged, or the temporary files of a local upload.
fn staged_files(table: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() { walk(&path, found) } else { found.push(path) }
        }
    }
    let mut found = Vec::new();
    walk(&table.join("_lakegate").join("staging"), &mut found);
    found
}

/// The nightly batch on a cluster: the executors write the files (hashed by DISTRIBUTE BY,
/// sorted by SORT BY), the client publishes them; file for file what the same statement
/// writes in-process, with the Parquet files read back by the parquet crate.
#[test]
fn a_nightly_overwrite_on_the_cluster_writes_what_it_writes_in_process() {
    let data = tempfile::tempdir().expect("temp dir");
    let lakegate = Lakegate::new();
    events_source(&lakegate, &data.path().join("raw"), "raw", 20_000, "v1");
    let (local_dir, cluster_dir) = (data.path().join("local"), data.path().join("events"));
    create_events(&lakegate, "local", &local_dir);
    create_events(&lakegate, "events", &cluster_dir);
    // Four writers: Ballista hands an executor as many partitions of a stage as it has task
    // slots (2 here), so both executors write.
    let overwrite = |table: &str| {
        format!(
            "SET datafusion.execution.target_partitions = 4; \
             INSERT OVERWRITE TABLE lake.{table} PARTITION (dt) SELECT user_id, version, dt FROM lake.raw \
             DISTRIBUTE BY dt SORT BY user_id"
        )
    };
    lakegate.sql(&overwrite("local")).success();
    let cluster = Cluster::start(2);
    let wrote = on_cluster(&lakegate, &cluster.scheduler, &overwrite("events")).success();
    assert!(wrote.stderr.contains(SENT), "the write runs on the cluster:\n{}", wrote.stderr);
    assert!(wrote.stderr.contains("wrote 20000 rows in 5 files"), "{}", wrote.stderr);
    let ran: Vec<&str> =
        ["executor-1", "executor-2"].into_iter().filter(|e| cluster.log(e).contains("Execute task")).collect();
    assert_eq!(ran.len(), 2, "both executors ran tasks of the write");

    let (local, distributed) =
        (crate::write::files_by_partition(&local_dir), crate::write::files_by_partition(&cluster_dir));
    assert_eq!(distributed.len(), 5, "{distributed:?}");
    assert_eq!(
        local.iter().map(|(p, _)| p).collect::<Vec<_>>(),
        distributed.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    for ((partition, local_files), (_, files)) in local.iter().zip(&distributed) {
        assert_eq!(files.len(), 1, "{partition}: one file, as in-process: {files:?}");
        let ids = crate::write::user_ids(&files[0]);
        assert_eq!(ids.len(), 4000, "{partition}");
        assert!(ids.windows(2).all(|w| w[0] <= w[1]), "{partition} is sorted by user_id");
        assert_eq!(ids, crate::write::user_ids(&local_files[0]), "{partition}: the same rows in the same order");
    }
    assert!(staged_files(&cluster_dir).is_empty(), "nothing left staged: {:?}", staged_files(&cluster_dir));

    // A second overwrite replaces every partition; readers on the cluster see only it.
    lakegate.sql("INSERT OVERWRITE TABLE lake.raw SELECT user_id, 'v2', dt FROM lake.raw").success();
    on_cluster(&lakegate, &cluster.scheduler, &overwrite("events")).success();
    let read = on_cluster(&lakegate, &cluster.scheduler, "SELECT version, count(*) FROM lake.events GROUP BY version")
        .success();
    assert!(read.stderr.contains(SENT), "{}", read.stderr);
    assert_eq!(read.rows(), vec![vec!["v2".to_owned(), "20000".to_owned()]]);
}

/// SIGKILL of an executor while it writes: the write completes on the executor left (Ballista
/// runs the lost tasks again) or fails naming the executor; either way every partition is
/// wholly old or wholly new, and the next write succeeds.
#[test]
fn an_executor_killed_mid_write_leaves_every_partition_wholly_old_or_new() {
    let data = tempfile::tempdir().expect("temp dir");
    let lakegate = Lakegate::new();
    events_source(&lakegate, &data.path().join("big"), "big", 3_000_000, "new");
    let table = data.path().join("events");
    create_events(&lakegate, "events", &table);
    lakegate
        .sql(
            "INSERT OVERWRITE TABLE lake.events PARTITION (dt) SELECT value, 'old', \
             concat('2018-03-0', CAST(value % 5 + 1 AS STRING)) FROM generate_series(0, 999)",
        )
        .success();
    let contents = || {
        lakegate
            .sql("SELECT dt, version, count(*) FROM lake.events GROUP BY dt, version ORDER BY dt, version")
            .success()
            .rows()
    };
    let whole = |rows: &[Vec<String>]| {
        assert_eq!(rows.len(), 5, "one version per partition: {rows:?}");
        for row in rows {
            let expected = if row[1] == "old" { "200" } else { "600000" };
            assert_eq!(row[2], expected, "{row:?} is wholly old or wholly new");
        }
    };
    // A time limit, so a job the cluster never finishes fails the test rather than hanging it.
    let sql = "SET statement_timeout = '120s'; SET datafusion.execution.target_partitions = 4; \
               INSERT OVERWRITE TABLE lake.events PARTITION (dt) SELECT user_id, version, dt FROM lake.big \
               DISTRIBUTE BY dt SORT BY user_id";
    let mut cluster = Cluster::start(2);
    let client = spawn_on_cluster(&lakegate, &cluster.scheduler, sql);
    // Killed once the writers have begun their files.
    crate::common::wait_for("files being written", Duration::from_secs(120), || !staged_files(&table).is_empty());
    cluster.kill("executor-1");
    let output = client.wait_with_output().expect("the client ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(SENT), "{stderr}");
    let rows = contents();
    whole(&rows);
    if output.status.success() {
        assert!(rows.iter().all(|r| r[1] == "new"), "a write that succeeded replaced everything: {rows:?}");
    } else {
        assert!(stderr.to_lowercase().contains("executor"), "the error names the executor:\n{stderr}");
    }
    // The next write runs on the executor left, and replaces every partition.
    on_cluster(&lakegate, &cluster.scheduler, sql).success();
    let rows = contents();
    whole(&rows);
    assert!(rows.iter().all(|r| r[1] == "new"), "{rows:?}");
    assert!(staged_files(&table).is_empty(), "nothing left staged: {:?}", staged_files(&table));
}

/// `cluster status` and `system.executors`: the executors as the scheduler sees them; without
/// a cluster, a usage error and an empty table.
#[test]
fn cluster_status_lists_the_executors_and_their_task_slots() {
    let lakegate = Lakegate::new();
    let none = lakegate.run(&["cluster", "status"]).failure();
    assert!(none.stderr.contains("--cluster"), "{}", none.stderr);
    assert_eq!(lakegate.sql("SELECT count(*) FROM system.executors").success().first_count(), 0);
    let cluster = Cluster::start(2);
    let status = lakegate.run(&["--cluster", &cluster.scheduler, "cluster", "status"]).success();
    assert_eq!(status.stdout.matches("127.0.0.1").count(), 2, "{}", status.stdout);
    let executors =
        on_cluster(&lakegate, &cluster.scheduler, "SELECT host, task_slots FROM system.executors").success();
    let slots = vec!["127.0.0.1".to_owned(), "2".to_owned()];
    assert_eq!(executors.rows(), vec![slots.clone(), slots]);
    // A scheduler that is gone: the error names it.
    drop(cluster);
    let gone = on_cluster(&lakegate, "127.0.0.1:1", "SELECT * FROM system.executors").failure();
    assert!(gone.stderr.contains("127.0.0.1:1"), "{}", gone.stderr);
}

/// The NCIS question with its ad-server logs on S3 (moto), its users in PostgreSQL and its
/// programs in Cassandra, as a cluster's client runs it. The logs are written to S3 by the
/// executors (a nightly overwrite); the S3 × PostgreSQL join and the whole question run on the
/// executors (each with its own S3 settings and `PG_PASSWORD`, each group of Cassandra's token
/// ranges a task). psql's count of the users is the oracle, and the Cassandra driver's rows the programs'.
#[test]
fn the_ncis_question_over_s3_postgres_and_cassandra_gives_the_in_process_answer() {
    use crate::common::postgres::{PASSWORD, Postgres};
    use crate::common::{Cql, S3Server};
    let cql = Cql::connect();
    cql.keyspace("lg_cluster_ncis");
    cql.run(&["CREATE TABLE lg_cluster_ncis.programs (id int PRIMARY KEY, name text)"]);
    let programs = vec![(1_i32, "Bones".to_owned()), (2, "NCIS".to_owned()), (3, "NCIS: Los Angeles".to_owned())];
    cql.insert("INSERT INTO lg_cluster_ncis.programs (id, name) VALUES (?, ?)", programs);
    let pg = Postgres::shared();
    let db = pg.database();
    create_users(pg, &db, 3);
    let s3 = S3Server::start();
    s3.create_bucket("lake");
    let data = tempfile::tempdir().expect("temp dir");
    let staged = data.path().join("staged");
    let lakegate = s3.env(Lakegate::new()).with_env("PG_PASSWORD", PASSWORD).with_cassandra(&cql.contact_point);
    // 40 events per user: user u's events all have program (u - 1) % 4 and are impressions when
    // u is odd, so program 2 (NCIS) is seen by the users with (u - 1) % 4 = 2.
    lakegate
        .sql(&format!(
            "COPY (SELECT i AS id, i % 5000 + 1 AS uid, i % 4 AS pid, \
                    CASE WHEN i % 2 = 0 THEN 'impression' ELSE 'click' END AS type, \
                    concat('2018-03-0', CAST(i % 3 + 1 AS STRING)) AS dt FROM generate_series(0, 199999) t(i)) \
             TO '{}/' STORED AS PARQUET;\n\
             CREATE DATABASE IF NOT EXISTS lake;\n\
             CREATE EXTERNAL TABLE lake.staged STORED AS PARQUET LOCATION '{}/';\n\
             CREATE EXTERNAL TABLE adserver_logs (id BIGINT, uid BIGINT, pid BIGINT, type STRING) USING PARQUET \
               PARTITIONED BY (dt STRING) LOCATION 's3://lake/logs/adserver_logs';\n\
             CREATE EXTERNAL TABLE users STORED AS POSTGRES LOCATION '{}' \
               OPTIONS ('table' 'users', 'password' '${{env:PG_PASSWORD}}');\n\
             CREATE EXTERNAL TABLE programs STORED AS CASSANDRA LOCATION 'cassandra://{}/lg_cluster_ncis/programs'",
            staged.display(),
            staged.display(),
            pg.url(&db),
            cql.contact_point
        ))
        .success();
    let women =
        pg.psql(&db, "SELECT count(*) FROM users WHERE age BETWEEN 25 AND 49 AND gender = 'F' AND (uid - 1) % 4 = 2");
    let expected = women.trim().parse::<u64>().expect("a count") * 40;

    let cluster = Cluster::start_with(2, None, &node_env(&s3));
    let wrote = on_cluster(
        &lakegate,
        &cluster.scheduler,
        "INSERT OVERWRITE TABLE adserver_logs PARTITION (dt) SELECT id, uid, pid, type, dt FROM lake.staged",
    )
    .success();
    assert!(wrote.stderr.contains(SENT), "the logs are written to S3 by the executors:\n{}", wrote.stderr);
    assert!(wrote.stderr.contains("wrote 200000 rows"), "{}", wrote.stderr);

    let without_programs = "SELECT COUNT(*) FROM adserver_logs A JOIN users U ON A.uid = U.uid \
        WHERE A.type = 'impression' AND U.age BETWEEN 25 AND 49 AND U.gender = 'F' AND A.pid = 2";
    let joined = on_cluster(&lakegate, &cluster.scheduler, without_programs).success();
    assert!(joined.stderr.contains(SENT), "S3 × PostgreSQL runs on the executors:\n{}", joined.stderr);
    assert_eq!(joined.first_count(), expected);

    let ncis = "SELECT COUNT(*) FROM adserver_logs A JOIN users U ON A.uid = U.uid JOIN programs P ON A.pid = P.id \
        WHERE A.type = 'impression' AND U.age BETWEEN 25 AND 49 AND U.gender = 'F' AND P.name = 'NCIS'";
    let distributed = on_cluster(&lakegate, &cluster.scheduler, ncis).success();
    assert!(distributed.stderr.contains(SENT), "the whole question runs on the executors:\n{}", distributed.stderr);
    assert_eq!(distributed.first_count(), expected);
    assert_eq!(lakegate.sql(ncis).success().first_count(), expected, "in-process");

    // Every row of a full scan comes back once, though each executor reads some token ranges.
    let read = on_cluster(&lakegate, &cluster.scheduler, "SELECT id, name FROM programs ORDER BY id").success();
    assert!(read.stderr.contains(SENT), "{}", read.stderr);
    let rows: Vec<String> = cql.block_on(async {
        let result = cql.session.query_unpaged("SELECT id, name FROM lg_cluster_ncis.programs", &[]).await;
        let rows = result.expect("cqlsh's read").into_rows_result().expect("rows");
        rows.rows::<(i32, String)>()
            .expect("typed")
            .map(|row| row.expect("a row"))
            .map(|(i, n)| format!("{i},{n}"))
            .collect()
    });
    assert_same_rows("programs", &rows.join("\n"), without_header(&read.stdout));
}
