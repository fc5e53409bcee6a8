//! Operating lakegate: the admin endpoint (`/metrics` linted by Prometheus's own `promtool`,
//! `/healthz`, `/readyz`, admin-only when remote), `system.queries`' per-statement history,
//! JSON logs with the query id on each line, and OpenTelemetry traces received by a real
//! OTLP/gRPC server with the statement's spans in their tree.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::util::pretty::pretty_format_batches;

use crate::common::postgres::Postgres;
use crate::common::{Lakegate, venv_bin, wait_for};
use crate::flight::{PASSWORD, Server, USER, fetch, password_hash, run};

/// A plain HTTP/1.1 GET: the status and the body.
pub(crate) fn http_get(base: &str, path: &str, basic: Option<(&str, &str)>) -> (u16, String) {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("the admin endpoint accepts");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    if let Some((user, password)) = basic {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        request.push_str(&format!("Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("sends");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("reads");
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body)
}

/// The samples of a Prometheus text exposition: `name{labels}` → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(name, value)| Some((name.to_owned(), value.parse().ok()?)))
        .collect()
}

fn sample(samples: &HashMap<String, f64>, name: &str) -> f64 {
    samples.get(name).copied().unwrap_or(0.0)
}

/// Lints `/metrics` output with Prometheus's own `promtool check metrics`.
fn promtool_check(text: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/services/promtool.sh");
    let output = Command::new("bash").args([script, "path"]).output().expect("promtool.sh runs");
    assert!(output.status.success(), "promtool is missing: {}", String::from_utf8_lossy(&output.stderr));
    let promtool = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("writes");
    let checked = child.wait_with_output().expect("promtool ends");
    assert!(
        checked.status.success(),
        "promtool check metrics refused the output:\n{}{}\n{text}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}

/// A server with an admin and a reader.
fn start_server(args: &[&str]) -> Server {
    start_server_over(Lakegate::new(), args)
}

fn start_server_over(lakegate: Lakegate, args: &[&str]) -> Server {
    let (admin_hash, reader_hash) = (password_hash(&lakegate, PASSWORD), password_hash(&lakegate, "r3ader"));
    let config = format!(
        "[[server.users]]\nname = \"{USER}\"\npassword_hash = \"{admin_hash}\"\nrole = \"admin\"\n\
         [[server.users]]\nname = \"rita\"\npassword_hash = \"{reader_hash}\"\nrole = \"reader\"\n\
         databases = [\"default\"]\n"
    );
    Server::spawn(lakegate, &config, args).expect("the server starts")
}

/// Metric values move as statements start, fail and write; `promtool` accepts the output;
/// the probes answer; `system.queries` has each statement's client, kind, state, phases, rows
/// read per source and error.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_probes_and_query_history() {
    let server = start_server(&["--listen", "127.0.0.1:0"]);
    let admin = server.admin.clone().expect("the admin endpoint is served");
    assert_eq!(http_get(&admin, "/healthz", None), (200, "ok\n".into()));
    let (status, ready) = http_get(&admin, "/readyz", None);
    assert_eq!((status, ready.as_str()), (200, "ready\ncatalog: ok\n"));
    assert_eq!(http_get(&admin, "/nope", None).0, 404);

    // The first state: nothing has run yet, and the output is already valid.
    let (status, first) = http_get(&admin, "/metrics", None);
    assert_eq!(status, 200);
    promtool_check(&first);
    let before = samples(&first);
    assert_eq!(sample(&before, "lakegate_active_queries"), 0.0);

    let mut client = server.signed_in().await;
    run(&mut client, "CREATE TABLE default.events (n BIGINT, tag STRING) USING PARQUET").await.expect("creates");
    run(&mut client, "INSERT INTO default.events SELECT value, 'x' FROM generate_series(1, 5000)")
        .await
        .expect("writes");
    let rows = run(&mut client, "SELECT n FROM default.events WHERE n % 2 = 0").await.expect("reads");
    assert_eq!(rows, 2500);
    let syntax = run(&mut client, "SELEC 1").await.expect_err("a syntax error");
    assert!(syntax.contains("Expected: an SQL statement, found: SELEC"), "{syntax}");
    let failing = "SELECT CAST(CASE WHEN n < 4000 THEN '1' ELSE 'x' END AS INT) FROM default.events";
    run(&mut client, failing).await.expect_err("fails while it runs");

    let (_, text) = http_get(&admin, "/metrics", None);
    promtool_check(&text);
    let after = samples(&text);
    let delta = |name: &str| sample(&after, name) - sample(&before, name);
    let started = r#"lakegate_queries_started_total{kind="query",user="analyst"}"#;
    let finished = r#"lakegate_queries_ended_total{kind="query",outcome="finished",user="analyst"}"#;
    let failed = r#"lakegate_queries_ended_total{kind="query",outcome="failed",user="analyst"}"#;
    assert_eq!(delta(started), 3.0, "the read, the syntax error, the failing cast:\n{text}");
    assert_eq!(delta(finished), 1.0, "{text}");
    assert_eq!(delta(failed), 2.0, "{text}");
    assert_eq!(delta(r#"lakegate_queries_ended_total{kind="write",outcome="finished",user="analyst"}"#), 1.0);
    assert_eq!(delta(r#"lakegate_commits_total{outcome="published"}"#), 1.0, "{text}");
    assert_eq!(delta("lakegate_commit_duration_seconds_count"), 1.0);
    assert!(delta(r#"lakegate_rows_returned_total{user="analyst"}"#) >= 2500.0, "{text}");
    assert!(delta(r#"lakegate_source_rows_read_total{source="parquet"}"#) >= 5000.0, "{text}");
    assert!(delta(r#"lakegate_source_bytes_read_total{source="parquet"}"#) > 0.0, "{text}");
    assert!(delta(r#"lakegate_query_duration_seconds_count{kind="query"}"#) >= 3.0, "{text}");
    assert!(delta(r#"lakegate_plan_cache_requests_total{result="hit"}"#) >= 1.0, "{text}");
    assert_eq!(sample(&after, "lakegate_active_queries"), 0.0);
    assert!(sample(&after, "lakegate_flight_sessions") >= 1.0);

    // The history of those statements, as an operator reads it.
    let history = fetch(
        &mut client,
        "SELECT kind, state, client, planning_ms >= 0 AS planned, rows, rows_read, read, error, sql \
         FROM system.queries WHERE sql LIKE '%default.events%' OR sql LIKE 'SELEC %' ORDER BY started",
    )
    .await
    .expect("lists");
    let printed = pretty_format_batches(&history).expect("prints").to_string();
    let rows: Vec<Vec<String>> = history
        .iter()
        .flat_map(|b| {
            (0..b.num_rows()).map(move |r| {
                (0..b.num_columns())
                    .map(|c| datafusion::arrow::util::display::array_value_to_string(b.column(c), r).expect("prints"))
                    .collect()
            })
        })
        .collect();
    let find = |sql_start: &str| {
        rows.iter().find(|r| r[8].starts_with(sql_start)).unwrap_or_else(|| panic!("no '{sql_start}' in\n{printed}"))
    };
    let write = find("INSERT INTO default.events");
    assert_eq!((write[0].as_str(), write[1].as_str()), ("write", "finished"), "{printed}");
    let read = find("SELECT n FROM default.events");
    assert_eq!((read[0].as_str(), read[1].as_str(), read[3].as_str()), ("query", "finished", "true"), "{printed}");
    assert_eq!(read[4], "2500", "rows returned: {printed}");
    assert_eq!(read[5], "5000", "rows read: {printed}");
    assert!(read[6].starts_with("parquet 5000 rows"), "{printed}");
    // tonic's own user agent: not one of the known clients, named by its first word.
    assert_eq!(read[2], "tonic", "{printed}");
    let syntax = find("SELEC 1");
    assert_eq!(syntax[1], "failed");
    assert!(syntax[7].contains("found: SELEC"), "{printed}");
    let cast = find("SELECT CAST(CASE");
    assert_eq!(cast[1], "failed");
    assert!(cast[7].contains("Cannot cast"), "{printed}");
    server.stop();
}

/// Bound to a non-loopback address with users configured, `/metrics` needs an admin's
/// credentials; the probes stay open for load balancers.
#[tokio::test(flavor = "multi_thread")]
async fn remote_metrics_need_an_admin() {
    let refused = Server::spawn(Lakegate::new(), "", &["--listen", "127.0.0.1:0", "--admin-listen", "0.0.0.0:0"])
        .err()
        .expect("no users: the admin endpoint stays on loopback");
    assert!(refused.contains("admin endpoint serves only on loopback"), "{refused}");

    let server =
        start_server(&["--listen", "127.0.0.1:0", "--admin-listen", "0.0.0.0:0", "--insecure-allow-plaintext"]);
    let admin = server.admin.clone().expect("served").replace("0.0.0.0", "127.0.0.1");
    assert_eq!(http_get(&admin, "/healthz", None).0, 200);
    assert_eq!(http_get(&admin, "/readyz", None).0, 200);
    assert_eq!(http_get(&admin, "/metrics", None).0, 401);
    assert_eq!(http_get(&admin, "/metrics", Some(("rita", "r3ader"))).0, 401, "a reader is not an admin");
    assert_eq!(http_get(&admin, "/metrics", Some((USER, "wrong"))).0, 401);
    let (status, text) = http_get(&admin, "/metrics", Some((USER, PASSWORD)));
    assert_eq!(status, 200);
    assert!(text.contains("lakegate_queries_started_total") || text.contains("lakegate_active_queries"), "{text}");
    server.stop();
}

/// `--log-format json`: every line is a JSON object, and those written while a statement runs
/// carry its query id.
#[test]
fn json_logs_name_the_query() {
    let lakegate = Lakegate::new();
    let run = lakegate.run(&["--log-format", "json", "-v", "sql", "-e", "SELECT count(*) FROM generate_series(1, 10)"]);
    let run = run.success();
    let lines: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{}", run.stderr)))
        .collect();
    let query = lines
        .iter()
        .find(|l| l["fields"]["message"] == "query")
        .unwrap_or_else(|| panic!("no query line:\n{}", run.stderr));
    let id = query["span"]["query_id"].as_str().expect("the statement's span names the query id");
    assert_eq!(query["fields"]["query_id"].as_str(), Some(id));
    assert_eq!(query["fields"]["state"], "finished");
    assert_eq!(query["fields"]["client"], "cli");
}

/// Spans arrive at a real OTLP/gRPC receiver: each statement a child of the client's
/// `traceparent`, with `parse`, `plan`, `execute`, per-partition `scan` and `commit` spans
/// under it, and its trace id in `system.queries`.
#[tokio::test(flavor = "multi_thread")]
async fn traces_arrive_with_their_tree() {
    let spans_file = tempfile::NamedTempFile::new().expect("temp file");
    let mut receiver = Command::new(venv_bin("python"))
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/otlp_receiver.py"))
        .arg("--out")
        .arg(spans_file.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the OTLP receiver starts");
    let endpoint = BufReader::new(receiver.stdout.take().expect("stdout"))
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("OTLP_ENDPOINT=").map(str::to_owned))
        .expect("the receiver prints its endpoint");

    let lakegate = Lakegate::new().with_env("LAKEGATE_OTLP_ENDPOINT", &endpoint);
    let hash = password_hash(&lakegate, PASSWORD);
    let config = format!("[[server.users]]\nname = \"{USER}\"\npassword_hash = \"{hash}\"\nrole = \"admin\"\n");
    let server = Server::spawn(lakegate, &config, &["--listen", "127.0.0.1:0"]).expect("starts");
    let mut client = server.signed_in().await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    client.set_header("traceparent", format!("00-{trace_id}-{parent_id}-01"));
    client.execute_update("CREATE TABLE default.t (n BIGINT) USING PARQUET".into(), None).await.expect("creates");
    client
        .execute_update("INSERT INTO default.t SELECT value FROM generate_series(1, 100)".into(), None)
        .await
        .expect("writes");
    assert_eq!(run(&mut client, "SELECT n FROM default.t WHERE n > 50").await, Ok(50));
    let ids = fetch(&mut client, "SELECT DISTINCT trace_id FROM system.queries WHERE sql LIKE '%default.t%'")
        .await
        .expect("lists");
    let ids: Vec<String> =
        ids.iter().flat_map(|b| b.column(0).as_string::<i32>().iter().flatten().map(str::to_owned)).collect();
    assert_eq!(ids, vec![trace_id.to_owned()], "system.queries names the client's trace");
    // SIGTERM: the server sends the spans still queued before it exits.
    server.stop();

    let mut spans: Vec<serde_json::Value> = Vec::new();
    wait_for("the spans", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(spans_file.path()).unwrap_or_default();
        spans = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        spans.iter().any(|s| s["name"] == "commit")
    });
    let _ = receiver.kill();
    let _ = receiver.wait();
    let ours: Vec<&serde_json::Value> = spans.iter().filter(|s| s["trace_id"] == trace_id).collect();
    let parent_of = |span: &serde_json::Value| -> Option<&serde_json::Value> {
        ours.iter().copied().find(|p| p["span_id"] == span["parent_span_id"])
    };
    let named = |name: &'static str| ours.iter().copied().filter(move |s| s["name"] == name);
    let statements: Vec<_> = named("statement").collect();
    assert!(statements.len() >= 3, "the CREATE, the INSERT and the query: {spans:#?}");
    for statement in &statements {
        assert_eq!(statement["parent_span_id"], parent_id, "a child of the client's span: {statement}");
        assert_eq!(statement["service"], "lakegate");
        assert_eq!(statement["attributes"]["user"], USER);
    }
    let is_statement = |s: Option<&serde_json::Value>| s.is_some_and(|p| p["name"] == "statement");
    assert!(named("parse").any(|s| is_statement(parent_of(s))), "{ours:#?}");
    assert!(named("plan").any(|s| is_statement(parent_of(s))), "{ours:#?}");
    let commit = named("commit").next().unwrap_or_else(|| panic!("no commit span: {ours:#?}"));
    let execute = parent_of(commit).expect("the commit has a parent");
    assert_eq!(execute["name"], "execute");
    assert!(is_statement(parent_of(execute)), "{ours:#?}");
    let scan = named("scan")
        .find(|s| s["attributes"]["source"] == "parquet")
        .unwrap_or_else(|| panic!("no scan span: {ours:#?}"));
    let execute = parent_of(scan).expect("the scan has a parent");
    assert_eq!(execute["name"], "execute");
    assert!(is_statement(parent_of(execute)));
    let query = statements
        .iter()
        .find(|s| s["attributes"]["rows"].as_i64() == Some(50))
        .unwrap_or_else(|| panic!("the query's statement span carries its rows: {statements:#?}"));
    assert_eq!(query["attributes"]["state"], "finished");
    assert!(query["attributes"]["bytes"].as_i64().is_some_and(|b| b > 0), "{query}");
    let scanned: i64 = named("scan").filter_map(|s| s["attributes"]["rows"].as_i64()).sum();
    assert!(scanned >= 100, "the scans' rows: {ours:#?}");
}

/// A lakegate with table `slow` over a PostgreSQL view whose million rows come at 0.2 ms each
/// (minutes, unless stopped, and no CPU spent meanwhile); and the view's database.
fn slow_postgres_table(pg: &Postgres) -> (Lakegate, String) {
    let db = pg.database();
    pg.psql(
        &db,
        "CREATE FUNCTION slow_value(i int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.0002); RETURN i; END $$; \
         CREATE VIEW slow AS SELECT slow_value(g) AS n FROM generate_series(1, 1000000) g",
    );
    let lakegate = Lakegate::new().with_env("PG_PASSWORD", crate::common::postgres::PASSWORD);
    lakegate
        .sql(&format!(
            "CREATE EXTERNAL TABLE slow STORED AS POSTGRES LOCATION '{}' OPTIONS ('table' 'slow', 'password' '${{env:PG_PASSWORD}}')",
            pg.url(&db)
        ))
        .success();
    (lakegate, db)
}

/// `KILL QUERY` stops a query stuck on a slow PostgreSQL read within a second: the client gets
/// its error, the query's memory goes back to the pool, the remote statement ends, and the
/// metrics and `system.queries` say it was cancelled.
#[tokio::test(flavor = "multi_thread")]
async fn kill_stops_a_slow_postgres_read_and_frees_its_memory() {
    let pg = Postgres::shared();
    let (lakegate, db) = slow_postgres_table(pg);
    let server = start_server_over(lakegate, &["--listen", "127.0.0.1:0"]);
    let admin = server.admin.clone().expect("served");

    let mut runner = server.signed_in().await;
    let info = runner.execute("SELECT n FROM slow ORDER BY n DESC".into(), None).await.expect("plans");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let running = tokio::spawn(async move {
        let outcome: Result<Vec<_>, _> = match runner.do_get(ticket).await {
            Ok(stream) => futures::TryStreamExt::try_collect(stream).await,
            Err(e) => Err(e),
        };
        (outcome.map(|_| ()).map_err(|e| e.to_string()), std::time::Instant::now())
    });
    let remote = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND state = 'active' AND query LIKE '%slow%'"
    );
    wait_for("the remote read", Duration::from_secs(30), || pg.psql("postgres", &remote) != "0");
    // The sort holds what has arrived so far.
    wait_for("rows held by the sort", Duration::from_secs(30), || {
        sample(&samples(&http_get(&admin, "/metrics", None).1), "lakegate_memory_pool_reserved_bytes") > 0.0
    });

    let mut client = server.signed_in().await;
    let list = "SELECT id FROM system.queries WHERE state = 'running' AND sql LIKE 'SELECT n FROM slow%'";
    let batches = fetch(&mut client, list).await.expect("lists");
    let id = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .map(|b| b.column(0).as_string::<i32>().value(0).to_owned())
        .expect("listed as running");
    let killed_at = std::time::Instant::now();
    run(&mut client, &format!("KILL QUERY '{id}'")).await.expect("kills");
    let (outcome, ended_at) = running.await.expect("joins");
    let error = outcome.expect_err("a killed query ends with an error");
    assert!(error.contains(&format!("query '{id}' was killed by {USER}")), "{error}");
    let took = ended_at.duration_since(killed_at);
    println!("KILL QUERY stopped a slow PostgreSQL read in {} ms", took.as_millis());
    assert!(took < Duration::from_secs(1), "the kill took {took:?}");

    wait_for("the memory back in the pool", Duration::from_secs(5), || {
        let now = samples(&http_get(&admin, "/metrics", None).1);
        sample(&now, "lakegate_memory_pool_reserved_bytes") == 0.0 && sample(&now, "lakegate_active_queries") == 0.0
    });
    let now = samples(&http_get(&admin, "/metrics", None).1);
    assert_eq!(sample(&now, r#"lakegate_queries_ended_total{kind="query",outcome="cancelled",user="analyst"}"#), 1.0);
    wait_for("the remote statement to end", Duration::from_secs(10), || pg.psql("postgres", &remote) == "0");
    let state =
        fetch(&mut client, &format!("SELECT state, error FROM system.queries WHERE id = '{id}'")).await.expect("lists");
    let state = pretty_format_batches(&state).expect("prints").to_string();
    assert!(state.contains("cancelled") && state.contains("was killed by"), "{state}");
    server.stop();
}

/// With `max_concurrent_queries = 2` and `max_queries_per_user = 1`, one user's second heavy
/// query waits (`queued` in `system.queries` and the metrics) while another user's query runs
/// at once; a KILL ends the wait, and the queued query runs when the slot frees.
#[tokio::test(flavor = "multi_thread")]
async fn a_heavy_user_queues_behind_their_own_slot_not_others() {
    let (lakegate, _) = slow_postgres_table(Postgres::shared());
    let (admin_hash, reader_hash) = (password_hash(&lakegate, PASSWORD), password_hash(&lakegate, "r3ader"));
    let config = format!(
        "[server]\nmax_concurrent_queries = 2\nmax_queries_per_user = 1\n\
         [[server.users]]\nname = \"{USER}\"\npassword_hash = \"{admin_hash}\"\nrole = \"admin\"\n\
         [[server.users]]\nname = \"rita\"\npassword_hash = \"{reader_hash}\"\nrole = \"reader\"\n\
         databases = [\"default\"]\n"
    );
    let server = Server::spawn(lakegate, &config, &["--listen", "127.0.0.1:0"]).expect("starts");
    let admin = server.admin.clone().expect("served");
    let slow = slow_sql();
    let spawn_slow = |mut client: arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>| {
        tokio::spawn(async move { run(&mut client, slow).await })
    };
    let first = spawn_slow(server.signed_in().await);
    let mut admin_client = server.signed_in().await;
    let states =
        |sql: &'static str| format!("SELECT id, state FROM system.queries WHERE sql = '{sql}' ORDER BY started");
    let listed = |batches: &[datafusion::arrow::array::RecordBatch]| -> Vec<(String, String)> {
        batches
            .iter()
            .flat_map(|b| {
                let (ids, states) = (b.column(0).as_string::<i32>(), b.column(1).as_string::<i32>());
                (0..b.num_rows()).map(move |r| (ids.value(r).to_owned(), states.value(r).to_owned()))
            })
            .collect()
    };
    let mut seen = Vec::new();
    for _ in 0..200 {
        seen = listed(&fetch(&mut admin_client, &states(slow_sql())).await.expect("system tables never queue"));
        if seen.len() == 1 && seen[0].1 == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
    let second = spawn_slow(server.signed_in().await);
    for _ in 0..200 {
        seen = listed(&fetch(&mut admin_client, &states(slow_sql())).await.expect("lists"));
        if seen.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(), ["running", "queued"], "{seen:?}");
    let metrics = samples(&http_get(&admin, "/metrics", None).1);
    assert_eq!((sample(&metrics, "lakegate_active_queries"), sample(&metrics, "lakegate_queued_queries")), (1.0, 1.0));

    // Another user is not behind the heavy user's queue.
    let mut rita = server.sign_in("rita", "r3ader").await.expect("signs in");
    let started = std::time::Instant::now();
    assert_eq!(run(&mut rita, "SELECT 1").await, Ok(1));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());

    // Killing the running one lets the queued one run; killing that ends it.
    run(&mut admin_client, &format!("KILL QUERY '{}'", seen[0].0)).await.expect("kills the first");
    assert!(first.await.expect("joins").is_err());
    for _ in 0..200 {
        seen = listed(&fetch(&mut admin_client, &states(slow_sql())).await.expect("lists"));
        if seen.get(1).is_some_and(|(_, s)| s == "running") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen[1].1, "running", "{seen:?}");
    run(&mut admin_client, &format!("KILL QUERY '{}'", seen[1].0)).await.expect("kills the second");
    assert!(second.await.expect("joins").is_err());
    wait_for("the gauges back to zero", Duration::from_secs(5), || {
        let metrics = samples(&http_get(&admin, "/metrics", None).1);
        sample(&metrics, "lakegate_active_queries") == 0.0 && sample(&metrics, "lakegate_queued_queries") == 0.0
    });
    server.stop();
}

fn slow_sql() -> &'static str {
    "SELECT max(n) FROM slow"
}

/// A source that fails is counted by kind in `lakegate_source_errors_total`, and the statement's
/// error in `system.queries` names it.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_source_is_counted() {
    let mut pg = Postgres::start();
    let db = pg.database();
    pg.psql(&db, "CREATE TABLE facts (n int); INSERT INTO facts VALUES (1)");
    let lakegate = Lakegate::new().with_env("PG_PASSWORD", crate::common::postgres::PASSWORD);
    lakegate
        .sql(&format!(
            "CREATE EXTERNAL TABLE facts STORED AS POSTGRES LOCATION '{}' OPTIONS ('table' 'facts', 'password' '${{env:PG_PASSWORD}}')",
            pg.url(&db)
        ))
        .success();
    let server = start_server_over(lakegate, &["--listen", "127.0.0.1:0"]);
    let admin = server.admin.clone().expect("served");
    let mut client = server.signed_in().await;
    assert_eq!(run(&mut client, "SELECT n FROM facts").await, Ok(1));
    let errors = r#"lakegate_source_errors_total{source="postgres"}"#;
    assert_eq!(sample(&samples(&http_get(&admin, "/metrics", None).1), errors), 0.0);
    pg.stop();
    let error = run(&mut client, "SELECT n FROM facts").await.expect_err("the server is down");
    assert!(error.contains("127.0.0.1"), "{error}");
    assert_eq!(sample(&samples(&http_get(&admin, "/metrics", None).1), errors), 1.0);
    let history = fetch(&mut client, "SELECT state, error FROM system.queries WHERE sql = 'SELECT n FROM facts'")
        .await
        .expect("lists");
    let history = pretty_format_batches(&history).expect("prints").to_string();
    assert!(
        history.contains("| finished") && history.contains("| failed") && history.contains("127.0.0.1"),
        "{history}"
    );
    server.stop();
}

/// With `[telemetry] query_log`, ended statements outlive the process: a later process reads
/// them from `system.query_log` by day, as DuckDB reads the same Parquet files; before anything
/// is written the table is empty, not an error; a reader sees only their own rows.
#[tokio::test(flavor = "multi_thread")]
async fn the_query_log_outlives_the_process() {
    let lakegate = Lakegate::new().with_env("LAKEGATE_QUERY_LOG", "true");
    let empty = lakegate.sql("SELECT count(*) FROM system.query_log").success();
    assert_eq!(empty.first_count(), 0, "the first state: no statement logged yet");

    let server = start_server_over(lakegate, &["--listen", "127.0.0.1:0"]);
    let mut client = server.signed_in().await;
    assert_eq!(run(&mut client, "SELECT 1 AS logged_one").await, Ok(1));
    run(&mut client, "SELECT nope FROM nowhere").await.expect_err("fails");
    let mut rita = server.sign_in("rita", "r3ader").await.expect("signs in");
    assert_eq!(run(&mut rita, "SELECT 2 AS ritas").await, Ok(1));
    let (_, lakegate) = server.stop_keeping_data();

    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let logged = lakegate
        .sql(
            "SELECT day, \"user\", state, client, sql FROM system.query_log \
             WHERE sql IN ('SELECT 1 AS logged_one', 'SELECT nope FROM nowhere', 'SELECT 2 AS ritas') ORDER BY started",
        )
        .success();
    let rows = logged.rows();
    let expected = [
        [today.as_str(), USER, "finished", "tonic", "SELECT 1 AS logged_one"],
        [today.as_str(), USER, "failed", "tonic", "SELECT nope FROM nowhere"],
        [today.as_str(), "rita", "finished", "tonic", "SELECT 2 AS ritas"],
    ];
    assert_eq!(rows, expected.map(|r| r.map(str::to_owned).to_vec()).to_vec(), "{}", logged.stdout);
    // An independent reader of the same files counts the same statements.
    let files = format!("{}/query_log/day=*/*.parquet", lakegate.data_dir.path().display());
    let duckdb = Command::new(venv_bin("python"))
        .args([
            "-c",
            &format!(
                "import duckdb; print(duckdb.sql(\"SELECT count(*) FROM read_parquet('{files}') WHERE sql IN ('SELECT 1 AS logged_one', 'SELECT 2 AS ritas')\").fetchone()[0])"
            ),
        ])
        .output()
        .expect("duckdb runs");
    assert_eq!(String::from_utf8_lossy(&duckdb.stdout).trim(), "2", "{}", String::from_utf8_lossy(&duckdb.stderr));
    let also = lakegate
        .sql("SELECT count(*) FROM system.query_log WHERE sql IN ('SELECT 1 AS logged_one', 'SELECT 2 AS ritas')")
        .success();
    assert_eq!(also.first_count(), 2);

    // A reader sees only their own rows.
    let server = start_server_over(lakegate, &["--listen", "127.0.0.1:0"]);
    let mut rita = server.sign_in("rita", "r3ader").await.expect("signs in");
    let seen = fetch(&mut rita, "SELECT DISTINCT \"user\" FROM system.query_log").await.expect("reads");
    let seen = pretty_format_batches(&seen).expect("prints").to_string();
    assert!(seen.contains("rita") && !seen.contains(USER), "{seen}");
    server.stop();
}
