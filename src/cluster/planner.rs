//! Where a query runs: on the cluster when every table it reads can travel there, else here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use ballista_core::extension::SessionConfigExt;
use ballista_core::planner::BallistaQueryPlanner;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionConfig;
use datafusion_proto::logical_plan::AsLogicalPlan;
use datafusion_proto::protobuf::LogicalPlanNode;
use lakegate_catalog::Catalog;

use super::codec::{TableCodec, TableOnCluster};
use super::job::ClusterJobExec;
use crate::sources;
use crate::storage::ObjectStores;
use crate::write::{self, LocalPlanner};

/// Plans queries and Hive-style writes whose every table can travel (see
/// [`sources::runs_on_cluster`]: Parquet on storage every node shares, PostgreSQL read in one
/// query) for the Ballista scheduler at `scheduler_url`, and everything else in this process:
/// statements, EXPLAIN, caches, temporary and system tables, and the other sources.
#[derive(Debug)]
pub struct ClusterPlanner {
    scheduler_url: String,
    catalog: Arc<Catalog>,
    codec: Arc<TableCodec>,
    /// Plans what runs in this process.
    local: LocalPlanner,
    /// Queries sent to the cluster so far.
    sent: AtomicU64,
}

impl ClusterPlanner {
    /// `scheduler` is the scheduler's `host:port`.
    pub fn new(scheduler: &str, catalog: Arc<Catalog>, stores: Arc<ObjectStores>) -> Self {
        Self {
            scheduler_url: format!("http://{scheduler}"),
            catalog,
            codec: Arc::new(TableCodec::sending()),
            local: LocalPlanner::new(stores),
            sent: AtomicU64::new(0),
        }
    }

    /// How many queries this process has sent to the cluster.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// A session's configuration with the settings Ballista reads: its defaults, but
    /// - the static planner rather than the adaptive one: after losing an executor mid-job,
    ///   Ballista 55's adaptive planner rolled a stage back and then never finished the job
    ///   ("Can't find active stage to update stage outputs"), and its client waited forever;
    /// - hash joins, as in-process, rather than Ballista's sort-merge joins (which spill, where
    ///   a hash join's build side must fit an executor's memory): they are what lets a small
    ///   side be broadcast instead of shuffling the big one.
    pub fn session_config(config: SessionConfig) -> SessionConfig {
        use ballista_core::config::BALLISTA_ADAPTIVE_PLANNER_ENABLED;
        config
            .upgrade_for_ballista()
            .set_bool(BALLISTA_ADAPTIVE_PLANNER_ENABLED, false)
            .set_bool("datafusion.optimizer.prefer_hash_join", true)
    }

    /// `plan` with each table it reads replaced by its spec, when all of them can run on
    /// the cluster; the reason it cannot otherwise.
    fn for_cluster(&self, plan: &LogicalPlan) -> Result<LogicalPlan, String> {
        let mut reads = false;
        plan.apply_with_subqueries(|node| {
            Ok(match node {
                LogicalPlan::TableScan(_) => {
                    reads = true;
                    TreeNodeRecursion::Continue
                }
                // A write into a table every node can write: executors write its files.
                LogicalPlan::Extension(_)
                    if write::written_table(node)
                        .is_some_and(|spec| sources::runs_on_cluster(self.catalog.sources(), spec)) =>
                {
                    TreeNodeRecursion::Continue
                }
                // Statements, DataFusion's writes and EXPLAIN act on this process's catalog and
                // session.
                LogicalPlan::Dml(_)
                | LogicalPlan::Ddl(_)
                | LogicalPlan::Copy(_)
                | LogicalPlan::Statement(_)
                | LogicalPlan::Explain(_)
                | LogicalPlan::Analyze(_)
                | LogicalPlan::DescribeTable(_)
                | LogicalPlan::Extension(_) => {
                    reads = false;
                    TreeNodeRecursion::Stop
                }
                _ => TreeNodeRecursion::Continue,
            })
        })
        .map_err(|e| e.to_string())?;
        if !reads {
            return Err("it reads no table, or acts on this process".to_owned());
        }
        let travelling = plan
            .clone()
            .transform_up_with_subqueries(|node| {
                let LogicalPlan::TableScan(mut scan) = node else { return Ok(Transformed::no(node)) };
                let provider = source_as_provider(&scan.source)?;
                let spec = self
                    .catalog
                    .spec_of(&provider)
                    .filter(|spec| sources::runs_on_cluster(self.catalog.sources(), spec))
                    .ok_or_else(|| {
                        DataFusionError::Plan(format!("table {} is read in this process", scan.table_name))
                    })?;
                scan.source = provider_as_source(Arc::new(TableOnCluster { spec, schema: provider.schema() }));
                Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
            })
            .map_err(|e| e.strip_backtrace())?
            .data;
        // Anything else the plan holds must encode too (Ballista's codec decides).
        LogicalPlanNode::try_from_logical_plan(&travelling, self.codec.as_ref()).map_err(|e| e.strip_backtrace())?;
        Ok(travelling)
    }
}

#[async_trait]
impl QueryPlanner for ClusterPlanner {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        session: &dyn Session,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        match self.for_cluster(plan) {
            Ok(travelling) => {
                tracing::info!(scheduler = %self.scheduler_url, "query runs on the cluster");
                self.sent.fetch_add(1, Ordering::Relaxed);
                let config = session.config().ballista_config();
                let codec = Arc::clone(&self.codec) as _;
                let planned =
                    BallistaQueryPlanner::<LogicalPlanNode>::with_extension(self.scheduler_url.clone(), config, codec)
                        .create_physical_plan(&travelling, session)
                        .await?;
                Ok(ClusterJobExec::wrap(planned, &self.scheduler_url))
            }
            Err(reason) => {
                tracing::debug!(%reason, "query runs in this process");
                self.local.create_physical_plan(plan, session).await
            }
        }
    }
}
