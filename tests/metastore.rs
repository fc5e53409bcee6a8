//! A real Hive metastore (`scripts/services/hive-metastore.sh`, from Maven Central) that Spark
//! fills, read by lakegate as a catalog with no registration; Spark is the oracle.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::common::{Lakegate, S3Server, venv_bin};
use crate::flight::{PASSWORD, USER};

/// A metastore of its own that reaches moto's S3 through s3a, as Spark does; stopped (by
/// its pid, through the script) on drop.
struct Metastore {
    uri: String,
    state: tempfile::TempDir,
    s3: S3Server,
}

/// moto's credentials, for the metastore's and Spark's s3a.
const S3_CREDENTIALS: [(&str, &str); 3] =
    [("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_REGION", "us-east-1")];

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/services/hive-metastore.sh")
}

impl Metastore {
    fn start() -> Self {
        let s3 = S3Server::start();
        s3.create_bucket("sparklake");
        let state = tempfile::tempdir().expect("state dir");
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .env("LAKEGATE_HMS_STATE", state.path().join("state"))
            .env("LAKEGATE_HMS_S3_ENDPOINT", &s3.endpoint)
            .envs(S3_CREDENTIALS)
            .output()
            .expect("hive-metastore.sh runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "the metastore did not start:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
        let uri = text.lines().find_map(|l| l.strip_prefix("HIVE_METASTORE_URI=")).expect("URI").to_owned();
        Self { uri, state, s3 }
    }

    fn stop(&self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .env("LAKEGATE_HMS_STATE", self.state.path().join("state"))
            .output();
    }

    /// lakegate with this metastore as catalog `hive`.
    fn lakegate(&self) -> Lakegate {
        let lg = self.s3.env(Lakegate::new());
        let config = lg.data_dir.path().join("lakegate.toml");
        let toml = format!(
            "[[catalogs]]\nname = \"hive\"\nkind = \"hive_metastore\"\nuri = \"{}\"\ncache_seconds = 0\n",
            self.uri
        );
        std::fs::write(&config, toml).expect("config");
        lg
    }

    /// Runs `statements` in one Spark session on this metastore; each one's rows.
    fn spark(&self, warehouse: &Path, statements: &[&str]) -> Vec<Vec<Value>> {
        let mut command = Command::new(venv_bin("python"));
        command
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/spark_hive.py"))
            .args(["--metastore", &self.uri, "--s3-endpoint", &self.s3.endpoint, "--warehouse"])
            .arg(warehouse)
            .envs(S3_CREDENTIALS);
        for statement in statements {
            command.args(["--sql", statement]);
        }
        let out = command.output().expect("spark runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "spark failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        stdout
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| {
                let answer: Value = serde_json::from_str(l).expect("JSON");
                answer["rows"].as_array().cloned().unwrap_or_default()
            })
            .collect()
    }
}

impl Drop for Metastore {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Spark's rows as lakegate's CSV output prints them.
fn as_text(rows: &[Value]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|row| {
            row.as_array()
                .expect("row")
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

/// As user argv[2]: the count of `hive.sales.clicks`, then, a line each, how three reads
/// of `hive.hr` are refused: through a view in `hive.sales`, a view in `hive.hr` that reads
/// no table, and short names after the default catalog was set to the metastore's.
const AS_READER: &str = r#"
import sys
import adbc_driver_flightsql.dbapi as flight
with flight.connect(sys.argv[1], db_kwargs={"username": sys.argv[2], "password": sys.argv[3]}) as conn:
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM hive.sales.clicks")
    print(cur.fetchone()[0])
    for sql in ["SELECT * FROM hive.sales.pay", "SELECT * FROM hive.hr.constants",
                "SET datafusion.catalog.default_catalog = 'hive'", "SELECT * FROM hr.salaries"]:
        try:
            cur.execute(sql)
            if not sql.startswith("SET"):
                print("read", cur.fetchall())
        except Exception as e:
            print(str(e).replace("\n", " "))
"#;

/// Prints `catalog database tables` for catalog `hive` as ADBC's `adbc_get_objects` lists it
/// (as user argv[2]).
const ADBC_OBJECTS: &str = r#"
import sys
import adbc_driver_flightsql.dbapi as flight
with flight.connect(sys.argv[1], db_kwargs={"username": sys.argv[2], "password": sys.argv[3]}) as conn:
    for catalog in conn.adbc_get_objects(depth="tables", catalog_filter="hive").read_all().to_pylist():
        for schema in catalog["catalog_db_schemas"]:
            if schema["db_schema_name"] == "sales":
                names = sorted(t["table_name"] for t in schema["db_schema_tables"])
                print(catalog["catalog_name"], schema["db_schema_name"], ",".join(names))
"#;

#[test]
fn tables_spark_wrote_through_a_metastore_are_read_with_no_registration() {
    let metastore = Metastore::start();
    let warehouse = tempfile::tempdir().expect("warehouse");
    let answers = metastore.spark(
        warehouse.path(),
        &[
            "CREATE DATABASE sales",
            "CREATE TABLE sales.events (uid BIGINT, type STRING, tags ARRAY<STRING>) USING parquet PARTITIONED BY (dt STRING)",
            "INSERT INTO sales.events PARTITION (dt='2024-01-01') VALUES (1, 'click', array('a')), (2, 'view', array())",
            "INSERT INTO sales.events PARTITION (dt='2024-01-02') VALUES (3, 'click', NULL)",
            "INSERT INTO sales.events PARTITION (dt='2024-01-03') VALUES (4, 'it''s', array('b', 'c'))",
            "CREATE TABLE sales.hive_events (uid BIGINT, amount DECIMAL(10,2)) PARTITIONED BY (dt STRING) STORED AS PARQUET",
            "INSERT INTO sales.hive_events PARTITION (dt='2024-01-01') VALUES (1, 2.50), (2, 3.25)",
            "CREATE TABLE sales.staged (id INT, name STRING) USING csv OPTIONS (header 'true')",
            r#"INSERT INTO sales.staged VALUES (1, 'x'), (2, 'y "z"')"#,
            "CREATE TABLE sales.archive (id INT) USING orc",
            "SELECT uid, type, dt FROM sales.events ORDER BY uid",
            "SELECT dt, sum(amount) FROM sales.hive_events GROUP BY dt ORDER BY dt",
            "SELECT id, name FROM sales.staged ORDER BY id",
            // Views: one naming its tables, one reading the database current at its creation,
            // and one over another database.
            "CREATE VIEW sales.clicks AS SELECT uid, dt FROM sales.events WHERE type = 'click'",
            "USE sales",
            "CREATE VIEW daily (day, n) AS SELECT dt, count(*) AS rows FROM events GROUP BY dt",
            "USE default",
            "CREATE DATABASE hr",
            "CREATE TABLE hr.salaries (uid BIGINT, pay INT) USING parquet",
            "INSERT INTO hr.salaries VALUES (1, 100)",
            "CREATE VIEW sales.pay AS SELECT e.uid, s.pay FROM sales.clicks e JOIN hr.salaries s ON e.uid = s.uid",
            "SELECT uid, dt FROM sales.clicks ORDER BY uid",
            "SELECT day, n FROM sales.daily ORDER BY day",
            "SELECT uid, pay FROM sales.pay",
            // A database on S3, through Hadoop's s3a.
            "CREATE DATABASE lake LOCATION 's3a://sparklake/lake.db'",
            "CREATE TABLE lake.events (uid BIGINT, type STRING) USING parquet PARTITIONED BY (dt STRING)",
            "INSERT INTO lake.events PARTITION (dt='2024-01-01') VALUES (1, 'a'), (2, 'it''s')",
            "SELECT uid, type, dt FROM lake.events ORDER BY uid",
            // Spark's own name for its catalog, inside a view's SQL.
            "CREATE VIEW sales.first_day AS SELECT uid FROM spark_catalog.sales.events WHERE dt = '2024-01-01'",
            "SELECT uid FROM sales.first_day ORDER BY uid",
            "CREATE VIEW hr.constants AS SELECT 1 AS one",
        ],
    );
    let lg = metastore.lakegate();
    // No CREATE statement: the metastore's databases and tables are there.
    let run = lg
        .sql("SELECT table_name FROM information_schema.tables WHERE table_catalog = 'hive' AND table_schema = 'sales' ORDER BY 1")
        .success();
    assert_eq!(
        run.rows(),
        ["archive", "clicks", "daily", "events", "first_day", "hive_events", "pay", "staged"]
            .map(|t| vec![t.to_owned()])
    );
    let run = lg.sql("SELECT uid, type, dt FROM hive.sales.events ORDER BY uid").success();
    assert_eq!(run.rows(), as_text(&answers[10]));
    let run = lg.sql("SELECT dt, sum(amount) FROM hive.sales.hive_events GROUP BY dt ORDER BY dt").success();
    assert_eq!(run.rows(), as_text(&answers[11]));
    let run =
        lg.run(&["sql", "--format", "json", "-e", "SELECT id, name FROM hive.sales.staged ORDER BY id"]).success();
    let rows: Vec<Value> = run.stdout.lines().map(|l| serde_json::from_str(l).expect("JSON row")).collect();
    let rows: Vec<Value> = rows.iter().map(|r| serde_json::json!([r["id"], r["name"]])).collect();
    assert_eq!(rows, answers[12]);
    // Views are planned from their SQL, and agree with Spark.
    assert_eq!(lg.sql("SELECT uid, dt FROM hive.sales.clicks ORDER BY uid").success().rows(), as_text(&answers[21]));
    assert_eq!(lg.sql("SELECT day, n FROM hive.sales.daily ORDER BY day").success().rows(), as_text(&answers[22]));
    assert_eq!(lg.sql("SELECT uid, pay FROM hive.sales.pay").success().rows(), as_text(&answers[23]));
    // Spark's table on S3 (an s3a:// location) is read from moto's S3.
    let run = lg.sql("SELECT uid, type, dt FROM hive.lake.events ORDER BY uid").success();
    assert_eq!(run.rows(), as_text(&answers[27]));
    let run = lg.sql("SELECT uid FROM hive.sales.first_day ORDER BY uid").success();
    assert_eq!(run.rows(), as_text(&answers[29]));
    // A view's filter reaches its table's partitions.
    let plan =
        lg.run(&["sql", "-e", "EXPLAIN SELECT count(*) FROM hive.sales.clicks WHERE dt = '2024-01-02'"]).success();
    assert!(plan.stdout.contains("dt=2024-01-02") && !plan.stdout.contains("dt=2024-01-01"), "{}", plan.stdout);
    // A one-day query reads one partition's files: the others are never listed.
    let plan =
        lg.run(&["sql", "-e", "EXPLAIN SELECT count(*) FROM hive.sales.events WHERE dt = '2024-01-02'"]).success();
    assert!(plan.stdout.contains("dt=2024-01-02") && !plan.stdout.contains("dt=2024-01-01"), "{}", plan.stdout);
    let run = lg.sql("SELECT count(*) FROM hive.sales.events WHERE dt >= '2024-01-02'").success();
    assert_eq!(run.rows(), vec![vec!["2"]]);
    // A format lakegate cannot read is listed and described, and a query names the format.
    let run = lg.sql("SELECT * FROM hive.sales.archive").failure();
    assert!(run.stderr.contains("orc") && run.stderr.contains("sales.archive"), "{}", run.stderr);
    // Browsing: lakegate's statements, and Flight SQL's catalog calls as ADBC (Jupyter) makes them.
    assert_eq!(
        lg.sql("SHOW DATABASES IN hive").success().rows(),
        vec![vec!["default"], vec!["hr"], vec!["lake"], vec!["sales"]]
    );
    let run = lg.sql("SHOW TABLES IN hive.sales LIKE '*events'").success();
    assert_eq!(
        run.rows(),
        vec![vec!["hive.sales", "events", "hive", "false"], vec!["hive.sales", "hive_events", "hive", "false"]]
    );
    let run = lg.sql("DESCRIBE hive.sales.events").success();
    let described: Vec<(String, String)> =
        run.rows().into_iter().map(|r| (r[0].clone(), r[r.len() - 1].clone())).collect();
    assert_eq!(
        described,
        [("uid", "false"), ("type", "false"), ("tags", "false"), ("dt", "true")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let hash = crate::flight::password_hash(&lg, PASSWORD);
    let toml = std::fs::read_to_string(lg.data_dir.path().join("lakegate.toml")).expect("config")
        + &format!(
            "[server]\n\
             [[server.users]]\nname = \"{USER}\"\npassword_hash = \"{hash}\"\nrole = \"admin\"\n\
             [[server.users]]\nname = \"rita\"\npassword_hash = \"{hash}\"\nrole = \"reader\"\ndatabases = [\"hive.sales\", \"hr\"]\n"
        );
    let server =
        crate::flight::Server::spawn(metastore.lakegate(), &toml, &["--listen", "127.0.0.1:0"]).expect("serve");
    let objects = Command::new(venv_bin("python"))
        .args(["-c", ADBC_OBJECTS, server.url(), USER, PASSWORD])
        .output()
        .expect("python runs");
    let listed = String::from_utf8_lossy(&objects.stdout);
    assert!(objects.status.success(), "{listed}{}", String::from_utf8_lossy(&objects.stderr));
    assert_eq!(listed.trim(), "hive sales archive,clicks,daily,events,first_day,hive_events,pay,staged");
    // A view runs with its reader's grants: a reader of hive.sales reads a view there over
    // hive.sales, not one over hive.hr.
    let rita = Command::new(venv_bin("python"))
        .args(["-c", AS_READER, server.url(), "rita", PASSWORD])
        .output()
        .expect("python runs");
    let answers_of_rita = String::from_utf8_lossy(&rita.stdout);
    assert!(rita.status.success(), "{answers_of_rita}{}", String::from_utf8_lossy(&rita.stderr));
    let lines: Vec<&str> = answers_of_rita.lines().collect();
    assert_eq!((lines[0], lines.len()), ("2", 4), "{answers_of_rita}");
    for refused in &lines[1..] {
        assert!(refused.to_lowercase().contains("denied") && refused.contains("hive.hr"), "{answers_of_rita}");
    }
    // As a new user would: Superset connected to lakegate, a Spark table queried in SQL Lab.
    let expect: Vec<Value> =
        answers[10].iter().map(|r| serde_json::json!({"uid": r[0], "type": r[1], "dt": r[2]})).collect();
    let expect = Value::Array(expect).to_string();
    let chart = "SELECT uid, type, dt FROM hive.sales.events ORDER BY uid";
    crate::flight::with_superset(|superset| {
        let args = [superset, &["--chart", chart, "--expect", &expect]].concat();
        server.run_client(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/superset_api.py"), &args);
    });
    drop(server);
    // Spark adds a partition; lakegate sees it (this test's cache interval is 0).
    metastore
        .spark(warehouse.path(), &["INSERT INTO sales.events PARTITION (dt='2024-01-04') VALUES (5, 'new', NULL)"]);
    assert_eq!(lg.sql("SELECT count(*) FROM hive.sales.events").success().rows(), vec![vec!["5"]]);
    // lakegate's nightly batch writes: one day replaced, one new day added. Spark reads both
    // through the metastore, and agrees with lakegate.
    lg.sql(
        "INSERT OVERWRITE TABLE hive.sales.events PARTITION (dt) \
         SELECT uid + 100 AS uid, upper(type) AS type, tags, dt FROM hive.sales.events WHERE dt = '2024-01-01' DISTRIBUTE BY dt SORT BY uid",
    )
    .success();
    lg.sql("INSERT INTO hive.sales.events PARTITION (dt='2024-02-01') SELECT 9, 'lakegate', make_array('z')").success();
    lg.sql("INSERT INTO hive.lake.events PARTITION (dt='2024-01-02') SELECT 3, 'lakegate'").success();
    let by_day = "SELECT dt, count(*), sum(uid), min(type) FROM sales.events GROUP BY dt ORDER BY dt";
    let on_s3 = "SELECT uid, type, dt FROM lake.events ORDER BY uid";
    let spark = metastore.spark(warehouse.path(), &["SHOW PARTITIONS sales.events", by_day, on_s3]);
    let ours = lg.sql(&on_s3.replace("lake.events", "hive.lake.events")).success().rows();
    assert_eq!(ours, as_text(&spark[2]));
    assert_eq!(ours.len(), 3);
    let days: Vec<&str> = spark[0].iter().filter_map(|r| r[0].as_str()).collect();
    assert_eq!(days, ["dt=2024-01-01", "dt=2024-01-02", "dt=2024-01-03", "dt=2024-01-04", "dt=2024-02-01"]);
    let ours = lg.sql(&by_day.replace("sales.events", "hive.sales.events")).success().rows();
    assert_eq!(ours, as_text(&spark[1]));
    assert_eq!(ours[0], ["2024-01-01", "2", "203", "CLICK"]);
    assert_eq!(ours[4], ["2024-02-01", "1", "9", "lakegate"]);
    // CREATE TABLE in a metastore database makes a Parquet table there that Spark reads;
    // DROP TABLE removes it from the metastore.
    lg.sql("CREATE TABLE hive.sales.daily_copy (n BIGINT) PARTITIONED BY (day STRING)").success();
    lg.sql("INSERT INTO hive.sales.daily_copy PARTITION (day) SELECT n, day FROM hive.sales.daily").success();
    let spark = metastore.spark(warehouse.path(), &["SELECT day, n FROM sales.daily_copy ORDER BY day"]);
    let ours = lg.sql("SELECT day, n FROM hive.sales.daily ORDER BY day").success().rows();
    assert_eq!(ours, as_text(&spark[0]));
    lg.sql("DROP TABLE hive.sales.daily_copy").success();
    let spark = metastore.spark(warehouse.path(), &["SHOW TABLES IN sales"]);
    assert!(!spark[0].iter().any(|row| row.to_string().contains("daily_copy")), "{:?}", spark[0]);
    // The metastore's CSV tables are read, not written.
    let run = lg.sql("INSERT INTO hive.sales.staged SELECT 3, 'w'").failure();
    assert!(run.stderr.contains("Parquet tables only"), "{}", run.stderr);
    // The metastore goes down: lakegate's own tables keep working; its tables name the URI.
    lg.sql("CREATE TABLE local (a INT)").success();
    metastore.stop();
    assert_eq!(lg.sql("SELECT count(*) FROM local").success().rows(), vec![vec!["0"]]);
    let run = lg.sql("SELECT * FROM hive.sales.events").failure();
    assert!(run.stderr.contains(&metastore.uri), "{}", run.stderr);
}
