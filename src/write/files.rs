//! A writer: one per output partition of the laid-out plan, each writing its rows (sorted
//! by partition) as Parquet files under the staging directory, one file open at a time.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::partition;
use datafusion::arrow::datatypes::Schema;
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use futures::StreamExt;
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path;

use super::exec::Layout;
use super::partition_dir_of_row;
use crate::Result;
use crate::storage::commit;

/// Told the rows and bytes written as they are written, for progress bars.
pub(crate) type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// A file written under the staging directory.
#[derive(Debug)]
pub(crate) struct WrittenFile {
    /// Its partition directory (`dt=2018-03-05`), empty for an unpartitioned table.
    pub(crate) partition: String,
    pub(crate) name: String,
    pub(crate) staged: Path,
    pub(crate) rows: u64,
    pub(crate) bytes: u64,
}

struct OpenFile {
    partition: String,
    name: String,
    path: Path,
    writer: AsyncArrowWriter<BufWriter>,
    rows: u64,
}

/// One writer: the rows of one output partition, sorted by partition, as files.
pub(super) struct Writer {
    index: usize,
    /// Tells this writer's files from those of another run of the same task (a retry), so a
    /// run never overwrites a file another run listed.
    run: String,
    layout: Arc<Layout>,
    properties: WriterProperties,
    store: Arc<dyn ObjectStore>,
    staging: Path,
    progress: Option<Progress>,
    open: Option<OpenFile>,
    sequence: usize,
    written: Vec<WrittenFile>,
}

impl Writer {
    pub(super) fn new(
        index: usize,
        layout: Arc<Layout>,
        properties: WriterProperties,
        store: Arc<dyn ObjectStore>,
        staging: Path,
        progress: Option<Progress>,
    ) -> Self {
        let run = uuid::Uuid::new_v4().simple().to_string();
        Self { index, run, layout, properties, store, staging, progress, open: None, sequence: 0, written: Vec::new() }
    }

    fn tell(&self, rows: u64, bytes: u64) {
        if let Some(progress) = &self.progress {
            progress(rows, bytes);
        }
    }

    pub(super) async fn run(
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
            let name =
                commit::data_file_name(&self.layout.commit, &format!("{:03}-{}", self.index, self.run), self.sequence);
            self.sequence += 1;
            let path = commit::child(&self.staging, &format!("{dir}/{name}"));
            let schema = Arc::new(Schema::new(data.schema().fields().clone()));
            let target = BufWriter::new(Arc::clone(&self.store), path.clone());
            let writer = AsyncArrowWriter::try_new(target, schema, Some(self.properties.clone()))?;
            self.open = Some(OpenFile { partition: dir.to_owned(), name, path, writer, rows: 0 });
        }
        let Some(file) = self.open.as_mut() else { unreachable!("opened above") };
        file.writer.write(&data).await?;
        file.rows += data.num_rows() as u64;
        let full =
            file.writer.bytes_written() as u64 + file.writer.in_progress_size() as u64 >= self.layout.target_file_bytes;
        self.tell(data.num_rows() as u64, 0);
        if full {
            self.close().await?;
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        let Some(file) = self.open.take() else { return Ok(()) };
        let OpenFile { partition, name, path, mut writer, rows } = file;
        writer.finish().await?;
        let bytes = writer.bytes_written() as u64;
        self.tell(0, bytes);
        self.written.push(WrittenFile { partition, name, staged: path, rows, bytes });
        Ok(())
    }
}
