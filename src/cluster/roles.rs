//! `lakegate scheduler` and `lakegate executor`: Ballista's scheduler and executor with
//! lakegate's tables, functions and object stores linked in, so a cluster is more `lakegate`
//! processes, each configured from its own file and environment.

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_core::extension::{ballista_aggregate_functions, ballista_scalar_functions, ballista_window_functions};
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::{SchedulerConfig, TaskDistributionPolicy};
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionConfig;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use tokio::net::TcpSocket;

use super::Node;
use super::codec::{ExecCodec, TableCodec};
use super::compact::CompactOutputs;
use super::splits::SplitsAsFiles;
use crate::{Error, Result};

/// Where a scheduler listens.
#[derive(Debug, Clone)]
pub struct SchedulerArgs {
    pub listen: SocketAddr,
}

/// Where an executor listens, and which scheduler it serves.
#[derive(Debug, Clone)]
pub struct ExecutorArgs {
    /// The scheduler's `host:port`.
    pub scheduler: String,
    /// Where other executors and clients fetch this one's results (Arrow Flight).
    pub listen: SocketAddr,
    /// Where the scheduler hands this executor its tasks (gRPC).
    pub grpc_port: u16,
    /// The host other nodes reach this one by [default: the listen address's].
    pub advertise_host: Option<String>,
    /// Tasks run at once [default: the number of cores].
    pub concurrent_tasks: Option<usize>,
    /// Shuffle files [default: a temporary directory].
    pub work_dir: Option<std::path::PathBuf>,
}

/// How often an executor tells its scheduler it is alive.
const HEARTBEAT_SECONDS: u64 = 5;

/// How long a scheduler waits for a heartbeat before it gives an executor up.
const EXECUTOR_TIMEOUT_SECONDS: u64 = 4 * HEARTBEAT_SECONDS;

fn cluster_error(role: &str, e: impl std::fmt::Display) -> Error {
    Error::Cluster(format!("{role}: {e}"))
}

/// Runs a scheduler until the process is stopped. It plans jobs, so it rebuilds tables
/// (listing their files through its own object stores) and knows lakegate's functions.
///
/// # Errors
/// The address cannot be bound, or Ballista fails to start.
pub async fn run_scheduler(node: Node, args: SchedulerArgs) -> Result<()> {
    let Node { runtime, stores, sources, functions } = node;
    let planner = Arc::new(crate::write::LocalPlanner::new(Arc::clone(&stores)));
    let session_builder = Arc::new(move |config: SessionConfig| {
        let mut scalar = ballista_scalar_functions();
        scalar.extend(functions.iter().cloned());
        Ok(SessionStateBuilder::new()
            .with_default_features()
            .with_config(config)
            .with_runtime_env(Arc::clone(&runtime))
            .with_optimizer_rules(ballista_core::optimizer::ballista_default_optimizer_rules())
            .with_scalar_functions(scalar)
            .with_aggregate_functions(ballista_aggregate_functions())
            .with_window_functions(ballista_window_functions())
            .with_query_planner(Arc::clone(&planner) as _)
            .with_physical_optimizer_rule(Arc::new(SplitsAsFiles))
            .with_physical_optimizer_rule(Arc::new(CompactOutputs))
            .build())
    });
    let config = SchedulerConfig {
        bind_host: args.listen.ip().to_string(),
        bind_port: args.listen.port(),
        external_host: args.listen.ip().to_string(),
        // Spread each stage's tasks over the executors, so scans use every machine's disks
        // and network rather than filling the first executor's slots.
        task_distribution: TaskDistributionPolicy::RoundRobin,
        // An executor that stops answering is given up after 20 s (Ballista waits 180 s), and
        // its tasks go to the others: a dashboard's query should not hang on a lost machine.
        executor_timeout_seconds: EXECUTOR_TIMEOUT_SECONDS,
        no_executors_grace_period_seconds: EXECUTOR_TIMEOUT_SECONDS,
        expire_dead_executor_interval_seconds: 5,
        // The port also serves Ballista's REST API (`/api/executors` for `cluster status`): no
        // web page elsewhere may call it from a browser, and browsers may only read.
        cors_allowed_origins: format!("http://{}", args.listen),
        cors_allowed_methods: "GET".to_owned(),
        override_session_builder: Some(session_builder),
        override_logical_codec: Some(Arc::new(TableCodec::receiving(sources.clone()))),
        override_physical_codec: Some(Arc::new(ExecCodec::new(sources, stores))),
        ..SchedulerConfig::default()
    };
    config.validate().map_err(|e| cluster_error("scheduler", e))?;
    let listener = listener(args.listen).map_err(|e| cluster_error("scheduler", format!("{}: {e}", args.listen)))?;
    let cluster = BallistaCluster::new_from_config(&config).await.map_err(|e| cluster_error("scheduler", e))?;
    let scheduler = create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, Arc::new(config))
        .await
        .map_err(|e| cluster_error("scheduler", e))?;
    tracing::info!(listen = %args.listen, "scheduler started");
    start_grpc_service_with_listener(listener, scheduler).await.map_err(|e| cluster_error("scheduler", e))
}

/// The scheduler's listening socket. Its answers go out at once: sockets accepted from it
/// inherit `TCP_NODELAY`, which Ballista's server does not set, and without which every reply
/// to a client waited for that client's delayed acknowledgement (40 ms on Linux).
fn listener(address: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}

/// Runs an executor until the process is stopped or its scheduler tells it to stop.
///
/// # Errors
/// The scheduler address is not `host:port`, or Ballista fails to start.
pub async fn run_executor(node: Node, args: ExecutorArgs) -> Result<()> {
    let Node { runtime, stores, sources, functions } = node;
    let (scheduler_host, scheduler_port) = args
        .scheduler
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host.to_owned(), port.parse::<u16>().ok()?)))
        .ok_or_else(|| Error::Config(format!("--scheduler {} is not host:port", args.scheduler)))?;
    let mut registry = BallistaFunctionRegistry::default();
    for function in functions {
        registry.scalar_functions.insert(function.name().to_owned(), function);
    }
    let work_dir = args.work_dir.as_ref().map(|dir| dir.display().to_string());
    // Every task runs on this process's runtime: its object store clients, connections and
    // `[execution]` memory pool are built once, not per task.
    let runtime_producer = Arc::new(move |_: &SessionConfig| Ok(Arc::clone(&runtime)));
    let host = args.listen.ip().to_string();
    let config = ExecutorProcessConfig {
        bind_host: host.clone(),
        external_host: Some(args.advertise_host.clone().unwrap_or(host)),
        port: args.listen.port(),
        grpc_port: args.grpc_port,
        scheduler_host,
        scheduler_port,
        vcores: args.concurrent_tasks.unwrap_or(0),
        work_dir,
        override_function_registry: Some(Arc::new(registry)),
        override_runtime_producer: Some(runtime_producer),
        override_logical_codec: Some(Arc::new(TableCodec::receiving(sources.clone()))),
        override_physical_codec: Some(Arc::new(ExecCodec::new(sources, stores))),
        executor_heartbeat_interval_seconds: HEARTBEAT_SECONDS,
        ..ExecutorProcessConfig::default()
    };
    tracing::info!(listen = %args.listen, scheduler = %args.scheduler, "executor started");
    start_executor_process(Arc::new(config)).await.map_err(|e| cluster_error("executor", e))
}
