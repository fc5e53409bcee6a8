//! Parquet tables on a real S3 API (moto on loopback), through every S3 scheme.

use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::arrow::util::display::array_value_to_string;
use futures::TryStreamExt;
use tonic::transport::Channel;

use crate::common::{Lakegate, S3Server, free_port};
use crate::flight::Server;

fn upload_events(lg: &Lakegate, url: &str) {
    lg.sql(&format!(
        "COPY (SELECT * FROM (VALUES (1, 'impression', '2018-03-05'), (2, 'click', '2018-03-05'), (3, 'impression', '2018-03-06')) AS v(uid, type, dt)) \
         TO '{url}/' STORED AS PARQUET PARTITIONED BY (dt)"
    ))
    .success();
}

#[test]
fn spark_tables_on_s3a_read_and_prune_partitions() {
    let s3 = S3Server::start();
    s3.create_bucket("lake");
    let lg = s3.env(Lakegate::new());
    upload_events(&lg, "s3://lake/logs/events");
    lg.sql(
        "CREATE DATABASE IF NOT EXISTS logs; \
         CREATE TABLE IF NOT EXISTS logs.events (uid BIGINT, type STRING) USING PARQUET PARTITIONED BY (dt STRING) LOCATION 's3a://lake/logs/events'; \
         CREATE EXTERNAL TABLE logs.events_n STORED AS PARQUET LOCATION 's3n://lake/logs/events'",
    )
    .success();
    // A new process reads both, with the partition filter applied to the listing.
    let run = lg
        .sql("SELECT type, count(*) AS n FROM logs.events WHERE dt = '2018-03-05' GROUP BY type ORDER BY type")
        .success();
    assert_eq!(run.rows(), vec![vec!["click", "1"], vec!["impression", "1"]]);
    let run = lg.sql("SELECT sum(uid) FROM logs.events_n").success();
    assert_eq!(run.rows(), vec![vec!["6"]]);
    let plan = lg.run(&["sql", "-e", "EXPLAIN SELECT uid FROM logs.events WHERE dt = '2018-03-06'"]).success();
    assert!(plan.stdout.contains("dt=2018-03-06") && !plan.stdout.contains("dt=2018-03-05"), "{}", plan.stdout);
}

#[test]
fn a_missing_bucket_registers_nothing() {
    let s3 = S3Server::start();
    let lg = s3.env(Lakegate::new());
    let run = lg.sql("CREATE EXTERNAL TABLE t (a INT) STORED AS PARQUET LOCATION 's3a://no-such-bucket/t'").failure();
    assert!(run.stderr.contains("s3a://no-such-bucket/t"), "{}", run.stderr);
    assert!(run.stderr.contains("NoSuchBucket") || run.stderr.contains("does not exist"), "{}", run.stderr);
    assert_eq!(lg.sql("SHOW TABLES").success().rows(), Vec::<Vec<String>>::new());
}

#[test]
fn an_endpoint_that_refuses_is_named() {
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let lg = Lakegate::new()
        .with_env("LAKEGATE_S3_ENDPOINT", &endpoint)
        .with_env("AWS_ACCESS_KEY_ID", "testing")
        .with_env("AWS_SECRET_ACCESS_KEY", "testing")
        .with_env("AWS_REGION", "us-east-1");
    let run = lg.sql("CREATE EXTERNAL TABLE t (a INT) STORED AS PARQUET LOCATION 's3://lake/t'").failure();
    assert!(run.stderr.contains("s3://lake/t"), "{}", run.stderr);
    assert!(run.stderr.to_lowercase().contains("connect"), "the cause must be named: {}", run.stderr);
    assert_eq!(lg.sql("SHOW TABLES").success().rows(), Vec::<Vec<String>>::new());
}

/// A table whose secret reference stops resolving is unavailable on its own: it still lists,
/// describes, and the other tables still answer.
#[test]
fn a_table_with_an_unresolvable_secret_breaks_only_itself() {
    let s3 = S3Server::start();
    s3.create_bucket("lake");
    // moto accepts any secret; this one must never reach the catalog file.
    const SECRET: &str = "s3cr3t-never-stored";
    let lg = Lakegate::new().with_env("AWS_REGION", "us-east-1").with_env("LG_TEST_S3_SECRET", SECRET);
    upload_events(&s3.env(Lakegate::new()), "s3://lake/events");
    lg.sql(&format!(
        "CREATE EXTERNAL TABLE remote STORED AS PARQUET LOCATION 's3://lake/events' \
         OPTIONS ('s3.endpoint' '{}', 's3.access_key_id' 'testing', 's3.secret_access_key' '${{env:LG_TEST_S3_SECRET}}'); \
         CREATE EXTERNAL TABLE local (a INT) STORED AS PARQUET LOCATION '{}'",
        s3.endpoint,
        lg.data_dir.path().join("local").display()
    ))
    .success();
    assert_eq!(lg.sql("SELECT count(*) FROM remote").success().rows(), vec![vec!["3"]]);
    let show = lg.sql("SHOW CREATE TABLE remote").success();
    assert!(show.stdout.contains("${env:LG_TEST_S3_SECRET}") && !show.stdout.contains(SECRET), "{}", show.stdout);
    for file in ["catalog.db", "catalog.db-wal"] {
        let bytes = std::fs::read(lg.data_dir.path().join(file)).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&bytes).contains(SECRET), "the secret was stored in {file}");
    }

    let without_secret = Lakegate { data_dir: lg.data_dir, env: vec![("AWS_REGION".into(), "us-east-1".into())] };
    let tables = without_secret.sql("SHOW TABLES").success();
    assert_eq!(tables.rows().len(), 2, "{}", tables.stdout);
    let run = without_secret.sql("SELECT count(*) FROM remote").failure();
    assert!(
        run.stderr.contains("default.remote is unavailable") && run.stderr.contains("LG_TEST_S3_SECRET"),
        "{}",
        run.stderr
    );
    assert_eq!(without_secret.sql("SELECT count(*) FROM local").success().rows(), vec![vec!["0"]]);
}

/// A geodata layer on S3 is read when the process starts.
#[test]
fn geodata_layers_load_from_s3() {
    let s3 = S3Server::start();
    s3.create_bucket("geo");
    let lg = s3.env(Lakegate::new());
    lg.sql(
        "COPY (SELECT 'north' AS region, 'POLYGON ((0 0, 10 0, 10 10, 0 10, 0 0))' AS wkt) \
         TO 's3://geo/layers/regions.csv' STORED AS CSV",
    )
    .success();
    let config = lg.data_dir.path().join("lakegate.toml");
    std::fs::write(&config, "[[geodata.layers]]\nname = 'regions'\npath = 's3a://geo/layers/regions.csv'\n")
        .expect("config written");
    let config = config.to_str().expect("utf-8");
    let run = lg
        .run(&[
            "--config",
            config,
            "sql",
            "--format",
            "csv",
            "-e",
            "SELECT geodata(5.0, 5.0)['region'] AS r, geodata(15.0, 5.0)['region'] IS NULL AS outside",
        ])
        .success();
    assert_eq!(run.rows(), vec![vec!["north", "true"]]);

    std::fs::write(
        lg.data_dir.path().join("missing.toml"),
        "[[geodata.layers]]\nname = 'x'\npath = 's3://geo/layers/nope.csv'\n",
    )
    .expect("written");
    let missing = lg.data_dir.path().join("missing.toml");
    let run = lg.run(&["--config", missing.to_str().expect("utf-8"), "sql", "-e", "SELECT 1"]).failure();
    assert!(
        run.stderr.contains("geodata layer 'x'") && run.stderr.contains("s3://geo/layers/nope.csv"),
        "{}",
        run.stderr
    );
}

/// The rows of `sql` in one Flight SQL session, each as its cells joined by commas.
async fn rows(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> Vec<String> {
    let info = client.execute(sql.into(), None).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let stream = client.do_get(ticket).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let batches: Vec<_> = stream.try_collect().await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    batches
        .iter()
        .flat_map(|b| {
            (0..b.num_rows()).map(|row| {
                let cells = b.columns().iter().map(|c| array_value_to_string(c, row).expect("a printable value"));
                cells.collect::<Vec<_>>().join(",")
            })
        })
        .collect()
}

/// A file a write staged and never published, as VACUUM finds them.
const ABANDONED: &str = "s3://lake/events/_lakegate/staging/abandoned/part.parquet";

/// Writes `ids` into `s3://lake/events/` of `s3`, in partition `dt`, and an abandoned file.
fn upload_ids(s3: &S3Server, ids: (u32, u32), dt: &str) {
    s3.create_bucket("lake");
    s3.env(Lakegate::new())
        .sql(&format!(
            "COPY (SELECT value AS id, '{dt}' AS dt FROM generate_series({}, {})) TO 's3://lake/events/' STORED AS PARQUET PARTITIONED BY (dt); \
             COPY (SELECT 1 AS id) TO '{ABANDONED}' STORED AS PARQUET",
            ids.0, ids.1
        ))
        .success();
}

/// Two S3 servers with a bucket of one name: a table's (or a session's view's) `s3.endpoint`
/// sends that table to its server, and every other table keeps reading and writing its own.
#[tokio::test(flavor = "multi_thread")]
async fn per_table_s3_settings_apply_to_that_table_only() {
    let (one, two) = (S3Server::start(), S3Server::start());
    // Known data: 1..=10 (sum 55) on the first server, 101..=103 (sum 306) on the second.
    upload_ids(&one, (1, 10), "2018-03-05");
    upload_ids(&two, (101, 103), "2018-03-06");
    // The process settings name the first server.
    let lakegate = one.env(Lakegate::new()).with_env("LG_TEST_SECRET_A", "sekrit-a");
    let server = Server::start_with(lakegate, &["--listen", "127.0.0.1:0"]).expect("the server starts");
    let mut alice = server.signed_in().await;
    let mut bob = server.signed_in().await;

    rows(
        &mut alice,
        &format!(
            "CREATE EXTERNAL TABLE a STORED AS PARQUET LOCATION 's3://lake/events' \
             OPTIONS ('s3.endpoint' '{}', 's3.access_key_id' 'testing', 's3.secret_access_key' '${{env:LG_TEST_SECRET_A}}')",
            one.endpoint
        ),
    )
    .await;
    rows(&mut alice, "CREATE EXTERNAL TABLE plain STORED AS PARQUET LOCATION 's3://lake/events'").await;
    assert_eq!(rows(&mut alice, "SELECT sum(id) FROM a").await, ["55"]);
    rows(
        &mut alice,
        &format!(
            "CREATE EXTERNAL TABLE b STORED AS PARQUET LOCATION 's3a://lake/events' OPTIONS ('s3.endpoint' '{}')",
            two.endpoint
        ),
    )
    .await;
    rows(
        &mut bob,
        &format!(
            "CREATE TEMPORARY VIEW v USING parquet \
             OPTIONS (path 's3://lake/events', 's3.endpoint' '{}', 's3.access_key_id' 'testing', 's3.secret_access_key' 'sekrit-v')",
            two.endpoint
        ),
    )
    .await;
    assert_eq!(rows(&mut bob, "SELECT sum(id) FROM v").await, ["306"]);

    assert_eq!(rows(&mut alice, "SELECT sum(id) FROM a").await, ["55"]);
    assert_eq!(rows(&mut alice, "SELECT sum(id) FROM plain").await, ["55"]);
    assert_eq!(rows(&mut alice, "SELECT sum(id) FROM b").await, ["306"]);
    assert_eq!(rows(&mut alice, "SELECT (SELECT sum(id) FROM a) + (SELECT sum(id) FROM b)").await, ["361"]);
    assert_eq!(rows(&mut alice, "SHOW PARTITIONS a").await, ["dt=2018-03-05"]);
    assert_eq!(rows(&mut bob, "SHOW PARTITIONS b").await, ["dt=2018-03-06"]);
    for (client, table) in [(&mut alice, "a"), (&mut bob, "v")] {
        let plan = rows(client, &format!("EXPLAIN SELECT id FROM {table}")).await.join("\n");
        assert!(plan.contains("events/dt=") && !plan.contains("sekrit") && !plan.contains("s3-"), "{plan}");
    }
    let shown = rows(&mut alice, "SHOW CREATE TABLE a").await.join("\n");
    assert!(shown.contains("s3://lake/events") && !shown.contains("sekrit"), "{shown}");

    // Writes and VACUUM go to the table's own server, too.
    rows(&mut alice, "INSERT OVERWRITE TABLE b PARTITION (dt = '2018-03-06') SELECT 7").await;
    let vacuum = rows(&mut alice, "VACUUM b RETAIN 0 HOURS").await.join("\n");
    assert!(vacuum.contains("vacuumed default.b") && vacuum.contains(" 1 abandoned files"), "{vacuum}");
    assert_eq!(rows(&mut alice, "SELECT sum(id) FROM b").await, ["7"]);
    assert_eq!(rows(&mut alice, "SELECT sum(id) FROM a").await, ["55"]);
    // (The view's literal secret is in its statement, which the server logs as written.)
    let log = server.stop();
    assert!(!log.contains("sekrit-a"), "a resolved secret in the server's log:\n{log}");
    // Each server, read by a process of its own, holds what its tables wrote and nothing else.
    let read = |s3: &S3Server| s3.env(Lakegate::new()).sql("SELECT sum(id) FROM 's3://lake/events/'").success().rows();
    assert_eq!(read(&one), [["55"]]);
    assert_eq!(read(&two), [["7"]]);
    let abandoned = |s3: &S3Server| s3.env(Lakegate::new()).sql(&format!("SELECT count(*) FROM '{ABANDONED}'"));
    abandoned(&one).success();
    abandoned(&two).failure();
}
