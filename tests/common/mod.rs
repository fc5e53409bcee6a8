//! Shared fixtures: the real `lakegate` binary over a throw-away data directory, and a real
//! S3 server (moto) on a free loopback port. A missing service fails the test with a message
//! saying how to get it; nothing is skipped.

pub(crate) mod cluster;
pub(crate) mod postgres;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The project venv made by `scripts/test.sh` (or `$LAKEGATE_VENV`).
pub(crate) fn venv() -> PathBuf {
    std::env::var_os("LAKEGATE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"))
}

pub(crate) fn venv_bin(name: &str) -> PathBuf {
    let path = venv().join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `bash scripts/test.sh --setup-only` to create the test venv (or set LAKEGATE_VENV)",
        path.display()
    );
    path
}

/// A port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

/// Polls `ready` every 20 ms until it holds or `timeout` passes.
pub(crate) fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < timeout, "{what} was not ready after {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The output of one `lakegate` run.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) ok: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    #[track_caller]
    pub(crate) fn success(self) -> Self {
        assert!(self.ok, "lakegate failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }

    #[track_caller]
    pub(crate) fn failure(self) -> Self {
        assert!(!self.ok, "lakegate should have failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }

    /// The first line of the output that is a number (in a table's cell or alone).
    #[track_caller]
    pub(crate) fn first_count(&self) -> u64 {
        self.stdout
            .lines()
            .filter_map(|l| l.trim().trim_matches('|').trim().parse().ok())
            .next()
            .unwrap_or_else(|| panic!("no count in the output:\n{}", self.stdout))
    }

    /// CSV output as rows of cells, header excluded.
    pub(crate) fn rows(&self) -> Vec<Vec<String>> {
        self.stdout.lines().skip(1).map(|l| l.split(',').map(str::to_owned).collect()).collect()
    }
}

/// The real binary over its own data directory, with environment variables for every run.
pub(crate) struct Lakegate {
    pub(crate) data_dir: tempfile::TempDir,
    pub(crate) env: Vec<(String, String)>,
}

impl Lakegate {
    pub(crate) fn new() -> Self {
        Self { data_dir: tempfile::tempdir().expect("temp dir"), env: Vec::new() }
    }

    pub(crate) fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub(crate) fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lakegate"));
        command
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .env_remove("LAKEGATE_CONFIG")
            .current_dir(self.data_dir.path());
        for (k, v) in &self.env {
            command.env(k, v);
        }
        command
    }

    /// Runs `lakegate sql --format csv -e <sql>`.
    pub(crate) fn sql(&self, sql: &str) -> Run {
        self.run(&["sql", "--format", "csv", "-e", sql])
    }

    pub(crate) fn run(&self, args: &[&str]) -> Run {
        let output = self.command().args(args).output().expect("lakegate binary runs");
        Run {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// A moto S3 server on a free loopback port, stopped on drop.
pub(crate) struct S3Server {
    child: Child,
    pub(crate) endpoint: String,
    port: u16,
}

impl S3Server {
    pub(crate) fn start() -> Self {
        let port = free_port();
        let child = Command::new(venv_bin("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let server = Self { child, endpoint: format!("http://127.0.0.1:{port}"), port };
        wait_for("moto S3 server", Duration::from_secs(60), || server.request("GET", "/").is_some_and(|s| s < 500));
        server
    }

    /// Sends a bare HTTP request (moto does not check signatures) and returns the status.
    fn request(&self, method: &str, path: &str) -> Option<u16> {
        self.request_with(method, path, &[])
    }

    fn request_with(&self, method: &str, path: &str, body: &[u8]) -> Option<u16> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        stream.write_all(request.as_bytes()).ok()?;
        stream.write_all(body).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response.split_whitespace().nth(1)?.parse().ok()
    }

    pub(crate) fn create_bucket(&self, bucket: &str) {
        let status = self.request("PUT", &format!("/{bucket}")).expect("moto answers");
        assert_eq!(status, 200, "creating bucket {bucket}");
    }

    /// Uploads `body` as object `key` (path segments as written: no escaping needed here).
    pub(crate) fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        let status = self.request_with("PUT", &format!("/{bucket}/{key}"), body).expect("moto answers");
        assert_eq!(status, 200, "uploading {key}");
    }

    /// The environment variables a lakegate process needs to use this server.
    pub(crate) fn vars(&self) -> [(&'static str, &str); 4] {
        [
            ("LAKEGATE_S3_ENDPOINT", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
        ]
    }

    /// `lakegate` with [`Self::vars`] set.
    pub(crate) fn env(&self, lakegate: Lakegate) -> Lakegate {
        self.vars().into_iter().fold(lakegate, |lakegate, (key, value)| lakegate.with_env(key, value))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Cassandra node the tests use: `LAKEGATE_TEST_CASSANDRA` (host:port), which
/// `scripts/test.sh` sets after starting one. Missing or unreachable fails the test.
pub(crate) fn cassandra_contact_point() -> String {
    let how = "start one with `eval \"$(bash scripts/services/cassandra.sh start)\"` and \
               `export LAKEGATE_TEST_CASSANDRA=$CASSANDRA_CONTACT_POINT`, or run `bash scripts/test.sh`";
    let Ok(point) = std::env::var("LAKEGATE_TEST_CASSANDRA") else {
        panic!("LAKEGATE_TEST_CASSANDRA is not set: these tests need a real Cassandra; {how}");
    };
    let reachable = point
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_ok());
    assert!(reachable, "Cassandra at LAKEGATE_TEST_CASSANDRA={point} does not answer; {how}");
    point
}

/// A CQL session on the test node, for creating and loading the tables lakegate then reads.
pub(crate) struct Cql {
    // Fields drop in order: the session before the runtime it runs on.
    pub(crate) session: scylla::client::session::Session,
    pub(crate) contact_point: String,
    runtime: tokio::runtime::Runtime,
}

impl Cql {
    pub(crate) fn connect() -> Self {
        Self::connect_to(cassandra_contact_point())
    }

    pub(crate) fn connect_to(contact_point: String) -> Self {
        Self::connect_as(contact_point, None)
    }

    /// A session signed in as `(user, password)`, when given.
    pub(crate) fn connect_as(contact_point: String, credentials: Option<(&str, &str)>) -> Self {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let mut builder = scylla::client::session_builder::SessionBuilder::new().known_node(&contact_point);
        if let Some((user, password)) = credentials {
            builder = builder.user(user, password);
        }
        let session = runtime
            .block_on(builder.build())
            .unwrap_or_else(|e| panic!("connecting to Cassandra at {contact_point}: {e}"));
        Self { session, contact_point, runtime }
    }

    pub(crate) fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Runs each statement (no bind values) in turn.
    pub(crate) fn run(&self, statements: &[&str]) {
        for cql in statements {
            self.block_on(self.session.query_unpaged(*cql, &[])).unwrap_or_else(|e| panic!("CQL failed: {cql}: {e}"));
        }
    }

    /// A fresh keyspace (replication factor 1) for one test.
    pub(crate) fn keyspace(&self, name: &str) {
        self.run(&[
            &format!("DROP KEYSPACE IF EXISTS {name}"),
            &format!(
                "CREATE KEYSPACE {name} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
            ),
        ]);
    }

    /// Inserts `rows` with one prepared statement, many requests in flight.
    pub(crate) fn insert<V>(&self, cql: &str, rows: Vec<V>)
    where
        V: scylla::serialize::row::SerializeRow + Send + Sync,
    {
        use futures::StreamExt;
        let prepared = self.block_on(self.session.prepare(cql)).unwrap_or_else(|e| panic!("preparing {cql}: {e}"));
        self.block_on(async {
            futures::stream::iter(rows)
                .map(|row| {
                    let prepared = &prepared;
                    let session = &self.session;
                    async move { session.execute_unpaged(prepared, row).await }
                })
                .buffer_unordered(64)
                .for_each(|result| async move {
                    result.unwrap_or_else(|e| panic!("insert failed: {e}"));
                })
                .await;
        });
    }
}

impl Lakegate {
    /// This process's runs read Cassandra tables from `contact_point` by default.
    pub(crate) fn with_cassandra(self, contact_point: &str) -> Self {
        self.with_env("LAKEGATE_CASSANDRA_CONTACT_POINTS", contact_point)
    }

    /// Runs `lakegate sql --format json -e <sql>` and parses the rows.
    pub(crate) fn json(&self, sql: &str) -> Vec<serde_json::Value> {
        let run = self.run(&["sql", "--format", "json", "-e", sql]).success();
        run.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("a JSON row"))
            .collect()
    }
}

/// A Cassandra node of a test's own (`scripts/services/cassandra.sh` with a state file of its
/// own), for tests that kill a node; stopped on drop.
pub(crate) struct OwnCassandra {
    state: tempfile::TempDir,
    pub(crate) contact_point: String,
    pub(crate) pid: String,
}

impl OwnCassandra {
    pub(crate) fn start() -> Self {
        Self::start_with(&[])
    }

    /// A node started with `cassandra.sh start --auth`: password authentication and
    /// authorization on, superuser `cassandra`/`cassandra`.
    pub(crate) fn start_with_auth() -> Self {
        Self::start_with(&["--auth"])
    }

    fn start_with(options: &[&str]) -> Self {
        let state = tempfile::tempdir().expect("temp dir");
        let output = Self::script(&state, "start").args(options).output().expect("cassandra.sh runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "starting a Cassandra node failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let value = |key: &str| stdout.lines().find_map(|l| l.strip_prefix(key)).map(str::to_owned).expect(key);
        Self { contact_point: value("CASSANDRA_CONTACT_POINT="), pid: value("CASSANDRA_PID="), state }
    }

    fn script(state: &tempfile::TempDir, action: &str) -> Command {
        let mut command = Command::new("bash");
        command
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/services/cassandra.sh"))
            .arg(action)
            .env("LAKEGATE_CASSANDRA_STATE", state.path().join("state"))
            .env("LAKEGATE_CASSANDRA_HEAP", "512M");
        command
    }

    /// Kills the node at once (SIGKILL), as a crash would.
    pub(crate) fn kill(&self) {
        let status = Command::new("kill").args(["-KILL", &self.pid]).status().expect("kill runs");
        assert!(status.success(), "killing Cassandra pid {}", self.pid);
    }
}

impl Drop for OwnCassandra {
    fn drop(&mut self) {
        let _ = Self::script(&self.state, "stop").output();
    }
}
