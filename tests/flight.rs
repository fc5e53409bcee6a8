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

use crate::common::{Lakegate, venv_bin};

const USER: &str = "analyst";
const PASSWORD: &str = "s3cret";

/// A `lakegate serve` process on a free port, with one configured user; killed on drop.
struct Server {
    child: Child,
    url: String,
    lakegate: Lakegate,
}

impl Server {
    fn start() -> Self {
        Self::start_with(Lakegate::new(), &["--listen", "127.0.0.1:0"]).expect("the server starts")
    }

    /// Writes a config with the test user, starts the server and reads its address.
    fn start_with(lakegate: Lakegate, args: &[&str]) -> Result<Self, String> {
        let hash = lakegate.command().arg("hash-password").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(format!("{PASSWORD}\n").as_bytes())?;
            c.wait_with_output()
        });
        let hash = String::from_utf8(hash.expect("hash-password runs").stdout).expect("utf-8");
        assert!(hash.starts_with("$argon2"), "{hash}");
        let config = lakegate.data_dir.path().join("lakegate.toml");
        std::fs::write(&config, format!("[[server.users]]\nname = \"{USER}\"\npassword_hash = \"{}\"\n", hash.trim())).expect("config");
        let mut child = lakegate
            .command()
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .args(args)
            .env("RUST_LOG", "lakegate=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("lakegate serve starts");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        match stdout.lines().map_while(Result::ok).find_map(|l| l.strip_prefix("lakegate Flight SQL listening on ").map(str::to_owned)) {
            Some(url) => Ok(Self { child, url, lakegate }),
            None => {
                let mut stderr = String::new();
                std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).ok();
                let _ = child.wait();
                Err(stderr)
            }
        }
    }

    /// Runs a client program with `--url --user --password` and checks it passed.
    fn run_client(&self, program: &Path, args: &[&str]) {
        let mut command = if program.extension().is_some_and(|e| e == "py") {
            let mut c = Command::new(venv_bin("python"));
            c.arg(program);
            c
        } else {
            Command::new(program)
        };
        let output = command.args(["--url", &self.url, "--user", USER, "--password", PASSWORD]).args(args).output().expect("client runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("all checks passed"),
            "{} failed:\n{stdout}\n{}",
            program.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    async fn client(&self) -> FlightSqlServiceClient<Channel> {
        let channel = Channel::from_shared(self.url.replace("grpc://", "http://")).expect("url").connect().await.expect("connects");
        FlightSqlServiceClient::new(channel)
    }

    async fn signed_in(&self) -> FlightSqlServiceClient<Channel> {
        let mut client = self.client().await;
        client.handshake(USER, PASSWORD).await.expect("signs in");
        client
    }

    /// Stops the server with SIGTERM and returns its log.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        let status = self.child.wait().expect("exits");
        let mut log = String::new();
        std::io::Read::read_to_string(&mut self.child.stderr.take().expect("stderr"), &mut log).ok();
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

fn clients_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

#[test]
fn jupyter_adbc_client() {
    Server::start().run_client(&clients_dir().join("adbc_client.py"), &[]);
}

#[test]
fn superset_driver_flightsql_dbapi() {
    Server::start().run_client(&clients_dir().join("sqlalchemy_client.py"), &[]);
}

#[test]
fn jdbc_driver() {
    Server::start().run_client(&clients_dir().join("jdbc/run.sh"), &[]);
}

#[test]
fn superset_sql_lab_through_its_rest_api() {
    let server = Server::start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/services/superset.sh");
    let started = Command::new("bash").arg(&script).arg("start").output().expect("superset.sh runs");
    let out = String::from_utf8_lossy(&started.stdout).into_owned();
    assert!(started.status.success(), "Superset did not start:\n{out}\n{}", String::from_utf8_lossy(&started.stderr));
    let value = |key: &str| out.lines().find_map(|l| l.strip_prefix(&format!("{key}="))).unwrap_or_default().trim_matches('\'').to_owned();
    let (url, user, password) = (value("SUPERSET_URL"), value("SUPERSET_USER"), value("SUPERSET_PASSWORD"));
    let run = std::panic::catch_unwind(|| {
        server.run_client(
            &clients_dir().join("superset_api.py"),
            &["--superset", &url, "--superset-user", &user, "--superset-password", &password],
        )
    });
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
    let info = client.execute("SELECT sum(n) AS total, count(*) AS rows FROM default.numbers".into(), None).await.expect("info");
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

    // The server keeps serving after all of that.
    let info = client.execute("SELECT 42 AS answer".into(), None).await.expect("still serving");
    let batches: Vec<_> = client.do_get(info.endpoint[0].ticket.clone().expect("ticket")).await.expect("stream").try_collect().await.expect("ok");
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
    let run = lakegate.run(&["--config", config.to_str().expect("utf-8"), "serve", "--listen", "127.0.0.1:0"]).failure();
    assert!(run.stderr.contains("'bob'") && run.stderr.contains("hash-password"), "{}", run.stderr);
}
