//! Results on their way to the wire: a query's batches streamed (cast to wire types, counted,
//! cancellable, logged when they end), and the rows of statements that ran at once.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arrow_flight::FlightData;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use datafusion::arrow::array::{AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::DataFusionError;
use futures::{Stream, StreamExt, TryStreamExt};
use tonic::{Response, Status};

use super::status::status;
use super::wire;
use crate::Error;
use crate::session::Output;

/// What DoGet answers: Flight data, ended by the first error.
pub(super) type DoGetStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

/// Keeps a streamed query's cancel flag in the server's running map until its stream ends.
pub(super) struct RunningTicket {
    pub(super) id: String,
    pub(super) running: Arc<Mutex<HashMap<String, Arc<AtomicBool>>>>,
}

impl Drop for RunningTicket {
    fn drop(&mut self) {
        self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&self.id);
    }
}

/// A query's batches on their way to the wire: cast to wire types, counted, stopped by a
/// cancel (the session records it as cancelled when it is dropped), and ended at the first error, so a client never takes a failure for the end. When
/// the client goes away, dropping this drops the query, and its memory with it.
pub(super) struct QueryStream {
    /// `None` once the stream has ended.
    pub(super) inner: Option<datafusion::physical_plan::SendableRecordBatchStream>,
    pub(super) schema: SchemaRef,
    pub(super) cancelled: Arc<AtomicBool>,
    pub(super) _ticket: RunningTicket,
}

impl Stream for QueryStream {
    type Item = Result<RecordBatch, DataFusionError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        if this.cancelled.load(Ordering::Relaxed) {
            this.inner = None;
            return Poll::Ready(Some(Err(DataFusionError::Execution("the query was cancelled".into()))));
        }
        let batch = match inner.poll_next_unpin(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => {
                this.inner = None;
                return Poll::Ready(None);
            }
            Poll::Ready(Some(batch)) => batch.and_then(|b| wire::to_wire(&b, &this.schema)),
        };
        if batch.is_err() {
            this.inner = None;
        }
        Poll::Ready(Some(batch))
    }
}

/// The rows of a statement that ran, in wire types; a statement without rows gives one row
/// saying what it did.
pub(super) async fn collect(output: Output) -> Result<(SchemaRef, Vec<RecordBatch>), Status> {
    match output {
        Output::Rows(stream) => {
            let schema = wire::wire_schema(&stream.schema());
            let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(|e| status(e.into()))?;
            let batches = batches
                .iter()
                .map(|b| wire::to_wire(b, &schema))
                .collect::<Result<_, _>>()
                .map_err(|e| status(e.into()))?;
            Ok((schema, batches))
        }
        Output::Done(message) | Output::Wrote { message, .. } => {
            let schema = Arc::new(Schema::new(vec![Field::new("result", DataType::Utf8, false)]));
            let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(StringArray::from(vec![message]))])
                .map_err(|e| Status::internal(e.to_string()))?;
            Ok((schema, vec![batch]))
        }
    }
}

/// Rows affected, as Flight SQL reports them: DataFusion's DML gives a `count`; lakegate's
/// own statements report what they did in words, and count as 0.
pub(super) async fn affected_rows(output: Output) -> Result<i64, Status> {
    if let Output::Wrote { rows, .. } = output {
        return Ok(i64::try_from(rows).unwrap_or(i64::MAX));
    }
    let (_, batches) = collect(output).await?;
    let count = batches
        .iter()
        .filter_map(|b| b.column_by_name("count"))
        .filter_map(|c| datafusion::arrow::compute::cast(c, &DataType::Int64).ok())
        .filter_map(|c| {
            c.as_primitive_opt::<datafusion::arrow::datatypes::Int64Type>().and_then(datafusion::arrow::compute::sum)
        })
        .sum();
    Ok(count)
}

pub(super) fn encode(
    schema: SchemaRef,
    batches: impl Stream<Item = Result<RecordBatch, DataFusionError>> + Send + 'static,
) -> DoGetStream {
    Box::pin(
        FlightDataEncoderBuilder::new()
            .with_schema(schema)
            // A failure mid-stream gets the status it would have had before the first batch
            // (`ResourceExhausted` for a query over the memory limit), not a generic one.
            .build(batches.map_err(|e| FlightError::Tonic(Box::new(status(Error::from(e))))))
            .map_err(Status::from),
    )
}

/// Batches already in memory (the rows of a statement that ran, metadata) as a DoGet stream.
pub(super) fn rows(schema: SchemaRef, batches: Vec<RecordBatch>) -> Response<DoGetStream> {
    Response::new(encode(schema, futures::stream::iter(batches.into_iter().map(Ok))))
}

pub(super) fn one_batch(batch: Result<RecordBatch, impl std::fmt::Display>) -> Result<Response<DoGetStream>, Status> {
    let batch = batch.map_err(|e| Status::internal(e.to_string()))?;
    Ok(rows(batch.schema(), vec![batch]))
}
