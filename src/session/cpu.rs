//! Queries compute on a runtime of their own. DataFusion's operators are CPU-bound between
//! their yields; on the runtime that serves Flight, the admin endpoint and the timers, one heavy
//! query on a small machine would stall them all, a `KILL` and a time limit included. On their
//! own threads the operating system shares the cores, and the server keeps answering.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use futures::StreamExt;

use crate::{Error, Result};

/// The query runtime; shut down without waiting when the process's [`crate::Lakegate`] goes.
#[derive(Debug)]
pub(crate) struct Compute {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Compute {
    /// One worker per core.
    pub(crate) fn new() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("lakegate-query")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the query runtime: {e}")))?;
        Ok(Self { runtime: Some(runtime) })
    }

    /// The rows of `plan`, computed on the query runtime and handed over two batches at a time.
    /// Dropping the stream stops the computation (at its operators' next yield).
    pub(crate) fn execute(&self, plan: Arc<dyn ExecutionPlan>, task: Arc<TaskContext>) -> SendableRecordBatchStream {
        let schema: SchemaRef = plan.schema();
        let (sender, receiver) = tokio::sync::mpsc::channel(2);
        let Some(runtime) = &self.runtime else { unreachable!("the runtime lives as long as Compute") };
        let driver = runtime.spawn(async move {
            let mut rows = match datafusion::physical_plan::execute_stream(plan, task) {
                Ok(rows) => rows,
                Err(e) => {
                    let _ = sender.send(Err(e)).await;
                    return;
                }
            };
            while let Some(batch) = rows.next().await {
                let failed = batch.is_err();
                // The reader went away: stop computing.
                if sender.send(batch).await.is_err() || failed {
                    break;
                }
            }
        });
        let abort = AbortOnDrop(driver);
        let batches = futures::stream::unfold((receiver, abort), |(mut receiver, abort)| async move {
            let batch = receiver.recv().await?;
            Some((batch, (receiver, abort)))
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, batches.map(|b: Result<_, DataFusionError>| b)))
    }
}

impl Drop for Compute {
    fn drop(&mut self) {
        // Dropping a runtime from async code panics; running queries need no goodbye.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Stops the computing task when the stream is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
