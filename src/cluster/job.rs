//! A query's job on the cluster, cancelled there when the client stops reading it before its
//! end: `KILL QUERY`, a statement time limit, a client that went away. Ballista's own plan
//! node only submits and fetches; without this the job would run to its end. A job that ended
//! names the executors that ran its last stage, in its metrics (see
//! [`crate::history::EXECUTOR_LABEL`]), for `system.queries`.
//!
//! Clients take the job's state as the scheduler pushes it (Ballista's push mode): the answer
//! comes the moment the job ends, where asking for it (pull mode) waits in steps of 50 ms. A
//! pushed job's id reaches the client only with its first finished task, so each job is also
//! given a name of its own (`lakegate-<uuid>`), by which a job stopped before then is found
//! (`/api/jobs`) and cancelled.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ballista_core::execution_plans::DistributedQueryExec;
use ballista_core::extension::SessionConfigExt;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::protobuf::{CancelJobParams, GetJobStatusParams, job_status};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use datafusion_proto::protobuf::LogicalPlanNode;
use futures::{Stream, StreamExt};

type Job = DistributedQueryExec<LogicalPlanNode>;

/// How long cancelling a job, or asking where it ran, waits for the scheduler.
const CANCEL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs a query on the cluster (its child, Ballista's `DistributedQueryExec`) and cancels the
/// job when its rows are dropped before the end.
#[derive(Debug)]
pub(super) struct ClusterJobExec {
    /// What runs: the job's plan node, maybe wrapped (for tracing) since.
    input: Arc<dyn ExecutionPlan>,
    /// The job's plan node itself (a `DistributedQueryExec`), which learns the job's id once
    /// submitted.
    job: Arc<dyn ExecutionPlan>,
    scheduler_url: String,
    metrics: ExecutionPlanMetricsSet,
}

impl ClusterJobExec {
    /// `plan` as it came from Ballista's planner: wrapped when it runs a job, else as it is.
    pub(super) fn wrap(plan: Arc<dyn ExecutionPlan>, scheduler_url: &str) -> Arc<dyn ExecutionPlan> {
        if !plan.is::<Job>() {
            return plan;
        }
        let scheduler_url = scheduler_url.to_owned();
        Arc::new(Self { input: Arc::clone(&plan), job: plan, scheduler_url, metrics: ExecutionPlanMetricsSet::new() })
    }
}

impl DisplayAs for ClusterJobExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterJobExec: {}", self.scheduler_url)
    }
}

impl ExecutionPlan for ClusterJobExec {
    fn name(&self) -> &'static str {
        "ClusterJobExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DFResult<TreeNodeRecursion>,
    ) -> DFResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let input = children.pop().ok_or_else(|| DataFusionError::Internal("ClusterJobExec has a child".into()))?;
        Ok(Arc::new(Self {
            input,
            job: Arc::clone(&self.job),
            scheduler_url: self.scheduler_url.clone(),
            metrics: self.metrics.clone(),
        }))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> DFResult<SendableRecordBatchStream> {
        // The job's settings are the task's: its name goes with them.
        let name = format!("lakegate-{}", uuid::Uuid::new_v4());
        let config = context.session_config().clone().with_ballista_job_name(&name);
        let context = Arc::new(TaskContext::new(
            context.task_id(),
            context.session_id(),
            config,
            context.scalar_functions().clone(),
            context.higher_order_functions().clone(),
            context.aggregate_functions().clone(),
            context.window_functions().clone(),
            context.runtime_env(),
        ));
        let rows = self.input.execute(partition, context)?;
        let schema = rows.schema();
        let (job, url, metrics) = (Arc::clone(&self.job), self.scheduler_url.clone(), self.metrics.clone());
        let stream = JobRows { rows, job: Arc::clone(&job), name, scheduler_url: url.clone(), ended: false };
        // After the last row: where the job ran, asked once it has ended.
        let ran_on = futures::stream::once(async move {
            let Some(job_id) = job.downcast_ref::<Job>().and_then(Job::job_id) else { return };
            for (executor, partitions) in last_stage_executors(job_id.to_string(), &url).await {
                MetricBuilder::new(&metrics)
                    .with_new_label(crate::history::EXECUTOR_LABEL, executor)
                    .counter("result_partitions", partition)
                    .add(partitions);
            }
        });
        let stream = stream.chain(ran_on.filter_map(|()| futures::future::ready(None)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// The executors (`host:port`) that ran the last stage of `job_id`, a job that succeeded,
/// each with how many of its result partitions it held; none when the scheduler does not say.
async fn last_stage_executors(job_id: String, url: &str) -> Vec<(String, usize)> {
    let asking = async {
        let mut scheduler = SchedulerGrpcClient::connect(url.to_owned()).await?;
        let status = scheduler.get_job_status(GetJobStatusParams { job_id: job_id.clone() }).await?.into_inner();
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(status.status.and_then(|s| s.status))
    };
    let locations = match tokio::time::timeout(CANCEL_TIMEOUT, asking).await {
        Ok(Ok(Some(job_status::Status::Successful(job)))) => job.partition_location,
        Ok(Ok(_)) => return Vec::new(),
        Ok(Err(e)) => {
            tracing::debug!(%job_id, error = %e, "where the job ran is unknown");
            return Vec::new();
        }
        Err(_) => return Vec::new(),
    };
    let mut executors = std::collections::BTreeMap::<String, usize>::new();
    for meta in locations.into_iter().filter_map(|location| location.executor_meta) {
        *executors.entry(format!("{}:{}", meta.host, meta.port)).or_default() += 1;
    }
    executors.into_iter().collect()
}

struct JobRows {
    rows: SendableRecordBatchStream,
    job: Arc<dyn ExecutionPlan>,
    /// The job's name on the scheduler, for when its id is not known yet.
    name: String,
    scheduler_url: String,
    ended: bool,
}

impl Stream for JobRows {
    type Item = DFResult<datafusion::arrow::array::RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.rows.poll_next_unpin(cx);
        // A job that failed or gave all its rows has ended on the cluster too.
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.ended = true;
        }
        polled
    }
}

impl Drop for JobRows {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let job_id = self.job.downcast_ref::<Job>().and_then(Job::job_id).map(|id| id.to_string());
        cancel(job_id, self.name.clone(), self.scheduler_url.clone());
    }
}

/// A job as the scheduler's `/api/jobs` lists it.
#[derive(serde::Deserialize)]
struct ListedJob {
    job_id: String,
    job_name: String,
}

/// The id of the job named `name`, from the scheduler's REST API at `url`.
async fn job_named(url: &str, name: &str) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let jobs: Vec<ListedJob> = super::executors::rest_get(url, "/api/jobs").await?;
    let job = jobs.into_iter().find(|job| job.job_name == name);
    Ok(job.ok_or("the scheduler has no job of that name yet")?.job_id)
}

/// Asks the scheduler to cancel the job `job_id`, or when its id is not known yet, the job
/// named `name`, and waits at most [`CANCEL_TIMEOUT`] for it. The call runs on a thread and
/// runtime of its own: a drop may happen on any thread, in any runtime (or while one shuts
/// down), and a CLI that exits right after a stopped query must still cancel its job.
fn cancel(job_id: Option<String>, name: String, url: String) {
    let (done, finished) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new().name("lakegate-cancel".into()).spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        let cancelled = runtime.block_on(async {
            let cancelling = async {
                let job_id = match job_id {
                    Some(id) => id,
                    None => job_named(&url, &name).await?,
                };
                let mut scheduler = SchedulerGrpcClient::connect(url.clone()).await?;
                scheduler.cancel_job(CancelJobParams { job_id: job_id.clone() }).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(job_id)
            };
            tokio::time::timeout(CANCEL_TIMEOUT, cancelling).await
        });
        match cancelled {
            Ok(Ok(job_id)) => {
                tracing::info!(%job_id, job = %name, "cluster job cancelled: its rows are no longer read")
            }
            Ok(Err(e)) => tracing::warn!(job = %name, scheduler = %url, error = %e, "cluster job not cancelled"),
            Err(_) => tracing::warn!(job = %name, scheduler = %url, "cluster job not cancelled: no answer"),
        }
        let _ = done.send(());
    });
    if spawned.is_ok() {
        let _ = finished.recv_timeout(CANCEL_TIMEOUT + std::time::Duration::from_millis(100));
    }
}
