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
pub(crate) fn files_by_partition(dir: &Path) -> Vec<(String, Vec<PathBuf>)> {
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

pub(crate) fn user_ids(file: &Path) -> Vec<i64> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).expect("file"))
        .expect("parquet")
        .build()
        .expect("reader");
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
    lg.sql("SELECT dt, version, count(*) AS n FROM lake.events GROUP BY dt, version ORDER BY dt, version")
        .success()
        .rows()
}

/// An overwrite of 50M rows: long enough to be stopped while it writes.
const BIG_OVERWRITE: &str = "INSERT OVERWRITE TABLE lake.events PARTITION (dt) SELECT value % 1000 AS user_id, \
    'big' AS version, concat('2018-03-0', CAST(value % 5 + 1 AS STRING)) AS dt FROM generate_series(0, 50000000) \
    DISTRIBUTE BY dt SORT BY user_id";

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
    lg.sql(&format!(
        "SET datafusion.execution.batch_size = 500; {}",
        overwrite_sql("v3", "DISTRIBUTE BY dt SORT BY user_id")
    ))
    .success();
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
    lg.sql(&format!(
        "INSERT OVERWRITE TABLE lake.events PARTITION (dt) SELECT * FROM ({}) WHERE dt >= '2018-03-04'",
        source_sql("v2")
    ))
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
    let out = std::process::Command::new(venv_bin("python"))
        .args(["-c", script, &s3.endpoint, bucket, prefix])
        .output()
        .expect("python runs");
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

/// What a partition held before the write that gets killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Partitions the write creates, in a table whose other partition lakegate wrote.
    New,
    /// Partitions written by another tool (Spark's file names, a `_SUCCESS` file), no markers
    /// anywhere in the table.
    Foreign,
    /// Partitions lakegate wrote before, with their markers.
    Markers,
}

/// The failpoints of a commit (`LAKEGATE_PAUSE_AT`), in order.
const STEPS: [&str; 4] = ["staged", "moved", "published-one", "published"];

/// (dt, version, rows) of a table.
type Counts = std::collections::BTreeMap<(String, String), u64>;

/// One write killed at one step.
#[derive(Debug, Clone)]
struct CrashCase {
    layout: Layout,
    step: &'static str,
    overwrite: bool,
}

/// The killed write's rows: 7 in dt=a, published first, and 11 in dt=b.
const NEW_ROWS: [(&str, u64); 2] = [("a", 7), ("b", 11)];
/// What Foreign and Markers partitions hold before: 100 rows in dt=a, 200 in dt=b.
const OLD_ROWS: [(&str, u64); 2] = [("a", 100), ("b", 200)];

impl CrashCase {
    /// Every step for every layout with INSERT OVERWRITE, and every step of an INSERT INTO
    /// into a table another tool wrote.
    fn all() -> Vec<CrashCase> {
        let mut cases = Vec::new();
        for layout in [Layout::New, Layout::Foreign, Layout::Markers] {
            for step in STEPS {
                cases.push(CrashCase { layout, step, overwrite: true });
            }
        }
        cases.extend(STEPS.into_iter().map(|step| CrashCase { layout: Layout::Foreign, step, overwrite: false }));
        cases
    }

    fn name(&self) -> String {
        let layout = format!("{:?}", self.layout).to_lowercase();
        let mode = if self.overwrite { "overwrite" } else { "append" };
        format!("{layout}_{}_{mode}", self.step.replace('-', "_"))
    }

    fn before(&self) -> Counts {
        let version = match self.layout {
            Layout::New => return Counts::from([(("z".into(), "old".into()), 3)]),
            Layout::Foreign => "foreign",
            Layout::Markers => "old",
        };
        OLD_ROWS.iter().map(|(dt, n)| (((*dt).to_owned(), version.to_owned()), *n)).collect()
    }

    /// What lakegate shows after the kill: the partitions whose marker was written are new.
    fn seen_by_lakegate(&self) -> Counts {
        let mut counts = self.before();
        for (dt, n) in NEW_ROWS {
            let published = match self.step {
                "published-one" => dt == "a",
                "published" => true,
                _ => false,
            };
            if published {
                if self.overwrite {
                    counts.retain(|(d, _), _| d != dt);
                }
                counts.insert((dt.to_owned(), "new".to_owned()), n);
            }
        }
        counts
    }

    /// What a plain Parquet reader shows after the kill: every file in place, the moved files of
    /// the killed write included, since nothing is deleted before the last marker is written.
    fn seen_by_plain_readers(&self) -> Counts {
        let mut counts = self.before();
        if self.step != "staged" {
            counts.extend(NEW_ROWS.iter().map(|(dt, n)| (((*dt).to_owned(), "new".to_owned()), *n)));
        }
        counts
    }

    /// What both show after the job is rerun (overwrites only) and the table is vacuumed.
    fn after_rerun(&self) -> Counts {
        if !self.overwrite {
            return self.seen_by_lakegate();
        }
        let mut counts = self.before();
        counts.retain(|(dt, _), _| !NEW_ROWS.iter().any(|(d, _)| d == dt));
        counts.extend(NEW_ROWS.iter().map(|(dt, n)| (((*dt).to_owned(), "rerun".to_owned()), *n)));
        counts
    }

    fn write_sql(&self, version: &str) -> String {
        let verb = if self.overwrite { "OVERWRITE" } else { "INTO" };
        format!(
            "INSERT {verb} TABLE crash.{} PARTITION (dt) SELECT value AS id, '{version}' AS version, \
             CASE WHEN value < 7 THEN 'a' ELSE 'b' END AS dt FROM generate_series(0, 17)",
            self.name()
        )
    }
}

/// Where the crash tables live: a local directory, or a bucket and prefix on the moto server.
enum Store<'a> {
    Local(PathBuf),
    S3 { server: &'a S3Server, bucket: &'a str, prefix: &'a str },
}

impl Store<'_> {
    fn location(&self, table: &str) -> String {
        match self {
            Store::Local(dir) => dir.join(table).display().to_string(),
            Store::S3 { bucket, prefix, .. } => format!("s3a://{bucket}/{prefix}{table}"),
        }
    }

    /// Runs one of the Python scripts below on the tables' directories (downloaded from S3
    /// first when they live there: the test venv's DuckDB has no S3 extension, and downloading
    /// every object is what a plain reader of the bucket reads anyway).
    fn python(&self, script: &str, args: &[String]) -> String {
        let mut command = std::process::Command::new(venv_bin("python"));
        command.args(["-c", &format!("{PYTHON_STORE}\n{script}")]);
        match self {
            Store::Local(dir) => command.args(["local", &dir.display().to_string()]),
            Store::S3 { server, bucket, prefix } => command.args(["s3", &server.endpoint, bucket, prefix]),
        };
        let out = command.args(args).output().expect("python runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Gives the scripts `root` (a local directory holding the tables) and `publish()`, which
/// uploads what was written under it when the tables live on S3.
const PYTHON_STORE: &str = r#"
import os, shutil, sys, tempfile
kind = sys.argv[1]
if kind == 's3':
    import boto3
    endpoint, bucket, prefix = sys.argv[2:5]
    args = sys.argv[5:]
    s3 = boto3.client('s3', endpoint_url=endpoint, aws_access_key_id='testing', aws_secret_access_key='testing', region_name='us-east-1')
    root = tempfile.mkdtemp()
    for page in s3.get_paginator('list_objects_v2').paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get('Contents', []):
            path = os.path.join(root, o['Key'][len(prefix):])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            s3.download_file(bucket, o['Key'], path)
else:
    root = sys.argv[2]
    args = sys.argv[3:]
def publish():
    if kind == 's3':
        for dirpath, _, files in os.walk(root):
            for name in files:
                path = os.path.join(dirpath, name)
                s3.upload_file(path, bucket, prefix + os.path.relpath(path, root))
        shutil.rmtree(root)
"#;

/// Writes what Spark would leave in each table named in the arguments: dt=a and dt=b with
/// `part-00000-<uuid>-c000.snappy.parquet` files, and `_SUCCESS`.
const PYTHON_FOREIGN: &str = r#"
import duckdb, uuid
for table in args:
    for dt, rows in (('a', 100), ('b', 200)):
        os.makedirs(f'{root}/{table}/dt={dt}', exist_ok=True)
        path = f'{root}/{table}/dt={dt}/part-00000-{uuid.uuid4()}-c000.snappy.parquet'
        duckdb.sql(f"COPY (SELECT range AS id, 'foreign' AS version FROM range({rows})) TO '{path}' (FORMAT parquet)")
    open(f'{root}/{table}/_SUCCESS', 'w').close()
publish()
"#;

/// Prints `table,dt,version,rows` for each table directory, as DuckDB's plain Parquet reader
/// sees it: every `*.parquet` file of the Hive partitions, markers unknown to it.
const PYTHON_PLAIN_READ: &str = r#"
import duckdb
for table in sorted(os.listdir(root)):
    files = f'{root}/{table}/*/*.parquet'
    query = f"SELECT dt, version, count(*) FROM read_parquet('{files}', hive_partitioning=true, union_by_name=true) GROUP BY ALL"
    for dt, version, n in duckdb.sql(query).fetchall():
        print(f'{table},{dt},{version},{n}')
if kind == 's3':
    shutil.rmtree(root)
"#;

fn parse_counts(rows: impl Iterator<Item = Vec<String>>) -> std::collections::BTreeMap<String, Counts> {
    let mut tables: std::collections::BTreeMap<String, Counts> = std::collections::BTreeMap::new();
    for row in rows {
        let [table, dt, version, n] = row.as_slice() else { panic!("unexpected row {row:?}") };
        tables.entry(table.clone()).or_default().insert((dt.clone(), version.clone()), n.parse().expect("a count"));
    }
    tables
}

/// Every crash table as lakegate reads it.
fn lakegate_counts(lg: &Lakegate, cases: &[CrashCase]) -> std::collections::BTreeMap<String, Counts> {
    let query = cases
        .iter()
        .map(|c| format!("SELECT '{0}' AS t, dt, version, count(*) AS n FROM crash.{0} GROUP BY dt, version", c.name()))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    parse_counts(lg.sql(&query).success().rows().into_iter())
}

fn plain_counts(store: &Store) -> std::collections::BTreeMap<String, Counts> {
    let out = store.python(PYTHON_PLAIN_READ, &[]);
    parse_counts(out.lines().map(|l| l.split(',').map(str::to_owned).collect()))
}

#[track_caller]
fn assert_counts(
    what: &str,
    seen: &std::collections::BTreeMap<String, Counts>,
    cases: &[CrashCase],
    expected: impl Fn(&CrashCase) -> Counts,
) {
    let mut wrong = Vec::new();
    for case in cases {
        let want = expected(case);
        let got = seen.get(&case.name()).cloned().unwrap_or_default();
        if got != want {
            wrong.push(format!("{}: expected {want:?}, got {got:?}", case.name()));
        }
    }
    assert!(wrong.is_empty(), "{what}, {} of {} cases wrong:\n{}", wrong.len(), cases.len(), wrong.join("\n"));
}

/// Kills a write at every step of its commit, into partitions of every layout, then checks
/// what lakegate and DuckDB's plain reader count; then reruns the overwrites and vacuums.
fn check_crash_matrix(lg: &Lakegate, store: &Store) {
    let cases = CrashCase::all();
    let mut setup = vec!["CREATE DATABASE crash".to_owned()];
    for case in &cases {
        setup.push(format!(
            "CREATE EXTERNAL TABLE crash.{} (id BIGINT, version STRING) USING PARQUET PARTITIONED BY (dt STRING) LOCATION '{}'",
            case.name(),
            store.location(&case.name())
        ));
        match case.layout {
            Layout::New => setup.push(format!("INSERT OVERWRITE TABLE crash.{} PARTITION (dt='z') SELECT value, 'old' FROM generate_series(0, 2)", case.name())),
            Layout::Markers => setup.push(format!(
                "INSERT OVERWRITE TABLE crash.{} PARTITION (dt) SELECT value, 'old', CASE WHEN value < 100 THEN 'a' ELSE 'b' END FROM generate_series(0, 299)",
                case.name()
            )),
            Layout::Foreign => {}
        }
    }
    lg.sql(&setup.join(";\n")).success();
    let foreign: Vec<String> = cases.iter().filter(|c| c.layout == Layout::Foreign).map(CrashCase::name).collect();
    store.python(PYTHON_FOREIGN, &foreign);
    assert_counts("before the writes, through lakegate", &lakegate_counts(lg, &cases), &cases, CrashCase::before);
    assert_counts("before the writes, through DuckDB", &plain_counts(store), &cases, CrashCase::before);

    for case in &cases {
        kill_at(lg, case.step, &case.write_sql("new"));
    }
    assert_counts(
        "after the kills, through lakegate",
        &lakegate_counts(lg, &cases),
        &cases,
        CrashCase::seen_by_lakegate,
    );
    assert_counts("after the kills, through DuckDB", &plain_counts(store), &cases, CrashCase::seen_by_plain_readers);

    // The scheduler reruns the overwrites; their own clean-up removes what the kills left.
    let reruns: Vec<String> = cases.iter().filter(|c| c.overwrite).map(|c| c.write_sql("rerun")).collect();
    lg.sql(&reruns.join(";\n")).success();
    assert_counts("after the reruns, through lakegate", &lakegate_counts(lg, &cases), &cases, CrashCase::after_rerun);
    let plain_before_vacuum =
        |case: &CrashCase| if case.overwrite { case.after_rerun() } else { case.seen_by_plain_readers() };
    assert_counts("after the reruns, through DuckDB", &plain_counts(store), &cases, plain_before_vacuum);

    // VACUUM removes the moved files of the killed appends, and the staged files of every kill.
    let vacuums: Vec<String> = cases.iter().map(|c| format!("VACUUM crash.{} RETAIN 0 HOURS", c.name())).collect();
    let vacuumed = lg.sql(&vacuums.join(";\n")).success();
    assert!(vacuumed.stderr.contains("abandoned files"), "{}", vacuumed.stderr);
    assert_counts("after VACUUM, through lakegate", &lakegate_counts(lg, &cases), &cases, CrashCase::after_rerun);
    assert_counts("after VACUUM, through DuckDB", &plain_counts(store), &cases, CrashCase::after_rerun);
    // Nothing is left for a second VACUUM.
    let again = lg.sql(&vacuums.join(";\n")).success();
    let clean = again
        .stderr
        .lines()
        .filter(|l| l.contains("vacuumed crash.") && l.contains(": 0 replaced files, 0 abandoned files"))
        .count();
    assert_eq!(clean, cases.len(), "{}", again.stderr);
}

#[test]
fn a_writer_killed_at_any_step_leaves_each_partition_old_or_new_on_disk() {
    let lg = Lakegate::new();
    let dir = lg.data_dir.path().join("crash");
    std::fs::create_dir_all(&dir).expect("dir");
    check_crash_matrix(&lg, &Store::Local(dir.clone()));
    let leftovers: Vec<String> = walk(&dir).into_iter().filter(|p| p.contains("/staging/")).collect();
    assert!(leftovers.is_empty(), "vacuum leaves no staged files: {leftovers:?}");
    // Other tools' files that are not Parquet data stay.
    for case in CrashCase::all().iter().filter(|c| c.layout == Layout::Foreign) {
        assert!(dir.join(case.name()).join("_SUCCESS").exists(), "{}", case.name());
    }
}

#[test]
fn a_writer_killed_at_any_step_leaves_each_partition_old_or_new_on_s3() {
    let s3 = S3Server::start();
    s3.create_bucket("lake");
    let lg = s3.env(Lakegate::new());
    check_crash_matrix(&lg, &Store::S3 { server: &s3, bucket: "lake", prefix: "crash/" });
    let keys = list_keys(&s3, "lake", "crash/");
    assert!(!keys.iter().any(|k| k.contains("/staging/")), "vacuum leaves no staged files: {keys:?}");
    assert_eq!(keys.iter().filter(|k| k.ends_with("/_SUCCESS")).count(), 8, "{keys:?}");
}

#[test]
fn a_writer_killed_mid_write_changes_nothing() {
    let lg = Lakegate::new();
    let dir = lg.data_dir.path().join("events");
    create_events(&lg, &dir.display().to_string());
    lg.sql(&overwrite_sql("old", "")).success();
    let mut child = lg
        .command()
        .args(["sql", "-e", BIG_OVERWRITE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    // Kill once it has staged some bytes.
    crate::common::wait_for("staged files", std::time::Duration::from_secs(120), || {
        walk(&dir).iter().any(|p| p.contains("/staging/") && p.ends_with(".parquet"))
    });
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert_eq!(contents(&lg), all_of("old"));
}

/// A write stopped by its time limit (as by `KILL QUERY`) publishes nothing: every partition
/// stays wholly old, and its staged files are gone.
#[test]
fn a_write_over_its_time_limit_changes_nothing() {
    let lg = Lakegate::new();
    let dir = lg.data_dir.path().join("events");
    create_events(&lg, &dir.display().to_string());
    lg.sql(&overwrite_sql("old", "")).success();
    let stopped = lg.sql(&format!("SET statement_timeout = '500ms'; {BIG_OVERWRITE}")).failure();
    assert!(stopped.stderr.contains("time limit of 500ms"), "{}", stopped.stderr);
    assert_eq!(contents(&lg), all_of("old"));
    // A plain reader of the files sees the same: only the old version's files are in place.
    for (partition, files) in files_by_partition(&dir) {
        let rows: usize = files.iter().map(|f| user_ids(f).len()).sum();
        assert_eq!(rows, 4000, "{partition}: {files:?}");
    }
    assert!(!walk(&dir).iter().any(|p| p.contains("/staging/") && p.ends_with(".parquet")), "{:?}", walk(&dir));
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
    assert!(
        run.stderr.contains("replaced 3 partitions: dt=2018-03-02, dt=2018-03-03, dt=2018-03-04"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("dt=2018-03-02") && !run.stdout.contains("dt=2018-03-01"), "{}", run.stdout);
    let dry = lg.run(&["run", path, "--var", "ds=2018-03-05", "--var", "start=2018-03-05", "--dry-run"]).success();
    assert!(
        dry.stdout.contains("replaces 1 partitions: dt=2018-03-05") && dry.stdout.contains("SortExec"),
        "{}",
        dry.stdout
    );
    for (partition, files) in files_by_partition(&warehouse.join("daily_users")) {
        assert_eq!(files.len(), 1, "{partition}");
        let ids = user_ids(&files[0]);
        assert!(ids.windows(2).all(|w| w[0] <= w[1]), "{partition} is sorted");
    }
}

#[test]
fn an_overwrite_deletes_only_parquet_data_files_and_refuses_locations_it_does_not_own() {
    let lg = Lakegate::new();
    let data = lg.data_dir.path();
    let events = data.join("tables").join("events");
    let flat = data.join("tables").join("flat");
    std::fs::create_dir_all(data.join("tables")).expect("dir");
    lg.sql(&format!(
        "CREATE DATABASE lake; \
         CREATE EXTERNAL TABLE lake.events (id BIGINT) USING PARQUET PARTITIONED BY (dt STRING) LOCATION '{}'; \
         CREATE EXTERNAL TABLE lake.flat (id BIGINT) USING PARQUET LOCATION '{}'; \
         INSERT OVERWRITE TABLE lake.events PARTITION (dt) SELECT value, CASE WHEN value < 3 THEN 'a' ELSE 'b' END FROM generate_series(0, 9); \
         INSERT OVERWRITE TABLE lake.flat SELECT value FROM generate_series(0, 9)",
        events.display(),
        flat.display()
    ))
    .success();
    // Files a table's directories hold besides its data: lakegate must leave them alone.
    let kept = [
        events.join("notes.txt"),
        events.join("dt=a").join("schema.json"),
        events.join("dt=a").join(".part-0.parquet.crc"),
        flat.join("notes.txt"),
    ];
    for file in &kept {
        std::fs::write(file, "keep me").expect("write");
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    lg.sql(
        "INSERT OVERWRITE TABLE lake.events PARTITION (dt) SELECT value, CASE WHEN value < 5 THEN 'a' ELSE 'b' END FROM generate_series(0, 5); \
         INSERT OVERWRITE TABLE lake.flat SELECT value FROM generate_series(0, 3); \
         VACUUM lake.events RETAIN 0 HOURS; VACUUM lake.flat RETAIN 0 HOURS",
    )
    .success();
    for file in &kept {
        assert!(file.exists(), "{} was deleted", file.display());
    }
    let counts = lg.sql("SELECT dt, count(*) FROM lake.events GROUP BY dt ORDER BY dt").success().rows();
    assert_eq!(counts, [vec!["a".to_owned(), "5".to_owned()], vec!["b".to_owned(), "1".to_owned()]]);
    assert_eq!(lg.sql("SELECT count(*) FROM lake.flat").success().first_count(), 4);
    let parquet =
        |dir: &Path| walk(dir).into_iter().filter(|p| p.ends_with(".parquet") && !p.contains("/_lakegate/")).count();
    assert_eq!((parquet(&events), parquet(&flat)), (2, 1), "replaced data files are deleted");

    // Tables whose location is not theirs alone: overwriting (or vacuuming) would delete the
    // Parquet files of other tables.
    let refused = [
        ("at_data_dir", data.to_path_buf(), "lakegate's data directory"),
        ("at_warehouse", data.join("warehouse"), "the warehouse root"),
        ("above_events", data.join("tables"), "contains the location of table lake."),
    ];
    for (name, location, reason) in &refused {
        lg.sql(&format!(
            "CREATE EXTERNAL TABLE lake.{name} (id BIGINT) USING PARQUET LOCATION '{}'",
            location.display()
        ))
        .success();
        for statement in
            [format!("INSERT OVERWRITE TABLE lake.{name} SELECT 1"), format!("VACUUM lake.{name} RETAIN 0 HOURS")]
        {
            let run = lg.sql(&statement).failure();
            assert!(
                run.stderr.contains(reason) && run.stderr.contains(&format!("lake.{name} is refused")),
                "{statement}: {}",
                run.stderr
            );
        }
    }
    // The spelling does not matter.
    let dotted = format!("{}/tables/../tables/events/..", data.display());
    lg.sql(&format!("CREATE EXTERNAL TABLE lake.dotted (id BIGINT) USING PARQUET LOCATION '{dotted}'")).success();
    let run = lg.sql("INSERT OVERWRITE TABLE lake.dotted SELECT 1").failure();
    assert!(run.stderr.contains("contains the location of table lake."), "{}", run.stderr);
    // Appends delete nothing and stay allowed; nothing of the other tables went.
    lg.sql("INSERT INTO TABLE lake.above_events SELECT 42").success();
    assert_eq!(lg.sql("SELECT count(*) FROM lake.events").success().first_count(), 6);
    assert_eq!(lg.sql("SELECT count(*) FROM lake.flat").success().first_count(), 4);
    for file in &kept {
        assert!(file.exists(), "{} was deleted", file.display());
    }
}
