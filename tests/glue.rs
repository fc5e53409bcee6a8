//! AWS Glue as a catalog, against moto's Glue and S3 (one server): tables another client
//! registered (boto3, files by pyarrow) are read with no registration, and lakegate's writes
//! and CREATE/DROP TABLE reach the catalog, where that client sees them.

use std::process::Command;

use serde_json::Value;

use crate::common::{Lakegate, S3Server, venv_bin};

fn glue_client(s3: &S3Server, args: &[&str]) -> String {
    let out = Command::new(venv_bin("python"))
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/glue_catalog.py"))
        .args(["--endpoint", &s3.endpoint])
        .args(args)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "glue_catalog.py {args:?}:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// Per partition the catalog lists, as the other client reads its files: `[dt, rows, sum]`.
fn totals(s3: &S3Server, table: &str) -> Vec<Vec<String>> {
    let answer: Value = serde_json::from_str(&glue_client(s3, &["totals", table])).expect("JSON");
    answer
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            row.as_array()
                .expect("row")
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect()
        })
        .collect()
}

fn glue_table(s3: &S3Server, table: &str) -> Value {
    serde_json::from_str(&glue_client(s3, &["table", table])).expect("JSON")
}

fn lakegate(s3: &S3Server, endpoint: &str) -> Lakegate {
    let lg = s3.env(Lakegate::new());
    let toml = format!(
        "[[catalogs]]\nname = \"glue\"\nkind = \"glue\"\nregion = \"us-east-1\"\nendpoint = \"{endpoint}\"\ncache_seconds = 0\n"
    );
    std::fs::write(lg.data_dir.path().join("lakegate.toml"), toml).expect("config");
    lg
}

#[test]
fn a_glue_catalog_is_read_and_written_with_no_registration() {
    let s3 = S3Server::start();
    glue_client(&s3, &["setup"]);
    let lg = lakegate(&s3, &s3.endpoint);
    let by_day = "SELECT dt, count(*), sum(uid) FROM glue.sales.events GROUP BY dt ORDER BY dt";
    assert_eq!(lg.sql(by_day).success().rows(), totals(&s3, "sales.events"));
    assert_eq!(lg.sql("SHOW DATABASES IN glue").success().rows(), vec![vec!["sales"]]);
    let run = lg.sql("SHOW TABLES IN glue.sales").success();
    assert_eq!(
        run.rows(),
        vec![vec!["glue.sales", "clicks", "glue", "false"], vec!["glue.sales", "events", "glue", "false"]]
    );
    // A view is planned from its SQL, in its own database.
    let clicks: Value = serde_json::from_str(&glue_client(&s3, &["clicks"])).expect("JSON");
    let run =
        lg.run(&["sql", "--format", "json", "-e", "SELECT uid, dt FROM glue.sales.clicks ORDER BY uid"]).success();
    let rows: Vec<Value> = run.stdout.lines().map(|l| serde_json::from_str(l).expect("JSON row")).collect();
    let rows: Vec<Value> = rows.iter().map(|r| serde_json::json!([r["uid"], r["dt"]])).collect();
    assert_eq!(Value::Array(rows), clicks);
    // The day's filter goes to Glue: one partition's files are listed.
    let plan =
        lg.run(&["sql", "-e", "EXPLAIN SELECT count(*) FROM glue.sales.events WHERE dt = '2024-01-02'"]).success();
    assert!(plan.stdout.contains("dt=2024-01-02") && !plan.stdout.contains("dt=2024-01-01"), "{}", plan.stdout);
    let run = lg.sql("SELECT uid FROM glue.sales.events WHERE type = 'it''s'").success();
    assert_eq!(run.rows(), vec![vec!["4"]]);

    // A new day written by lakegate is a Glue partition that the other client reads.
    lg.sql("INSERT INTO glue.sales.events PARTITION (dt='2024-02-01') SELECT 7, 'lakegate' UNION ALL SELECT 8, 'x'")
        .success();
    let theirs = totals(&s3, "sales.events");
    assert_eq!(theirs.last().expect("a day"), &["2024-02-01", "2", "15"]);
    assert_eq!(lg.sql(by_day).success().rows(), theirs);

    // CREATE TABLE goes to Glue (a Parquet table under the database's location) and DROP
    // TABLE removes it there, keeping the files.
    lg.sql("CREATE TABLE glue.sales.daily (n BIGINT) PARTITIONED BY (day STRING)").success();
    let created = glue_table(&s3, "sales.daily");
    assert_eq!(created["StorageDescriptor"]["Location"], "s3://lake/sales.db/daily");
    assert_eq!(created["StorageDescriptor"]["Columns"][0], serde_json::json!({"Name": "n", "Type": "bigint"}));
    assert_eq!(created["PartitionKeys"][0], serde_json::json!({"Name": "day", "Type": "string"}));
    let run = lg.sql("CREATE TABLE glue.sales.daily (n BIGINT)").failure();
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    lg.sql("CREATE TABLE IF NOT EXISTS glue.sales.daily (n BIGINT)").success();
    lg.sql(
        "INSERT INTO glue.sales.daily PARTITION (day) SELECT count(*) AS n, dt AS day FROM glue.sales.events GROUP BY dt",
    )
    .success();
    let theirs = totals(&s3, "sales.daily");
    assert_eq!(theirs.len(), 4);
    let ours = lg.sql("SELECT day, count(*), sum(n) FROM glue.sales.daily GROUP BY day ORDER BY day").success();
    assert_eq!(ours.rows(), theirs);
    let run = lg.sql("CREATE TABLE glue.sales.staged (a INT) USING csv").failure();
    assert!(run.stderr.contains("Parquet tables"), "{}", run.stderr);
    lg.sql("DROP TABLE glue.sales.daily").success();
    assert_eq!(glue_table(&s3, "sales.daily"), Value::Null);
    let run = lg.sql("DROP TABLE glue.sales.daily").failure();
    assert!(run.stderr.contains("no table sales.daily"), "{}", run.stderr);
    lg.sql("DROP TABLE IF EXISTS glue.sales.daily").success();

    // Glue unreachable: lakegate's own tables keep working; Glue's tables name the endpoint.
    let down = format!("http://127.0.0.1:{}", crate::common::free_port());
    let lg = lakegate(&s3, &down);
    lg.sql("CREATE TABLE local (a INT)").success();
    assert_eq!(lg.sql("SELECT count(*) FROM local").success().rows(), vec![vec!["0"]]);
    let run = lg.sql("SELECT * FROM glue.sales.events").failure();
    assert!(run.stderr.contains(&down), "{}", run.stderr);
}
