//! Running on an Apache DataFusion Ballista cluster.
//!
//! A cluster is `lakegate scheduler` and `lakegate executor` processes ([`roles`]); a client
//! (`serve`, `sql`, `run`, `repl`) with `[cluster] scheduler` set plans each query against its
//! own catalog and sends those that read only tables every node can rebuild
//! ([`ClusterPlanner`]). Tables travel as their specs ([`codec`]); object stores, connections
//! and geodata layers are each node's own, built from its own configuration.

mod codec;
mod compact;
mod executors;
mod job;
mod planner;
mod roles;
mod splits;

use std::sync::Arc;

use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::ScalarUDF;
use lakegate_catalog::Sources;
use serde::Deserialize;

use crate::storage::ObjectStores;

pub use self::codec::{ExecCodec, TableCodec};
pub use self::executors::{Executor, ExecutorsTable, executors};
pub use self::planner::ClusterPlanner;
pub use self::roles::{ExecutorArgs, SchedulerArgs, run_executor, run_scheduler};

/// `[cluster]`: where queries run.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The Ballista scheduler (`host:port`) that runs queries; none: they run in-process.
    pub scheduler: Option<String>,
}

/// What a scheduler or executor builds from its own configuration, and never receives: the
/// object stores (in the runtime, and for writes), the sources that rebuild tables, and the
/// functions.
#[derive(Debug)]
pub struct Node {
    pub runtime: Arc<RuntimeEnv>,
    pub stores: Arc<ObjectStores>,
    pub sources: Sources,
    pub functions: Vec<Arc<ScalarUDF>>,
}
