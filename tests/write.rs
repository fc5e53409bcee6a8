//! Nightly batch writes as scripts run them: file layout, local disk and S3, and writers
//! killed with SIGKILL at every step of a commit.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::common::{Lakegate, S3Server, venv_bin};

/// 20,000 events over 5 days, user ids shuffled, tagged with `version`.
fn source_sql(version: &str) -> String {
    format!(
        "SELECT (value * 7919) % 20000 AS user_id, '{version}' AS version, \
         concat('2018-03-0', CAST(value % 5 + 1 AS STRING)) AS dt FROM generate_series(0, 19999)"
    )
}

fn create_events(lg: &Lakegate, location: &str) {
    lg.sql(&format!(
        "CREATE DATABASE IF NOT EXISTS lake; \
         CREATE EXTERNAL TABLE IF NOT EXISTS lake.events (user_id BIGINT, version STRING) USING PARQUET \
         PARTITIONED BY (dt STRING) LOCATION '{location}'"
    ))
    .success();
}

fn overwrite_sql(version: &str, layout: &str) -> String {
    format!("INSERT OVERWRITE TABLE lake.events PARTITION (dt) {} {layout}", source_sql(version))
}

/// Parquet files under `dir`, by partition directory, ignoring lakegate's own objects.
fn files_by_partition(dir: &Path) -> Vec<(String, Vec<PathBuf>)> {
    let mut partitions: Vec<(String, Vec<PathBuf>)> = std::fs::read_dir(dir)
        .expect("table directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n.to_string_lossy().contains('=')))
        .map(|p| {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&p)
                .expect("partition directory")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "parquet"))
                .collect();
            files.sort();
            (p.file_name().expect("name").to_string_lossy().into_owned(), files)
        })
        .collect();
    partitions.sort();
    partitions
}

fn user_ids(file: &Path) -> Vec<i64> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).expect("file")).expect("parquet").build().expect("reader");
    reader
        .flat_map(|batch| {
            let batch = batch.expect("batch");
            let ids = batch.column_by_name("user_id").expect("user_id column").as_primitive::<Int64Type>().clone();
            (0..ids.len()).map(move |i| ids.value(i)).collect::<Vec<_>>()
        })
        .collect()
}

/// (dt, version, rows) as lakegate reads the table.
fn contents(lg: &Lakegate) -> Vec<Vec<String>> {
    lg.sql("SELECT dt, version, count(*) AS n FROM lake.events GROUP BY dt, version ORDER BY dt, version").success().rows()
}

fn all_of(version: &str) -> Vec<Vec<String>> {
    (1..=5).map(|d| vec![format!("2018-03-0{d}"), version.to_owned(), "4000".to_owned()]).collect()
}

#[test]
fn distribute_by_dt_sort_by_user_id_writes_one_sorted_file_per_partition() {
    let lg = Lakegate::new();
    let dir = lg.data_dir.path().join("events");
    create_events(&lg, &dir.display().to_string());
    lg.sql(&overwrite_sql("v1", "DISTRIBUTE BY dt SORT BY user_id")).success();
    let partitions = files_by_partition(&dir);
    assert_eq!(partitions.len(), 5, "{partitions:?}");
    for (partition, files) in &partitions {
        assert_eq!(files.len(), 1, "{partition}: {files:?}");
        let ids = user_ids(&files[0]);
        assert_eq!(ids.len(), 4000, "{partition}");
        assert!(ids.windows(2).all(|w| w[0] <= w[1]), "{partition} is not sorted by user_id");
    }
    assert_eq!(contents(&lg), all_of("v1"));

    // CLUSTER BY user_id: files spread by user, each sorted; nothing lost.
    lg.sql(&overwrite_sql("v2", "CLUSTER BY user_id")).success();
    for (partition, files) in files_by_partition(&dir) {
        for file in files {
            let ids = user_ids(&file);
            assert!(ids.windows(2).all(|w| w[0] <= w[1]), "{partition}: {} is not sorted", file.display());
        }
    }
    assert_eq!(contents(&lg), all_of("v2"));

    // A small target size rolls files over, still one writer per partition and sorted.
    lg.sql("DROP TABLE lake.events").success();
    lg.sql(&format!(
        "CREATE EXTERNAL TABLE lake.events (user_id BIGINT, version STRING) USING PARQUET PARTITIONED BY (dt STRING) \
         LOCATION '{}' OPTIONS ('write.target_file_size' '1KB')",
        dir.display()
    ))
    .success();
    // Files roll over between batches: small batches show it on small data.
    lg.sql(&format!("SET datafusion.execution.batch_size = 500; {}", overwrite_sql("v3", "DISTRIBUTE BY dt SORT BY user_id"))).success();
    for (partition, files) in files_by_partition(&dir) {
        assert!(files.len() > 1, "{partition} should have rolled over: {files:?}");
        let ids: Vec<i64> = files.iter().flat_map(|f| user_ids(f)).collect();
        assert!(ids.windows(2).all(|w| w[0] <= w[1]), "{partition}: files in name order are not sorted");
    }
    assert_eq!(contents(&lg), all_of("v3"));
}

#[test]
fn plain_parquet_readers_see_what_lakegate_sees() {
    let lg = Lakegate::new();
    let dir = lg.data_dir.path().join("events");
    create_events(&lg, &dir.display().to_string());
    lg.sql(&overwrite_sql("v1", "")).success();
    lg.sql(&overwrite_sql("v2", "")).success();
    let duckdb = std::process::Command::new(venv_bin("python"))
        .args([
            "-c",
            "import duckdb, sys; print(duckdb.sql(f\"SELECT version, count(*) FROM read_parquet('{sys.argv[1]}/*/*.parquet', hive_partitioning=true) GROUP BY ALL\").fetchall())",
            &dir.display().to_string(),
        ])
        .output()
        .expect("python runs");
    let out = String::from_utf8_lossy(&duckdb.stdout);
    assert!(duckdb.status.success(), "{}", String::from_utf8_lossy(&duckdb.stderr));
    assert_eq!(out.trim(), "[('v2', 20000)]");
}

#[test]
fn overwrites_on_s3_replace_only_their_partitions() {
    let s3 = S3Server::start();
    s3.create_bucket("lake");
    let lg = s3.env(Lakegate::new());
    create_events(&lg, "s3a://lake/warehouse/events");
    lg.sql(&overwrite_sql("v1", "DISTRIBUTE BY dt SORT BY user_id")).success();
    assert_eq!(contents(&lg), all_of("v1"));
    lg.sql(&format!("INSERT OVERWRITE TABLE lake.events PARTITION (dt) SELECT * FROM ({}) WHERE dt >= '2018-03-04'", source_sql("v2")))
        .success();
    lg.sql("INSERT OVERWRITE TABLE lake.events PARTITION (dt='2018-03-01') SELECT 1, 'v3'").success();
    let mut expected = all_of("v1");
    expected[0] = vec!["2018-03-01".into(), "v3".into(), "1".into()];
    expected[3][1] = "v2".into();
    expected[4][1] = "v2".into();
    assert_eq!(contents(&lg), expected);
    let keys = list_keys(&s3, "lake", "warehouse/events/");
    let data: Vec<&String> = keys.iter().filter(|k| k.ends_with(".parquet")).collect();
    assert_eq!(data.len(), 5, "one file per partition, replaced files removed: {keys:?}");
    assert!(!keys.iter().any(|k| k.contains("/staging/")), "staging left behind: {keys:?}");
}

fn list_keys(s3: &S3Server, bucket: &str, prefix: &str) -> Vec<String> {
    let script = "import boto3, sys\n\
        c = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='testing', aws_secret_access_key='testing', region_name='us-east-1')\n\
        for page in c.get_paginator('list_objects_v2').paginate(Bucket=sys.argv[2], Prefix=sys.argv[3]):\n    \
            [print(o['Key']) for o in page.get('Contents', [])]";
    let out = std::process::Command::new(venv_bin("python")).args(["-c", script, &s3.endpoint, bucket, prefix]).output().expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

/// Starts an overwrite that stops at `step`, kills it with SIGKILL there, and returns what a
/// reader sees afterwards.
fn kill_at(lg: &Lakegate, step: &str, sql: &str) {
    let mut child = lg
        .command()
        .args(["sql", "-e", sql])
        .env("LAKEGATE_PAUSE_AT", step)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("lakegate starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let reached = lines.by_ref().map_while(Result::ok).any(|l| l.contains(&format!("paused at {step}")));
    assert!(reached, "the writer never reached {step}");
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
}

fn check_crash_safety(lg: &Lakegate) {
    create_events(lg, &lakegate_location(lg));
    lg.sql(&overwrite_sql("old", "")).success();
    for step in ["staged", "moved", "published-one", "published"] {
        kill_at(lg, step, &overwrite_sql(step, "DISTRIBUTE BY dt SORT BY user_id"));
        let seen = contents(lg);
        // Every partition is wholly old or wholly new: one version, all 4000 rows.
        assert_eq!(seen.len(), 5, "after a kill at {step}: {seen:?}");
        assert!(seen.iter().all(|row| row[2] == "4000"), "after a kill at {step}: {seen:?}");
        let new = seen.iter().filter(|row| row[1] == step).count();
        let expected_new = match step {
            "staged" | "moved" => 0,
            "published-one" => 1,
            _ => 5,
        };
        assert_eq!(new, expected_new, "after a kill at {step}: {seen:?}");
        // The job is rerun, as a scheduler would.
        lg.sql(&overwrite_sql("old", "")).success();
        assert_eq!(contents(lg), all_of("old"));
    }
    let vacuum = lg.sql("VACUUM lake.events RETAIN 0 HOURS").success();
    assert!(vacuum.stderr.contains("abandoned files"), "{}", vacuum.stderr);
    assert_eq!(contents(lg), all_of("old"));
}

fn lakegate_location(lg: &Lakegate) -> String {
    lg.env.iter().find(|(k, _)| k == "TEST_TABLE_LOCATION").map(|(_, v)| v.clone()).expect("a location")
}

#[test]
fn a_writer_killed_at_any_step_leaves_each_partition_old_or_new_on_disk() {
    let lg = Lakegate::new();
    let dir = lg.data_dir.path().join("events").display().to_string();
    let lg = lg.with_env("TEST_TABLE_LOCATION", &dir);
    check_crash_safety(&lg);
    let again = lg.run(&["vacuum", "lake.events", "--retain-hours", "0"]).success();
    assert!(again.stderr.contains("vacuumed lake.events: 0 replaced files, 0 abandoned files"), "{}", again.stderr);
    let leftovers: Vec<String> = walk(Path::new(&dir)).into_iter().filter(|p| p.contains("/staging/")).collect();
    assert!(leftovers.is_empty(), "vacuum leaves no staged files: {leftovers:?}");
    for (partition, files) in files_by_partition(Path::new(&dir)) {
        assert_eq!(files.len(), 1, "{partition} after vacuum: {files:?}");
    }
}

#[test]
fn a_writer_killed_at_any_step_leaves_each_partition_old_or_new_on_s3() {
    let s3 = S3Server::start();
    s3.create_bucket("lake");
    let lg = s3.env(Lakegate::new()).with_env("TEST_TABLE_LOCATION", "s3a://lake/events");
    check_crash_safety(&lg);
    let keys = list_keys(&s3, "lake", "events/");
    assert_eq!(keys.iter().filter(|k| k.ends_with(".parquet")).count(), 5, "after vacuum: {keys:?}");
}

#[test]
fn a_writer_killed_mid_write_changes_nothing() {
    let lg = Lakegate::new();
    let dir = lg.data_dir.path().join("events");
    create_events(&lg, &dir.display().to_string());
    lg.sql(&overwrite_sql("old", "")).success();
    let big = "INSERT OVERWRITE TABLE lake.events PARTITION (dt) SELECT value % 1000 AS user_id, 'big' AS version, \
               concat('2018-03-0', CAST(value % 5 + 1 AS STRING)) AS dt FROM generate_series(0, 50000000) DISTRIBUTE BY dt SORT BY user_id";
    let mut child = lg.command().args(["sql", "-e", big]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("starts");
    // Kill once it has staged some bytes.
    crate::common::wait_for("staged files", std::time::Duration::from_secs(120), || {
        walk(&dir).iter().any(|p| p.contains("/staging/") && p.ends_with(".parquet"))
    });
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert_eq!(contents(&lg), all_of("old"));
}

fn walk(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[test]
fn a_nightly_hive_script_runs_unchanged() {
    let lg = Lakegate::new();
    let warehouse = lg.data_dir.path().join("s3-like");
    std::fs::create_dir_all(&warehouse).expect("dir");
    lg.sql(&format!(
        "COPY ({}) TO '{}/raw/' STORED AS PARQUET PARTITIONED BY (dt)",
        source_sql("raw"),
        warehouse.display()
    ))
    .success();
    let script = lg.data_dir.path().join("nightly.sql");
    std::fs::write(
        &script,
        format!(
            "-- Rebuild the daily user table for {{{{ ds }}}}\n\
             SET hive.exec.dynamic.partition.mode=nonstrict;\n\
             CREATE DATABASE IF NOT EXISTS reports;\n\
             CREATE EXTERNAL TABLE IF NOT EXISTS reports.raw_events STORED AS PARQUET LOCATION '{root}/raw';\n\
             CREATE EXTERNAL TABLE IF NOT EXISTS reports.daily_users (user_id BIGINT, events BIGINT)\n  \
               USING PARQUET PARTITIONED BY (dt STRING) LOCATION '{root}/daily_users';\n\
             INSERT OVERWRITE TABLE reports.daily_users PARTITION (dt)\n\
             SELECT user_id, count(*) AS events, dt FROM reports.raw_events\n\
             WHERE dt BETWEEN '${{start}}' AND '{{{{ ds }}}}'\n\
             GROUP BY user_id, dt\n\
             DISTRIBUTE BY dt SORT BY user_id;\n\
             MSCK REPAIR TABLE reports.daily_users;\n\
             SHOW PARTITIONS reports.daily_users;\n",
            root = warehouse.display()
        ),
    )
    .expect("script");
    let path = script.to_str().expect("utf-8");
    let dry = lg.run(&["run", path, "--var", "ds=2018-03-04", "--var", "start=2018-03-02", "--dry-run"]).success();
    assert!(dry.stdout.contains("not planned"), "the table does not exist yet in a dry run: {}", dry.stdout);
    let run = lg.run(&["run", path, "--var", "ds=2018-03-04", "--var", "start=2018-03-02"]).success();
    assert!(run.stderr.contains("replaced 3 partitions: dt=2018-03-02, dt=2018-03-03, dt=2018-03-04"), "{}", run.stderr);
    assert!(run.stdout.contains("dt=2018-03-02") && !run.stdout.contains("dt=2018-03-01"), "{}", run.stdout);
    let dry = lg.run(&["run", path, "--var", "ds=2018-03-05", "--var", "start=2018-03-05", "--dry-run"]).success();
    assert!(dry.stdout.contains("replaces 1 partitions: dt=2018-03-05") && dry.stdout.contains("SortExec"), "{}", dry.stdout);
    for (partition, files) in files_by_partition(&warehouse.join("daily_users")) {
        assert_eq!(files.len(), 1, "{partition}");
        let ids = user_ids(&files[0]);
        assert!(ids.windows(2).all(|w| w[0] <= w[1]), "{partition} is sorted");
    }
}
