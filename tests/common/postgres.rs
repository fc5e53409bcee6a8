//! A throw-away PostgreSQL cluster: `initdb` into a temp dir, the server on a free loopback
//! port with password authentication, `psql` for the tests' own set-up. Run as the `postgres`
//! user when the tests run as root (PostgreSQL refuses to run as root).

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::{free_port, wait_for};

/// The role tests connect as, and its password.
pub(crate) const USER: &str = "lakegate";
pub(crate) const PASSWORD: &str = "pg-test-secret";

pub(crate) struct Postgres {
    dir: tempfile::TempDir,
    pub(crate) port: u16,
    server: Option<(Child, ChildStdin)>,
    /// Extra `-c name=value` server settings.
    settings: Vec<String>,
}

fn as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program args...`, as the `postgres` user when we are root.
fn server_command(program: &str) -> Command {
    if as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", program]);
        command
    } else {
        Command::new(program)
    }
}

fn require(program: &str) {
    let found =
        std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).exists()));
    assert!(
        found,
        "{program} is not on PATH: run the tests with `bash scripts/test.sh` (it installs PostgreSQL and puts its \
         server binaries on PATH), or `eval \"$(bash scripts/setup.sh | grep '^export ')\"` first"
    );
}

impl Postgres {
    /// A new cluster, stopped when dropped (or, at the latest, when the test process exits).
    pub(crate) fn start() -> Self {
        Self::start_with(|_| Vec::new())
    }

    /// A cluster serving TLS with a certificate for 127.0.0.1 signed by a test CA; returns the
    /// CA's PEM file.
    pub(crate) fn start_tls() -> (Self, std::path::PathBuf) {
        let postgres = Self::start_with(|dir| {
            let openssl = |args: &str| {
                let made = Command::new("openssl")
                    .args(args.split_whitespace())
                    .current_dir(dir)
                    .output()
                    .expect("openssl runs");
                assert!(made.status.success(), "openssl {args}: {}", String::from_utf8_lossy(&made.stderr));
            };
            openssl(
                "req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=lakegate-test-ca -keyout ca-key.pem -out ca.pem",
            );
            openssl("req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr");
            std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
                .expect("ext");
            openssl(
                "x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 1 -extfile san.ext -out server.crt",
            );
            let key = dir.join("server.key");
            std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("key mode");
            vec![
                "ssl=on".into(),
                format!("ssl_cert_file={}", dir.join("server.crt").display()),
                format!("ssl_key_file={}", key.display()),
            ]
        });
        let ca = postgres.dir.path().join("ca.pem");
        (postgres, ca)
    }

    fn start_with(prepare: impl FnOnce(&std::path::Path) -> Vec<String>) -> Self {
        require("initdb");
        require("psql");
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = prepare(dir.path());
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, format!("{PASSWORD}\n")).expect("password file");
        if as_root() {
            let status = Command::new("chown").args(["-R", "postgres"]).arg(dir.path()).status().expect("chown runs");
            assert!(status.success(), "chown of the cluster directory to postgres");
        }
        let output = server_command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", USER, "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .expect("initdb runs");
        assert!(output.status.success(), "initdb failed: {}", String::from_utf8_lossy(&output.stderr));
        let mut postgres = Self { dir, port: free_port(), server: None, settings };
        postgres.resume();
        postgres
    }

    /// One cluster shared by the tests of this process; each test uses its own database.
    pub(crate) fn shared() -> &'static Self {
        static SHARED: OnceLock<Postgres> = OnceLock::new();
        SHARED.get_or_init(Self::start)
    }

    /// Starts the server (again) on the same port and data.
    pub(crate) fn resume(&mut self) {
        let data = self.dir.path().join("data");
        // The shell stops the server when its stdin closes, which also happens when the test
        // process exits: no server outlives its tests. Unless told `stop` (to be resumed), it
        // then removes the cluster, which the never-dropped shared one relies on.
        let script = "postgres -D \"$0\" -p \"$1\" -k \"$0\" -c listen_addresses=127.0.0.1 -c fsync=off \
                      -c synchronous_commit=off -c full_page_writes=off & pid=$!; read cmd; kill -INT $pid; wait $pid; \
                      [ \"$cmd\" = stop ] || rm -rf \"$2\"";
        let settings: Vec<String> = self.settings.iter().map(|s| format!("-c {s}")).collect();
        let mut child = server_command("sh")
            .args(["-c", &script.replace("-c fsync=off", &format!("-c fsync=off {}", settings.join(" ")))])
            .arg(&data)
            .arg(self.port.to_string())
            .arg(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres starts");
        let stdin = child.stdin.take().expect("stdin");
        self.server = Some((child, stdin));
        let port = self.port;
        wait_for("PostgreSQL", Duration::from_secs(60), || {
            psql_command(port, "postgres", "SELECT 1").output().is_ok_and(|o| o.status.success())
        });
    }

    /// Stops the server (fast shutdown: running queries are cut off), keeping its data.
    pub(crate) fn stop(&mut self) {
        if let Some((mut child, mut stdin)) = self.server.take() {
            let _ = stdin.write_all(b"stop\n");
            drop(stdin);
            let _ = child.wait();
        }
    }

    /// `postgres://lakegate@127.0.0.1:<port>/<database>` (the password goes in OPTIONS).
    pub(crate) fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database for one test.
    pub(crate) fn database(&self) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("t{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        name
    }

    /// Runs `sql` with psql and returns its unaligned, tuples-only output; panics on error.
    #[track_caller]
    pub(crate) fn psql(&self, database: &str, sql: &str) -> String {
        let output = psql_command(self.port, database, sql).output().expect("psql runs");
        assert!(output.status.success(), "psql failed on {sql}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

fn psql_command(port: u16, database: &str, sql: &str) -> Command {
    let mut command = Command::new("psql");
    command
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", USER, "-d", database])
        .arg("-p")
        .arg(port.to_string())
        .arg("-c")
        .arg(sql)
        .env("PGPASSWORD", PASSWORD)
        .stdin(Stdio::null());
    command
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
