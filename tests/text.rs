//! CSV and JSON tables: lakegate reads staged files as Spark reads them, with Spark's options.
//! The oracle is Spark itself (`tests/clients/spark_files.py`), on the same files.

use std::path::Path;

use serde_json::{Value, json};

use crate::common::{Lakegate, S3Server, venv_bin};

/// One table over some files: how lakegate creates it and how Spark reads the same files.
struct Case {
    format: &'static str,
    dir: &'static str,
    options: &'static [(&'static str, &'static str)],
    /// Declared columns, as lakegate's DDL and Spark's schema both write them.
    columns: Option<&'static str>,
}

fn write(root: &Path, file: &str, text: &str) {
    let path = root.join(file);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// Files as staging drops have them: quotes, escapes, empty values, Hive partitions, a
/// `_SUCCESS` marker, comments, tabs, compression, nested JSON and missing keys.
fn drops(root: &Path) {
    write(root, "staged/dt=2024-01-01/part-00000.csv", "id,name,amount\n1,\"it's\",2.5\n2,\"a,b\",\n3,plain,7\n");
    write(root, "staged/dt=2024-01-02/part-00001.csv", "id,name,amount\n4,\"say \\\"hi\\\"\",1e3\n5,,0\n");
    write(root, "staged/_SUCCESS", "");
    write(root, "tabs/a.tsv.csv", "# exported nightly\n1\t\t0.5\ttrue\n2\tünïcode\t\tfalse\n");
    write(root, "declared/a.csv", "id,name,amount\n1,x,2.5\n2,y,3\n");
    // RFC 4180's doubled quotes: Spark reads them so only when told the escape is a quote.
    write(root, "doubled/a.csv", "id,name\n1,\"it\"\"s\"\n2,\"\"\"\"\n");
    write(root, "zipped/a.csv", "k,v\nα,1\nβ,2\n");
    let gzip = std::process::Command::new("gzip").arg(root.join("zipped/a.csv")).status().expect("gzip runs");
    assert!(gzip.success());
    write(
        root,
        "events/dt=2024-01-01/a.json",
        "{\"z\":1,\"a\":\"x\",\"n\":{\"k\":[1,2],\"s\":\"q\"}}\n{\"z\":2,\"b\":true}\n",
    );
    write(root, "events/dt=2024-01-02/b.json", "{\"z\":3,\"a\":\"it's \\\"quoted\\\"\",\"n\":{\"k\":[],\"s\":null}}\n");
    write(root, "documents/all.json", "[\n  {\"id\": 1, \"tags\": [\"a\", \"b\"]},\n  {\"id\": 2, \"tags\": []}\n]\n");
}

const CASES: &[Case] = &[
    Case { format: "csv", dir: "staged", options: &[("header", "true")], columns: None },
    Case {
        format: "csv",
        dir: "tabs",
        options: &[("sep", "\\t"), ("inferSchema", "true"), ("comment", "#")],
        columns: None,
    },
    Case {
        format: "csv",
        dir: "declared",
        options: &[("header", "true")],
        columns: Some("id INT, name STRING, amount DOUBLE"),
    },
    Case { format: "csv", dir: "doubled", options: &[("header", "true"), ("escape", "\"")], columns: None },
    Case { format: "csv", dir: "zipped", options: &[("header", "true"), ("compression", "gzip")], columns: None },
    Case { format: "json", dir: "events", options: &[], columns: None },
    Case { format: "json", dir: "documents", options: &[("multiLine", "true")], columns: None },
];

fn options_sql(options: &[(&str, &str)]) -> String {
    let pairs: Vec<String> = options.iter().map(|(k, v)| format!("{k} '{}'", v.replace('\'', "''"))).collect();
    if pairs.is_empty() { String::new() } else { format!("OPTIONS ({})", pairs.join(", ")) }
}

/// Spark's answers for `cases` with the files under `root`.
fn spark(root: &Path, cases: &[Case]) -> Vec<Value> {
    let input: Vec<Value> = cases
        .iter()
        .map(|c| {
            let options: serde_json::Map<String, Value> =
                c.options.iter().map(|(k, v)| ((*k).to_owned(), json!(v.replace("\\t", "\t")))).collect();
            json!({"format": c.format, "path": root.join(c.dir), "options": options, "schema": c.columns})
        })
        .collect();
    let file = root.join("cases.json");
    std::fs::write(&file, serde_json::to_string(&input).expect("json")).expect("write cases");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/spark_files.py");
    let out = std::process::Command::new(venv_bin("python")).arg(script).arg(&file).output().expect("spark runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().expect("spark printed its answers");
    serde_json::from_str::<Vec<Value>>(last).expect("answers are JSON")
}

fn category(arrow_type: &str) -> &'static str {
    match arrow_type {
        t if t.starts_with("Int") || t.starts_with("UInt") => "integer",
        t if t.starts_with("Float") || t.starts_with("Decimal") => "float",
        t if t.starts_with("Utf8") || t.starts_with("LargeUtf8") => "string",
        "Boolean" => "boolean",
        t if t.starts_with("Struct") => "struct",
        t if t.starts_with("List") || t.starts_with("LargeList") => "array",
        other => panic!("no category for {other}"),
    }
}

/// Values as both sides can be compared: numbers as floats, objects without null members.
fn normal(value: Value) -> Value {
    match value {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(items) => Value::Array(items.into_iter().map(normal).collect()),
        Value::Object(members) => {
            Value::Object(members.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, normal(v))).collect())
        }
        other => other,
    }
}

fn json_lines(stdout: &str) -> Vec<serde_json::Map<String, Value>> {
    stdout.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).expect("a JSON row")).collect()
}

/// lakegate's answer for table `t`, in the oracle's shape.
fn lakegate(lg: &Lakegate, table: &str) -> Value {
    let describe = lg.run(&["sql", "--format", "json", "-e", &format!("DESCRIBE {table}")]).success();
    let columns: Vec<(String, String)> = json_lines(&describe.stdout)
        .iter()
        .map(|c| (c["col_name"].as_str().expect("name").to_owned(), c["arrow_type"].as_str().expect("type").to_owned()))
        .collect();
    let select = lg.run(&["sql", "--format", "json", "-e", &format!("SELECT * FROM {table}")]).success();
    let mut rows: Vec<Value> = json_lines(&select.stdout)
        .into_iter()
        .map(|mut row| {
            Value::Array(columns.iter().map(|(name, _)| normal(row.remove(name).unwrap_or(Value::Null))).collect())
        })
        .collect();
    rows.sort_by_key(|r| r.to_string());
    json!({
        "columns": columns.iter().map(|(n, t)| json!([n, category(t)])).collect::<Vec<_>>(),
        "rows": rows,
    })
}

fn spark_normal(answer: &Value) -> Value {
    let mut answer = answer.clone();
    if let Some(rows) = answer.get_mut("rows") {
        let mut normalised: Vec<Value> = rows.as_array().expect("rows").iter().cloned().map(normal).collect();
        normalised.sort_by_key(|r| r.to_string());
        *rows = Value::Array(normalised);
    }
    answer
}

fn create(lg: &Lakegate, table: &str, case: &Case, location: &str) {
    let columns = case.columns.map(|c| format!("({c})")).unwrap_or_default();
    let using = case.format;
    let options = options_sql(case.options);
    lg.sql(&format!("CREATE TABLE {table} {columns} USING {using} {options} LOCATION '{location}'")).success();
}

#[test]
fn csv_and_json_tables_read_staged_files_as_spark_does() {
    let root = tempfile::tempdir().expect("temp dir");
    drops(root.path());
    let answers = spark(root.path(), CASES);
    let lg = Lakegate::new();
    for (i, (case, answer)) in CASES.iter().zip(&answers).enumerate() {
        let table = format!("t{i}");
        create(&lg, &table, case, &root.path().join(case.dir).display().to_string());
        assert_eq!(lakegate(&lg, &table), spark_normal(answer), "{} {:?}", case.dir, case.options);
    }
    // Hive's spelling, and a location that names one file.
    lg.sql(&format!(
        "CREATE EXTERNAL TABLE hive_csv STORED AS CSV LOCATION '{}'",
        root.path().join("declared/a.csv").display()
    ))
    .success();
    let run = lg.sql("SELECT _c0, _c1 FROM hive_csv ORDER BY _c0").success();
    assert_eq!(run.rows(), vec![vec!["1", "x"], vec!["2", "y"], vec!["id", "name"]]);
    // A partition filter prunes: only the other day's file would fail to parse as this one.
    let run = lg.sql("SELECT count(*) FROM t0 WHERE dt = '2024-01-02'").success();
    assert_eq!(run.rows(), vec![vec!["2"]]);
}

#[test]
fn csv_tables_on_s3_read_as_the_same_files_on_disk() {
    let root = tempfile::tempdir().expect("temp dir");
    drops(root.path());
    let s3 = S3Server::start();
    s3.create_bucket("drops");
    for file in ["staged/dt=2024-01-01/part-00000.csv", "staged/dt=2024-01-02/part-00001.csv", "staged/_SUCCESS"] {
        s3.put("drops", file, &std::fs::read(root.path().join(file)).expect("read"));
    }
    let lg = s3.env(Lakegate::new());
    create(&lg, "local", &CASES[0], &root.path().join("staged").display().to_string());
    create(&lg, "remote", &CASES[0], "s3a://drops/staged");
    assert_eq!(lakegate(&lg, "remote"), lakegate(&lg, "local"));
}

#[test]
fn bad_csv_and_json_tables_get_errors_that_name_the_problem() {
    let root = tempfile::tempdir().expect("temp dir");
    drops(root.path());
    let lg = Lakegate::new();
    let at = |dir: &str| root.path().join(dir).display().to_string();
    let fails = |sql: String, expected: &[&str]| {
        let run = lg.sql(&sql).failure();
        for part in expected {
            assert!(run.stderr.contains(part), "{sql}: expected '{part}' in: {}", run.stderr);
        }
    };
    fails(format!("CREATE TABLE a USING csv OPTIONS (heder 'true') LOCATION '{}'", at("staged")), &["heder", "header"]);
    fails(format!("CREATE TABLE a USING csv OPTIONS (sep '::') LOCATION '{}'", at("staged")), &["'sep'", "'::'"]);
    fails(format!("CREATE TABLE a USING csv OPTIONS (sep ';', delimiter ',') LOCATION '{}'", at("staged")), &["sep"]);
    fails(format!("CREATE TABLE a USING json LOCATION '{}'", at("staged")), &["no JSON files at", "ending in '.json'"]);
    fails(format!("CREATE TABLE a USING csv OPTIONS (nullValue 'NA') LOCATION '{}'", at("staged")), &["NULLIF"]);
    fails(format!("CREATE TABLE a USING csv OPTIONS (compression 'lz4') LOCATION '{}'", at("zipped")), &["gzip"]);
    assert_eq!(lg.sql("SHOW TABLES").success().rows(), Vec::<Vec<String>>::new());
    // A malformed row fails the query and names the problem; the table stays readable once fixed.
    write(root.path(), "broken/a.json", "{\"id\": 1}\n");
    lg.sql(&format!("CREATE TABLE broken USING json LOCATION '{}'", at("broken"))).success();
    write(root.path(), "broken/b.json", "{\"id\": 2\n");
    let run = lg.sql("SELECT * FROM broken").failure();
    assert!(run.stderr.to_lowercase().contains("json"), "{}", run.stderr);
    std::fs::remove_file(root.path().join("broken/b.json")).expect("fix");
    assert_eq!(lg.sql("SELECT id FROM broken").success().rows(), vec![vec!["1"]]);
    // CSV and JSON tables are read-only.
    let run = lg.sql("INSERT INTO broken VALUES (3)").failure();
    assert!(run.stderr.contains("broken"), "{}", run.stderr);
}
