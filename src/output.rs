//! What a statement produced, and how it is shown: tables, CSV, JSON lines or Parquet, batch by
//! batch where the format allows, and sizes for people. Imports nothing of lakegate's but its
//! error, so every layer may use it.

use std::io::Write;
use std::path::Path;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::arrow::{csv, json};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;

use crate::{Error, Result};

/// What a statement produced.
pub enum Output {
    /// Rows, streamed as they are produced.
    Rows(SendableRecordBatchStream),
    /// A statement that returns no rows, with what it did.
    Done(String),
    /// A write, with what it did and how many rows it wrote.
    Wrote { message: String, rows: u64 },
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Rows(s) => write!(f, "Rows({})", s.schema()),
            Output::Done(m) | Output::Wrote { message: m, .. } => write!(f, "Done({m})"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text table (collects the result to size the columns).
    Table,
    Csv,
    /// One JSON object per row.
    Json,
    /// A Parquet file; needs --output.
    Parquet,
}

/// What was written: rows, or the message of a statement without rows.
#[derive(Debug)]
pub enum Written {
    Rows(usize),
    Done(String),
}

impl std::fmt::Display for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Written::Rows(1) => write!(f, "1 row"),
            Written::Rows(rows) => write!(f, "{rows} rows"),
            Written::Done(message) => write!(f, "{message}"),
        }
    }
}

/// Writes `output` to `out` (or to the file `path` for Parquet).
///
/// # Errors
/// The query fails while streaming, or the destination cannot be written.
pub async fn write(output: Output, format: Format, out: &mut dyn Write, path: Option<&Path>) -> Result<Written> {
    let mut stream = match output {
        Output::Done(message) | Output::Wrote { message, .. } => return Ok(Written::Done(message)),
        Output::Rows(stream) => stream,
    };
    let schema = stream.schema();
    let io = |e: std::io::Error| Error::io("output", e);
    let mut rows = 0;
    match format {
        Format::Table => {
            let mut batches: Vec<RecordBatch> = Vec::new();
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows();
                batches.push(batch);
            }
            if !schema.fields().is_empty() {
                if batches.is_empty() {
                    batches.push(RecordBatch::new_empty(schema));
                }
                writeln!(out, "{}", pretty_format_batches(&batches)?).map_err(io)?;
            }
        }
        Format::Csv => {
            let mut writer = csv::WriterBuilder::new().with_header(true).build(out);
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows();
                writer.write(&batch)?;
            }
        }
        Format::Json => {
            let mut writer = json::LineDelimitedWriter::new(out);
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows();
                writer.write(&batch)?;
            }
            writer.finish()?;
        }
        Format::Parquet => {
            let path = path.ok_or_else(|| Error::Usage("--format parquet needs --output FILE".into()))?;
            let file = std::fs::File::create(path).map_err(|e| Error::io(path.display(), e))?;
            let mut writer =
                ArrowWriter::try_new(file, schema, None).map_err(datafusion::error::DataFusionError::from)?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows();
                writer.write(&batch).map_err(datafusion::error::DataFusionError::from)?;
            }
            writer.close().map_err(datafusion::error::DataFusionError::from)?;
        }
    }
    Ok(Written::Rows(rows))
}

/// `bytes` in B, KiB, MiB, GiB or TiB, one decimal.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}
