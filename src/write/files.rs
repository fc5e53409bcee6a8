//! The writers: one per output partition of the laid-out plan, each writing its rows (sorted
//! by partition) as Parquet files under the staging directory, one file open at a time.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::partition;
use datafusion::arrow::datatypes::Schema;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use futures::StreamExt;
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use tokio::task::JoinSet;

use super::partition_dir_of_row;
use crate::Result;
use crate::storage::commit;

/// How the writers turn rows into files.
#[derive(Debug)]
pub(super) struct Layout {
    pub(super) data_columns: usize,
    pub(super) partition_names: Vec<String>,
    pub(super) target_file_bytes: u64,
    pub(super) properties: WriterProperties,
    pub(super) commit: String,
}

/// A file written under the staging directory.
#[derive(Debug)]
pub(super) struct WrittenFile {
    /// Its partition directory (`dt=2018-03-05`), empty for an unpartitioned table.
    pub(super) partition: String,
    pub(super) name: String,
    pub(super) staged: Path,
    pub(super) rows: u64,
    pub(super) bytes: u64,
}

/// Runs every output partition of `plan` on its own task, writing files under `staging`.
///
/// # Errors
/// The first failure of any writer; the others are cancelled.
pub(super) async fn write_all(
    plan: Arc<dyn ExecutionPlan>,
    context: Arc<TaskContext>,
    layout: Arc<Layout>,
    store: &Arc<dyn ObjectStore>,
    staging: &Path,
    on_written: &Arc<dyn Fn(u64, u64) + Send + Sync>,
) -> Result<Vec<WrittenFile>> {
    let mut writers = JoinSet::new();
    for index in 0..plan.output_partitioning().partition_count() {
        let stream = plan.execute(index, Arc::clone(&context))?;
        let writer = Writer {
            index,
            layout: Arc::clone(&layout),
            store: Arc::clone(store),
            staging: staging.clone(),
            on_written: Arc::clone(on_written),
            open: None,
            sequence: 0,
            written: Vec::new(),
        };
        writers.spawn(writer.run(stream));
    }
    let mut written = Vec::new();
    // Dropping the set on an error aborts the writers still running.
    while let Some(result) = writers.join_next().await {
        let files = result.map_err(|e| DataFusionError::ExecutionJoin(Box::new(e)))??;
        written.extend(files);
    }
    Ok(written)
}

struct OpenFile {
    partition: String,
    name: String,
    path: Path,
    writer: AsyncArrowWriter<BufWriter>,
    rows: u64,
}

struct Writer {
    index: usize,
    layout: Arc<Layout>,
    store: Arc<dyn ObjectStore>,
    staging: Path,
    /// Told the rows and bytes written, for progress bars.
    on_written: Arc<dyn Fn(u64, u64) + Send + Sync>,
    open: Option<OpenFile>,
    sequence: usize,
    written: Vec<WrittenFile>,
}

impl Writer {
    async fn run(
        mut self,
        mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    ) -> Result<Vec<WrittenFile>> {
        let partitions = self.layout.data_columns..self.layout.data_columns + self.layout.partition_names.len();
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            if batch.num_rows() == 0 {
                continue;
            }
            let keys: Vec<ArrayRef> = batch.columns()[partitions.clone()].to_vec();
            // Rows come sorted by partition: each run of equal keys goes to one file.
            let runs = if keys.is_empty() {
                std::iter::once(0..batch.num_rows()).collect()
            } else {
                partition(&keys)?.ranges()
            };
            for run in runs {
                let dir = partition_dir_of_row(&self.layout.partition_names, &keys, run.start)?;
                let rows = batch.slice(run.start, run.end - run.start);
                self.write(&dir, rows).await?;
            }
        }
        self.close().await?;
        Ok(self.written)
    }

    async fn write(&mut self, dir: &str, rows: RecordBatch) -> Result<()> {
        if self.open.as_ref().is_some_and(|f| f.partition != dir) {
            self.close().await?;
        }
        let data = rows.project(&(0..self.layout.data_columns).collect::<Vec<_>>())?;
        if self.open.is_none() {
            let name = commit::data_file_name(&self.layout.commit, self.index, self.sequence);
            self.sequence += 1;
            let path = commit::child(&self.staging, &format!("{dir}/{name}"));
            let schema = Arc::new(Schema::new(data.schema().fields().clone()));
            let target = BufWriter::new(Arc::clone(&self.store), path.clone());
            let writer = AsyncArrowWriter::try_new(target, schema, Some(self.layout.properties.clone()))?;
            self.open = Some(OpenFile { partition: dir.to_owned(), name, path, writer, rows: 0 });
        }
        let Some(file) = self.open.as_mut() else { unreachable!("opened above") };
        file.writer.write(&data).await?;
        file.rows += data.num_rows() as u64;
        (self.on_written)(data.num_rows() as u64, 0);
        if file.writer.bytes_written() as u64 + file.writer.in_progress_size() as u64 >= self.layout.target_file_bytes {
            self.close().await?;
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        let Some(file) = self.open.take() else { return Ok(()) };
        let OpenFile { partition, name, path, mut writer, rows } = file;
        writer.finish().await?;
        let bytes = writer.bytes_written() as u64;
        (self.on_written)(0, bytes);
        self.written.push(WrittenFile { partition, name, staged: path, rows, bytes });
        Ok(())
    }
}
