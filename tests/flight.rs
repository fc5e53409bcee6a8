//! `lakegate serve` with the clients analysts use: ADBC (Jupyter), flightsql-dbapi and a real
//! Superset, the Flight SQL JDBC driver, and arrow-flight's Rust client, over real sockets.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use futures::TryStreamExt;
use tonic::transport::Channel;

use crate::common::postgres::{PASSWORD as PG_PASSWORD, Postgres};
use crate::common::{Lakegate, venv_bin};

pub(crate) const USER: &str = "analyst";
pub(crate) const PASSWORD: &str = "s3cret";

/// A `lakegate serve` process on a free port, with one configured user (or none); killed on
/// drop.
pub(crate) struct Server {
    child: Child,
    url: String,
    /// Whether the server has the test user; without, clients connect with no credentials.
    users: bool,
    pub(crate) lakegate: Lakegate,
    /// The admin endpoint's base URL (`http://127.0.0.1:PORT`), when it serves one.
    pub(crate) admin: Option<String>,
    /// The server's log, read as it is written so a busy server never blocks on a full pipe.
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    fn start() -> Self {
        Self::start_with(Lakegate::new(), &["--listen", "127.0.0.1:0"]).expect("the server starts")
    }

    /// A server with no users configured: loopback only, anyone on this machine may connect.
    pub(crate) fn start_without_users() -> Self {
        Self::spawn(Lakegate::new(), "", &["--listen", "127.0.0.1:0"]).expect("the server starts")
    }

    /// Writes a config with the test user, starts the server and reads its address.
    pub(crate) fn start_with(lakegate: Lakegate, args: &[&str]) -> Result<Self, String> {
        let hash = password_hash(&lakegate, PASSWORD);
        Self::spawn(
            lakegate,
            &format!("[[server.users]]\nname = \"{USER}\"\npassword_hash = \"{hash}\"\nrole = \"admin\"\n"),
            args,
        )
    }

    /// Starts `lakegate serve` with `config` as its configuration file.
    pub(crate) fn spawn(lakegate: Lakegate, config_text: &str, args: &[&str]) -> Result<Self, String> {
        let config = lakegate.data_dir.path().join("lakegate.toml");
        std::fs::write(&config, config_text).expect("config");
        let users = config_text.contains("[[server.users]]");
        // Each server its own admin port, unless the test chooses one.
        let admin_port: &[&str] =
            if args.iter().any(|a| a.starts_with("--admin-listen")) { &[] } else { &["--admin-listen", "127.0.0.1:0"] };
        let mut child = lakegate
            .command()
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .args(args)
            .args(admin_port)
            .env("RUST_LOG", "lakegate=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("lakegate serve starts");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let sink = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap_or_else(|p| p.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut admin = None;
        let url = stdout.lines().map_while(Result::ok).find_map(|line| {
            if let Some(rest) = line.strip_prefix("lakegate admin endpoint on ") {
                admin = rest.split_whitespace().next().map(str::to_owned);
            }
            line.strip_prefix("lakegate Flight SQL listening on ").map(str::to_owned)
        });
        match url {
            Some(url) => Ok(Self { child, url, users, lakegate, admin, log }),
            None => {
                let _ = child.wait();
                std::thread::sleep(std::time::Duration::from_millis(100));
                let log = log.lock().unwrap_or_else(|p| p.into_inner()).clone();
                Err(log)
            }
        }
    }

    /// Runs a client program with `--url --user --password` and checks it passed.
    pub(crate) fn run_client(&self, program: &Path, args: &[&str]) {
        let mut command = if program.extension().is_some_and(|e| e == "py") {
            let mut c = Command::new(venv_bin("python"));
            c.arg(program);
            c
        } else {
            Command::new(program)
        };
        command.args(["--url", &self.url]);
        if self.users {
            command.args(["--user", USER, "--password", PASSWORD]);
        }
        let output = command.args(args).output().expect("client runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("all checks passed"),
            "{} failed:\n{stdout}\n{}",
            program.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub(crate) async fn sign_in(
        &self,
        user: &str,
        password: &str,
    ) -> Result<FlightSqlServiceClient<Channel>, arrow_flight::error::FlightError> {
        let mut client = self.client().await;
        client.handshake(user, password).await?;
        Ok(client)
    }

    async fn client(&self) -> FlightSqlServiceClient<Channel> {
        let channel = Channel::from_shared(self.url.replace("grpc://", "http://"))
            .expect("url")
            .connect()
            .await
            .expect("connects");
        FlightSqlServiceClient::new(channel)
    }

    pub(crate) async fn signed_in(&self) -> FlightSqlServiceClient<Channel> {
        let mut client = self.client().await;
        client.handshake(USER, PASSWORD).await.expect("signs in");
        client
    }

    /// Stops the server with SIGTERM and returns its log.
    /// The server's peak resident memory so far, from `/proc`.
    pub(crate) fn peak_rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .expect("VmHWM")
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The server's process id, for reading its `/proc` entries.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server as [`Server::stop`] does, keeping its data directory for another run.
    pub(crate) fn stop_keeping_data(mut self) -> (String, Lakegate) {
        let lakegate = std::mem::replace(&mut self.lakegate, Lakegate::new());
        (self.stop(), lakegate)
    }

    pub(crate) fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        let status = self.child.wait().expect("exits");
        std::thread::sleep(std::time::Duration::from_millis(100));
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert!(status.success(), "a clean stop on SIGTERM: {log}");
        log
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Argon2 hash of `password`, made by `lakegate hash-password` as an operator would.
pub(crate) fn password_hash(lakegate: &Lakegate, password: &str) -> String {
    let hash = lakegate.command().arg("hash-password").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().and_then(
        |mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(format!("{password}\n").as_bytes())?;
            c.wait_with_output()
        },
    );
    let hash = String::from_utf8(hash.expect("hash-password runs").stdout).expect("utf-8");
    assert!(hash.starts_with("$argon2"), "{hash}");
    hash.trim().to_owned()
}

pub(crate) fn clients_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// The clients `system.queries` names for the statements of `server` (the test's own
/// connection, tonic's, aside).
async fn clients_seen(server: &Server) -> Vec<String> {
    let mut client = server.signed_in().await;
    let batches = fetch(&mut client, "SELECT DISTINCT client FROM system.queries WHERE client <> 'tonic' ORDER BY 1")
        .await
        .expect("lists");
    batches.iter().flat_map(|b| b.column(0).as_string::<i32>().iter().flatten().map(str::to_owned)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn jupyter_adbc_client() {
    let server = Server::start();
    server.run_client(&clients_dir().join("adbc_client.py"), &[]);
    assert_eq!(clients_seen(&server).await, ["ADBC"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn superset_driver_flightsql_dbapi() {
    let server = Server::start();
    server.run_client(&clients_dir().join("sqlalchemy_client.py"), &[]);
    assert_eq!(clients_seen(&server).await, ["Python"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn jdbc_driver() {
    let server = Server::start();
    server.run_client(&clients_dir().join("jdbc/run.sh"), &[]);
    assert_eq!(clients_seen(&server).await, ["JDBC"]);
}

/// With no users configured, every client connects with the README's own no-user URL
/// (flightsql-dbapi then sends `authorization: Bearer None`).
#[test]
fn clients_connect_with_the_readme_no_user_urls() {
    let server = Server::start_without_users();
    server.run_client(&clients_dir().join("adbc_client.py"), &[]);
    server.run_client(&clients_dir().join("sqlalchemy_client.py"), &[]);
    server.run_client(&clients_dir().join("jdbc/run.sh"), &[]);
}

/// Superset's REST API as an analyst uses it: the database added, its schemas, tables and
/// columns, SQL Lab queries; then `CACHE TABLE` of a PostgreSQL table from SQL Lab, and the
/// chart query answering from the cache after PostgreSQL stopped.
#[test]
fn superset_sql_lab_through_its_rest_api() {
    let mut pg = Postgres::start();
    let with_users =
        Server::start_with(Lakegate::new().with_env("PG_PASSWORD", PG_PASSWORD), &["--listen", "127.0.0.1:0"])
            .expect("the server starts");
    let without_users = Server::start_without_users();
    with_superset(|superset| {
        for server in [&with_users, &without_users] {
            server.run_client(&clients_dir().join("superset_api.py"), superset);
        }
        let db = pg.database();
        pg.psql(
            &db,
            "CREATE TABLE users AS SELECT i AS uid, CASE WHEN i % 4 = 0 THEN 'F' ELSE 'M' END AS gender FROM generate_series(1, 100) i",
        );
        with_users
            .lakegate
            .sql(&format!(
                "CREATE EXTERNAL TABLE default.pg_users STORED AS POSTGRES LOCATION '{}' \
                 OPTIONS ('table' 'users', 'password' '${{env:PG_PASSWORD}}')",
                pg.url(&db)
            ))
            .success();
        let chart = "SELECT gender, count(*) AS n FROM default.pg_users GROUP BY gender ORDER BY gender";
        let expect = r#"[{"gender": "F", "n": 25}, {"gender": "M", "n": 75}]"#;
        let walkthrough = ["--cache-table", "default.pg_users", "--chart", chart, "--expect", expect, "--phase"];
        let client = clients_dir().join("superset_api.py");
        with_users.run_client(&client, &[superset, &walkthrough[..], &["cache"]].concat());
        pg.stop();
        with_users.run_client(&client, &[superset, &walkthrough[..], &["cached"]].concat());
    });
}

/// Runs `walk` with the arguments that point `superset_api.py` at a real Superset, started
/// for it (`scripts/services/superset.sh`) and stopped after, also when `walk` panics.
pub(crate) fn with_superset(walk: impl FnOnce(&[&str])) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/services/superset.sh");
    let started = Command::new("bash").arg(&script).arg("start").output().expect("superset.sh runs");
    let out = String::from_utf8_lossy(&started.stdout).into_owned();
    assert!(started.status.success(), "Superset did not start:\n{out}\n{}", String::from_utf8_lossy(&started.stderr));
    let value = |key: &str| {
        out.lines().find_map(|l| l.strip_prefix(&format!("{key}="))).unwrap_or_default().trim_matches('\'').to_owned()
    };
    let (url, user, password) = (value("SUPERSET_URL"), value("SUPERSET_USER"), value("SUPERSET_PASSWORD"));
    let superset =
        ["--superset", url.as_str(), "--superset-user", user.as_str(), "--superset-password", password.as_str()];
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| walk(&superset)));
    let _ = Command::new("bash").arg(&script).arg("stop").status();
    if let Err(panic) = run {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_client_queries_streams_and_gets_clear_errors() {
    let server = Server::start();
    server.lakegate.sql("CREATE TABLE default.numbers (n BIGINT) USING PARQUET; INSERT INTO default.numbers SELECT value FROM generate_series(1, 100000)").success();

    let mut anonymous = server.client().await;
    let refused = anonymous.execute("SELECT 1".into(), None).await.expect_err("no token");
    assert!(refused.to_string().contains("Unauthenticated") || refused.to_string().contains("sign in"), "{refused}");
    let wrong = anonymous.handshake(USER, "wrong").await.expect_err("wrong password");
    assert!(wrong.to_string().contains("wrong user name or password"), "{wrong}");

    let mut client = server.signed_in().await;
    let info = client
        .execute("SELECT sum(n) AS total, count(*) AS rows FROM default.numbers".into(), None)
        .await
        .expect("info");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let batches: Vec<_> = client.do_get(ticket.clone()).await.expect("stream").try_collect().await.expect("batches");
    assert_eq!(batches[0].column(0).as_primitive::<Int64Type>().value(0), 5_000_050_000);
    // Tickets are self-contained: a second connection (as after a reconnect) redeems it too.
    let mut other = server.signed_in().await;
    let again: Vec<_> = other.do_get(ticket).await.expect("stream").try_collect().await.expect("batches");
    assert_eq!(again, batches);

    let bad = client.execute("SELEC 1".into(), None).await.expect_err("bad SQL");
    assert!(bad.to_string().contains("InvalidArgument") || bad.to_string().contains("invalid argument"), "{bad}");
    let unknown = client.execute("SELECT * FROM default.numbrs".into(), None).await.expect_err("unknown table");
    assert!(unknown.to_string().contains("numbrs") && unknown.to_string().contains("numbers"), "{unknown}");
    let forged = client.do_get(arrow_flight::Ticket::new(b"not a ticket".to_vec())).await.expect_err("forged ticket");
    assert!(!forged.to_string().is_empty());

    // A query that fails mid-stream reaches the client as an error, not a short result.
    let failing = client
        .execute("SELECT CAST(CASE WHEN n < 90000 THEN '1' ELSE 'x' END AS INT) AS v FROM default.numbers".into(), None)
        .await
        .expect("plans");
    let streamed: Result<Vec<_>, _> =
        client.do_get(failing.endpoint[0].ticket.clone().expect("ticket")).await.expect("stream").try_collect().await;
    assert!(streamed.is_err(), "the cast failure must reach the client");

    // DDL and DML through CommandStatementUpdate, from any client.
    let rows = client.execute_update("INSERT INTO default.numbers VALUES (0)".into(), None).await.expect("insert");
    assert_eq!(rows, 1);
    client.execute_update("DROP TABLE default.numbers".into(), None).await.expect("drop");

    // The server keeps serving after all of that, and lists what it ran.
    let batches = fetch(
        &mut client,
        "SELECT user, sql, rows, state FROM system.queries WHERE sql LIKE 'SELECT sum(n)%' ORDER BY started",
    )
    .await
    .expect("still serving");
    let history = datafusion::arrow::util::pretty::pretty_format_batches(&batches).expect("prints").to_string();
    assert!(history.contains("| analyst |") && history.contains("| 1    | finished"), "{history}");
    assert_eq!(
        batches.iter().map(|b| b.num_rows()).sum::<usize>(),
        2,
        "the query and its redemption elsewhere: {history}"
    );
    let batches = fetch(&mut client, "SELECT 42 AS answer").await.expect("still serving");
    assert_eq!(batches[0].num_rows(), 1);
    let log = server.stop();
    assert!(log.contains("user=analyst") && log.contains("SELECT 42"), "queries are logged with their user: {log}");
}

#[test]
fn without_users_the_server_stays_on_loopback() {
    let lakegate = Lakegate::new();
    let run = lakegate.run(&["serve", "--listen", "0.0.0.0:0"]).failure();
    assert!(run.stderr.contains("--insecure-allow-remote"), "{}", run.stderr);
}

#[test]
fn a_configured_server_refuses_bad_password_hashes() {
    let lakegate = Lakegate::new();
    let config = lakegate.data_dir.path().join("bad.toml");
    std::fs::write(&config, "[[server.users]]\nname = \"bob\"\npassword_hash = \"hunter2\"\n").expect("config");
    let run =
        lakegate.run(&["--config", config.to_str().expect("utf-8"), "serve", "--listen", "127.0.0.1:0"]).failure();
    assert!(run.stderr.contains("'bob'") && run.stderr.contains("hash-password"), "{}", run.stderr);
}

async fn first_batch_then_cancel(server: &Server, cancel: bool) -> String {
    let mut client = server.signed_in().await;
    let slow =
        "SELECT a.value * b.value AS v FROM generate_series(1, 100000) a CROSS JOIN generate_series(1, 100000) b";
    let info = client.execute(slow.into(), None).await.expect("plans");
    let mut stream = client.do_get(info.endpoint[0].ticket.clone().expect("ticket")).await.expect("starts");
    let first = stream.try_next().await.expect("a first batch").expect("not empty");
    assert!(first.num_rows() > 0);
    if !cancel {
        drop(stream);
        return String::new();
    }
    let request = arrow_flight::CancelFlightInfoRequest::new(info);
    let action = arrow_flight::Action::new("CancelFlightInfo", prost::Message::encode_to_vec(&request));
    let results: Vec<_> = client.do_action(action).await.expect("cancel accepted").try_collect().await.expect("result");
    let result: arrow_flight::CancelFlightInfoResult =
        prost::Message::decode(results[0].body.clone()).expect("decodes");
    assert_eq!(result.status(), arrow_flight::CancelStatus::Cancelled);
    let rest: Result<Vec<_>, _> = stream.try_collect().await;
    rest.expect_err("a cancelled query ends with an error").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelled_and_abandoned_queries_stop_and_the_server_carries_on() {
    let server = Server::start();
    let cancelled = first_batch_then_cancel(&server, true).await;
    assert!(cancelled.contains("cancelled"), "{cancelled}");
    // A client that goes away mid-stream: the query is dropped, not run to the end (10^10 rows).
    let started = std::time::Instant::now();
    first_batch_then_cancel(&server, false).await;
    let mut client = server.signed_in().await;
    let info = client.execute("SELECT 1 AS one".into(), None).await.expect("still serving");
    let rows: Vec<_> = client
        .do_get(info.endpoint[0].ticket.clone().expect("ticket"))
        .await
        .expect("ok")
        .try_collect()
        .await
        .expect("ok");
    assert_eq!(rows[0].num_rows(), 1);
    let log = server.stop();
    // Both are logged as cancelled: the one its client cancelled, and the abandoned one.
    assert!(log.matches("state=\"cancelled\"").count() >= 2, "{log}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "the abandoned query kept running");
}

/// 32 clients at once, 100 mixed statements each (queries, a prepared statement, metadata, a
/// bad statement): no unexpected error, and the server's peak memory stays bounded.
#[tokio::test(flavor = "multi_thread")]
async fn thirty_two_concurrent_clients() {
    let server = Server::start();
    server.lakegate.sql("CREATE TABLE default.events (user_id BIGINT, kind STRING) USING PARQUET; INSERT INTO default.events SELECT value % 1000, CASE WHEN value % 3 = 0 THEN 'click' ELSE 'view' END FROM generate_series(1, 200000)").success();
    let mut tasks = tokio::task::JoinSet::new();
    for client_no in 0..32 {
        let mut client = server.signed_in().await;
        tasks.spawn(async move {
            let mut errors = Vec::new();
            for i in 0..100 {
                let outcome: Result<usize, String> = match i % 5 {
                    0 => run(&mut client, "SELECT kind, count(*) FROM default.events GROUP BY kind").await,
                    1 => {
                        run(
                            &mut client,
                            &format!(
                                "SELECT count(*) FROM default.events WHERE user_id = {}",
                                (client_no * 100 + i) % 1000
                            ),
                        )
                        .await
                    }
                    2 => {
                        let info = client
                            .get_tables(arrow_flight::sql::CommandGetTables {
                                include_schema: true,
                                ..Default::default()
                            })
                            .await;
                        match info {
                            Ok(info) => rows_of(&mut client, info).await,
                            Err(e) => Err(e.to_string()),
                        }
                    }
                    3 => match client.prepare("SELECT count(*) FROM default.events WHERE kind = $1".into(), None).await
                    {
                        Ok(mut prepared) => {
                            let params = datafusion::arrow::array::RecordBatch::try_from_iter([(
                                "$1",
                                std::sync::Arc::new(datafusion::arrow::array::StringArray::from(vec!["click"])) as _,
                            )])
                            .expect("params");
                            prepared.set_parameters(params).expect("bind");
                            match prepared.execute().await {
                                Ok(info) => rows_of(&mut client, info).await,
                                Err(e) => Err(e.to_string()),
                            }
                        }
                        Err(e) => Err(e.to_string()),
                    },
                    _ => match run(&mut client, "SELECT nope FROM default.events").await {
                        Err(e) if e.contains("nope") => Ok(0),
                        other => Err(format!("a bad column must fail naming it: {other:?}")),
                    },
                };
                if let Err(e) = outcome {
                    errors.push(e);
                }
            }
            errors
        });
    }
    let mut errors = Vec::new();
    while let Some(result) = tasks.join_next().await {
        errors.extend(result.expect("client task"));
    }
    assert!(errors.is_empty(), "{} errors, first: {:?}", errors.len(), errors.first());
    let peak_kb = server.peak_rss_kb();
    println!("peak RSS of the server under 32 clients x 100 statements: {} MiB", peak_kb / 1024);
    assert!(peak_kb < 2 * 1024 * 1024, "peak RSS {peak_kb} kB");
}

/// The rows of `sql`.
pub(crate) async fn fetch(
    client: &mut FlightSqlServiceClient<Channel>,
    sql: &str,
) -> Result<Vec<datafusion::arrow::array::RecordBatch>, String> {
    let info = client.execute(sql.into(), None).await.map_err(|e| e.to_string())?;
    let ticket = info.endpoint[0].ticket.clone().ok_or("no ticket")?;
    client.do_get(ticket).await.map_err(|e| e.to_string())?.try_collect().await.map_err(|e| e.to_string())
}

pub(crate) async fn run(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> Result<usize, String> {
    let info = client.execute(sql.into(), None).await.map_err(|e| e.to_string())?;
    rows_of(client, info).await
}

async fn rows_of(
    client: &mut FlightSqlServiceClient<Channel>,
    info: arrow_flight::FlightInfo,
) -> Result<usize, String> {
    let ticket = info.endpoint[0].ticket.clone().ok_or("no ticket")?;
    let batches: Vec<_> =
        client.do_get(ticket).await.map_err(|e| e.to_string())?.try_collect().await.map_err(|e| e.to_string())?;
    Ok(batches.iter().map(|b| b.num_rows()).sum())
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_a_certificate_from_the_config() {
    let lakegate = Lakegate::new();
    let dir = lakegate.data_dir.path().to_path_buf();
    // A CA, and a server certificate it signs, as an operator would have.
    let openssl = |args: &str| {
        let made =
            Command::new("openssl").args(args.split_whitespace()).current_dir(&dir).output().expect("openssl runs");
        assert!(made.status.success(), "openssl {args}: {}", String::from_utf8_lossy(&made.stderr));
    };
    openssl("req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=lakegate-test-ca -keyout ca-key.pem -out ca.pem");
    openssl("req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout key.pem -out server.csr");
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        .expect("ext");
    openssl(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 1 -extfile san.ext -out cert.pem",
    );
    let lakegate = lakegate
        .with_env("LAKEGATE_TLS_CERT", &dir.join("cert.pem").display().to_string())
        .with_env("LAKEGATE_TLS_KEY", &dir.join("key.pem").display().to_string());
    let server = Server::start_with(lakegate, &["--listen", "127.0.0.1:0"]).expect("starts with TLS");
    assert!(server.url.starts_with("grpc+tls://"), "{}", server.url);
    let cert = std::fs::read(dir.join("ca.pem")).expect("CA cert");
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(cert))
        .domain_name("localhost");
    let address = server.url.replace("grpc+tls://", "https://");
    let channel = Channel::from_shared(address.clone())
        .expect("url")
        .tls_config(tls)
        .expect("tls")
        .connect()
        .await
        .expect("TLS connects");
    let mut client = FlightSqlServiceClient::new(channel);
    client.handshake(USER, PASSWORD).await.expect("signs in over TLS");
    assert_eq!(run(&mut client, "SELECT 1").await.expect("query over TLS"), 1);
    // A plain-text client cannot talk to it.
    let plain = Channel::from_shared(address.replace("https://", "http://")).expect("url").connect().await;
    if let Ok(channel) = plain {
        assert!(FlightSqlServiceClient::new(channel).handshake(USER, PASSWORD).await.is_err());
    }
}

#[test]
fn the_repl_runs_statements_on_a_server() {
    use std::io::Write as _;
    let server = Server::start();
    let elsewhere = Lakegate::new();
    let mut repl = elsewhere
        .command()
        .args(["repl", "--connect", &server.url, "--user", USER])
        .env("LAKEGATE_PASSWORD", PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("repl starts");
    let input = "CREATE TABLE default.remote_t (a INT);\nINSERT INTO default.remote_t\n  VALUES (1), (2);\nSELECT sum(a) AS s FROM default.remote_t;\n\\dt\nSELECT * FROM nope;\n\\q\n";
    repl.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("input");
    let output = repl.wait_with_output().expect("exits");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("| 3 |"), "{stdout}");
    assert!(stdout.contains("remote_t"), "\\dt lists the server's tables: {stdout}");
    assert!(stderr.contains("nope"), "the server's error is shown: {stderr}");
    // The table lives in the server's catalog, not the client's.
    assert!(server.lakegate.sql("SHOW TABLES").success().stdout.contains("remote_t"));
    assert!(!elsewhere.sql("SHOW TABLES").success().stdout.contains("remote_t"));
}

/// A 50M-row result (400 MB of values) streams through without the server holding it.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_result_streams_in_bounded_memory() {
    let server = Server::start();
    let mut client = server.signed_in().await;
    let info = client.execute("SELECT value FROM generate_series(1, 50000000)".into(), None).await.expect("plans");
    let mut stream = client.do_get(info.endpoint[0].ticket.clone().expect("ticket")).await.expect("starts");
    let (mut rows, mut sum) = (0usize, 0i64);
    while let Some(batch) = stream.try_next().await.expect("streams") {
        rows += batch.num_rows();
        sum += datafusion::arrow::compute::sum(batch.column(0).as_primitive::<Int64Type>()).unwrap_or(0);
    }
    assert_eq!((rows, sum), (50_000_000, 50_000_000 * 50_000_001 / 2));
    let peak_kb = server.peak_rss_kb();
    println!("peak RSS of the server streaming 50M rows: {} MiB", peak_kb / 1024);
    assert!(peak_kb < 300 * 1024, "the server held the result: peak RSS {peak_kb} kB");
}

/// `KILL QUERY` stops a running query within a second, only its owner or an admin may kill it,
/// `system.queries` shows it running and then cancelled, and `SET statement_timeout` stops a
/// query that runs too long.
#[tokio::test(flavor = "multi_thread")]
async fn kill_query_and_statement_timeout() {
    let lakegate = Lakegate::new();
    let (admin_hash, reader_hash) = (password_hash(&lakegate, PASSWORD), password_hash(&lakegate, "r3ader"));
    let config = format!(
        "[[server.users]]\nname = \"{USER}\"\npassword_hash = \"{admin_hash}\"\nrole = \"admin\"\n\
         [[server.users]]\nname = \"rita\"\npassword_hash = \"{reader_hash}\"\nrole = \"reader\"\n"
    );
    let server = Server::spawn(lakegate, &config, &["--listen", "127.0.0.1:0"]).expect("starts");
    // 10^10 products to add up: minutes of work, unless stopped.
    let slow =
        "SELECT sum(a.value * b.value) AS s FROM generate_series(1, 100000) a CROSS JOIN generate_series(1, 100000) b";

    let mut runner = server.signed_in().await;
    let info = runner.execute(slow.into(), None).await.expect("plans");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let running = tokio::spawn(async move {
        let outcome: Result<Vec<_>, _> = match runner.do_get(ticket).await {
            Ok(stream) => stream.try_collect().await,
            Err(e) => Err(e),
        };
        (outcome.map(|_| ()).map_err(|e| e.to_string()), std::time::Instant::now())
    });

    let mut admin = server.signed_in().await;
    let list = "SELECT id FROM system.queries WHERE state = 'running' AND sql LIKE 'SELECT sum(a.value%'";
    let mut id = None;
    for _ in 0..200 {
        let batches = fetch(&mut admin, list).await.expect("lists");
        if let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) {
            id = Some(batch.column(0).as_string::<i32>().value(0).to_owned());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let id = id.expect("the slow query is listed as running in system.queries");

    let mut reader = server.sign_in("rita", "r3ader").await.expect("signs in");
    // A reader sees only their own running statements: not the admin's query, nor its id.
    let seen = fetch(&mut reader, "SELECT id, sql FROM system.queries WHERE state = 'running'").await.expect("lists");
    let seen = datafusion::arrow::util::pretty::pretty_format_batches(&seen).expect("prints").to_string();
    assert!(!seen.contains(&id) && !seen.contains("generate_series"), "{seen}");
    let refused = run(&mut reader, &format!("KILL QUERY '{id}'")).await.expect_err("a reader kills only their own");
    assert!(refused.contains("permission denied for user 'rita'") && refused.contains("admin role"), "{refused}");
    let unknown = run(&mut admin, "KILL QUERY 'no-such-query'").await.expect_err("nothing to kill");
    assert!(unknown.contains("no query 'no-such-query' is running"), "{unknown}");

    // The heavy query computes on its own threads: the server still answers at once.
    let asked = std::time::Instant::now();
    let probe = crate::operate::http_get(server.admin.as_deref().expect("served"), "/healthz", None);
    assert_eq!(probe.0, 200);
    assert!(asked.elapsed() < std::time::Duration::from_secs(1), "/healthz took {:?}", asked.elapsed());
    let killed_at = std::time::Instant::now();
    run(&mut admin, &format!("CALL system.runtime.kill_query(query_id => '{id}')")).await.expect("the admin kills it");
    let (outcome, ended_at) = running.await.expect("joins");
    let error = outcome.expect_err("a killed query ends with an error");
    assert!(
        error.contains("operation was cancelled") && error.contains(&format!("query '{id}' was killed by {USER}")),
        "{error}"
    );
    let took = ended_at.duration_since(killed_at);
    println!("KILL QUERY stopped the query in {} ms", took.as_millis());
    assert!(took < std::time::Duration::from_secs(1), "the kill took {took:?}");
    // Its work stops too, not only its answer: the server's CPU time stands still.
    let cpu_seconds = || {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", server.pid())).expect("proc stat");
        let fields: Vec<&str> = stat.rsplit_once(')').expect("comm").1.split_whitespace().collect();
        // utime and stime, in clock ticks (100 per second on Linux).
        (fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")) as f64 / 100.0
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before = cpu_seconds();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let burnt = cpu_seconds() - before;
    assert!(burnt < 0.3, "the killed query still computes: {burnt} s of CPU in 1 s");

    let states = format!("SELECT state FROM system.queries WHERE id = '{id}'");
    let mut state = String::new();
    for _ in 0..100 {
        let batches = fetch(&mut admin, &states).await.expect("lists");
        state = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .map(|b| b.column(0).as_string::<i32>().value(0).to_owned())
            .unwrap_or_default();
        if state == "cancelled" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(state, "cancelled");

    // A time limit of this session only: another session's queries are not limited by it.
    let mut limited = server.signed_in().await;
    run(&mut limited, "SET statement_timeout = '500ms'").await.expect("sets");
    let started = std::time::Instant::now();
    let timed_out = run(&mut limited, slow).await.expect_err("stopped by its time limit");
    assert!(timed_out.contains("Deadline expired") && timed_out.contains("time limit of 500ms"), "{timed_out}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(run(&mut admin, "SELECT 1").await, Ok(1));
    let bad = run(&mut limited, "SET statement_timeout = 'soon'").await.expect_err("not a duration");
    assert!(bad.contains("is not a duration"), "{bad}");
    server.stop();
}
