//! PostgreSQL and Redshift tables against a real PostgreSQL server (a throw-away cluster on
//! loopback), through the real binary: types, pushdown, streaming, faults, and the
//! canonical cross-source query.

use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use futures::TryStreamExt;
use serde_json::Value;
use tonic::transport::Channel;

use crate::common::postgres::{PASSWORD, Postgres};
use crate::common::{Cql, Lakegate, S3Server, venv_bin};
use crate::flight::Server;

/// A lakegate whose `${env:PG_PASSWORD}` references resolve.
fn lakegate() -> Lakegate {
    Lakegate::new().with_env("PG_PASSWORD", PASSWORD)
}

fn register(lg: &Lakegate, pg: &Postgres, database: &str, name: &str, table: &str) {
    lg.sql(&format!(
        "CREATE EXTERNAL TABLE {name} STORED AS POSTGRES LOCATION '{}' OPTIONS ('table' '{table}', 'password' '${{env:PG_PASSWORD}}')",
        pg.url(database)
    ))
    .success();
}

/// Rows of `lakegate sql --format json`, as JSON objects.
fn json_rows(lg: &Lakegate, sql: &str) -> Vec<serde_json::Map<String, Value>> {
    lg.json(sql)
        .into_iter()
        .map(|row| row.as_object().cloned().unwrap_or_else(|| panic!("not a JSON row: {row}")))
        .collect()
}

#[test]
fn every_postgres_type_reads_back_as_written() {
    let pg = Postgres::shared();
    let db = pg.database();
    pg.psql(
        &db,
        "CREATE TYPE mood AS ENUM ('sad', 'happy');
         CREATE TABLE every_type (
           id int4 PRIMARY KEY, small int2, big int8, price numeric(12,2), wide numeric(50,5), free numeric,
           r real, d double precision, flag bool, t text, v varchar(10), c char(3), nm name, raw bytea,
           day date, at time, ts timestamp, tstz timestamptz, span interval, u uuid, j json, jb jsonb,
           ip inet, m mood, ints int4[], tags text[], later timetz);
         INSERT INTO every_type VALUES (1, -32768, 9007199254740993, 1234567890.12, 123456789012345678901234567890123456789012345.12345,
           2.718281828459045235, 1.5, -2.25, true, 'O''Brien, \"quoted\"', 'vär', 'ab', 'pg_name', '\\x00ff10',
           '2018-03-05', '13:45:30.123456', '2018-03-05 13:45:30.5', '2018-03-05 13:45:30+02', '1 year 2 mons 3 days 04:05:06.5',
           'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a\": [1, 2]}', '{\"b\": null}', '192.168.0.1/24', 'happy',
           '{1,NULL,3}', '{x,\"y z\"}', '13:45:30+02');
         INSERT INTO every_type (id) VALUES (2);",
    );
    let lg = lakegate();
    register(&lg, pg, &db, "every_type", "every_type");

    let described = json_rows(&lg, "DESCRIBE every_type");
    let arrow_type = |column: &str| {
        described
            .iter()
            .find(|r| r["col_name"] == column)
            .map(|r| r["arrow_type"].as_str().unwrap_or_default().to_owned())
    };
    let expected_types = [
        ("id", "Int32"),
        ("small", "Int16"),
        ("big", "Int64"),
        ("price", "Decimal128(12, 2)"),
        ("wide", "Decimal256(50, 5)"),
        ("free", "Decimal128(38, 10)"),
        ("r", "Float32"),
        ("d", "Float64"),
        ("flag", "Boolean"),
        ("t", "Utf8"),
        ("v", "Utf8"),
        ("c", "Utf8"),
        ("nm", "Utf8"),
        ("raw", "Binary"),
        ("day", "Date32"),
        ("at", "Time64(µs)"),
        ("ts", "Timestamp(µs)"),
        ("tstz", "Timestamp(µs, \"UTC\")"),
        ("span", "Interval(MonthDayNano)"),
        ("u", "Utf8"),
        ("j", "Utf8"),
        ("jb", "Utf8"),
        ("ip", "Utf8"),
        ("m", "Utf8"),
        ("ints", "List(Int32)"),
        ("tags", "List(Utf8)"),
        ("later", "Utf8"),
    ];
    for (column, expected) in expected_types {
        let found = arrow_type(column).unwrap_or_else(|| panic!("column {column} is missing: {described:?}"));
        assert_eq!(found, expected, "the type of {column}");
    }

    let rows = json_rows(
        &lg,
        "SELECT id, small, big, CAST(price AS VARCHAR) AS price, CAST(wide AS VARCHAR) AS wide, CAST(free AS VARCHAR) AS free, r, d, flag, \
         t, v, c, nm, encode(raw, 'hex') AS raw, CAST(day AS VARCHAR) AS day, CAST(at AS VARCHAR) AS at, CAST(ts AS VARCHAR) AS ts, \
         CAST(tstz AS VARCHAR) AS tstz, CAST(span AS VARCHAR) AS span, u, j, jb, ip, m, \
         array_length(ints, 1) AS ints_len, ints[1] AS ints_1, ints[3] AS ints_3, tags[2] AS tags_2, later \
         FROM every_type ORDER BY id",
    );
    assert_eq!(rows.len(), 2);
    let row = &rows[0];
    let text = |k: &str| {
        row.get(k).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).unwrap_or_else(|| "<null>".into())
    };
    let expected = [
        ("id", "1"),
        ("small", "-32768"),
        ("big", "9007199254740993"),
        ("price", "1234567890.12"),
        ("wide", "123456789012345678901234567890123456789012345.12345"),
        ("free", "2.7182818285"),
        ("r", "1.5"),
        ("d", "-2.25"),
        ("flag", "true"),
        ("t", "O'Brien, \"quoted\""),
        ("v", "vär"),
        ("c", "ab"),
        ("nm", "pg_name"),
        ("raw", "00ff10"),
        ("day", "2018-03-05"),
        ("at", "13:45:30.123456"),
        ("ts", "2018-03-05T13:45:30.500"),
        ("tstz", "2018-03-05T11:45:30Z"),
        ("u", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        ("j", "{\"a\": [1, 2]}"),
        ("jb", "{\"b\": null}"),
        ("ip", "192.168.0.1/24"),
        ("m", "happy"),
        ("ints_len", "3"),
        ("ints_1", "1"),
        ("ints_3", "3"),
        ("tags_2", "y z"),
        ("later", "13:45:30+02"),
    ];
    for (column, value) in expected {
        assert!(text(column).starts_with(value), "{column}: got {}, wrote {value}", text(column));
    }
    let span = text("span");
    assert!(
        span.contains("14 mons") && span.contains("3 days") && span.contains("4 hours 5 mins 6.5"),
        "interval: {span}"
    );
    // The second row is NULL everywhere but its key.
    assert_eq!(rows[1].len(), 1, "only id is non-null: {:?}", rows[1]);
}

#[test]
fn exact_filters_projection_and_limit_run_in_postgres() {
    let pg = Postgres::shared();
    let db = pg.database();
    pg.psql(
        &db,
        "CREATE TABLE users AS SELECT i AS uid, 13 + i % 68 AS age, CASE WHEN i % 2 = 0 THEN 'F' ELSE 'M' END AS gender, \
         'user ' || i AS name FROM generate_series(1, 10000) i",
    );
    let lg = lakegate();
    register(&lg, pg, &db, "users", "users");
    let query = "SELECT uid, name FROM users WHERE age BETWEEN 25 AND 49 AND gender = 'F' AND uid IN (2, 12, 24, 36, 9999) LIMIT 3";
    let plan = lg.run(&["sql", "-e", &format!("EXPLAIN {query}")]).success().stdout;
    assert!(
        plan.contains(r#"SELECT CAST("uid" AS int4), CAST("name" AS text) FROM "public"."users""#)
            && plan.contains(r#"("age" >= $1) AND ("age" <= $2)"#)
            && plan.contains(r#"("gender" = $3)"#)
            && plan.contains(r#""uid" IN ($4, $5, $6, $7, $8)"#)
            && plan.contains("LIMIT 3")
            && plan.contains(r#"params=["25", "49", "F", "2", "12", "24", "36", "9999"]"#),
        "the filters, projection and limit are in the SQL sent, the values bound:\n{plan}"
    );
    assert!(!plan.contains("FilterExec"), "nothing is left to filter in lakegate:\n{plan}");
    let expected = pg.psql(
        &db,
        "SELECT count(*) FROM users WHERE age BETWEEN 25 AND 49 AND gender = 'F' AND uid IN (2, 12, 24, 36, 9999)",
    );
    let got = lg.sql(&format!("SELECT count(*) FROM ({query})")).success().rows();
    assert_eq!(got, vec![vec![expected.min("3".into())]]);

    // Not exact in PostgreSQL: collation-dependent ordering, functions, arithmetic. They are
    // evaluated by lakegate, over rows the database filtered by what it can do exactly.
    let query = "SELECT count(*) FROM users WHERE name > 'user 5' AND lower(name) LIKE 'user 9%' AND uid + 1 > 100 AND gender = 'M'";
    let plan = lg.run(&["sql", "-e", &format!("EXPLAIN {query}")]).success().stdout;
    let sent = plan.lines().find(|l| l.contains("PostgresScanExec")).unwrap_or_default();
    assert!(sent.contains(r#"WHERE ("gender" = $1)]"#) && plan.contains("FilterExec"), "{plan}");
    let expected = pg.psql(
        &db,
        "SELECT count(*) FROM users WHERE name COLLATE \"C\" > 'user 5' AND lower(name) LIKE 'user 9%' AND uid + 1 > 100 AND gender = 'M'",
    );
    assert_eq!(lg.sql(query).success().rows(), vec![vec![expected]]);

    // A scan that needs no column reads the dialect's constant.
    let query = "SELECT 42 AS answer FROM users LIMIT 2";
    let plan = lg.run(&["sql", "-e", &format!("EXPLAIN {query}")]).success().stdout;
    assert!(plan.contains(r#"COPY (SELECT 1 FROM "public"."users" LIMIT 2) TO STDOUT (FORMAT binary)"#), "{plan}");
    assert_eq!(lg.sql(query).success().rows(), vec![vec!["42"], vec!["42"]]);
}

#[test]
fn a_split_scan_reads_every_row_once() {
    let pg = Postgres::shared();
    let db = pg.database();
    pg.psql(&db, "CREATE TABLE facts AS SELECT i AS id, i * 3 AS amount FROM generate_series(-50, 100000) i; INSERT INTO facts VALUES (NULL, 7)");
    let lg = lakegate();
    lg.sql(&format!(
        "CREATE EXTERNAL TABLE facts STORED AS POSTGRES LOCATION '{}' OPTIONS ('table' 'facts', 'password' '${{env:PG_PASSWORD}}', \
         'partitionColumn' 'id', 'numPartitions' '4', 'lowerBound' '0', 'upperBound' '80000', 'fetchsize' '5000')",
        pg.url(&db)
    ))
    .success();
    let plan = lg.run(&["sql", "-e", "EXPLAIN SELECT id, amount FROM facts"]).success().stdout;
    assert_eq!(plan.matches("sql=[").count(), 4, "four parallel reads:\n{plan}");
    assert!(plan.contains("IS NULL"), "the first read takes the NULL keys:\n{plan}");
    let expected = pg.psql(&db, "SELECT count(*) || ',' || count(DISTINCT id) || ',' || sum(amount) FROM facts");
    let got = lg.sql("SELECT count(*), count(DISTINCT id), sum(amount) FROM facts").success().rows();
    assert_eq!(got[0].join(","), expected);
}

#[test]
fn spark_jdbc_spellings_and_secrets() {
    let pg = Postgres::shared();
    let db = pg.database();
    pg.psql(&db, "CREATE SCHEMA crm; CREATE TABLE crm.accounts (id int8, owner text); INSERT INTO crm.accounts VALUES (1, 'ann'), (2, 'bob')");
    let lg = lakegate();
    let jdbc = format!("jdbc:postgresql://127.0.0.1:{}/{db}", pg.port);
    // A session-only view may carry its password in clear, as Spark scripts do.
    let run = lg
        .sql(&format!(
            "CREATE TEMPORARY VIEW accounts USING org.apache.spark.sql.jdbc OPTIONS (url '{jdbc}', dbtable 'crm.accounts', \
             user 'lakegate', password '{PASSWORD}', driver 'org.postgresql.Driver'); \
             SELECT owner FROM accounts WHERE id = 2"
        ))
        .success();
    assert!(run.stdout.contains("bob"), "{}", run.stdout);
    // A persistent table may not, not even inside the URL.
    let refused = lg
        .sql(&format!("CREATE TABLE accounts USING org.apache.spark.sql.jdbc OPTIONS (url '{jdbc}?user=lakegate&password={PASSWORD}', dbtable 'crm.accounts')"))
        .failure();
    assert!(refused.stderr.contains("password") && refused.stderr.contains("${env:"), "{}", refused.stderr);
    assert!(!refused.stderr.contains(PASSWORD), "the password must not be echoed: {}", refused.stderr);
    lg.sql(&format!(
        "CREATE TABLE accounts USING org.apache.spark.sql.jdbc OPTIONS (url '{jdbc}?user=lakegate&password=${{env:PG_PASSWORD}}', dbtable 'crm.accounts')"
    ))
    .success();
    assert_eq!(lg.sql("SELECT owner FROM accounts ORDER BY id").success().rows(), vec![vec!["ann"], vec!["bob"]]);
    let shown = lg.run(&["sql", "-e", "SHOW CREATE TABLE accounts"]).success().stdout;
    assert!(
        shown.contains("STORED AS POSTGRES") && shown.contains("${env:PG_PASSWORD}") && !shown.contains(PASSWORD),
        "{shown}"
    );
}

/// `sslmode 'verify-full'` connects over TLS, checking the server's certificate against
/// `sslrootcert`; without that CA the certificate is refused, naming the server.
#[test]
fn tls_connections_verify_the_server() {
    let (pg, ca) = Postgres::start_tls();
    let db = pg.database();
    pg.psql(&db, "CREATE VIEW my_connection AS SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
    let lg = lakegate();
    let create = |name: &str, extra: &str| {
        lg.sql(&format!(
            "CREATE EXTERNAL TABLE {name} STORED AS POSTGRES LOCATION '{}' OPTIONS ('table' 'my_connection', \
             'password' '${{env:PG_PASSWORD}}', 'sslmode' 'verify-full'{extra})",
            pg.url(&db)
        ))
    };
    create("conn", &format!(", 'sslrootcert' '{}'", ca.display())).success();
    let rows = lg.sql("SELECT ssl, version FROM conn").success().rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0], "true", "the connection is encrypted: {rows:?}");
    assert!(rows[0][1].starts_with("TLSv1."), "{rows:?}");
    let refused = create("untrusted", "").failure().stderr;
    assert!(
        refused.contains(&format!("127.0.0.1:{}", pg.port)) && refused.to_lowercase().contains("certificate"),
        "{refused}"
    );
}

#[test]
fn bad_connections_and_tables_are_named_and_register_nothing() {
    let pg = Postgres::shared();
    let db = pg.database();
    pg.psql(&db, "CREATE TABLE t (a int)");
    let lg = lakegate().with_env("WRONG", "not-the-password");
    let create = |location: &str, table: &str, password: &str| {
        lg.sql(&format!("CREATE EXTERNAL TABLE x STORED AS POSTGRES LOCATION '{location}' OPTIONS ('table' '{table}', 'password' '{password}')"))
            .failure()
            .stderr
    };
    let err = create(&pg.url(&db), "t", "${env:WRONG}");
    assert!(err.contains("authentication failed for user 'lakegate'") && !err.contains("not-the-password"), "{err}");
    let down = crate::common::free_port();
    let err = create(&format!("postgres://lakegate@127.0.0.1:{down}/{db}"), "t", "${env:PG_PASSWORD}");
    assert!(err.contains(&format!("127.0.0.1:{down}")) && err.to_lowercase().contains("connect"), "{err}");
    let err = create(&pg.url(&db), "public.missing", "${env:PG_PASSWORD}");
    assert!(err.contains("public.missing does not exist"), "{err}");
    let err = create(&pg.url("nodb"), "t", "${env:PG_PASSWORD}");
    assert!(err.contains("nodb"), "{err}");
    assert_eq!(lg.sql("SHOW TABLES").success().rows(), Vec::<Vec<String>>::new());
}

#[test]
fn a_remote_table_altered_after_registration_is_reported_not_misread() {
    let pg = Postgres::shared();
    let db = pg.database();
    pg.psql(&db, "CREATE TABLE items (id int4, label text, qty int4); INSERT INTO items VALUES (1, 'a', 10)");
    let lg = lakegate();
    register(&lg, pg, &db, "items", "items");
    // A column changes type: PostgreSQL converts it for the stored schema, or says why not.
    pg.psql(
        &db,
        "ALTER TABLE items ALTER COLUMN qty TYPE int8; ALTER TABLE items ALTER COLUMN label TYPE int4 USING 7",
    );
    assert_eq!(lg.sql("SELECT id, label, qty FROM items").success().rows(), vec![vec!["1", "7", "10"]]);
    pg.psql(&db, "ALTER TABLE items DROP COLUMN qty");
    let err = lg.sql("SELECT * FROM items").failure().stderr;
    assert!(err.contains("column 'qty'") && err.contains("altered"), "{err}");
}

async fn register_remotely(client: &mut FlightSqlServiceClient<Channel>, pg: &Postgres, database: &str, table: &str) {
    let sql = format!(
        "CREATE EXTERNAL TABLE {table} STORED AS POSTGRES LOCATION '{}' OPTIONS ('table' '{table}', 'password' '${{env:PG_PASSWORD}}')",
        pg.url(database)
    );
    client.execute(sql, None).await.expect("registers");
}

async fn count(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> Result<i64, String> {
    let info = client.execute(sql.to_owned(), None).await.map_err(|e| e.to_string())?;
    let ticket = info.endpoint[0].ticket.clone().ok_or("no ticket")?;
    let batches: Vec<_> =
        client.do_get(ticket).await.map_err(|e| e.to_string())?.try_collect().await.map_err(|e| e.to_string())?;
    Ok(batches.iter().map(|b| b.column(0).as_primitive::<Int64Type>().value(0)).sum())
}

/// PostgreSQL stopped under a running query: that query fails naming the source, the server
/// keeps answering, and the table works again once PostgreSQL is back.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_going_down_mid_query_fails_only_that_query() {
    let mut pg = Postgres::start();
    let db = pg.database();
    pg.psql(&db, "CREATE TABLE big AS SELECT i AS id, repeat('x', 100) AS pad FROM generate_series(1, 3000000) i");
    let server = Server::start_with(lakegate(), &["--listen", "127.0.0.1:0"]).expect("server starts");
    let mut client = server.signed_in().await;
    register_remotely(&mut client, &pg, &db, "big").await;
    let info = client.execute("SELECT id, pad FROM big".into(), None).await.expect("plans");
    let mut stream = client.do_get(info.endpoint[0].ticket.clone().expect("ticket")).await.expect("starts");
    stream.try_next().await.expect("a first batch").expect("rows");
    pg.stop();
    let err = loop {
        match stream.try_next().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the query ended normally although PostgreSQL stopped under it"),
            Err(e) => break e.to_string(),
        }
    };
    assert!(
        err.contains("public.big") && err.contains(&format!("127.0.0.1:{}", pg.port)),
        "the source is named: {err}"
    );
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM (VALUES (1), (2)) v(x)").await,
        Ok(2),
        "other queries still run"
    );
    let down = count(&mut client, "SELECT count(*) FROM big").await.expect_err("PostgreSQL is down");
    assert!(down.contains(&format!("127.0.0.1:{}", pg.port)), "{down}");
    pg.resume();
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM big WHERE id <= 1000").await,
        Ok(1000),
        "back once PostgreSQL is"
    );
}

/// A table several times the memory limit streams through in bounded memory.
#[tokio::test(flavor = "multi_thread")]
async fn a_table_larger_than_the_memory_limit_streams() {
    let pg = Postgres::shared();
    let db = pg.database();
    // About 400 MB of rows.
    pg.psql(&db, "CREATE TABLE wide AS SELECT i AS id, md5(i::text) || repeat('y', 300) AS payload FROM generate_series(1, 1200000) i");
    let lg = lakegate().with_env("LAKEGATE_MEMORY_LIMIT_MB", "64");
    let server = Server::start_with(lg, &["--listen", "127.0.0.1:0"]).expect("server starts");
    let mut client = server.signed_in().await;
    register_remotely(&mut client, pg, &db, "wide").await;
    let info = client.execute("SELECT id, payload FROM wide".into(), None).await.expect("plans");
    let mut stream = client.do_get(info.endpoint[0].ticket.clone().expect("ticket")).await.expect("starts");
    let (mut rows, mut bytes) = (0usize, 0usize);
    while let Some(batch) = stream.try_next().await.expect("streams") {
        rows += batch.num_rows();
        bytes += batch.column(1).as_string::<i32>().values().len();
    }
    assert_eq!(rows, 1_200_000);
    let peak_kb = server.peak_rss_kb();
    println!("streamed {} MB of PostgreSQL rows; server peak RSS {} MiB", bytes / 1_000_000, peak_kb / 1024);
    assert!(bytes > 380_000_000, "{bytes}");
    assert!(peak_kb < 250 * 1024, "the server held the table: peak RSS {peak_kb} kB");
}

/// Redshift's wire path (a cursor, Redshift's types), against PostgreSQL's protocol; and the
/// UNLOAD statement a tempdir turns full scans into.
#[test]
fn redshift_tables_read_through_a_cursor_and_plan_unloads() {
    let pg = Postgres::shared();
    let db = pg.database();
    pg.psql(&db, "CREATE TABLE sales AS SELECT i AS id, 'region ' || (i % 5) AS region, i * 1.5 AS amount FROM generate_series(1, 20000) i");
    let lg = lakegate();
    let url = format!("jdbc:redshift://127.0.0.1:{}/{db}?user=lakegate&password=${{env:PG_PASSWORD}}", pg.port);
    lg.sql(&format!("CREATE TABLE sales USING com.databricks.spark.redshift OPTIONS (url '{url}', dbtable 'sales', fetchsize '4096')")).success();
    let plan = lg.run(&["sql", "-e", "EXPLAIN SELECT region, amount FROM sales WHERE id > 100"]).success().stdout;
    assert!(
        plan.contains(r#"SELECT CAST("region" AS varchar(65535)), CAST("amount" AS numeric(38,10)) FROM "public"."sales" WHERE ("id" > $1)"#)
            && !plan.contains("COPY"),
        "{plan}"
    );
    let expected = pg.psql(&db, "SELECT count(*) || ',' || sum(amount) FROM sales WHERE id > 100");
    let got = lg.sql("SELECT count(*), sum(amount) FROM sales WHERE id > 100").success().rows();
    let number = |s: &str| s.parse::<f64>().unwrap_or_else(|_| panic!("not a number: {s}"));
    let (count, sum) = expected.split_once(',').expect("count,sum");
    assert_eq!((got[0][0].as_str(), number(&got[0][1])), (count, number(sum)));

    lg.sql(&format!(
        "CREATE TABLE sales_bulk USING com.databricks.spark.redshift OPTIONS (url '{url}', dbtable 'sales', \
         tempdir 's3a://lake/tmp', aws_iam_role 'arn:aws:iam::123456789012:role/unload')"
    ))
    .success();
    let plan = lg.run(&["sql", "-e", "EXPLAIN SELECT region FROM sales_bulk"]).success().stdout;
    // The statement as it runs: the tempdir in Redshift's s3:// form and the scan's own folder.
    let unload = r#"UNLOAD ('SELECT CAST("region" AS varchar(65535)) FROM "public"."sales"') TO 's3://lake/tmp/lakegate-unload-"#;
    let folder = plan.split_once(unload).and_then(|(_, rest)| {
        rest.split_once("/' IAM_ROLE 'arn:aws:iam::123456789012:role/unload' FORMAT AS PARQUET MAXFILESIZE 64 MB")
    });
    assert!(folder.is_some_and(|(id, _)| id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit())), "{plan}");
    let plan = lg.run(&["sql", "-e", "EXPLAIN SELECT 'x' AS mark FROM sales_bulk"]).success().stdout;
    assert!(
        plan.contains(r#"UNLOAD ('SELECT 1 AS "row" FROM "public"."sales"') TO 's3://lake/tmp/lakegate-unload-"#),
        "{plan}"
    );
    // An aggregate runs in Redshift, one row back through the cursor.
    let plan = lg.run(&["sql", "-e", "EXPLAIN SELECT count(*) FROM sales_bulk"]).success().stdout;
    assert!(plan.contains(r#"sql=[SELECT CAST(count(*) AS int8) FROM "public"."sales"]"#), "{plan}");
    // A filtered or limited read is small: it goes through the cursor instead.
    let plan = lg.run(&["sql", "-e", "EXPLAIN SELECT region FROM sales_bulk WHERE id = 3"]).success().stdout;
    assert!(!plan.contains("UNLOAD") && plan.contains("PostgresScanExec"), "{plan}");
}

/// The UNLOAD path end to end, against a real Redshift cluster named by `REDSHIFT_URL`
/// (`jdbc:redshift://host:5439/dev?user=...&password=...`), with `REDSHIFT_TEMPDIR` and
/// `REDSHIFT_IAM_ROLE`. Run it with `cargo test --test integration redshift_live -- --ignored`.
#[test]
#[ignore = "needs a real Redshift: set REDSHIFT_URL, REDSHIFT_TEMPDIR and REDSHIFT_IAM_ROLE, then run with --ignored"]
fn redshift_live_unload_round_trip() {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: this test needs a real Redshift"))
    };
    let (url, tempdir, role) = (var("REDSHIFT_URL"), var("REDSHIFT_TEMPDIR"), var("REDSHIFT_IAM_ROLE"));
    let lg = Lakegate::new();
    lg.sql(&format!(
        "CREATE TABLE t USING com.databricks.spark.redshift OPTIONS (url '{url}', dbtable 'pg_catalog.pg_namespace', tempdir '{tempdir}', aws_iam_role '{role}')"
    ))
    .success();
    let bulk = lg.sql("SELECT count(*) FROM (SELECT * FROM t)").success().rows();
    let wire = lg.sql("SELECT count(*) FROM (SELECT * FROM t LIMIT 1000000)").success().rows();
    assert_eq!(bulk, wire);
}

/// The canonical question across the three kinds of source: ad logs as Parquet on S3 (moto),
/// users in PostgreSQL, programs in Cassandra. The answer is checked against PostgreSQL
/// answering the same question over the same rows.
#[test]
fn the_ncis_query_joins_s3_postgres_and_cassandra() {
    let pg = Postgres::shared();
    let db = pg.database();
    pg.psql(
        &db,
        "CREATE TABLE users AS SELECT i AS uid, 13 + (i * 7) % 68 AS age, CASE WHEN i % 3 = 0 THEN 'M' ELSE 'F' END AS gender FROM generate_series(1, 5000) i;
         CREATE TABLE programs AS SELECT * FROM (VALUES (1, 'NCIS'), (2, 'The Voice'), (3, 'NCIS: Los Angeles')) p(id, name);
         CREATE TABLE logs AS SELECT (i * 37) % 6000 AS uid, 1 + i % 3 AS pid, CASE WHEN i % 4 = 0 THEN 'click' ELSE 'impression' END AS type,
           '2018-03-0' || (1 + i % 3) AS dt FROM generate_series(1, 30000) i;",
    );
    let expected = pg.psql(
        &db,
        "SELECT COUNT(*) FROM logs A JOIN users U ON A.uid = U.uid JOIN programs P ON A.pid = P.id \
         WHERE A.type = 'impression' AND U.age BETWEEN 25 AND 49 AND U.gender = 'F' AND P.name = 'NCIS'",
    );
    let s3 = S3Server::start();
    s3.create_bucket("lake");
    let lg = s3.env(lakegate());
    // The logs go to S3 as Parquet, partitioned by dt, written by pyarrow from PostgreSQL's rows.
    let csv = lg.data_dir.path().join("logs.csv");
    std::fs::write(&csv, pg.psql(&db, "COPY logs TO STDOUT (FORMAT csv, HEADER)")).expect("logs exported");
    let script = format!(
        "import pyarrow.csv as csv, pyarrow.dataset as ds, pyarrow.fs as fs\n\
         t = csv.read_csv('{}')\n\
         s3 = fs.S3FileSystem(endpoint_override='{}', access_key='testing', secret_key='testing', region='us-east-1', scheme='http')\n\
         ds.write_dataset(t, 'lake/logs/adserver_logs', filesystem=s3, format='parquet', partitioning=['dt'], partitioning_flavor='hive')\n",
        csv.display(),
        s3.endpoint
    );
    let wrote = std::process::Command::new(venv_bin("python")).args(["-c", &script]).output().expect("python runs");
    assert!(wrote.status.success(), "{}", String::from_utf8_lossy(&wrote.stderr));
    lg.sql("CREATE EXTERNAL TABLE adserver_logs STORED AS PARQUET LOCATION 's3a://lake/logs/adserver_logs'").success();
    register(&lg, pg, &db, "users", "users");
    let cql = Cql::connect();
    cql.keyspace("lg_ncis_pg");
    cql.run(&["CREATE TABLE lg_ncis_pg.programs (id int PRIMARY KEY, name text)"]);
    let programs: Vec<(i32, String)> = pg
        .psql(&db, "SELECT id || '|' || name FROM programs")
        .lines()
        .map(|l| l.split_once('|').map(|(id, name)| (id.parse().expect("id"), name.to_owned())).expect("id|name"))
        .collect();
    cql.insert("INSERT INTO lg_ncis_pg.programs (id, name) VALUES (?, ?)", programs);
    let lg = lg.with_cassandra(&cql.contact_point);
    lg.sql(
        "CREATE TABLE programs USING org.apache.spark.sql.cassandra OPTIONS (keyspace 'lg_ncis_pg', table 'programs')",
    )
    .success();
    let ncis = "SELECT COUNT(*) FROM adserver_logs A JOIN users U ON A.uid = U.uid JOIN programs P ON A.pid = P.id \
                WHERE A.type = 'impression' AND U.age BETWEEN 25 AND 49 AND U.gender = 'F' AND P.name = 'NCIS'";
    assert_eq!(lg.sql(ncis).success().rows(), vec![vec![expected]]);
    let plan = lg.run(&["sql", "-e", &format!("EXPLAIN {ncis}")]).success().stdout;
    assert!(
        plan.contains(r#"("age" >= $1) AND ("age" <= $2)) AND ("gender" = $3)"#) && plan.contains("CassandraScanExec"),
        "{plan}"
    );
}

/// `lakegate demo --postgres` puts the sample users into PostgreSQL, and the NCIS answer is
/// the one the all-Parquet demo gives over the same generated rows.
#[test]
fn the_demo_reads_users_from_postgres() {
    let pg = Postgres::shared();
    let db = pg.database();
    let answer = |run: &crate::common::Run| {
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with("| ") && l.trim_end().ends_with('|') && l.chars().any(|c| c.is_ascii_digit()));
        line.map(|l| l.trim_matches(|c: char| c == '|' || c.is_whitespace()).to_owned())
            .unwrap_or_else(|| panic!("no answer in {}", run.stdout))
    };
    let parquet = Lakegate::new().run(&["demo", "--rows", "100000"]).success();
    let lg = Lakegate::new().with_env("PGPASSWORD", PASSWORD);
    let postgres = lg.run(&["demo", "--rows", "100000", "--postgres", &pg.url(&db)]).success();
    assert!(postgres.stdout.contains("users are in PostgreSQL"), "{}", postgres.stdout);
    assert_eq!(answer(&postgres), answer(&parquet));
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM users"), "200000");
    let plan = lg.run(&["sql", "-e", "EXPLAIN SELECT uid FROM users WHERE gender = 'F'"]).success().stdout;
    assert!(plan.contains("PostgresScanExec"), "{plan}");
}

/// Names a remote table or column may have that naive quoting gets wrong: a backslash (also
/// before a quote), an embedded quote, an already doubled one, a single quote, a space, and
/// non-ASCII letters.
pub(crate) const AWKWARD_NAMES: [&str; 7] =
    [r"back\slash", r#"we"ird"#, r#"a""b"#, "it's", "with space", "ünï", r#"back\"quote"#];

/// `name` as a delimited identifier, in PostgreSQL's, CQL's and lakegate's SQL.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as a string literal, in PostgreSQL's SQL (standard-conforming) and in lakegate's.
pub(crate) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// psql's rows of `query` as JSON objects (column name → value).
fn psql_json(pg: &Postgres, database: &str, query: &str) -> Vec<Value> {
    let out = pg.psql(database, &format!("SELECT row_to_json(r) FROM ({query}) r"));
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// The rows of `sql` run on a lakegate server over Flight SQL, as JSON objects (column name →
/// value); panics naming the statement if it fails. Flight SQL takes a statement as written,
/// while the CLI's statement splitter re-renders it and does not yet keep a doubled quote
/// (`'it''s'`, `"we""ird"`) doubled.
pub(crate) async fn flight_json(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> Vec<Value> {
    let fail = |e: &dyn std::fmt::Display| -> ! { panic!("{sql}: {e}") };
    let info = client.execute(sql.to_owned(), None).await.unwrap_or_else(|e| fail(&e));
    let mut writer = datafusion::arrow::json::ArrayWriter::new(Vec::new());
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.unwrap_or_else(|| fail(&"no ticket"));
        let stream = client.do_get(ticket).await.unwrap_or_else(|e| fail(&e));
        let batches: Vec<_> = stream.try_collect().await.unwrap_or_else(|e| fail(&e));
        for batch in &batches {
            writer.write(batch).unwrap_or_else(|e| fail(&e));
        }
    }
    writer.finish().unwrap_or_else(|e| fail(&e));
    let json = writer.into_inner();
    if json.is_empty() { Vec::new() } else { serde_json::from_slice(&json).unwrap_or_else(|e| fail(&e)) }
}

/// The plan of `sql`, over Flight SQL.
pub(crate) async fn flight_explain(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> String {
    let rows = flight_json(client, &format!("EXPLAIN {sql}")).await;
    rows.iter().map(|r| r["plan"].as_str().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// Every awkward name as a table, each with a column of every awkward name (the first two
/// integers, `i` and `10 * i`, the others text holding `<column>#<row>`): read whole (COPY),
/// through pushed-down filters on such columns (cursor), split on such a column, and in
/// Redshift's dialect, each time compared with what psql reads.
#[tokio::test(flavor = "multi_thread")]
async fn names_with_quotes_backslashes_spaces_and_unicode_read_as_themselves() {
    let pg = Postgres::shared();
    let db = pg.database();
    let (key, tens) = (ident(AWKWARD_NAMES[0]), ident(AWKWARD_NAMES[1]));
    for table in AWKWARD_NAMES {
        let columns: Vec<String> = AWKWARD_NAMES
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} {}", ident(c), if i < 2 { "int4" } else { "text" }))
            .collect();
        let values: Vec<String> = AWKWARD_NAMES[2..].iter().map(|c| format!("{} || '#' || i", literal(c))).collect();
        pg.psql(
            &db,
            &format!(
                "CREATE TABLE {t} ({}); INSERT INTO {t} SELECT i, 10 * i, {} FROM generate_series(1, 30) i",
                columns.join(", "),
                values.join(", "),
                t = ident(table)
            ),
        );
    }
    let server = Server::start_with(lakegate(), &["--listen", "127.0.0.1:0"]).expect("server starts");
    let client = &mut server.signed_in().await;
    let url = pg.url(&db);
    for (n, table) in AWKWARD_NAMES.iter().enumerate() {
        // Half of them schema-qualified; the option holds the name as PostgreSQL spells it.
        let remote = if n % 2 == 0 { ident(table) } else { format!("public.{}", ident(table)) };
        let create = format!(
            "CREATE EXTERNAL TABLE t{n} STORED AS POSTGRES LOCATION '{url}' OPTIONS ('table' {}, 'password' '${{env:PG_PASSWORD}}')",
            literal(&remote)
        );
        flight_json(client, &create).await;
        let described: Vec<String> = flight_json(client, &format!("DESCRIBE t{n}"))
            .await
            .iter()
            .map(|r| r["col_name"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(described, AWKWARD_NAMES, "the columns of {table}");

        let whole = format!("SELECT * FROM {} ORDER BY {key}", ident(table));
        assert_eq!(
            flight_json(client, &format!("SELECT * FROM t{n} ORDER BY {key}")).await,
            psql_json(pg, &db, &whole),
            "all of {table}"
        );

        // Filters on awkward columns, pushed down with their values bound.
        let text_column = AWKWARD_NAMES[2 + n % 5];
        let condition = format!(
            "{tens} > 30 AND {} IN ({}, {})",
            ident(text_column),
            literal(&format!("{text_column}#7")),
            literal("none")
        );
        let query = format!("SELECT * FROM t{n} WHERE {condition}");
        let plan = flight_explain(client, &query).await;
        assert!(
            plan.contains(&format!("({} = $", ident(text_column))) && !plan.contains("FilterExec"),
            "the filters on {table} run in PostgreSQL:\n{plan}"
        );
        let expected = psql_json(pg, &db, &format!("SELECT * FROM {} WHERE {condition}", ident(table)));
        assert_eq!(expected.len(), 1);
        assert_eq!(flight_json(client, &query).await, expected, "filtered {table}");
        assert_eq!(
            flight_json(client, &format!("SELECT count(*) AS n FROM t{n}")).await,
            [serde_json::json!({"n": 30})]
        );
    }

    // Split on an awkward column, its bounds read from the database: the split filters and
    // the bounds query name it.
    let create = format!(
        "CREATE EXTERNAL TABLE split STORED AS POSTGRES LOCATION '{url}' OPTIONS ('table' {}, 'password' '${{env:PG_PASSWORD}}', \
         'partitionColumn' {}, 'numPartitions' '3')",
        literal(&ident(AWKWARD_NAMES[2])),
        literal(AWKWARD_NAMES[1])
    );
    flight_json(client, &create).await;
    let plan = flight_explain(client, "SELECT * FROM split").await;
    assert_eq!(plan.matches("sql=[").count(), 3, "three reads:\n{plan}");
    let whole = format!("SELECT * FROM {} ORDER BY {key}", ident(AWKWARD_NAMES[2]));
    assert_eq!(flight_json(client, &format!("SELECT * FROM split ORDER BY {key}")).await, psql_json(pg, &db, &whole));

    // Redshift's dialect (a cursor, its casts) over the same names.
    let redshift = format!("jdbc:redshift://127.0.0.1:{}/{db}?user=lakegate&password=${{env:PG_PASSWORD}}", pg.port);
    let create = format!(
        "CREATE TABLE rs USING com.databricks.spark.redshift OPTIONS (url '{redshift}', dbtable {})",
        literal(&ident(AWKWARD_NAMES[3]))
    );
    flight_json(client, &create).await;
    let condition = format!("{} = {}", ident(AWKWARD_NAMES[2]), literal(&format!("{}#9", AWKWARD_NAMES[2])));
    let expected = psql_json(pg, &db, &format!("SELECT * FROM {} WHERE {condition}", ident(AWKWARD_NAMES[3])));
    assert_eq!(flight_json(client, &format!("SELECT * FROM rs WHERE {condition}")).await, expected);
    let whole = format!("SELECT * FROM {} ORDER BY {key}", ident(AWKWARD_NAMES[3]));
    assert_eq!(flight_json(client, &format!("SELECT * FROM rs ORDER BY {key}")).await, psql_json(pg, &db, &whole));
}

/// `±infinity` dates and time stamps have no Arrow value: reading one is an error that names
/// the column, on the COPY path (no bound value) and the cursor path alike.
#[test]
fn infinite_dates_and_time_stamps_are_errors_naming_the_column() {
    let pg = Postgres::shared();
    let db = pg.database();
    pg.psql(
        &db,
        "CREATE TABLE spans (id int4, d date, ts timestamp, tstz timestamptz);
         INSERT INTO spans VALUES (1, '2018-03-05', '2018-03-05 01:02:03', '2018-03-05 01:02:03+00'),
           (2, '-infinity', '-infinity', '-infinity'), (3, 'infinity', 'infinity', 'infinity')",
    );
    let lg = lakegate();
    register(&lg, pg, &db, "spans", "spans");
    for column in ["d", "ts", "tstz"] {
        for (id, sign) in [(2, "-infinity"), (3, "infinity")] {
            // Cursor: the id is a bound value.
            let err = lg.sql(&format!("SELECT {column} FROM spans WHERE id = {id}")).failure().stderr;
            assert!(
                err.contains(&format!("column '{column}' of public.spans"))
                    && err.contains(&format!(" {sign} is not a")),
                "{err}"
            );
        }
        // COPY: the first infinite value, -infinity, fails the read.
        let err = lg.sql(&format!("SELECT {column} FROM spans")).failure().stderr;
        assert!(
            err.contains(&format!("column '{column}' of public.spans")) && err.contains(" -infinity is not a"),
            "{err}"
        );
    }
    assert_eq!(
        lg.sql("SELECT CAST(d AS VARCHAR), CAST(ts AS VARCHAR) FROM spans WHERE id = 1").success().rows(),
        vec![vec!["2018-03-05", "2018-03-05T01:02:03"]]
    );
}

/// lakegate's connections to `database`, as PostgreSQL counts them.
fn lakegate_backends(pg: &Postgres, database: &str) -> usize {
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lakegate' AND datname = {}",
        literal(database)
    );
    pg.psql(database, &sql).parse().unwrap_or_else(|e| panic!("a count: {e}"))
}

/// A cursor read (bound values) that fails midway, or whose query is cancelled, closes its
/// connection instead of returning it to the pool with a half-read portal; the pool then
/// opens a fresh one for the next query.
#[tokio::test(flavor = "multi_thread")]
async fn a_cursor_read_that_fails_or_is_cancelled_closes_its_connection() {
    let pg = Postgres::shared();
    let db = pg.database();
    pg.psql(
        &db,
        "CREATE TABLE events AS SELECT i AS id, DATE '2018-03-05' + i % 100 AS day FROM generate_series(1, 200000) i;
         UPDATE events SET day = '-infinity' WHERE id = 150000",
    );
    let server = Server::start_with(lakegate(), &["--listen", "127.0.0.1:0"]).expect("server starts");
    let mut client = server.signed_in().await;
    register_remotely(&mut client, pg, &db, "events").await;
    assert_eq!(count(&mut client, "SELECT count(*) FROM events WHERE id <= 1000").await, Ok(1000));
    assert_eq!(lakegate_backends(pg, &db), 1, "one pooled connection, idle");

    // The function keeps the rows coming (it is not pushed), until the one that cannot be read.
    let err = count(&mut client, "SELECT count(*) FROM events WHERE id > 0 AND CAST(day AS VARCHAR) <> ''")
        .await
        .expect_err("a -infinity date");
    assert!(err.contains("column 'day'") && err.contains("-infinity"), "{err}");
    crate::common::wait_for("the failed read's connection to close", std::time::Duration::from_secs(20), || {
        lakegate_backends(pg, &db) == 0
    });
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM events WHERE id <= 1000").await,
        Ok(1000),
        "a new connection serves"
    );
    assert_eq!(lakegate_backends(pg, &db), 1);

    let info = client.execute("SELECT id, day FROM events WHERE id < 140000".into(), None).await.expect("plans");
    let mut stream = client.do_get(info.endpoint[0].ticket.clone().expect("ticket")).await.expect("starts");
    stream.try_next().await.expect("a first batch").expect("rows");
    drop(stream);
    crate::common::wait_for("the cancelled read's connection to close", std::time::Duration::from_secs(20), || {
        lakegate_backends(pg, &db) == 0
    });
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM events WHERE id <= 1000").await,
        Ok(1000),
        "a new connection serves"
    );
}

/// `lakegate sql`'s rows of `sql` and psql's rows of `oracle` (the same query, with casts so
/// both print alike), each row joined by `|`, sorted unless the query orders them.
#[track_caller]
fn assert_same_rows(lg: &Lakegate, pg: &Postgres, db: &str, sql: &str, oracle: &str, ordered: bool) {
    // Numbers as numbers: lakegate prints 3.0 where psql prints 3.
    let number = |cell: &str| cell.parse::<f64>().map_or_else(|_| cell.to_owned(), |n| n.to_string());
    let row = |cells: Vec<String>| cells.iter().map(|c| number(c)).collect::<Vec<_>>().join("|");
    let mut got: Vec<String> = lg.sql(sql).success().rows().into_iter().map(row).collect();
    let mut expected: Vec<String> =
        pg.psql(db, oracle).lines().map(|l| row(l.split('|').map(str::to_owned).collect())).collect();
    if !ordered {
        got.sort();
        expected.sort();
    }
    assert_eq!(got, expected, "{sql}");
}

/// The SQL lakegate sends for `sql`, from EXPLAIN, and whether lakegate still aggregates.
fn sent(lg: &Lakegate, sql: &str) -> (String, bool) {
    let plan = lg.run(&["sql", "-e", &format!("EXPLAIN {sql}")]).success().stdout;
    let scan = plan.lines().filter(|l| l.contains("PostgresScanExec")).collect::<Vec<_>>().join("\n");
    (scan, plan.contains("AggregateExec"))
}

/// Aggregates (with and without GROUP BY), DISTINCT and top-n queries run in PostgreSQL when it
/// computes exactly what lakegate would; only the groups (or the n rows) come back, and every
/// answer is psql's. Those it would compute differently (float sums, text order) stay in lakegate.
#[test]
fn aggregates_distinct_and_top_n_run_in_postgres_when_exact() {
    let pg = Postgres::shared();
    let db = pg.database();
    pg.psql(
        &db,
        "CREATE TABLE views (id int4, program int2, band text, seconds int4, delta int8, amount numeric(10,2), day date, ratio float8); \
         INSERT INTO views SELECT i, i % 7, CASE WHEN i % 5 = 0 THEN NULL ELSE 'band ' || (i % 4) END, i * 37 % 1000, \
           i % 13 - 6, round(i % 100 / 3.0, 2), DATE '2024-01-01' + i % 30, (i % 11) / 3.0 FROM generate_series(1, 20000) i; \
         INSERT INTO views VALUES (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    );
    let lg = lakegate();
    register(&lg, pg, &db, "views", "views");

    // Every pushed aggregate, grouped, filtered: one row per group crosses the network.
    let query = "SELECT program, count(*), count(band), sum(seconds), sum(delta), min(day), max(delta), avg(seconds), sum(amount) \
                 FROM views WHERE id > 100 GROUP BY program";
    let (sql, aggregates) = sent(&lg, query);
    assert!(
        sql.contains(r#"CAST(count(*) AS int8), CAST(count("band") AS int8), CAST(sum("seconds") AS int8)"#)
            && sql.contains(r#"CAST(sum("amount") AS numeric(20,2))"#)
            && sql.contains(r#"WHERE ("id" > $1) GROUP BY "program"]"#)
            && !aggregates,
        "the aggregate runs in PostgreSQL:\n{sql}"
    );
    let oracle = "SELECT program, count(*), count(band), sum(seconds), sum(delta), min(day), max(delta), sum(seconds)::float8 / count(seconds), sum(amount) \
                  FROM views WHERE id > 100 GROUP BY program";
    assert_same_rows(&lg, pg, &db, query, oracle, false);
    let analyzed = lg.run(&["sql", "-e", &format!("EXPLAIN ANALYZE {query}")]).success().stdout;
    let scan = analyzed.lines().find(|l| l.contains("PostgresScanExec")).unwrap_or_default();
    assert!(scan.contains("output_rows=7,"), "the 7 groups cross the network, not the rows:\n{analyzed}");

    // No GROUP BY: one row, also over no rows at all.
    for filter in ["", " WHERE id < 0"] {
        let query =
            format!("SELECT count(*), count(id), sum(seconds), min(day), max(amount), avg(delta) FROM views{filter}");
        let oracle = format!(
            "SELECT count(*), count(id), sum(seconds), min(day), max(amount), sum(delta)::float8 / count(delta) FROM views{filter}"
        );
        assert!(!sent(&lg, &query).1, "{query}");
        assert_same_rows(&lg, pg, &db, &query, &oracle, true);
    }
    // DISTINCT is a GROUP BY, on text too (equality does not depend on the collation); HAVING
    // filters the groups in lakegate.
    let query = "SELECT DISTINCT band, day FROM views";
    assert!(sent(&lg, query).0.contains(r#"GROUP BY "band", "day""#));
    assert_same_rows(&lg, pg, &db, query, query, false);
    let query = "SELECT band, count(*) AS n FROM views GROUP BY band HAVING count(*) > 3000";
    assert_same_rows(&lg, pg, &db, query, query, false);

    // Top-n: the ORDER BY and LIMIT go with the query, and lakegate sorts the n rows again.
    let query = "SELECT program, sum(seconds) AS total FROM views GROUP BY program ORDER BY total DESC LIMIT 3";
    assert!(sent(&lg, query).0.contains(r#"GROUP BY "program" ORDER BY sum("seconds") DESC NULLS FIRST LIMIT 3"#));
    assert_same_rows(&lg, pg, &db, query, query, true);
    // As Superset sends a chart: the dataset's SQL as a subquery, ordered and limited outside.
    let query = "SELECT * FROM (SELECT program, sum(seconds) AS total FROM views GROUP BY program) AS virtual_table \
                 ORDER BY total LIMIT 2";
    assert!(sent(&lg, query).0.contains(r#"ORDER BY sum("seconds") ASC NULLS LAST LIMIT 2"#), "{}", sent(&lg, query).0);
    assert_same_rows(&lg, pg, &db, query, query, true);
    let query = "SELECT id, day, seconds FROM views WHERE band = 'band 1' ORDER BY seconds DESC, id LIMIT 5";
    let (sql, _) = sent(&lg, query);
    assert!(sql.contains(r#"ORDER BY "seconds" DESC NULLS FIRST, "id" ASC NULLS LAST LIMIT 5"#), "{sql}");
    assert_same_rows(&lg, pg, &db, query, query, true);

    // Not exact remotely, so not pushed: a float sum (addition order), text order (collation),
    // min of text, a DISTINCT aggregate's outer count, a computed key.
    for query in [
        "SELECT program, sum(ratio) FROM views GROUP BY program",
        "SELECT max(band) FROM views",
        "SELECT program % 2 AS odd, count(*) FROM views GROUP BY program % 2",
    ] {
        let (sql, aggregates) = sent(&lg, query);
        assert!(aggregates && !sql.contains("GROUP BY") && !sql.contains("max("), "{query} stays in lakegate:\n{sql}");
    }
    let query = "SELECT band, id FROM views ORDER BY band, id LIMIT 4";
    assert!(!sent(&lg, query).0.contains("ORDER BY"), "text order stays in lakegate");
    assert_same_rows(&lg, pg, &db, query, "SELECT band, id FROM views ORDER BY band COLLATE \"C\", id LIMIT 4", true);
    let query = "SELECT program, count(DISTINCT band) FROM views GROUP BY program";
    assert_same_rows(&lg, pg, &db, query, query, false);
    let query = "SELECT program, sum(ratio) FROM views GROUP BY program";
    let sums = lg.sql(query).success().rows();
    assert_eq!(sums.len(), 8);
}

/// Generated aggregate queries (keys, aggregates, filters, orders) over a table of edge values
/// (NULLs, each type's extremes, text that differs only in case or accents) give psql's answers,
/// whichever parts lakegate pushes.
#[test]
fn generated_aggregate_queries_give_psqls_answers() {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let pg = Postgres::shared();
    let db = pg.database();
    pg.psql(
        &db,
        "CREATE TABLE facts (id int4, k2 int2, k4 int4, k8 int8, amount numeric(12,2), day date, tag text); \
         INSERT INTO facts SELECT i, \
           CASE WHEN i % 11 = 0 THEN NULL WHEN i % 97 = 0 THEN 32767 WHEN i % 89 = 0 THEN -32768 ELSE i % 5 END, \
           CASE WHEN i % 13 = 0 THEN NULL WHEN i % 83 = 0 THEN 2147483647 WHEN i % 79 = 0 THEN -2147483648 ELSE i % 17 - 8 END, \
           CASE WHEN i % 7 = 0 THEN NULL ELSE (i % 23 - 11) * 100000000007 END, \
           CASE WHEN i % 9 = 0 THEN NULL ELSE round((i % 1000 - 500) / 7.0, 2) END, \
           CASE WHEN i % 5 = 0 THEN NULL ELSE DATE '2024-02-27' + i % 4 END, \
           CASE WHEN i % 6 = 0 THEN NULL ELSE (ARRAY['a', 'A', 'b', 'é', 'e', 'a b'])[i % 6 + 1] END \
         FROM generate_series(1, 3000) i",
    );
    let lg = lakegate();
    register(&lg, pg, &db, "facts", "facts");

    // (lakegate's SQL, psql's SQL): psql orders text by its collation, lakegate by bytes.
    // Computed keys and text max stay in lakegate.
    let keys = ["k2", "k4", "day", "tag", "k4 % 3"];
    let aggregate = prop_oneof![
        Just(("count(*)".to_owned(), "count(*)".to_owned())),
        prop::sample::select(vec!["id", "k2", "amount", "day", "tag"])
            .prop_map(|c| (format!("count({c})"), format!("count({c})"))),
        (prop::sample::select(vec!["sum", "min", "max"]), prop::sample::select(vec!["k2", "k4", "k8", "amount"]))
            .prop_map(|(f, c)| (format!("{f}({c})"), format!("{f}({c})"))),
        prop::sample::select(vec!["min", "max"]).prop_map(|f| (format!("{f}(day)"), format!("{f}(day)"))),
        // DataFusion's avg is the correctly rounded quotient; PostgreSQL's rounds to 16 digits first.
        prop::sample::select(vec!["k2", "k4"])
            .prop_map(|c| (format!("avg({c})"), format!("sum({c})::float8 / count({c})"))),
        Just(("max(tag)".to_owned(), "max(tag COLLATE \"C\")".to_owned())),
    ];
    let filter = prop::sample::select(vec![
        "",
        " WHERE k8 > 0",
        " WHERE tag = 'a'",
        " WHERE day BETWEEN DATE '2024-02-28' AND DATE '2024-03-01'",
        " WHERE k4 IS NULL",
        " WHERE id < 0",
    ]);
    let query = (
        prop::sample::subsequence(keys.to_vec(), 0..=2),
        prop::collection::vec(aggregate, 1..4),
        filter,
        any::<bool>(),
    );
    let mut runner = TestRunner::deterministic();
    for _ in 0..40 {
        let (keys, aggregates, filter, top) = query.new_tree(&mut runner).expect("a query").current();
        // Every output named c1.., keys first, after a constant (a row of one NULL prints as
        // nothing in psql).
        let outputs = |pick: fn(&(String, String)) -> &String| {
            let all = keys.iter().map(|k| k.to_string()).chain(aggregates.iter().map(|a| pick(a).clone()));
            let named = all.enumerate().map(|(i, e)| format!("{e} AS c{}", i + 1));
            std::iter::once("0 AS c0".to_owned()).chain(named).collect::<Vec<_>>().join(", ")
        };
        let group = if keys.is_empty() { String::new() } else { format!(" GROUP BY {}", keys.join(", ")) };
        let mut sql = format!("SELECT {} FROM facts{filter}{group}", outputs(|a| &a.0));
        let mut oracle = format!("SELECT {} FROM facts{filter}{group}", outputs(|a| &a.1));
        // A top-3 by the first aggregate, every other column breaking ties, so one set of rows.
        if top {
            let columns = keys.len() + aggregates.len();
            let mut positions = vec![keys.len() + 1];
            positions.extend((1..=columns).filter(|&p| p != keys.len() + 1));
            let is_text = |p: usize| {
                keys.get(p - 1) == Some(&"tag")
                    || p.checked_sub(1 + keys.len()).and_then(|i| aggregates.get(i)).is_some_and(|a| a.0 == "max(tag)")
            };
            let order = |collate: &str| {
                let key = |p: usize| if is_text(p) { format!("c{p}{collate} DESC") } else { format!("c{p} DESC") };
                positions.iter().map(|&p| key(p)).collect::<Vec<_>>().join(", ")
            };
            sql = format!("SELECT * FROM ({sql}) ORDER BY {} LIMIT 3", order(""));
            oracle = format!("SELECT * FROM ({oracle}) q ORDER BY {} LIMIT 3", order(" COLLATE \"C\""));
        }
        assert_same_rows(&lg, pg, &db, &sql, &oracle, top);
    }
}

/// `CREATE DATABASE ... STORED AS POSTGRES`: every table of the remote schema is there, with
/// no registration; tables created later appear on REFRESH DATABASE; psql is the oracle.
#[test]
fn a_mounted_database_shows_every_table_of_its_remote_schema() {
    let pg = Postgres::shared();
    let db = pg.database();
    pg.psql(
        &db,
        r#"CREATE SCHEMA crm; CREATE TABLE crm.users (uid int8, name text); INSERT INTO crm.users VALUES (1, 'ann'), (2, 'bo');
           CREATE TABLE crm."Odd ""Name""" (x int4); INSERT INTO crm."Odd ""Name""" VALUES (7);
           CREATE TABLE public.elsewhere (y int4)"#,
    );
    let lg = lakegate();
    let mount = format!(
        "CREATE DATABASE crm STORED AS POSTGRES LOCATION '{}' OPTIONS ('schema' 'crm', 'password' '${{env:PG_PASSWORD}}')",
        pg.url(&db)
    );
    let run = lg.sql(&mount).success();
    assert!(run.stderr.contains("2 remote tables"), "{}", run.stderr);
    let listed = json_rows(&lg, "SHOW TABLES IN crm");
    let names: Vec<&str> = listed.iter().filter_map(|r| r["table_name"].as_str()).collect();
    assert_eq!(names, ["Odd \"Name\"", "users"]);
    // DataFusion's own listing (information_schema, as SQL tools browse) sees them too.
    let listed =
        json_rows(&lg, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'crm' ORDER BY 1");
    let names: Vec<&str> = listed.iter().filter_map(|r| r["table_name"].as_str()).collect();
    assert_eq!(names, ["Odd \"Name\"", "users"]);
    assert_same_rows(&lg, pg, &db, "SELECT uid, name FROM crm.users", "SELECT uid, name FROM crm.users", false);
    assert_same_rows(&lg, pg, &db, r#"SELECT x FROM crm."Odd ""Name""""#, r#"SELECT x FROM crm."Odd ""Name""""#, false);
    // A table created after the mount: seen on REFRESH DATABASE (or after the listing's 10 s).
    pg.psql(&db, "CREATE TABLE crm.orders (id int4); INSERT INTO crm.orders VALUES (1), (2), (3)");
    assert!(lg.sql("REFRESH DATABASE crm").success().stderr.contains("3 remote tables"));
    assert_eq!(lg.sql("SELECT count(*) FROM crm.orders").success().rows(), vec![vec!["3"]]);
    // The catalog keeps the reference, never the password; a password in the URL is refused.
    let shown = std::fs::read(lg.data_dir.path().join("catalog.db")).expect("catalog");
    assert!(!String::from_utf8_lossy(&shown).contains(PASSWORD));
    let with_password = pg.url(&db).replace("lakegate@", &format!("lakegate:{PASSWORD}@"));
    let run = lg.sql(&format!("CREATE DATABASE leaky STORED AS POSTGRES LOCATION '{with_password}'")).failure();
    assert!(run.stderr.contains("holds a password") && !run.stderr.contains(PASSWORD), "{}", run.stderr);
    // Sources that cannot list their tables say so; an unreachable server registers nothing.
    let run = lg.sql("CREATE DATABASE files STORED AS PARQUET LOCATION '/tmp'").failure();
    assert!(run.stderr.contains("cannot be mounted"), "{}", run.stderr);
    let nowhere = format!("postgres://lakegate@127.0.0.1:{}/none", crate::common::free_port());
    let run = lg.sql(&format!("CREATE DATABASE gone STORED AS POSTGRES LOCATION '{nowhere}'")).failure();
    assert!(run.stderr.contains("127.0.0.1"), "{}", run.stderr);
    assert!(!lg.sql("SHOW DATABASES").success().stdout.contains("gone"));
}

/// Inner joins on equal keys of tables of one PostgreSQL server run there, with each table's
/// filters bound as values, and so do aggregates and top-n over them: one query, and only the
/// joined rows (or the groups) come back. Every answer is
/// psql's. Joins the database would compute differently (float keys) or that are not inner,
/// and tables of two databases, are joined in lakegate.
#[test]
fn joins_of_tables_of_one_server_run_there() {
    let pg = Postgres::shared();
    let db = pg.database();
    let other = pg.database();
    pg.psql(
        &db,
        r#"CREATE TABLE users (uid int4, name text, "Odd ""Col" text, score float8);
           INSERT INTO users SELECT i, CASE WHEN i % 10 = 0 THEN NULL ELSE 'user ' || i % 50 END, 'it''s ' || i, i / 3.0
             FROM generate_series(1, 500) i;
           INSERT INTO users VALUES (NULL, 'nobody', NULL, NULL);
           CREATE TABLE views (id int8, uid int8, program int2, day date, score float8);
           INSERT INTO views SELECT i, CASE WHEN i % 17 = 0 THEN NULL ELSE i % 600 END, i % 7, DATE '2024-01-01' + i % 30,
             (i % 500) / 3.0 FROM generate_series(1, 20000) i;
           CREATE TABLE programs (program int2, title text);
           INSERT INTO programs SELECT i, 'show ' || i FROM generate_series(0, 5) i"#,
    );
    pg.psql(
        &other,
        "CREATE TABLE programs (program int2, title text); INSERT INTO programs SELECT i, 'other ' || i FROM generate_series(0, 6) i",
    );
    let lg = lakegate();
    for table in ["users", "views", "programs"] {
        register(&lg, pg, &db, table, table);
    }
    register(&lg, pg, &other, "other_programs", "programs");
    let pushed = |query: &str| {
        let (sql, _) = sent(&lg, query);
        assert_eq!(sql.lines().count(), 1, "one query for the whole join: {query}\n{sql}");
        sql
    };

    // Keys of two integer widths, filters on both sides (bound in order), NULL keys unmatched.
    let query = "SELECT u.name, v.id, v.day FROM views v JOIN users u ON v.uid = u.uid \
                 WHERE v.program = 3 AND u.name LIKE 'user 1%'";
    let sql = pushed(query);
    assert!(
        sql.contains(r#"FROM (SELECT * FROM "public"."views" WHERE ("program" = $1)) AS "t0" JOIN (SELECT * FROM "public"."users" WHERE "name" LIKE $2) AS "t1" ON "t0"."uid" = "t1"."uid""#),
        "{sql}"
    );
    assert_same_rows(&lg, pg, &db, query, query, false);
    let analyzed = lg.run(&["sql", "-e", &format!("EXPLAIN ANALYZE {query}")]).success().stdout;
    let joined = pg.psql(&db, &format!("SELECT count(*) FROM ({query}) q"));
    let scan = analyzed.lines().find(|l| l.contains("PostgresScanExec")).unwrap_or_default();
    assert!(scan.contains(&format!("output_rows={joined},")), "only the {joined} joined rows move:\n{analyzed}");

    // Three tables, a quoted column, the aggregate above in lakegate; a self-join on text.
    let query = r#"SELECT p.title, count(*) AS n FROM views v JOIN users u ON v.uid = u.uid
                   JOIN programs p ON v.program = p.program WHERE u."Odd ""Col" <> 'it''s 7' GROUP BY p.title"#;
    let sql = pushed(query);
    assert_eq!(sql.matches(r#" ON "t"#).count(), 2, "{sql}");
    assert!(
        sql.contains(r#"AS "joined" GROUP BY "t2.title""#) && !sent(&lg, query).1,
        "grouped there too:
{sql}"
    );
    assert_same_rows(&lg, pg, &db, query, query, false);
    let analyzed = lg.run(&["sql", "-e", &format!("EXPLAIN ANALYZE {query}")]).success().stdout;
    let scan = analyzed.lines().find(|l| l.contains("PostgresScanExec")).unwrap_or_default();
    assert!(
        scan.contains("output_rows=6,"),
        "only the 6 groups move:
{analyzed}"
    );
    let query = "SELECT a.uid, b.uid FROM users a JOIN users b ON a.name = b.name WHERE a.uid < 60";
    pushed(query);
    assert_same_rows(&lg, pg, &db, query, query, false);
    // Two grouping keys of one name: the join is pushed, the grouping done here.
    let query = "SELECT a.name, b.name, count(*) FROM users a JOIN users b ON a.uid = b.uid GROUP BY a.name, b.name";
    assert_eq!(sent(&lg, query), (pushed(query), true));
    assert_same_rows(&lg, pg, &db, query, query, false);
    // Top-n over a join: the order and limit go with it.
    let query = "SELECT v.id, u.uid FROM views v JOIN users u ON v.uid = u.uid ORDER BY v.id DESC LIMIT 5";
    assert!(pushed(query).contains(r#"ORDER BY "t0.id" DESC NULLS FIRST LIMIT 5"#));
    assert_same_rows(&lg, pg, &db, query, query, true);

    // Joined in lakegate: float keys, an outer join, two databases.
    for query in [
        "SELECT count(*) FROM views v JOIN users u ON v.score = u.score",
        "SELECT u.uid, count(v.id) FROM users u LEFT JOIN views v ON v.uid = u.uid GROUP BY u.uid",
    ] {
        let (sql, _) = sent(&lg, query);
        assert_eq!(sql.lines().count(), 2, "{query}:\n{sql}");
        assert_same_rows(&lg, pg, &db, query, query, false);
    }
    let query = "SELECT o.title, count(*) FROM views v JOIN other_programs o ON v.program = o.program GROUP BY o.title";
    assert_eq!(sent(&lg, query).0.lines().count(), 2);
    let oracle = "SELECT o.title, count(*) FROM views v JOIN (SELECT i::int2 AS program, 'other ' || i AS title \
                  FROM generate_series(0, 6) i) o ON v.program = o.program GROUP BY o.title";
    assert_same_rows(&lg, pg, &db, query, oracle, false);
}
