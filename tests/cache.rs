//! `CACHE TABLE` as persistent accelerations, tested through the real binary: each `lakegate
//! sql` is a new process on the same data dir, so every answer from a cache is an answer from
//! the files on disk, not from one process's memory. psql and DuckDB are the oracles.

use crate::common::postgres::{PASSWORD, Postgres};
use crate::common::{Lakegate, venv_bin};

/// The rows of a csv output, as psql's `a|b` lines for comparing.
fn as_psql(rows: Vec<Vec<String>>) -> String {
    rows.iter().map(|r| r.join("|")).collect::<Vec<_>>().join("\n")
}

/// A lakegate with PostgreSQL table `events` of `database` registered, its password a reference.
fn with_events(pg: &Postgres, database: &str) -> Lakegate {
    let lakegate = Lakegate::new().with_env("PG_PASSWORD", PASSWORD);
    lakegate
        .sql(&format!(
            "CREATE EXTERNAL TABLE events STORED AS POSTGRES LOCATION '{}' OPTIONS ('table' 'events', 'password' '${{env:PG_PASSWORD}}')",
            pg.url(database)
        ))
        .success();
    lakegate
}

/// A new database of `pg` with 20,000 `events` (ids 1.., md5 payloads), registered in a new
/// lakegate.
fn with_md5_events(pg: &Postgres) -> (String, Lakegate) {
    let database = pg.database();
    pg.psql(
        &database,
        "CREATE TABLE events AS SELECT g AS id, md5(g::text) AS payload FROM generate_series(1, 20000) g",
    );
    let lakegate = with_events(pg, &database);
    (database, lakegate)
}

const SUMMARY: &str = "SELECT count(*), sum(length(payload)), min(id), max(id) FROM events WHERE id % 7 = 3";

#[test]
fn a_cached_postgres_table_answers_while_its_source_is_down_and_reloads_when_it_is_back() {
    let mut pg = Postgres::start();
    let database = pg.database();
    pg.psql(
        &database,
        "CREATE TABLE events AS SELECT g AS id, md5(g::text) || CASE WHEN g % 5 = 0 THEN ' it''s' ELSE '' END AS payload \
         FROM generate_series(1, 20000) g",
    );
    let lakegate = with_events(&pg, &database);
    let summary = || as_psql(lakegate.sql(SUMMARY).success().rows());
    let cached = || lakegate.sql("SHOW CACHED TABLES").success().rows();

    // The source is down while caching: an error naming the table, and nothing cached.
    pg.stop();
    let refused = lakegate.sql("CACHE TABLE events").failure();
    assert!(refused.stderr.contains("default.events"), "the error names the table: {}", refused.stderr);
    assert!(refused.stderr.contains("nothing was cached"), "{}", refused.stderr);
    assert!(!refused.stderr.contains(PASSWORD), "no password in errors");
    assert_eq!(cached(), Vec::<Vec<String>>::new(), "nothing is listed");
    pg.resume();

    let done = lakegate.sql("CACHE TABLE events OPTIONS ('refresh_column' 'id')").success();
    assert!(done.stderr.contains("20000 rows"), "{}", done.stderr);
    let expected = pg.psql(&database, SUMMARY);
    assert_eq!(summary(), expected);
    let explained = lakegate.sql(&format!("EXPLAIN {SUMMARY}")).success().stdout;
    assert!(explained.contains("cache/default/events/"), "EXPLAIN shows the cache's files: {explained}");

    // Source down: new processes answer from the cache; a refresh fails, says so, and keeps it.
    pg.stop();
    assert_eq!(summary(), expected, "answered from the cache while PostgreSQL is down");
    let refresh = lakegate.sql("REFRESH TABLE events").failure();
    assert!(refresh.stderr.contains("default.events"), "{}", refresh.stderr);
    let listed = cached();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0][1].as_str(), listed[0][3].as_str()), ("events", "20000"));
    assert!(!listed[0][9].is_empty(), "the last error is shown: {listed:?}");
    assert_eq!(summary(), expected, "a failed refresh keeps the cache");

    // Back up with new rows: an append-only refresh reads only rows above the highest id.
    pg.resume();
    pg.psql(&database, "INSERT INTO events SELECT g, md5(g::text) FROM generate_series(20001, 20700) g");
    let expected = pg.psql(&database, SUMMARY);
    assert_ne!(summary(), expected, "the cache answers until it is refreshed");
    lakegate.sql("REFRESH TABLE events").success();
    assert_eq!(summary(), expected);
    let listed = cached();
    assert_eq!((listed[0][3].as_str(), listed[0][9].as_str()), ("20700", ""), "{listed:?}");

    // Its files deleted under it: the source answers (never wrong rows), and a refresh reloads.
    std::fs::remove_dir_all(lakegate.data_dir.path().join("cache/default/events")).expect("cache files removed");
    assert_eq!(summary(), expected, "answered by the source");
    lakegate.sql("REFRESH TABLE events").success();
    pg.stop();
    assert_eq!(summary(), expected, "reloaded, and answering without the source");

    // UNCACHE: its files go, and queries need the source again.
    lakegate.sql("UNCACHE TABLE events").success();
    assert!(!lakegate.data_dir.path().join("cache/default/events").exists());
    assert!(lakegate.sql(SUMMARY).failure().stderr.contains("events"));
    lakegate.sql("UNCACHE TABLE IF EXISTS events").success();
    assert!(lakegate.sql("UNCACHE TABLE events").failure().stderr.contains("not cached"));
}

#[test]
fn caches_of_queries_and_of_parquet_tables_stay_exact_and_within_their_budget() {
    let lakegate = Lakegate::new();
    let dir = lakegate.data_dir.path().join("logs");
    lakegate
        .sql(&format!(
            "CREATE EXTERNAL TABLE logs (uid BIGINT, kind STRING, dt STRING) STORED AS PARQUET PARTITIONED BY (dt) LOCATION '{}'",
            dir.display()
        ))
        .success();
    lakegate
        .sql(
            "INSERT OVERWRITE TABLE logs PARTITION (dt) SELECT value, CASE WHEN value % 3 = 0 THEN 'click' ELSE 'view' END, \
             CASE WHEN value % 2 = 0 THEN '2018-03-05' ELSE '2018-03-06' END FROM range(5000)",
        )
        .success();

    // A query's cache is a table of its own; its text is kept byte for byte.
    lakegate
        .sql("CACHE TABLE quoted AS SELECT 'it''s' AS s, \"kind\", count(*) AS n FROM logs GROUP BY kind")
        .success();
    let rows = lakegate.sql("SELECT s, kind, n FROM quoted ORDER BY kind").success().rows();
    assert_eq!(rows, vec![vec!["it's", "click", "1667"], vec!["it's", "view", "3333"]]);
    assert!(lakegate.sql("SHOW TABLES").success().stdout.contains("quoted"));

    // A cached Parquet table follows writes to it: INSERT refreshes the cache at once.
    lakegate.sql("CACHE TABLE logs").success();
    let inserted = lakegate.sql("INSERT INTO logs PARTITION (dt = '2018-03-07') SELECT 1, 'click'").success();
    assert!(inserted.stderr.contains("cache was refreshed"), "{}", inserted.stderr);
    let count = |filter: &str| lakegate.sql(&format!("SELECT count(*) FROM logs WHERE {filter}")).success().rows();
    let duckdb = |filter: &str| {
        let sql = format!(
            "SELECT count(*) FROM read_parquet('{}/*/*.parquet', hive_partitioning = true) WHERE {filter}",
            dir.display()
        );
        let out = std::process::Command::new(venv_bin("python"))
            .args(["-c", &format!("import duckdb; print(duckdb.sql({sql:?}).fetchone()[0])")])
            .output()
            .expect("python runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        vec![vec![String::from_utf8_lossy(&out.stdout).trim().to_owned()]]
    };
    for filter in ["true", "dt = '2018-03-07'", "kind = 'click' AND dt = '2018-03-05'"] {
        assert_eq!(count(filter), duckdb(filter), "{filter}");
    }

    // Over the disk budget: refused with the budget named, and nothing kept.
    std::fs::write(lakegate.data_dir.path().join("lakegate.toml"), "[cache]\ndisk_mb = 1\n").expect("config");
    let refused = lakegate
        .sql("CACHE TABLE big AS SELECT value, sha256(CAST(value AS VARCHAR)) AS pad FROM range(200000)")
        .failure();
    assert!(refused.stderr.contains("disk_mb"), "{}", refused.stderr);
    let listed = lakegate.sql("SHOW CACHED TABLES").success().rows();
    assert_eq!(listed.iter().map(|r| r[1].clone()).collect::<Vec<_>>(), vec!["logs", "quoted"]);
    let leftovers = lakegate.data_dir.path().join("cache/default/big").read_dir().map(|d| d.count()).unwrap_or(0);
    assert_eq!(leftovers, 0, "no files of the refused cache are kept");

    lakegate.sql("CLEAR CACHE").success();
    assert_eq!(lakegate.sql("SHOW CACHED TABLES").success().rows(), Vec::<Vec<String>>::new());
}

#[test]
fn the_server_loads_lazy_caches_and_refreshes_them_on_their_interval() {
    let pg = Postgres::start();
    let (database, lakegate) = with_md5_events(&pg);
    let lazy = lakegate.sql("CACHE LAZY TABLE events OPTIONS ('refresh_interval' '1s')").success();
    assert!(lazy.stderr.contains("lazily"), "{}", lazy.stderr);
    let listed = lakegate.sql("SHOW CACHED TABLES").success().rows();
    assert_eq!((listed[0][3].as_str(), listed[0][8].as_str()), ("0", "false"), "not loaded yet: {listed:?}");

    let server = crate::flight::Server::spawn(lakegate, "", &["--listen", "127.0.0.1:0"]).expect("the server starts");
    let rows_cached = || {
        let listed = server.lakegate.sql("SHOW CACHED TABLES").success().rows();
        (listed[0][3].clone(), listed[0][8].clone())
    };
    crate::common::wait_for("the lazy cache to load", std::time::Duration::from_secs(60), || {
        rows_cached() == ("20000".to_owned(), "true".to_owned())
    });
    pg.psql(&database, "INSERT INTO events SELECT g, md5(g::text) FROM generate_series(20001, 20100) g");
    crate::common::wait_for("the cache to refresh on its interval", std::time::Duration::from_secs(60), || {
        rows_cached().0 == "20100"
    });
    let expected = pg.psql(&database, SUMMARY);
    drop(pg);

    // Through Flight SQL (ADBC, as Jupyter and Superset connect), with PostgreSQL gone: from
    // the files at first, then from the rows the server holds in memory.
    let script = format!(
        "import time, adbc_driver_flightsql.dbapi as f\n\
         c = f.connect({url:?})\n\
         def one(sql):\n    cur = c.cursor(); cur.execute(sql); rows = cur.fetchall(); cur.close(); return rows\n\
         answers = ['|'.join(str(v) for v in one({SUMMARY:?})[0])]\n\
         deadline = time.time() + 30\n\
         while 'partition_sizes' not in str(one('EXPLAIN ' + {SUMMARY:?})):\n    assert time.time() < deadline, 'not in memory'\n    time.sleep(0.05)\n\
         answers.append('|'.join(str(v) for v in one({SUMMARY:?})[0]))\n\
         print('\\n'.join(answers))",
        url = server.url()
    );
    let out = std::process::Command::new(venv_bin("python")).args(["-c", &script]).output().expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answers = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(answers, format!("{expected}\n{expected}"), "from the files, then from memory");
}

/// Dashboards send the same queries again and again: over caches, the first answer is kept
/// and given to the next identical query from any session, until a cache it read is loaded
/// again or loses its files. psql is the oracle; `/metrics` tells reused from computed.
#[test]
fn identical_queries_over_caches_share_one_answer_until_a_cache_changes() {
    let pg = Postgres::start();
    let (database, lakegate) = with_md5_events(&pg);
    lakegate.sql("CACHE TABLE events").success();
    let server = crate::flight::Server::spawn(lakegate, "", &["--listen", "127.0.0.1:0"]).expect("the server starts");
    // Each call is a new process, so a new connection and session.
    let adbc = |sql: &str| {
        let script = format!(
            "import adbc_driver_flightsql.dbapi as f\nc = f.connect({url:?})\ncur = c.cursor()\ncur.execute({sql:?})\n\
             print('\\n'.join('|'.join(str(v) for v in row) for row in cur.fetchall()))",
            url = server.url()
        );
        let out = std::process::Command::new(venv_bin("python")).args(["-c", &script]).output().expect("python runs");
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let answers = |result: &str| {
        let (_, text) = crate::operate::http_get(server.admin.as_deref().expect("served"), "/metrics", None);
        let wanted = format!("lakegate_answers_total{{result=\"{result}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&wanted)).map_or(0, |v| v.trim().parse::<u64>().expect("a count"))
    };

    let expected = pg.psql(&database, SUMMARY);
    assert_eq!(adbc(SUMMARY), expected);
    assert_eq!((answers("computed"), answers("reused")), (1, 0));
    assert_eq!(adbc(SUMMARY), expected, "another session, the same answer");
    assert_eq!((answers("computed"), answers("reused")), (1, 1));

    // The source changes: the cache answers as before, until it is loaded again.
    pg.psql(&database, "INSERT INTO events SELECT g, md5(g::text) FROM generate_series(20001, 20700) g");
    assert_eq!(adbc(SUMMARY), expected, "the cache's rows, as every cache answers");
    adbc("REFRESH TABLE events");
    let expected = pg.psql(&database, SUMMARY);
    assert_eq!(adbc(SUMMARY), expected, "a new generation, a new answer");
    assert_eq!((answers("computed"), answers("reused")), (2, 2));

    // A volatile function is computed every time.
    let volatile = "SELECT count(*) FROM events WHERE random() < 2";
    assert_eq!(adbc(volatile), "20700");
    assert_eq!(adbc(volatile), "20700");
    assert_eq!(answers("reused"), 2, "random() is never reused");
    // Nor `now()`, which would be a new constant, so a new key, each time.
    let stable = "SELECT count(*) FROM events WHERE now() > TIMESTAMP '2000-01-01 00:00:00'";
    assert_eq!(adbc(stable), "20700");
    assert_eq!(adbc(stable), "20700");
    assert_eq!((answers("computed"), answers("reused")), (2, 2), "not even counted as computed for reuse");

    // The cache's files deleted under the server: the source answers, never the kept answer.
    std::fs::remove_dir_all(server.lakegate.data_dir.path().join("cache/default/events")).expect("files removed");
    pg.psql(&database, "DELETE FROM events WHERE id > 20000");
    let from_source = pg.psql(&database, SUMMARY);
    assert_ne!(from_source, expected);
    assert_eq!(adbc(SUMMARY), from_source, "answered by the source");
    assert_eq!(answers("reused"), 2);
}
