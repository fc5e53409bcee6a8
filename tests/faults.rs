//! Network faults between lakegate and its sources, injected by a real Toxiproxy
//! (`scripts/services/toxiproxy.sh`) through its HTTP API: added latency, connections cut
//! mid-stream, stalled servers. A query either succeeds (object_store retries) or fails with
//! an error naming its source; the server keeps serving; a write cut mid-upload leaves each
//! partition wholly old.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use crate::common::postgres::{PASSWORD, Postgres};
use crate::common::{Lakegate, S3Server};

/// A Toxiproxy of the test's own, stopped on drop.
struct Toxiproxy {
    api: String,
    pid: String,
}

impl Toxiproxy {
    fn start() -> Self {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/services/toxiproxy.sh");
        let out = Command::new("bash").arg(script).arg("start").output().expect("toxiproxy.sh runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "Toxiproxy did not start (run `bash scripts/setup.sh` to build it):\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let value = |key: &str| text.lines().find_map(|l| l.strip_prefix(&format!("{key}="))).expect(key).to_owned();
        Self { api: value("TOXIPROXY_URL").trim_start_matches("http://").to_owned(), pid: value("TOXIPROXY_PID") }
    }

    /// One HTTP/1.1 call to the API; returns the status and the body.
    fn call(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.api).expect("toxiproxy API");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.api,
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response");
        let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        (status, body)
    }

    /// A proxy to `upstream` on a free loopback port; returns that port.
    fn proxy(&self, name: &str, upstream: &str) -> u16 {
        let (status, body) = self.call(
            "POST",
            "/proxies",
            &format!(r#"{{"name":"{name}","listen":"127.0.0.1:0","upstream":"{upstream}"}}"#),
        );
        assert_eq!(status, 201, "creating proxy {name}: {body}");
        let proxy: serde_json::Value = serde_json::from_str(&body).expect("proxy JSON");
        proxy["listen"].as_str().and_then(|l| l.rsplit(':').next()).and_then(|p| p.parse().ok()).expect("listen port")
    }

    /// Adds a toxic (`latency`, `limit_data`, `timeout`, `reset_peer`, ...) to a proxy.
    fn toxic(&self, proxy: &str, name: &str, kind: &str, stream: &str, attributes: &str) {
        let body = format!(
            r#"{{"name":"{name}","type":"{kind}","stream":"{stream}","toxicity":1.0,"attributes":{attributes}}}"#
        );
        let (status, text) = self.call("POST", &format!("/proxies/{proxy}/toxics"), &body);
        assert_eq!(status, 200, "adding toxic {name}: {text}");
    }

    fn remove_toxic(&self, proxy: &str, name: &str) {
        let (status, text) = self.call("DELETE", &format!("/proxies/{proxy}/toxics/{name}"), "");
        assert_eq!(status, 204, "removing toxic {name}: {text}");
    }
}

impl Drop for Toxiproxy {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(&self.pid).status();
    }
}

#[test]
fn postgres_faults_fail_the_query_naming_the_table_and_nothing_else() {
    let toxiproxy = Toxiproxy::start();
    let pg = Postgres::start();
    let database = pg.database();
    pg.psql(
        &database,
        "CREATE TABLE events AS SELECT g AS id, md5(g::text) AS payload FROM generate_series(1, 200000) g",
    );
    let port = toxiproxy.proxy("pg", &format!("127.0.0.1:{}", pg.port));
    let lakegate = Lakegate::new().with_env("PG_PASSWORD", PASSWORD);
    lakegate
        .sql(&format!(
            "CREATE EXTERNAL TABLE events STORED AS POSTGRES LOCATION 'postgres://lakegate@127.0.0.1:{port}/{database}' \
             OPTIONS ('table' 'events', 'password' '${{env:PG_PASSWORD}}')"
        ))
        .success();
    let count = || lakegate.sql("SELECT count(*), sum(length(payload)) FROM events");

    // Latency: slower, same answer (psql is the oracle).
    let expected = pg.psql(&database, "SELECT count(*) || ',' || sum(length(payload)) FROM events");
    toxiproxy.toxic("pg", "slow", "latency", "downstream", r#"{"latency":50,"jitter":10}"#);
    assert_eq!(count().success().rows(), vec![expected.split(',').map(str::to_owned).collect::<Vec<_>>()]);
    toxiproxy.remove_toxic("pg", "slow");

    // Cut mid-stream: the connection closes after 64 KB of rows.
    toxiproxy.toxic("pg", "cut", "limit_data", "downstream", r#"{"bytes":65536}"#);
    let failed = count().failure();
    assert!(
        failed.stderr.contains("events") || failed.stderr.to_lowercase().contains("postgres"),
        "the error names the source: {}",
        failed.stderr
    );
    assert!(!failed.stderr.contains(PASSWORD), "no password in errors");
    toxiproxy.remove_toxic("pg", "cut");

    // And the next query, on fresh connections, is whole again.
    assert_eq!(count().success().rows(), vec![expected.split(',').map(str::to_owned).collect::<Vec<_>>()]);
}

#[test]
fn s3_latency_and_resets_are_retried_or_named_and_an_overwrite_cut_mid_upload_keeps_the_old_data() {
    let toxiproxy = Toxiproxy::start();
    let s3 = S3Server::start();
    s3.create_bucket("lake");
    let port = toxiproxy.proxy("s3", s3.endpoint.trim_start_matches("http://"));
    let lakegate = s3.env(Lakegate::new()).with_env("LAKEGATE_S3_ENDPOINT", &format!("http://127.0.0.1:{port}"));
    lakegate
        .sql(
            "CREATE TABLE logs (uid BIGINT, payload STRING) USING PARQUET PARTITIONED BY (dt STRING) LOCATION 's3://lake/logs'; \
             INSERT OVERWRITE TABLE logs PARTITION (dt) SELECT value, repeat('x', 100), CASE WHEN value % 2 = 0 THEN 'a' ELSE 'b' END \
             FROM generate_series(1, 20000)",
        )
        .success();
    let counts = || lakegate.sql("SELECT dt, count(*) FROM logs GROUP BY dt ORDER BY dt");
    let before = vec![vec!["a".to_owned(), "10000".to_owned()], vec!["b".to_owned(), "10000".to_owned()]];
    assert_eq!(counts().success().rows(), before);

    toxiproxy.toxic("s3", "slow", "latency", "downstream", r#"{"latency":100}"#);
    assert_eq!(counts().success().rows(), before);
    toxiproxy.remove_toxic("s3", "slow");

    // Every upload is cut after 16 KB: the overwrite fails and each partition stays whole.
    toxiproxy.toxic("s3", "cut", "limit_data", "upstream", r#"{"bytes":16384}"#);
    let failed = lakegate
        .sql("INSERT OVERWRITE TABLE logs PARTITION (dt) SELECT value, repeat('y', 1000), CASE WHEN value % 2 = 0 THEN 'a' ELSE 'b' END FROM generate_series(1, 50000)")
        .failure();
    assert!(!failed.stderr.is_empty());
    toxiproxy.remove_toxic("s3", "cut");
    assert_eq!(counts().success().rows(), before, "a cut overwrite left a partition changed");
    let payloads = lakegate.sql("SELECT DISTINCT payload = repeat('x', 100) FROM logs").success().rows();
    assert_eq!(payloads, vec![vec!["true".to_owned()]]);
}

#[test]
fn a_stalled_cassandra_fails_the_query_and_the_server_keeps_serving() {
    let toxiproxy = Toxiproxy::start();
    let contact = crate::common::cassandra_contact_point();
    let cql = crate::common::Cql::connect();
    cql.keyspace("lakegate_faults");
    cql.run(&[
        "CREATE TABLE IF NOT EXISTS lakegate_faults.kv (k int PRIMARY KEY, v text)",
        "INSERT INTO lakegate_faults.kv (k, v) VALUES (1, 'one')",
    ]);
    let port = toxiproxy.proxy("cassandra", &contact);
    let lakegate = Lakegate::new();
    lakegate
        .sql(&format!(
            "CREATE EXTERNAL TABLE kv STORED AS CASSANDRA LOCATION 'cassandra://127.0.0.1:{port}/lakegate_faults/kv'"
        ))
        .success();
    assert_eq!(lakegate.sql("SELECT v FROM kv WHERE k = 1").success().rows(), vec![vec!["one".to_owned()]]);
    // The node stops answering (connections stay open, nothing comes back).
    toxiproxy.toxic("cassandra", "stall", "timeout", "downstream", r#"{"timeout":0}"#);
    let started = std::time::Instant::now();
    let failed = lakegate.sql("SELECT v FROM kv WHERE k = 1").failure();
    assert!(failed.stderr.contains("kv") || failed.stderr.to_lowercase().contains("cassandra"), "{}", failed.stderr);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(120),
        "a stalled node must time out: {:?}",
        started.elapsed()
    );
    toxiproxy.remove_toxic("cassandra", "stall");
    assert_eq!(lakegate.sql("SELECT v FROM kv WHERE k = 1").success().rows(), vec![vec!["one".to_owned()]]);
}
