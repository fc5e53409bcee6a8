//! The command line as users run it: one process after another over the same catalog.

use std::process::Command;

use crate::common::{Lakegate, venv_bin};

fn write_events(lg: &Lakegate) -> String {
    let dir = lg.data_dir.path().join("events");
    lg.sql(&format!(
        "COPY (SELECT * FROM (VALUES (1, 'impression', '2018-03-05'), (2, 'click', '2018-03-05'), (3, 'impression', '2018-03-06')) AS v(uid, type, dt)) \
         TO '{}/' STORED AS PARQUET PARTITIONED BY (dt)",
        dir.display()
    ))
    .success();
    dir.display().to_string()
}

#[test]
fn a_table_created_by_one_process_is_queried_by_the_next() {
    let lg = Lakegate::new();
    let dir = write_events(&lg);
    lg.sql(&format!("CREATE DATABASE logs; CREATE TABLE logs.events (uid BIGINT, type STRING) USING PARQUET PARTITIONED BY (dt STRING) LOCATION '{dir}'"))
        .success();
    let run = lg.sql("SELECT dt, count(*) AS n FROM logs.events GROUP BY dt ORDER BY dt").success();
    assert_eq!(run.rows(), vec![vec!["2018-03-05", "2"], vec!["2018-03-06", "1"]]);
    let tables = lg.run(&["catalog", "tables", "logs"]).success();
    assert!(tables.stdout.contains("events"), "{}", tables.stdout);
}

#[test]
fn a_failing_script_names_its_line_and_stops() {
    let lg = Lakegate::new();
    let script = lg.data_dir.path().join("nightly.sql");
    std::fs::write(&script, "-- nightly\nCREATE DATABASE a;\n\nSELECT *\n  FROM missing_table;\nCREATE DATABASE b;\n")
        .expect("script written");
    let run = lg.run(&["sql", "-f", script.to_str().expect("utf-8 path")]).failure();
    assert!(run.stderr.contains("nightly.sql:4"), "{}", run.stderr);
    assert!(run.stderr.contains("missing_table"), "{}", run.stderr);
    let databases = lg.sql("SHOW DATABASES").success();
    assert_eq!(databases.rows(), vec![vec!["a"], vec!["default"]], "the statement after the failure must not run");
}

#[test]
fn processes_creating_tables_at_once_share_one_catalog() {
    let lg = Lakegate::new();
    let dir = write_events(&lg);
    let children: Vec<_> = (0..4)
        .map(|p| {
            let statements: Vec<String> =
                (0..5).map(|t| format!("CREATE EXTERNAL TABLE t_{p}_{t} STORED AS PARQUET LOCATION '{dir}'")).collect();
            lg.command().args(["sql", "-e", &statements.join(";")]).spawn().expect("spawns")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().expect("waits").success());
    }
    let run = lg
        .sql(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'default' AND table_name LIKE 't\\_%'",
        )
        .success();
    assert_eq!(run.rows(), vec![vec!["20"]]);
    let sum = lg.sql("SELECT count(*) FROM t_3_4").success();
    assert_eq!(sum.rows(), vec![vec!["3"]]);
}

#[test]
fn output_formats() {
    let lg = Lakegate::new();
    let json = lg.run(&["sql", "--format", "json", "-e", "SELECT 1 AS a, 'x' AS b"]).success();
    assert_eq!(json.stdout.trim(), r#"{"a":1,"b":"x"}"#);
    let out = lg.data_dir.path().join("out.parquet");
    lg.run(&["sql", "--format", "parquet", "-o", out.to_str().expect("utf-8"), "-e", "SELECT 42 AS answer"]).success();
    let back = lg.sql(&format!("SELECT answer FROM '{}'", out.display())).success();
    assert_eq!(back.rows(), vec![vec!["42"]]);
}

#[test]
fn bad_config_files_are_named() {
    let lg = Lakegate::new();
    let config = lg.data_dir.path().join("lakegate.toml");
    std::fs::write(&config, "[s3]\nendpiont = 'http://x'\n").expect("written");
    let run = lg.run(&["--config", config.to_str().expect("utf-8"), "sql", "-e", "SELECT 1"]).failure();
    assert!(run.stderr.contains("lakegate.toml") && run.stderr.contains("endpiont"), "{}", run.stderr);
}

/// The demo's answer must match DuckDB's over the same files.
#[test]
fn demo_answers_the_ncis_question_as_duckdb_does() {
    let lg = Lakegate::new();
    let run = lg.run(&["demo", "--rows", "150000"]).success();
    let answer = run.first_count();
    assert!(answer > 0, "the sample data must contain NCIS impressions");
    let root = lg.data_dir.path().join("warehouse/demo");
    let query = format!(
        "import duckdb; print(duckdb.sql(\"\"\"SELECT count(*) FROM read_parquet('{r}/adserver_logs/*/*.parquet', hive_partitioning=true) a \
         JOIN '{r}/users/*.parquet' u ON a.uid = u.uid JOIN '{r}/programs/*.parquet' p ON a.pid = p.id \
         WHERE a.type = 'impression' AND u.age BETWEEN 25 AND 49 AND u.gender = 'F' AND p.name = 'NCIS'\"\"\").fetchone()[0])",
        r = root.display()
    );
    let duckdb = Command::new(venv_bin("python")).args(["-c", &query]).output().expect("python runs");
    assert!(duckdb.status.success(), "duckdb failed: {}", String::from_utf8_lossy(&duckdb.stderr));
    let expected: u64 = String::from_utf8_lossy(&duckdb.stdout).trim().parse().expect("a count");
    assert_eq!(answer, expected);
}

#[test]
fn partition_filters_prune_directories() {
    let lg = Lakegate::new();
    let dir = write_events(&lg);
    lg.sql(&format!("CREATE EXTERNAL TABLE events STORED AS PARQUET LOCATION '{dir}'")).success();
    let plan = lg.run(&["sql", "-e", "EXPLAIN SELECT uid FROM events WHERE dt = '2018-03-06'"]).success();
    assert!(plan.stdout.contains("dt=2018-03-06"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("dt=2018-03-05"), "the other partition must be pruned:\n{}", plan.stdout);
}

#[test]
fn the_repl_runs_multi_line_statements_and_browsing_commands() {
    use std::io::Write as _;
    use std::process::Stdio;

    let lg = Lakegate::new();
    let dir = write_events(&lg);
    let mut child = lg
        .command()
        .arg("repl")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("repl starts");
    let input = format!(
        "CREATE EXTERNAL TABLE events\n  STORED AS PARQUET\n  LOCATION '{dir}';\n\\dt\nSELECT count(*) AS n\n  FROM events\n  WHERE dt = '2018-03-05';\nSELECT * FROM nope;\n\\d events\n\\q\n"
    );
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("input written");
    let output = child.wait_with_output().expect("repl exits");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("created table default.events"), "{stdout}");
    assert!(stdout.contains("| default  | events     | parquet"), "\\dt lists the table:\n{stdout}");
    assert!(stdout.contains("| 2 |") && stdout.contains("1 row in"), "the count and its timing:\n{stdout}");
    assert!(
        stderr.contains("table 'default.nope' does not exist"),
        "errors are printed and the shell goes on:\n{stderr}"
    );
    assert!(stdout.contains("| dt       | STRING"), "\\d describes:\n{stdout}");
}

#[test]
fn a_nightly_script_runs_with_airflow_and_hive_variables() {
    let lg = Lakegate::new();
    let dir = write_events(&lg);
    let script = lg.data_dir.path().join("nightly.sql");
    std::fs::write(
        &script,
        format!(
            "-- {{{{ ds }}}} is Airflow's, ${{lookback}} Hive's\nCREATE DATABASE IF NOT EXISTS reports;\n\
             CREATE EXTERNAL TABLE IF NOT EXISTS reports.events STORED AS PARQUET LOCATION '{dir}';\n\
             SELECT count(*) AS n, '{{{{ ds_nodash }}}}' AS day FROM reports.events WHERE dt = '{{{{ ds }}}}' AND uid < ${{hivevar:lookback}};\n"
        ),
    )
    .expect("script written");
    let path = script.to_str().expect("utf-8");
    let run = lg.run(&["run", path, "--var", "ds=2018-03-05", "--var", "lookback=7"]).success();
    assert!(run.stdout.contains("| 2 | 20180305 |"), "{}", run.stdout);
    assert!(run.stderr.contains("nightly.sql:4: 1 row (") && run.stderr.contains("3 statements in"), "{}", run.stderr);

    let dry = lg.run(&["run", path, "--var", "ds=2018-03-06", "--var", "lookback=7", "--dry-run"]).success();
    assert!(dry.stdout.contains("-- ") && dry.stdout.contains("WHERE dt = '2018-03-06' AND uid < 7"), "{}", dry.stdout);

    let missing = lg.run(&["run", path, "--var", "ds=2018-03-05"]).failure();
    assert!(
        missing.stderr.contains("nightly.sql") && missing.stderr.contains("unknown variable 'lookback'"),
        "{}",
        missing.stderr
    );
}
