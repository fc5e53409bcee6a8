//! Parquet tables on a real S3 API (moto on loopback), through every S3 scheme.

use crate::common::{Lakegate, S3Server, free_port};

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
    let run = lg.sql("SELECT type, count(*) AS n FROM logs.events WHERE dt = '2018-03-05' GROUP BY type ORDER BY type").success();
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
    assert!(run.stderr.contains("default.remote is unavailable") && run.stderr.contains("LG_TEST_S3_SECRET"), "{}", run.stderr);
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
    std::fs::write(&config, "[[geodata.layers]]\nname = 'regions'\npath = 's3a://geo/layers/regions.csv'\n").expect("config written");
    let config = config.to_str().expect("utf-8");
    let run = lg.run(&["--config", config, "sql", "--format", "csv", "-e", "SELECT geodata(5.0, 5.0)['region'] AS r, geodata(15.0, 5.0)['region'] IS NULL AS outside"]).success();
    assert_eq!(run.rows(), vec![vec!["north", "true"]]);

    std::fs::write(lg.data_dir.path().join("missing.toml"), "[[geodata.layers]]\nname = 'x'\npath = 's3://geo/layers/nope.csv'\n").expect("written");
    let missing = lg.data_dir.path().join("missing.toml");
    let run = lg.run(&["--config", missing.to_str().expect("utf-8"), "sql", "-e", "SELECT 1"]).failure();
    assert!(run.stderr.contains("geodata layer 'x'") && run.stderr.contains("s3://geo/layers/nope.csv"), "{}", run.stderr);
}
