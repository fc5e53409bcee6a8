//! A Ballista cluster of the real binary: `lakegate scheduler` and `lakegate executor`s on
//! free loopback ports, ready when they listen, killed by PID on drop.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, wait_for};

/// A scheduler and its executors, stopped (SIGKILL) on drop.
pub(crate) struct Cluster {
    pub(crate) scheduler: String,
    /// Each executor's `host:port` (where its results are fetched), as started.
    pub(crate) executors: Vec<String>,
    processes: Vec<(String, Child)>,
    logs: tempfile::TempDir,
    /// Every node's `lakegate.toml`, if any.
    config: Option<std::path::PathBuf>,
    /// Every node's own environment variables (what tables' `${env:...}` options name).
    env: Vec<(String, String)>,
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

impl Cluster {
    pub(crate) fn start(executors: usize) -> Self {
        Self::start_with(executors, None, &[])
    }

    /// A cluster whose every node reads `config` as its `lakegate.toml` and has `env`.
    pub(crate) fn start_with(executors: usize, config: Option<&str>, env: &[(&str, &str)]) -> Self {
        let logs = tempfile::tempdir().expect("temp dir");
        let config = config.map(|text| {
            let path = logs.path().join("lakegate.toml");
            std::fs::write(&path, text).expect("config written");
            path
        });
        let port = free_port();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut cluster = Self {
            scheduler: format!("127.0.0.1:{port}"),
            executors: Vec::new(),
            processes: Vec::new(),
            logs,
            config,
            env,
        };
        cluster.spawn("scheduler", &["scheduler", "--listen", &cluster.scheduler.clone()]);
        wait_for("the scheduler", Duration::from_secs(30), || listening(port));
        for _ in 0..executors {
            cluster.add_executor();
        }
        cluster
    }

    /// Starts one more executor and waits until it listens.
    pub(crate) fn add_executor(&mut self) {
        let (flight, grpc) = (free_port(), free_port());
        let name = format!("executor-{}", self.processes.len());
        let work = self.logs.path().join(&name);
        std::fs::create_dir_all(&work).expect("work dir");
        let listen = format!("127.0.0.1:{flight}");
        let (scheduler, grpc_port, work) = (self.scheduler.clone(), grpc.to_string(), work.display().to_string());
        let args = ["executor", "--scheduler", &scheduler, "--listen", &listen, "--grpc-port", &grpc_port];
        self.spawn(&name, &[&args[..], &["--concurrent-tasks", "2", "--work-dir", &work]].concat());
        wait_for(&name, Duration::from_secs(30), || listening(flight) && listening(grpc));
        self.executors.push(listen);
    }

    fn spawn(&mut self, name: &str, args: &[&str]) {
        let log = std::fs::File::create(self.logs.path().join(format!("{name}.log"))).expect("log file");
        let data_dir = self.logs.path().join(format!("{name}-data"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_lakegate"));
        if let Some(config) = &self.config {
            command.arg("--config").arg(config);
        }
        let child = command
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("-v")
            .args(args)
            .env_remove("LAKEGATE_CONFIG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("LAKEGATE_CLUSTER_SCHEDULER")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        self.processes.push((name.to_owned(), child));
    }

    /// Kills a process at once (SIGKILL), as a crash would.
    pub(crate) fn kill(&mut self, name: &str) {
        let (_, child) = self.processes.iter_mut().find(|(n, _)| n == name).expect("a process of that name");
        child.kill().expect("kill");
        child.wait().expect("reaped");
    }

    /// What a process of the cluster has logged so far.
    pub(crate) fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.logs.path().join(format!("{name}.log"))).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
