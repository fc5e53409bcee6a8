//! Cassandra tables against a real Apache Cassandra (`LAKEGATE_TEST_CASSANDRA`, started by
//! `scripts/test.sh` through `scripts/services/cassandra.sh`): types, pushdown, token-range
//! scans, bad input, and the canonical query across Parquet on S3 and Cassandra.

use serde_json::{Value, json};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use futures::TryStreamExt;

use crate::common::{Cql, Lakegate, OwnCassandra, S3Server, free_port};
use crate::flight::Server;

/// A lakegate with keyspace `ks`'s table `table` registered as `name`.
fn registered(cql: &Cql, ks: &str, table: &str, name: &str) -> Lakegate {
    let lg = Lakegate::new().with_cassandra(&cql.contact_point);
    lg.sql(&format!(
        "CREATE EXTERNAL TABLE {name} STORED AS CASSANDRA LOCATION 'cassandra://{}/{ks}/{table}'",
        cql.contact_point
    ))
    .success();
    lg
}

/// The plan of `sql`, CSV quoting undone.
fn explain(lg: &Lakegate, sql: &str) -> String {
    lg.run(&["sql", "--format", "csv", "-e", &format!("EXPLAIN {sql}")]).success().stdout.replace("\"\"", "\"")
}

/// How many token ranges the plan says the scan reads.
fn token_ranges(plan: &str) -> usize {
    let Some((_, rest)) = plan.split_once("full table in ") else { panic!("not a full scan: {plan}") };
    rest.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no range count: {plan}"))
}

#[test]
fn every_cql_type_maps_to_arrow_and_back() {
    let cql = Cql::connect();
    cql.keyspace("lg_types");
    cql.run(&[
        "CREATE TYPE lg_types.address (street text, zip int)",
        "CREATE TABLE lg_types.t (
            id int PRIMARY KEY, a ascii, tx text, vc varchar, i int, bi bigint, si smallint, ti tinyint,
            vi varint, de decimal, f float, d double, b boolean, bl blob, u uuid, tu timeuuid,
            ts timestamp, dt date, tm time, du duration, ip inet,
            l list<int>, s set<text>, m map<text, int>, fl frozen<list<frozen<map<text, int>>>>,
            tp tuple<int, text>, ud frozen<address>, v vector<float, 3>)",
        "INSERT INTO lg_types.t (id, a, tx, vc, i, bi, si, ti, vi, de, f, d, b, bl, u, tu, ts, dt, tm, du, ip, l, s, m, fl, tp, ud, v)
         VALUES (1, 'ascii', 'tëxt', 'varchar', -2147483648, 9223372036854775807, -32768, 127,
            123456789012345678901234567890, -1234567890.0123456789, 1.5, 2.25, true, 0xcafe,
            123e4567-e89b-12d3-a456-426614174000, 50554d6e-29bb-11e5-b345-feff819cdc9f,
            '2018-03-05 12:34:56.789+0000', '2018-03-05', '12:34:56.123456789', 1mo2d3ns, '192.168.0.1',
            [1, 2, 3], {'x', 'y'}, {'k': 1}, [{'a': 1}, {'b': 2}],
            (7, 'seven'), {street: 'Main', zip: 12345}, [0.5, 1.5, 2.5])",
        "INSERT INTO lg_types.t (id) VALUES (2)",
    ]);
    let lg = registered(&cql, "lg_types", "t", "types");
    // Declared order: key first, then the other columns by name.
    let described = lg.sql("DESCRIBE types").success();
    let names: Vec<String> = described.rows().iter().map(|r| r[0].clone()).collect();
    let mut rest: Vec<&str> = vec![
        "a", "tx", "vc", "i", "bi", "si", "ti", "vi", "de", "f", "d", "b", "bl", "u", "tu", "ts", "dt", "tm", "du",
        "ip", "l", "s", "m", "fl", "tp", "ud", "v",
    ];
    rest.sort_unstable();
    assert_eq!(names, [vec!["id"], rest].concat(), "{}", described.stdout);

    let expected: &[(&str, &str, &str)] = &[
        ("a", "Utf8", "ascii"),
        ("tx", "Utf8", "tëxt"),
        ("vc", "Utf8", "varchar"),
        ("i", "Int32", "-2147483648"),
        ("bi", "Int64", "9223372036854775807"),
        ("si", "Int16", "-32768"),
        ("ti", "Int8", "127"),
        ("vi", "Utf8", "123456789012345678901234567890"),
        ("de", "Utf8", "-1234567890.0123456789"),
        ("f", "Float32", "1.5"),
        ("d", "Float64", "2.25"),
        ("b", "Boolean", "true"),
        ("bl", "Binary", "cafe"),
        ("u", "Utf8", "123e4567-e89b-12d3-a456-426614174000"),
        ("tu", "Utf8", "50554d6e-29bb-11e5-b345-feff819cdc9f"),
        ("ts", "Timestamp(ms, \"UTC\")", "2018-03-05T12:34:56.789Z"),
        ("dt", "Date32", "2018-03-05"),
        ("tm", "Time64(ns)", "12:34:56.123456789"),
        ("du", "Interval(MonthDayNano)", "1 mons 2 days 0.000000003 secs"),
        ("ip", "Utf8", "192.168.0.1"),
    ];
    for (column, arrow, shown) in expected {
        let text = if *column == "bl" { "encode(bl, 'hex')".to_owned() } else { format!("CAST({column} AS VARCHAR)") };
        let rows = lg.json(&format!(
            "SELECT arrow_typeof({column}) AS t, {text} AS v, {column} IS NULL AS n FROM types ORDER BY id"
        ));
        assert_eq!(rows[0]["t"], json!(arrow), "type of {column}");
        assert_eq!(rows[0]["v"], json!(shown), "value of {column}");
        assert_eq!(rows[1]["n"], json!(true), "{column} is NULL in the row that does not set it");
    }

    let rows = lg.json("SELECT l, s, m, fl, tp, ud, v FROM types WHERE id = 1");
    let row = &rows[0];
    assert_eq!(row["l"], json!([1, 2, 3]));
    assert_eq!(row["s"], json!(["x", "y"]));
    assert_eq!(row["m"], json!({"k": 1}));
    assert_eq!(row["fl"], json!([{"a": 1}, {"b": 2}]));
    assert_eq!(row["tp"], json!({"_1": 7, "_2": "seven"}));
    assert_eq!(row["ud"], json!({"street": "Main", "zip": 12345}));
    assert_eq!(row["v"], json!([0.5, 1.5, 2.5]));
    let nested_types = lg
        .sql("SELECT arrow_typeof(l), arrow_typeof(m), arrow_typeof(ud), arrow_typeof(v) FROM types WHERE id = 1")
        .success();
    assert!(
        nested_types.stdout.contains("List(")
            && nested_types.stdout.contains("Map(")
            && nested_types.stdout.contains("Struct("),
        "{}",
        nested_types.stdout
    );
    assert!(nested_types.stdout.contains("FixedSizeList(3"), "{}", nested_types.stdout);
    let nulls = lg.json("SELECT l, m, tp, ud, v FROM types WHERE id = 2");
    assert!(nulls[0].as_object().is_none_or(|o| o.values().all(Value::is_null)), "{:?}", nulls[0]);
}

/// Events per user and day, clustered by day then sequence.
fn load_events(cql: &Cql, ks: &str) {
    cql.keyspace(ks);
    cql.run(&[&format!(
        "CREATE TABLE {ks}.events (uid int, day text, seq bigint, kind text, PRIMARY KEY ((uid), day, seq))"
    )]);
    let mut rows = Vec::new();
    for uid in 0..50_i32 {
        for (d, day) in ["2018-03-04", "2018-03-05", "2018-03-06"].iter().enumerate() {
            for seq in 0..4_i64 {
                let kind = if (seq + d as i64) % 2 == 0 { "impression" } else { "click" };
                rows.push((uid, day.to_string(), seq, kind.to_string()));
            }
        }
    }
    cql.insert(&format!("INSERT INTO {ks}.events (uid, day, seq, kind) VALUES (?, ?, ?, ?)"), rows);
}

#[test]
fn partition_and_clustering_restrictions_are_sent_as_cql() {
    let cql = Cql::connect();
    load_events(&cql, "lg_pushdown");
    let lg = registered(&cql, "lg_pushdown", "events", "events");

    let sql = "SELECT seq, kind FROM events WHERE uid = 7 AND day = '2018-03-05' AND seq >= 2";
    let plan = explain(&lg, sql);
    assert!(
        plan.contains(
            r#"cql=SELECT "seq", "kind" FROM "lg_pushdown"."events" WHERE "uid" = ? AND "day" = ? AND "seq" >= ?"#
        ),
        "{plan}"
    );
    assert!(plan.contains("values=[7, '2018-03-05', 2]") && plan.contains("only the partitions named"), "{plan}");
    assert!(!plan.contains("FilterExec"), "everything was pushed: {plan}");
    assert_eq!(
        lg.sql(&format!("{sql} ORDER BY seq")).success().rows(),
        vec![vec!["2", "click"], vec!["3", "impression"]]
    );

    let sql = "SELECT uid, count(*) AS n FROM events WHERE uid IN (1, 2, 3) AND day BETWEEN '2018-03-05' AND '2018-03-06' GROUP BY uid ORDER BY uid";
    let plan = explain(&lg, sql);
    assert!(plan.contains(r#"WHERE "uid" IN ? AND "day" >= ? AND "day" <= ?"#), "{plan}");
    assert_eq!(lg.sql(sql).success().rows(), vec![vec!["1", "8"], vec!["2", "8"], vec!["3", "8"]]);

    // A clustering range without the partition would need ALLOW FILTERING: lakegate filters.
    let sql = "SELECT count(*) FROM events WHERE day = '2018-03-05' AND kind = 'click'";
    let plan = explain(&lg, sql);
    assert!(!plan.contains("ALLOW FILTERING") && plan.contains("FilterExec"), "{plan}");
    assert!(
        plan.contains("reads=full table in") && plan.contains(r#"token("uid") > ?"#),
        "the scan cost shows: {plan}"
    );
    assert_eq!(lg.sql(sql).success().rows(), vec![vec!["100"]]);

    // A skipped clustering column stops the prefix: seq is left to lakegate.
    let plan = explain(&lg, "SELECT kind FROM events WHERE uid = 1 AND seq = 2");
    assert!(plan.contains(r#"WHERE "uid" = ?"#) && !plan.contains(r#""seq" = ?"#), "{plan}");

    // LIMIT travels with an exact scan.
    let plan = explain(&lg, "SELECT seq FROM events WHERE uid = 4 LIMIT 3");
    assert!(plan.contains(r#"WHERE "uid" = ? LIMIT ?"#), "{plan}");
    assert_eq!(lg.sql("SELECT seq FROM events WHERE uid = 4 LIMIT 3").success().rows().len(), 3);

    // Opting in to ALLOW FILTERING pushes comparisons on other columns.
    lg.sql(&format!(
        "CREATE EXTERNAL TABLE events_f STORED AS CASSANDRA LOCATION 'cassandra://{}/lg_pushdown/events' OPTIONS (allow_filtering 'true')",
        cql.contact_point
    ))
    .success();
    let sql = "SELECT count(*) FROM events_f WHERE kind = 'click'";
    let plan = explain(&lg, sql);
    assert!(plan.contains(r#""kind" = ? ALLOW FILTERING"#), "{plan}");
    assert_eq!(lg.sql(sql).success().rows(), vec![vec!["300"]]);
}

#[test]
fn a_single_partition_lookup_reads_only_that_partition() {
    let cql = Cql::connect();
    load_events(&cql, "lg_lookup");
    let lg = registered(&cql, "lg_lookup", "events", "events");
    let run = lg
        .run(&["sql", "--format", "csv", "-e", "EXPLAIN ANALYZE SELECT count(*) FROM events WHERE uid = 9"])
        .success();
    // The partition holds 12 rows; the table 600.
    assert!(run.stdout.contains("rows_fetched=12"), "{}", run.stdout);
    let run = lg.run(&["sql", "--format", "csv", "-e", "EXPLAIN ANALYZE SELECT count(*) FROM events"]).success();
    assert!(run.stdout.contains("rows_fetched=600"), "{}", run.stdout);
}

#[test]
fn a_token_range_scan_returns_every_row_once_including_the_wrap_around_range() {
    let cql = Cql::connect();
    cql.keyspace("lg_ring");
    cql.run(&["CREATE TABLE lg_ring.t (id bigint PRIMARY KEY, v int)"]);
    let n = 20_000_i64;
    cql.insert("INSERT INTO lg_ring.t (id, v) VALUES (?, ?)", (0..n).map(|i| (i, (i % 7) as i32)).collect());

    // Rows exist on both sides of the ring's wrap (past the last token and up to the first).
    let ring: Vec<i64> = {
        let state = cql.session.get_cluster_state();
        state.replica_locator().ring().iter().map(|(t, _)| t.value()).collect()
    };
    assert!(ring.len() >= 16, "the test node has 16 vnodes: {ring:?}");
    let (first, last) = (*ring.iter().min().expect("tokens"), *ring.iter().max().expect("tokens"));
    let count = |cql_text: &str, bound: i64| -> i64 {
        let result = cql.block_on(cql.session.query_unpaged(cql_text, (bound,))).expect("count query");
        let rows = result.into_rows_result().expect("rows");
        rows.first_row::<(i64,)>().expect("one row").0
    };
    assert!(count("SELECT count(*) FROM lg_ring.t WHERE token(id) > ?", last) > 0, "no row past the last token");
    assert!(count("SELECT count(*) FROM lg_ring.t WHERE token(id) <= ?", first) > 0, "no row before the first token");

    for splits in ["0", "100"] {
        let lg = Lakegate::new();
        lg.sql(&format!(
            "CREATE EXTERNAL TABLE t STORED AS CASSANDRA LOCATION 'cassandra://{}/lg_ring/t' OPTIONS (splits '{splits}', fetch_size '700')",
            cql.contact_point
        ))
        .success();
        let run = lg.sql("SELECT count(*), count(DISTINCT id), min(id), max(id), sum(id) FROM t").success();
        assert_eq!(
            run.rows(),
            vec![vec![n.to_string(), n.to_string(), "0".into(), (n - 1).to_string(), (n * (n - 1) / 2).to_string()]]
        );
        let plan = explain(&lg, "SELECT v FROM t");
        // The ring's ranges, the wrap-around one in two pieces; more when asked.
        if splits == "0" {
            assert_eq!(token_ranges(&plan), ring.len() + 1, "{plan}");
        } else {
            assert!(token_ranges(&plan) >= 90, "{plan}");
        }
        assert!(plan.contains(r#"token("id") > ? AND token("id") <= ?"#), "{plan}");
    }
}

#[test]
fn spark_data_source_spelling_and_config_contact_points() {
    let cql = Cql::connect();
    cql.keyspace("lg_spark");
    cql.run(&[
        r#"CREATE TABLE lg_spark."Programs" (id int PRIMARY KEY, name text, "Genre" text)"#,
        r#"INSERT INTO lg_spark."Programs" (id, name, "Genre") VALUES (1, 'NCIS', 'drama')"#,
    ]);
    let lg = Lakegate::new().with_cassandra(&cql.contact_point);
    let run = lg
        .sql(
            "CREATE TEMPORARY VIEW p USING org.apache.spark.sql.cassandra OPTIONS (keyspace 'lg_spark', table 'Programs'); \
             SELECT name, \"Genre\" FROM p",
        )
        .success();
    assert_eq!(run.rows(), vec![vec!["NCIS", "drama"]]);
    lg.sql(
        "CREATE TABLE programs USING org.apache.spark.sql.cassandra OPTIONS (keyspace 'lg_spark', table 'Programs')",
    )
    .success();
    assert_eq!(lg.sql("SELECT id FROM programs WHERE id = 1").success().rows(), vec![vec!["1"]]);
    // Writes go to Parquet tables only, and say so.
    let run = lg.sql("INSERT INTO programs VALUES (2, 'Bones', 'drama')").failure();
    assert!(run.stderr.contains("cassandra") && run.stderr.contains("Parquet"), "{}", run.stderr);
}

#[test]
fn unknown_keyspaces_tables_and_columns_are_named() {
    let cql = Cql::connect();
    cql.keyspace("lg_names");
    cql.run(&["CREATE TABLE lg_names.known (id int PRIMARY KEY)"]);
    let lg = Lakegate::new().with_cassandra(&cql.contact_point);
    let run = lg.sql("CREATE EXTERNAL TABLE a STORED AS CASSANDRA LOCATION 'cassandra:///no_such_ks/t'").failure();
    assert!(run.stderr.contains("keyspace 'no_such_ks' does not exist"), "{}", run.stderr);
    let run = lg.sql("CREATE EXTERNAL TABLE b STORED AS CASSANDRA LOCATION 'cassandra:///lg_names/unknown'").failure();
    assert!(run.stderr.contains("'lg_names.unknown' does not exist") && run.stderr.contains("known"), "{}", run.stderr);
    let run = lg
        .sql("CREATE EXTERNAL TABLE c (nope INT) STORED AS CASSANDRA LOCATION 'cassandra:///lg_names/known'")
        .failure();
    assert!(run.stderr.contains("'nope'"), "{}", run.stderr);
    let run = lg.sql("CREATE EXTERNAL TABLE d STORED AS CASSANDRA OPTIONS (keyspace 'lg_names', table 'known', consistency 'QUORAM')").failure();
    assert!(run.stderr.contains("QUORAM"), "{}", run.stderr);
    assert!(lg.sql("SHOW TABLES").success().rows().is_empty());
}

#[test]
fn a_node_down_at_registration_is_named() {
    let down = format!("127.0.0.1:{}", free_port());
    let lg = Lakegate::new();
    let run = lg
        .sql(&format!("CREATE EXTERNAL TABLE p STORED AS CASSANDRA LOCATION 'cassandra://{down}/ks/programs'"))
        .failure();
    assert!(run.stderr.contains(&down) && run.stderr.contains("cannot connect"), "{}", run.stderr);
    let run =
        Lakegate::new().sql("CREATE EXTERNAL TABLE p STORED AS CASSANDRA OPTIONS (keyspace 'ks', table 't')").failure();
    assert!(run.stderr.contains("contact points"), "{}", run.stderr);
}

#[test]
fn the_canonical_query_joins_parquet_on_s3_with_cassandra() {
    let cql = Cql::connect();
    cql.keyspace("lg_ncis");
    cql.run(&["CREATE TABLE lg_ncis.programs (id int PRIMARY KEY, name text)"]);
    let programs = vec![(1_i32, "NCIS".to_owned()), (2, "Bones".to_owned()), (3, "NCIS: Los Angeles".to_owned())];
    cql.insert("INSERT INTO lg_ncis.programs (id, name) VALUES (?, ?)", programs);

    let s3 = S3Server::start();
    s3.create_bucket("lake");
    let lg = s3.env(Lakegate::new()).with_cassandra(&cql.contact_point);
    lg.sql(
        "COPY (SELECT * FROM (VALUES \
            (1, 1, 'impression', '2018-03-05'), (2, 1, 'impression', '2018-03-05'), (2, 1, 'click', '2018-03-05'), \
            (3, 1, 'impression', '2018-03-06'), (1, 2, 'impression', '2018-03-06'), (4, 3, 'impression', '2018-03-06'), \
            (5, 1, 'impression', '2018-03-06')) AS v(uid, pid, type, dt)) \
         TO 's3://lake/logs/adserver_logs/' STORED AS PARQUET PARTITIONED BY (dt)",
    )
    .success();
    lg.sql(
        "COPY (SELECT * FROM (VALUES (1, 30, 'F'), (2, 45, 'F'), (3, 52, 'F'), (4, 30, 'F'), (5, 30, 'M')) AS v(uid, age, gender)) \
         TO 's3://lake/users/users.parquet' STORED AS PARQUET",
    )
    .success();
    lg.sql(
        "CREATE EXTERNAL TABLE adserver_logs STORED AS PARQUET LOCATION 's3a://lake/logs/adserver_logs'; \
         CREATE EXTERNAL TABLE users STORED AS PARQUET LOCATION 's3a://lake/users/users.parquet'; \
         CREATE TABLE programs USING org.apache.spark.sql.cassandra OPTIONS (keyspace 'lg_ncis', table 'programs')",
    )
    .success();
    let query = "SELECT COUNT(*) FROM adserver_logs A \
                   JOIN users U ON A.uid = U.uid \
                   JOIN programs P ON A.pid = P.id \
                 WHERE A.type = 'impression' AND U.age BETWEEN 25 AND 49 AND U.gender = 'F' AND P.name = 'NCIS'";
    // Impressions of program 1 by women aged 25-49: users 1 and 2 on 03-05 (uid 3 is 52, uid 5 a man).
    assert_eq!(lg.sql(query).success().rows(), vec![vec!["2"]]);
    let plan = explain(&lg, query);
    assert!(plan.contains("CassandraScanExec") && plan.contains(r#"FROM "lg_ncis"."programs""#), "{plan}");
}

/// Values bound to a prepared statement are never formatted into CQL: quotes in a literal
/// are just characters.
#[test]
fn literals_are_bound_not_spliced() {
    let cql = Cql::connect();
    cql.keyspace("lg_bind");
    cql.run(&["CREATE TABLE lg_bind.t (k text PRIMARY KEY, v int)"]);
    let key = r#"x" OR "k" > "\"#;
    cql.insert("INSERT INTO lg_bind.t (k, v) VALUES (?, ?)", vec![(key.to_owned(), 1_i32), ("x".to_owned(), 2)]);
    let lg = registered(&cql, "lg_bind", "t", "t");
    let sql = r#"SELECT v FROM t WHERE k = 'x" OR "k" > "\'"#;
    assert_eq!(lg.sql(sql).success().rows(), vec![vec!["1"]]);
    let plan = explain(&lg, sql);
    assert!(plan.contains(r#"WHERE "k" = ?"#), "{plan}");
}

/// A node killed under a running scan fails that query naming the table; a cached Cassandra
/// table keeps answering from its cache; the server keeps serving.
#[test]
fn a_node_killed_mid_scan_fails_the_query_and_cached_tables_and_the_server_keep_serving() {
    let node = OwnCassandra::start();
    let cql = Cql::connect_to(node.contact_point.clone());
    cql.keyspace("lg_kill");
    cql.run(&[
        "CREATE TABLE lg_kill.t (id int PRIMARY KEY, payload text)",
        "CREATE TABLE lg_kill.programs (pid int PRIMARY KEY, name text, seasons int)",
        "INSERT INTO lg_kill.programs (pid, name, seasons) VALUES (1, 'NCIS', 22)",
        "INSERT INTO lg_kill.programs (pid, name, seasons) VALUES (2, 'Bones', 12)",
        "INSERT INTO lg_kill.programs (pid, name) VALUES (3, 'Elementary')",
    ]);
    cql.insert("INSERT INTO lg_kill.t (id, payload) VALUES (?, ?)", (0..5000).map(|i| (i, "x".repeat(1000))).collect());
    let lg = Lakegate::new();
    lg.sql(&format!(
        "CREATE EXTERNAL TABLE t STORED AS CASSANDRA LOCATION 'cassandra://{0}/lg_kill/t' OPTIONS (fetch_size '20'); \
         CREATE EXTERNAL TABLE programs STORED AS CASSANDRA LOCATION 'cassandra://{0}/lg_kill/programs'; \
         CACHE TABLE programs",
        node.contact_point
    ))
    .success();
    let server = Server::start_with(lg, &["--listen", "127.0.0.1:0"]).expect("the server starts");
    cql.block_on(async {
        let mut client = server.signed_in().await;
        let info = client.execute("SELECT id, payload FROM t".into(), None).await.expect("plans");
        let mut stream = client.do_get(info.endpoint[0].ticket.clone().expect("ticket")).await.expect("stream");
        // Pages are fetched as the client reads, so most of the table is still to come.
        let first = stream.try_next().await.expect("a first batch").expect("not empty");
        assert!(first.num_rows() > 0);
        node.kill();
        let rest: Result<Vec<_>, _> = stream.try_collect().await;
        let err = rest.expect_err("the query fails once the node is gone").to_string();
        assert!(err.contains("lg_kill.t"), "the error names the table: {err}");

        let mut client = server.signed_in().await;
        let batches = crate::flight::fetch(&mut client, "SELECT count(*) FROM (VALUES (1), (2)) AS v(x)")
            .await
            .expect("still serving");
        assert_eq!(batches[0].column(0).as_primitive::<Int64Type>().value(0), 2);

        // The rows written above, from the cache.
        let batches = crate::flight::fetch(&mut client, "SELECT name, seasons FROM programs ORDER BY pid")
            .await
            .expect("the cached table answers with its node gone");
        let batch = datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("one batch");
        let names: Vec<Option<&str>> = batch.column(0).as_string::<i32>().iter().collect();
        let seasons: Vec<Option<i32>> =
            batch.column(1).as_primitive::<datafusion::arrow::datatypes::Int32Type>().iter().collect();
        assert_eq!(names, [Some("NCIS"), Some("Bones"), Some("Elementary")]);
        assert_eq!(seasons, [Some(22), Some(12), None]);
    });
}

/// With a Cassandra configured, `lakegate demo` keeps `programs` there, and the answer is the
/// one the same programs give from Parquet.
#[test]
fn the_demo_puts_programs_into_cassandra() {
    let cql = Cql::connect();
    let lg = Lakegate::new().with_cassandra(&cql.contact_point);
    let run = lg.run(&["demo", "--rows", "150000"]).success();
    assert!(run.stdout.contains("programs (in Cassandra, lakegate_demo.programs)"), "{}", run.stdout);
    let answer = run.first_count();
    let plan = explain(&lg, "SELECT * FROM programs");
    assert!(plan.contains("CassandraScanExec"), "{plan}");
    let parquet = lg.data_dir.path().join("warehouse/demo/programs");
    let run = lg
        .sql(&format!(
            "CREATE EXTERNAL TABLE programs_pq STORED AS PARQUET LOCATION '{}'; \
             SELECT COUNT(*) FROM adserver_logs A JOIN users U ON A.uid = U.uid JOIN programs_pq P ON A.pid = P.id \
             WHERE A.type = 'impression' AND U.age BETWEEN 25 AND 49 AND U.gender = 'F' AND P.name = 'NCIS'",
            parquet.display()
        ))
        .success();
    assert_eq!(run.rows(), vec![vec![answer.to_string()]]);
}

/// Column names that naive quoting gets wrong (Cassandra table names are `\w+` only): an
/// embedded quote, an already doubled one, a single quote, a backslash (also before a quote),
/// a space, non-ASCII letters. The partition and clustering keys are among them, so the token
/// ranges, the pushed restrictions and the projection all name them. lakegate is queried over
/// Flight SQL, which takes the statements as written.
#[test]
fn columns_named_with_quotes_backslashes_spaces_and_unicode_read_as_themselves() {
    use crate::postgres::{flight_explain, flight_json, ident, literal};
    let names = [r#"we"ird"#, "it's", r#"a""b"#, r"back\slash", "with space", "ünï", r#"back\"quote"#];
    let cql = Cql::connect();
    cql.keyspace("lg_names");
    let columns: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{} {}", ident(c), if i == 0 { "int" } else { "text" }))
        .collect();
    cql.run(&[&format!(
        "CREATE TABLE lg_names.\"Odd_Names\" ({}, PRIMARY KEY (({}), {}))",
        columns.join(", "),
        ident(names[0]),
        ident(names[1])
    )]);
    let mut inserted = Vec::new();
    for key in 1..=5_i32 {
        for row in 1..=4 {
            let text = |c: &str| format!("{c}#{key}.{row}");
            inserted.push((
                key,
                text(names[1]),
                text(names[2]),
                text(names[3]),
                text(names[4]),
                text(names[5]),
                text(names[6]),
            ));
        }
    }
    let placeholders = vec!["?"; names.len()].join(", ");
    let column_list = names.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
    cql.insert(
        &format!("INSERT INTO lg_names.\"Odd_Names\" ({column_list}) VALUES ({placeholders})"),
        inserted.clone(),
    );
    let as_json = |rows: &[(i32, String, String, String, String, String, String)]| -> Vec<Value> {
        rows.iter()
            .map(|r| {
                let values = [json!(r.0), json!(r.1), json!(r.2), json!(r.3), json!(r.4), json!(r.5), json!(r.6)];
                Value::Object(names.iter().map(|n| (*n).to_owned()).zip(values).collect())
            })
            .collect()
    };
    let server = Server::start_with(Lakegate::new(), &["--listen", "127.0.0.1:0"]).expect("server starts");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let client = &mut server.signed_in().await;
        let create = format!(
            "CREATE EXTERNAL TABLE odd STORED AS CASSANDRA LOCATION 'cassandra://{}/lg_names/Odd_Names'",
            cql.contact_point
        );
        flight_json(client, &create).await;
        let described = flight_json(client, "DESCRIBE odd").await;
        let described: Vec<&str> = described.iter().map(|r| r["col_name"].as_str().unwrap_or_default()).collect();
        let mut others = names[2..].to_vec();
        others.sort_unstable();
        assert_eq!(described, [&names[..2], &others[..]].concat(), "key columns first, then the others by name");

        // A full scan over token ranges of the awkward partition key.
        let order = format!("ORDER BY {}, {}", ident(names[0]), ident(names[1]));
        assert_eq!(flight_json(client, &format!("SELECT * FROM odd {order}")).await, as_json(&inserted));

        // Restrictions on the awkward keys, pushed with bound values.
        let wanted = format!("{}#3.2", names[1]);
        let sql =
            format!("SELECT * FROM odd WHERE {} = 3 AND {} = {}", ident(names[0]), ident(names[1]), literal(&wanted));
        let plan = flight_explain(client, &sql).await;
        assert!(
            plan.contains(&format!("WHERE {} = ? AND {} = ?", ident(names[0]), ident(names[1])))
                && !plan.contains("FilterExec"),
            "both restrictions are sent as CQL: {plan}"
        );
        let expected: Vec<_> = inserted.iter().filter(|r| r.0 == 3 && r.1 == wanted).cloned().collect();
        assert_eq!(expected.len(), 1);
        assert_eq!(flight_json(client, &sql).await, as_json(&expected));
        let count = format!("SELECT count({}) AS n FROM odd WHERE {} IN (1, 2)", ident(names[2]), ident(names[0]));
        assert_eq!(flight_json(client, &count).await, [json!({"n": 8})]);
    });
}

/// Runs one statement on a server, its rows read to the end; the error text on failure.
async fn on_server(server: &Server, sql: &str) -> Result<Vec<datafusion::arrow::array::RecordBatch>, String> {
    let mut client = server.signed_in().await;
    let info = client.execute(sql.into(), None).await.map_err(|e| e.to_string())?;
    let ticket = info.endpoint[0].ticket.clone().ok_or("no ticket")?;
    client.do_get(ticket).await.map_err(|e| e.to_string())?.try_collect().await.map_err(|e| e.to_string())
}

/// A node with `PasswordAuthenticator` (`cassandra.sh start --auth`): the right user and password
/// read, a wrong password is refused even after the right one has a cached session, and no
/// password shows in an error or the server's log.
///
/// The node is this test's own: the shared test node stays without authentication, since every
/// other test, the demo and a node given in `LAKEGATE_TEST_CASSANDRA` connect without
/// credentials. It costs ~20-30 s of this test's wall time (other tests run meanwhile) and a
/// 512 MiB heap.
#[test]
fn a_password_protected_node_reads_with_the_right_password_and_refuses_a_wrong_one() {
    const RIGHT: &str = "right-Pa55word";
    const WRONG: &str = "wrong-Pa55word";
    const LITERAL_WRONG: &str = "literal-Wr0ng-secret";
    let node = OwnCassandra::start_with_auth();
    let admin = Cql::connect_as(node.contact_point.clone(), Some(("cassandra", "cassandra")));
    admin.keyspace("lg_auth");
    admin.run(&[
        "CREATE TABLE lg_auth.t (id int PRIMARY KEY, v text)",
        "INSERT INTO lg_auth.t (id, v) VALUES (1, 'one')",
        "INSERT INTO lg_auth.t (id, v) VALUES (2, 'two')",
        &format!("CREATE ROLE lg_reader WITH PASSWORD = '{RIGHT}' AND LOGIN = true"),
        "GRANT SELECT ON KEYSPACE lg_auth TO lg_reader",
    ]);
    let location = format!("cassandra://{}/lg_auth/t", node.contact_point);
    let lakegate =
        Lakegate::new().with_env("LG_TEST_CASSANDRA_RIGHT", RIGHT).with_env("LG_TEST_CASSANDRA_WRONG", WRONG);
    // One server, so both tables go through one process's session cache.
    let server = Server::start_with(lakegate, &["--listen", "127.0.0.1:0"]).expect("the server starts");
    let table = |name: &str, options: &str| {
        format!("CREATE EXTERNAL TABLE {name} STORED AS CASSANDRA LOCATION '{location}' OPTIONS ({options})")
    };
    let count =
        |batches: Vec<datafusion::arrow::array::RecordBatch>| batches[0].column(0).as_primitive::<Int64Type>().value(0);
    admin.block_on(async {
        on_server(&server, &table("good", "'username' 'lg_reader', 'password' '${env:LG_TEST_CASSANDRA_RIGHT}'"))
            .await
            .expect("the right password registers");
        let rows = on_server(&server, "SELECT count(*) FROM good").await.expect("the right password reads");
        assert_eq!(count(rows), 2);

        // The right password's session is cached now; the wrong one must not ride on it.
        let refusals = [
            ("bad", table("bad", "'username' 'lg_reader', 'password' '${env:LG_TEST_CASSANDRA_WRONG}'")),
            (
                "bad_view",
                format!(
                    "CREATE TEMPORARY VIEW bad_view USING org.apache.spark.sql.cassandra OPTIONS \
                     (contact_points '{}', keyspace 'lg_auth', table 't', username 'lg_reader', password '{LITERAL_WRONG}')",
                    node.contact_point
                ),
            ),
            ("anonymous", table("anonymous", "'splits' '0'")),
        ];
        for (name, sql) in refusals {
            let err = on_server(&server, &sql).await.expect_err(&format!("{name} is refused"));
            println!("{name}: {err}");
            assert!(
                err.contains("cannot connect to Cassandra") && err.contains(&node.contact_point),
                "{name}: the error names the node: {err}"
            );
            assert!(
                err.to_lowercase().contains("authentication") || err.to_lowercase().contains("credentials"),
                "{name}: the error says the sign-in failed: {err}"
            );
            for secret in [RIGHT, WRONG, LITERAL_WRONG] {
                assert!(!err.contains(secret), "{name}: the error shows a password: {err}");
            }
            let missing = on_server(&server, &format!("SELECT count(*) FROM {name}")).await.expect_err("not registered");
            assert!(missing.contains(name), "{missing}");
        }
        // The right password still reads, through its cached session.
        let rows = on_server(&server, "SELECT count(*) FROM good").await.expect("still reads");
        assert_eq!(count(rows), 2);
    });
    let log = server.stop();
    for secret in [RIGHT, WRONG, LITERAL_WRONG] {
        assert!(!log.contains(secret), "the server's log shows a password: {log}");
    }
}

/// `CREATE DATABASE ... STORED AS CASSANDRA`: every table of the keyspace, with no registration;
/// the CQL driver's own reads are the oracle.
#[test]
fn a_mounted_keyspace_shows_every_table() {
    let cql = Cql::connect();
    let ks = format!("mounted_{}", std::process::id());
    let setup = [
        format!("CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"),
        format!("CREATE TABLE {ks}.programs (id int PRIMARY KEY, name text)"),
        format!("INSERT INTO {ks}.programs (id, name) VALUES (1, 'NCIS')"),
        format!("INSERT INTO {ks}.programs (id, name) VALUES (2, 'Bones')"),
        format!("CREATE TABLE {ks}.channels (id int PRIMARY KEY)"),
    ];
    cql.run(&setup.iter().map(String::as_str).collect::<Vec<_>>());
    let lg = Lakegate::new().with_cassandra(&cql.contact_point);
    let mount = format!("CREATE DATABASE media STORED AS CASSANDRA LOCATION 'cassandra://{}/{ks}'", cql.contact_point);
    assert!(lg.sql(&mount).success().stderr.contains("2 remote tables"));
    let names: Vec<String> =
        lg.sql("SHOW TABLES IN media").success().rows().into_iter().map(|r| r[1].clone()).collect();
    assert_eq!(names, ["channels", "programs"]);
    let run = lg.sql("SELECT id, name FROM media.programs ORDER BY id").success();
    assert_eq!(run.rows(), vec![vec!["1", "NCIS"], vec!["2", "Bones"]]);
    cql.run(&[format!("CREATE TABLE {ks}.episodes (id int PRIMARY KEY, program int)").as_str()]);
    assert!(lg.sql("REFRESH DATABASE media").success().stderr.contains("3 remote tables"));
    assert_eq!(lg.sql("SELECT count(*) FROM media.episodes").success().rows(), vec![vec!["0"]]);
    let run = lg
        .sql(&format!(
            "CREATE DATABASE nothing STORED AS CASSANDRA LOCATION 'cassandra://{}/no_such_ks'",
            cql.contact_point
        ))
        .failure();
    assert!(run.stderr.contains("no_such_ks"), "{}", run.stderr);
}
