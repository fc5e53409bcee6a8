//! `system.executors`: the executors of the cluster as its scheduler sees them, asked of the
//! scheduler's REST API (`/api/executors`) when the table is read.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampSecondArray, UInt16Array, UInt32Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use serde::Deserialize;

/// How long a read of `system.executors` waits for the scheduler.
const TIMEOUT: Duration = Duration::from_secs(5);

/// An executor as the scheduler's `/api/executors` describes it (the fields lakegate shows).
#[derive(Debug, Deserialize)]
pub struct Executor {
    pub id: String,
    pub host: String,
    pub port: u16,
    /// The time of its last heartbeat, in milliseconds since the epoch.
    pub last_seen: Option<u64>,
    pub specification: Specification,
}

#[derive(Debug, Deserialize)]
pub struct Specification {
    /// The tasks it runs at once (`--concurrent-tasks`).
    pub vcores: u32,
}

/// The executors registered with the scheduler at `scheduler` (`host:port`), by id.
///
/// # Errors
/// The scheduler cannot be reached, or answers with something else than its executors.
pub async fn executors(scheduler: &str) -> crate::Result<Vec<Executor>> {
    let mut executors: Vec<Executor> = rest_get(&format!("http://{scheduler}"), "/api/executors")
        .await
        .map_err(|e| crate::Error::Cluster(format!("scheduler {scheduler}: {e}")))?;
    executors.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(executors)
}

/// What the scheduler at `base` (`http://host:port`) answers to a GET of `path` on its REST API,
/// parsed as JSON; the error names the URL.
pub(super) async fn rest_get<T: serde::de::DeserializeOwned>(base: &str, path: &str) -> Result<T, String> {
    let url = format!("{base}{path}");
    let client = reqwest::Client::builder().timeout(TIMEOUT).build().map_err(|e| e.to_string())?;
    let response = client.get(&url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| format!("{url} answered something else: {e}"))
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("host", DataType::Utf8, false),
        Field::new("port", DataType::UInt16, false),
        Field::new("task_slots", DataType::UInt32, false),
        Field::new("last_heartbeat", DataType::Timestamp(TimeUnit::Second, Some("UTC".into())), true),
    ]))
});

/// `system.executors`: empty without a cluster.
#[derive(Debug)]
pub struct ExecutorsTable {
    scheduler: Option<String>,
}

impl ExecutorsTable {
    pub fn new(scheduler: Option<String>) -> Self {
        Self { scheduler }
    }
}

#[async_trait]
impl TableProvider for ExecutorsTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&SCHEMA)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _: &dyn Session,
        projection: Option<&Vec<usize>>,
        _: &[Expr],
        _: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let executors = match &self.scheduler {
            Some(scheduler) => executors(scheduler).await.map_err(|e| DataFusionError::External(Box::new(e)))?,
            None => Vec::new(),
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(executors.iter().map(|e| Some(e.id.as_str())).collect::<StringArray>()),
            Arc::new(executors.iter().map(|e| Some(e.host.as_str())).collect::<StringArray>()),
            Arc::new(executors.iter().map(|e| Some(e.port)).collect::<UInt16Array>()),
            Arc::new(executors.iter().map(|e| Some(e.specification.vcores)).collect::<UInt32Array>()),
            Arc::new(
                executors
                    .iter()
                    .map(|e| e.last_seen.map(|ms| (ms / 1000) as i64))
                    .collect::<TimestampSecondArray>()
                    .with_timezone("UTC"),
            ),
        ];
        let batch = RecordBatch::try_new(Arc::clone(&SCHEMA), columns)?;
        Ok(MemorySourceConfig::try_new_exec(&[vec![batch]], Arc::clone(&SCHEMA), projection.cloned())? as _)
    }
}
