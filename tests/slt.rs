//! Runs the SQL behaviour tests in `tests/slt/*.slt`, each file against a fresh catalog.
//!
//! Usage: `cargo test --test slt [-- name-filter]`. In the files (with `control substitution
//! on`), `$SCRATCH` is a scratch directory of the file's own, and `$DATA` the repository's
//! `tests/data`.
//!
//! Every file runs twice: in-process, then on a Ballista cluster of the real binary (a
//! scheduler and two executors), where the same results are expected.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::TryStreamExt;
use lakegate::config::{GeodataConfig, LayerConfig};
use lakegate::session::Output;
use lakegate::{Config, Lakegate, Session};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

#[path = "common/mod.rs"]
#[allow(dead_code)]
mod common;

struct Db {
    session: Session,
    /// Results show this path as `$SCRATCH`, so expectations do not depend on it.
    scratch: String,
    // Kept alive for the file's duration: the catalog and warehouse live here.
    _data_dir: tempfile::TempDir,
}

#[async_trait]
impl AsyncDB for Db {
    type Error = lakegate::Error;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, statement: &str) -> Result<DBOutput<DefaultColumnType>, lakegate::Error> {
        match self.session.execute(statement).await? {
            Output::Done(_) => Ok(DBOutput::StatementComplete(0)),
            Output::Wrote { rows, .. } => Ok(DBOutput::StatementComplete(rows)),
            Output::Rows(stream) => {
                let schema = stream.schema();
                let batches: Vec<RecordBatch> = stream.try_collect().await?;
                let types: Vec<_> = schema.fields().iter().map(|f| column_type(f.data_type())).collect();
                let mut rows = Vec::new();
                for batch in &batches {
                    rows.extend(format_rows(batch)?);
                }
                for cell in rows.iter_mut().flatten() {
                    *cell = cell.replace(&self.scratch, "$SCRATCH");
                }
                // A one-column result of multi-line text (SHOW CREATE TABLE) reads as lines.
                if types.len() == 1 {
                    rows = rows
                        .iter()
                        .flat_map(|row| row[0].lines().map(|l| vec![l.to_owned()]).collect::<Vec<_>>())
                        .collect();
                }
                Ok(DBOutput::Rows { types, rows })
            }
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "lakegate"
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }
}

fn column_type(data_type: &DataType) -> DefaultColumnType {
    match data_type {
        t if t.is_integer() => DefaultColumnType::Integer,
        t if t.is_floating() || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) => {
            DefaultColumnType::FloatingPoint
        }
        _ => DefaultColumnType::Text,
    }
}

fn format_rows(batch: &RecordBatch) -> Result<Vec<Vec<String>>, lakegate::Error> {
    let options = FormatOptions::default().with_null("NULL");
    let formatters =
        batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options)).collect::<Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows())
        .map(|row| {
            formatters
                .iter()
                .zip(batch.columns())
                .map(|(f, column)| {
                    let text = f.value(row).to_string();
                    // sqllogictest cannot express an empty cell.
                    if text.is_empty() && column.is_valid(row) { "(empty)".to_owned() } else { text }
                })
                .collect()
        })
        .collect())
}

/// The geodata layers of `tests/data/geo`: real US and world polygons (see `scripts/geodata`).
fn geodata_layers(data: &Path) -> GeodataConfig {
    let layer = |name: &str, file: &str, attributes: &[&str]| LayerConfig {
        name: name.to_owned(),
        path: data.join("geo").join(file),
        wkt_column: None,
        attributes: attributes.iter().map(|a| a.to_string()).collect(),
        reject_invalid: false,
    };
    GeodataConfig {
        layers: vec![
            layer("dma", "dma.tsv", &["dma_name", "dma_number"]),
            layer("county", "counties.tsv", &["county"]),
            layer("state", "states.tsv", &["state"]),
            layer("country", "countries.tsv", &["country"]),
        ],
    }
}

async fn open(data_dir: tempfile::TempDir, lakegate: &Lakegate) -> Result<Db, lakegate::Error> {
    let scratch = data_dir.path().join("scratch");
    std::fs::create_dir_all(&scratch).map_err(|e| lakegate::Error::io(scratch.display(), e))?;
    Ok(Db { session: lakegate.session(), scratch: scratch.display().to_string(), _data_dir: data_dir })
}

/// Runs one file, on the cluster at `scheduler` if given; the number of its queries that ran
/// there.
async fn run_file(path: &Path, data: &Path, scheduler: Option<&str>) -> Result<u64, String> {
    let data_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut config =
        Config { data_dir: Some(data_dir.path().to_path_buf()), geodata: geodata_layers(data), ..Config::default() };
    config.cluster.scheduler = scheduler.map(str::to_owned);
    let lakegate = Arc::new(Lakegate::open(config).await.map_err(|e| e.to_string())?);
    let db = open(data_dir, &lakegate).await.map_err(|e| e.to_string())?;
    let scratch = db.scratch.clone();
    let mut db = Some(db);
    let mut runner = sqllogictest::Runner::new(move || {
        let db = db.take();
        async move { db.ok_or_else(|| lakegate::Error::Config("one connection per file".into())) }
    });
    if scheduler.is_some() {
        runner.add_label("cluster");
    }
    runner.set_var("DATA".into(), data.display().to_string());
    runner.set_var("SCRATCH".into(), scratch);
    runner.run_file_async(path).await.map_err(|e| e.display(true).to_string())?;
    Ok(lakegate.queries_on_cluster())
}

fn main() -> std::process::ExitCode {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("slt"))
        .expect("tests/slt exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .filter(|p| filter.as_deref().is_none_or(|f| p.to_string_lossy().contains(f)))
        .collect();
    files.sort();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let cluster = common::cluster::Cluster::start(2);
    let (mut passed, mut failed, mut on_cluster) = (0, 0, 0);
    for (mode, scheduler) in [("", None), (" on a cluster", Some(cluster.scheduler.as_str()))] {
        for file in &files {
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            match runtime.block_on(run_file(file, &root.join("data"), scheduler)) {
                Ok(sent) => {
                    passed += 1;
                    on_cluster += sent;
                    let sent = if scheduler.is_some() {
                        format!(" ({sent} queries ran on the cluster)")
                    } else {
                        String::new()
                    };
                    println!("slt {name}{mode} ... ok{sent}");
                }
                Err(e) => {
                    failed += 1;
                    println!("slt {name}{mode} ... FAILED\n{e}");
                }
            }
        }
    }
    println!("\nslt: {passed} passed, {failed} failed, {on_cluster} queries ran on the cluster");
    if failed == 0 && passed > 0 && on_cluster > 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
