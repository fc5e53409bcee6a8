//! Recent and running statements of this process, for `SELECT * FROM system.queries`, the
//! running ones' stop signals, for `KILL QUERY` and time limits, and the metrics they update.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMillisecondArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, Session, TableProvider};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::metrics::Metrics;

/// How many statements are kept.
const KEPT: usize = 1000;

/// One statement, running or ended: a row of `system.queries`.
#[derive(Debug, Clone, Default)]
pub struct QueryRecord {
    /// The id `KILL QUERY` takes.
    pub id: String,
    pub started: Option<SystemTime>,
    pub user: String,
    /// The program that sent it: `ADBC`, `JDBC`, `Python` (pyarrow, flightsql-dbapi, Superset),
    /// `cli`, `repl`...
    pub client: String,
    /// `query`, `write`, `command` or `statement`.
    pub kind: &'static str,
    /// `queued`, `running`, `finished`, `failed` or `cancelled`.
    pub state: &'static str,
    /// The statement's text, secrets masked.
    pub sql: String,
    /// Parsing and logical planning.
    pub planning: Duration,
    /// Waiting for a slot (`[server] max_concurrent_queries`).
    pub queued: Duration,
    /// From the start of the run (optimizing, physical planning, execution, the client reading
    /// the rows) to its end.
    pub execution: Duration,
    pub rows: u64,
    pub bytes: u64,
    pub read: SourceReads,
    pub spilled_bytes: u64,
    /// The largest memory its operators held, added up over operators (an upper bound).
    pub peak_memory: u64,
    pub error: String,
    /// The OpenTelemetry trace it ran in, when traces are exported.
    pub trace_id: String,
    /// The cluster executors (`host:port`, comma-separated) that ran its last stage, when it
    /// ran on a cluster; shown to admins only.
    pub executors: String,
}

/// Rows and bytes read, per kind of source.
#[derive(Debug, Clone, Default)]
pub struct SourceReads(pub BTreeMap<String, (u64, u64)>);

impl SourceReads {
    fn rows(&self) -> u64 {
        self.0.values().map(|(rows, _)| rows).sum()
    }

    fn bytes(&self) -> u64 {
        self.0.values().map(|(_, bytes)| bytes).sum()
    }

    /// `parquet 1000 rows 2.0 MiB, postgres 3 rows 96 B`.
    fn describe(&self) -> String {
        let each = self
            .0
            .iter()
            .map(|(source, (rows, bytes))| format!("{source} {rows} rows {}", crate::output::human_bytes(*bytes)));
        each.collect::<Vec<_>>().join(", ")
    }
}

/// The last [`KEPT`] statements, newest last, and those running now; with a query log, every
/// ended statement is also written to it.
#[derive(Debug, Default)]
pub struct QueryHistory {
    records: Mutex<VecDeque<QueryRecord>>,
    running: Mutex<HashMap<String, RunningQuery>>,
    metrics: Arc<Metrics>,
    log: Option<QueryLog>,
}

/// `system.query_log`: ended statements as Parquet files under `<data dir>/query_log/day=.../`,
/// written every few seconds and when the process ends, kept for `days` days.
#[derive(Debug)]
pub struct QueryLog {
    dir: std::path::PathBuf,
    days: u32,
    pending: Mutex<Vec<QueryRecord>>,
}

/// A statement while it runs.
#[derive(Debug)]
struct RunningQuery {
    record: QueryRecord,
    started: Instant,
    /// Set to why it must stop; the statement watches it.
    stop: tokio::sync::watch::Sender<Option<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A statement from its start to its end: listed as running until [`Tracked::finish`] or
/// drop, then kept in the history and counted in the metrics. Dropped unfinished (the client
/// went away), it is recorded as cancelled.
#[derive(Debug)]
pub struct Tracked {
    history: Arc<QueryHistory>,
    id: String,
    rows: u64,
    bytes: u64,
    ended: bool,
}

impl QueryHistory {
    /// A history counted in `metrics`; with `log` (a directory and the days to keep), also
    /// written to `system.query_log`.
    ///
    /// # Errors
    /// The log's directory cannot be created.
    pub fn new(metrics: Arc<Metrics>, log: Option<(std::path::PathBuf, u32)>) -> crate::Result<Self> {
        let log = match log {
            Some((dir, days)) => {
                std::fs::create_dir_all(&dir).map_err(|e| crate::Error::io(dir.display(), e))?;
                Some(QueryLog { dir, days, pending: Mutex::default() })
            }
            None => None,
        };
        Ok(Self { metrics, log, ..Self::default() })
    }

    /// Writes the statements ended since the last call to the query log, one file per day,
    /// and removes the days older than it keeps. Nothing to do without a log or new statements.
    ///
    /// # Errors
    /// A file cannot be written (the statements are kept for the next try).
    pub fn flush_log(&self) -> crate::Result<()> {
        let Some(log) = &self.log else { return Ok(()) };
        let pending = std::mem::take(&mut *lock(&log.pending));
        if pending.is_empty() {
            return Ok(());
        }
        let mut days: BTreeMap<String, Vec<QueryRecord>> = BTreeMap::new();
        for record in pending {
            days.entry(day_of(record.started)).or_default().push(record);
        }
        let mut failed = None;
        for (day, records) in days {
            if let Err(e) = write_log_file(&log.dir.join(format!("day={day}")), &records) {
                lock(&log.pending).extend(records);
                failed = Some(e);
            }
        }
        let oldest = day_of(Some(SystemTime::now() - Duration::from_secs(86_400 * u64::from(log.days))));
        for entry in std::fs::read_dir(&log.dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.strip_prefix("day=").is_some_and(|day| day < oldest.as_str()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        failed.map_or(Ok(()), Err)
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn keep(&self, record: QueryRecord) {
        if let Some(log) = &self.log {
            lock(&log.pending).push(record.clone());
        }
        let mut records = lock(&self.records);
        if records.len() == KEPT {
            records.pop_front();
        }
        records.push_back(record);
    }

    /// Lists `record` (its SQL already redacted) as running until the returned guard ends;
    /// the receiver learns why, when it must stop.
    pub fn start(self: &Arc<Self>, mut record: QueryRecord) -> (Tracked, tokio::sync::watch::Receiver<Option<String>>) {
        let (stop, watch) = tokio::sync::watch::channel(None);
        record.state = "running";
        record.started = Some(SystemTime::now());
        self.metrics.started.with_label_values(&[record.kind, &record.user]).inc();
        self.metrics.active.inc();
        let id = record.id.clone();
        lock(&self.running).insert(id.clone(), RunningQuery { record, started: Instant::now(), stop });
        (Tracked { history: Arc::clone(self), id, rows: 0, bytes: 0, ended: false }, watch)
    }

    /// Records a statement that failed before it could run (it did not parse or plan).
    pub fn failed_to_plan(&self, mut record: QueryRecord, error: &crate::Error) {
        record.state = "failed";
        record.started = Some(SystemTime::now() - record.planning);
        record.error = error.to_string();
        let labels = [record.kind, record.user.as_str()];
        self.metrics.started.with_label_values(&labels).inc();
        self.metrics.ended.with_label_values(&[record.kind, &record.user, "failed"]).inc();
        self.metrics.duration.with_label_values(&[record.kind]).observe(record.planning.as_secs_f64());
        self.keep(record);
    }

    /// The user running query `id`, if it runs.
    pub fn owner(&self, id: &str) -> Option<String> {
        lock(&self.running).get(id).map(|q| q.record.user.clone())
    }

    /// Tells query `id` to stop, for `reason`; false when it does not run.
    pub fn stop(&self, id: &str, reason: &str) -> bool {
        lock(&self.running).get(id).is_some_and(|q| q.stop.send(Some(reason.to_owned())).is_ok())
    }

    /// The records as they are now, running ones last.
    fn snapshot(&self) -> Vec<QueryRecord> {
        let mut records: Vec<QueryRecord> = lock(&self.records).iter().cloned().collect();
        for query in lock(&self.running).values() {
            let mut record = query.record.clone();
            if record.state == "queued" {
                record.queued = query.started.elapsed();
            } else {
                record.execution = query.started.elapsed().saturating_sub(record.queued);
            }
            records.push(record);
        }
        records
    }

    /// The `system` database as `viewer` sees it: `None` sees every user's queries, a user
    /// only their own.
    pub fn system_database(self: &Arc<Self>, viewer: Option<String>) -> Arc<dyn SchemaProvider> {
        let system = MemorySchemaProvider::new();
        if let Some(log) = &self.log {
            match log_table(&log.dir, viewer.as_deref()) {
                Ok(table) => {
                    let _ = system.register_table("query_log".into(), table);
                }
                Err(e) => tracing::warn!(error = %e, "system.query_log is not readable"),
            }
        }
        let table = Arc::new(QueriesTable { history: Arc::clone(self), viewer });
        // A fresh provider has no table of that name, so this cannot fail.
        let _ = system.register_table("queries".into(), table);
        Arc::new(system)
    }
}

impl Tracked {
    /// Lists the statement as waiting for a slot (`queued`), or as running again.
    pub fn set_queued(&self, queued: bool) {
        let metrics = &self.history.metrics;
        let mut running = lock(&self.history.running);
        let Some(query) = running.get_mut(&self.id) else { return };
        let (from, to) = if queued { ("running", "queued") } else { ("queued", "running") };
        if query.record.state != from {
            return;
        }
        query.record.state = to;
        if queued {
            metrics.active.dec();
            metrics.queued.inc();
        } else {
            metrics.queued.dec();
            metrics.active.inc();
            // Execution starts now: the wait is queueing, not execution.
            query.record.queued = query.started.elapsed();
        }
    }

    /// Counts rows sent back to the client.
    pub fn returned(&mut self, rows: usize, bytes: usize) {
        self.rows += rows as u64;
        self.bytes += bytes as u64;
    }

    /// Ends the statement: `result` says how, `plan` (when it ran one) what it read, spilled
    /// and held.
    pub fn finish(mut self, result: Result<(), &crate::Error>, plan: Option<&dyn ExecutionPlan>) {
        self.end(result, plan);
    }

    fn end(&mut self, result: Result<(), &crate::Error>, plan: Option<&dyn ExecutionPlan>) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let history = &self.history;
        let metrics = &history.metrics;
        let Some(query) = lock(&history.running).remove(&self.id) else {
            // Another statement under the same id (a ticket fetched twice) ended first and
            // took the record; the gauge must still come down.
            metrics.active.dec();
            return;
        };
        let mut record = query.record;
        if record.state == "queued" {
            metrics.queued.dec();
        } else {
            metrics.active.dec();
        }
        record.execution = query.started.elapsed().saturating_sub(record.queued);
        record.rows = self.rows;
        record.bytes = self.bytes;
        record.state = match result {
            Ok(()) => "finished",
            Err(e) if crate::Stopped::in_error(e) => "cancelled",
            Err(e) => {
                if let Some(source) = source_of(e) {
                    metrics.source_errors.with_label_values(&[source]).inc();
                }
                "failed"
            }
        };
        if let Err(e) = result {
            record.error = e.to_string();
        }
        if let Some(plan) = plan {
            let totals = PlanTotals::of(plan);
            for (source, (rows, bytes)) in &totals.read.0 {
                metrics.source_rows.with_label_values(&[source]).inc_by(*rows);
                metrics.source_bytes.with_label_values(&[source]).inc_by(*bytes);
            }
            metrics.spills.inc_by(totals.spills);
            metrics.spilled_bytes.inc_by(totals.spilled_bytes);
            record.read = totals.read;
            record.executors = totals.executors.into_iter().collect::<Vec<_>>().join(", ");
            record.spilled_bytes = totals.spilled_bytes;
            record.peak_memory = totals.peak_memory;
        }
        metrics.ended.with_label_values(&[record.kind, &record.user, record.state]).inc();
        let total = record.queued + record.planning + record.execution;
        metrics.duration.with_label_values(&[record.kind]).observe(total.as_secs_f64());
        metrics.rows_returned.with_label_values(&[&record.user]).inc_by(record.rows);
        metrics.bytes_returned.with_label_values(&[&record.user]).inc_by(record.bytes);
        // The statement's span, when it ends inside it, says how it ended.
        let span = tracing::Span::current();
        span.record("state", record.state);
        span.record("rows", i64::try_from(record.rows).unwrap_or(i64::MAX));
        span.record("bytes", i64::try_from(record.bytes).unwrap_or(i64::MAX));
        tracing::info!(
            query_id = %record.id,
            user = %record.user,
            client = %record.client,
            sql = %record.sql,
            state = record.state,
            rows = record.rows,
            bytes = record.bytes,
            planning_ms = record.planning.as_millis() as u64,
            execution_ms = record.execution.as_millis() as u64,
            error = %record.error,
            executors = %record.executors,
            "query"
        );
        history.keep(record);
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.end(Err(&abandoned()), None);
    }
}

/// Why a statement dropped before its end stopped.
pub fn abandoned() -> crate::Error {
    crate::Error::Stopped(crate::Stopped {
        reason: "stopped before its end: the client cancelled it or went away".into(),
        timed_out: false,
    })
}

/// `records` as rows of `system.queries`.
fn batch(records: &[QueryRecord]) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let millis = |t: Option<SystemTime>| {
        t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()).map(|d| d.as_millis() as i64).unwrap_or_default()
    };
    let text =
        |f: fn(&QueryRecord) -> &str| -> ArrayRef { Arc::new(StringArray::from_iter_values(records.iter().map(f))) };
    let count =
        |f: fn(&QueryRecord) -> u64| -> ArrayRef { Arc::new(UInt64Array::from_iter_values(records.iter().map(f))) };
    let columns: Vec<ArrayRef> = vec![
        text(|r| &r.id),
        Arc::new(
            TimestampMillisecondArray::from(records.iter().map(|r| millis(r.started)).collect::<Vec<_>>())
                .with_timezone("UTC"),
        ),
        text(|r| &r.user),
        text(|r| &r.client),
        text(|r| r.kind),
        text(|r| r.state),
        text(|r| &r.sql),
        count(|r| r.queued.as_millis() as u64),
        count(|r| r.planning.as_millis() as u64),
        count(|r| r.execution.as_millis() as u64),
        count(|r| (r.queued + r.planning + r.execution).as_millis() as u64),
        count(|r| r.rows),
        count(|r| r.bytes),
        count(|r| r.read.rows()),
        count(|r| r.read.bytes()),
        Arc::new(StringArray::from_iter_values(records.iter().map(|r| r.read.describe()))),
        count(|r| r.spilled_bytes),
        count(|r| r.peak_memory),
        text(|r| &r.error),
        text(|r| &r.trace_id),
        text(|r| &r.executors),
    ];
    RecordBatch::try_new(schema(), columns)
}

/// `2026-11-29` (UTC), the query log's partition of a statement started at `time`.
fn day_of(time: Option<SystemTime>) -> String {
    let time: chrono::DateTime<chrono::Utc> = time.unwrap_or(SystemTime::UNIX_EPOCH).into();
    time.format("%Y-%m-%d").to_string()
}

/// Writes `records` as one new Parquet file in `dir`, whole or not at all: readers list only
/// `.parquet` names, and the file gets its name once written.
fn write_log_file(dir: &std::path::Path, records: &[QueryRecord]) -> crate::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir.display(), e))?;
    let name = uuid::Uuid::new_v4();
    let partial = dir.join(format!(".{name}.partial"));
    let file = std::fs::File::create(&partial).map_err(|e| crate::Error::io(partial.display(), e))?;
    let batch = batch(records).map_err(|e| crate::Error::Internal(format!("query log batch: {e}")))?;
    let written = (|| {
        let mut writer = datafusion::parquet::arrow::ArrowWriter::try_new(file, schema(), None)?;
        writer.write(&batch)?;
        writer.close().map(|_| ())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(crate::Error::Internal(format!("writing the query log in {}: {e}", dir.display())));
    }
    let done = dir.join(format!("{name}.parquet"));
    std::fs::rename(&partial, &done).map_err(|e| crate::Error::io(done.display(), e))
}

/// `system.query_log` as `viewer` sees it (`None`: everything; a user: their own rows).
fn log_table(dir: &std::path::Path, viewer: Option<&str>) -> DFResult<Arc<dyn TableProvider>> {
    use datafusion::datasource::file_format::parquet::ParquetFormat;
    use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
    use datafusion::datasource::{ViewTable, provider_as_source};
    use datafusion::logical_expr::{LogicalPlanBuilder, col, lit};
    let url = ListingTableUrl::parse(format!("{}/", dir.display()))?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![("day".to_owned(), DataType::Utf8)]);
    let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(schema());
    let table: Arc<dyn TableProvider> = Arc::new(ListingTable::try_new(config)?);
    let Some(viewer) = viewer else { return Ok(table) };
    // The cluster's hosts and ports are the operators' business (see system.executors).
    let schema = table.schema();
    let columns: Vec<_> = schema
        .fields()
        .iter()
        .map(|field| match field.name().as_str() {
            "executors" => lit(datafusion::scalar::ScalarValue::Utf8(None)).alias("executors"),
            name => col(name),
        })
        .collect();
    // The viewer's name is a value in the plan, never SQL text.
    let own = LogicalPlanBuilder::scan("query_log", provider_as_source(table), None)?
        .filter(col("user").eq(lit(viewer)))?
        .project(columns)?
        .build()?;
    Ok(Arc::new(ViewTable::new(own, None)))
}

/// The kind of source whose error `error` is, if a source's.
fn source_of(error: &crate::Error) -> Option<&'static str> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.is::<crate::sources::postgres::Error>() {
            return Some("postgres");
        }
        if e.is::<crate::sources::cassandra::Error>() {
            return Some("cassandra");
        }
        if e.is::<object_store::Error>() {
            return Some("object_store");
        }
        if let Some(datafusion::error::DataFusionError::ObjectStore(_)) = e.downcast_ref() {
            return Some("object_store");
        }
        cause = e.source();
    }
    None
}

/// The label of a metric that names a cluster executor (`host:port`) a query ran on.
pub(crate) const EXECUTOR_LABEL: &str = "executor";

/// What a finished plan read from each source, spilled and held, from its operators' metrics.
#[derive(Debug, Default)]
struct PlanTotals {
    read: SourceReads,
    executors: std::collections::BTreeSet<String>,
    spills: u64,
    spilled_bytes: u64,
    peak_memory: u64,
}

impl PlanTotals {
    fn of(plan: &dyn ExecutionPlan) -> Self {
        let mut totals = Self::default();
        totals.add(plan);
        totals
    }

    fn add(&mut self, plan: &dyn ExecutionPlan) {
        if let Some(metrics) = plan.metrics() {
            self.spills += metrics.spill_count().unwrap_or_default() as u64;
            self.spilled_bytes += metrics.spilled_bytes().unwrap_or_default() as u64;
            self.peak_memory += metrics.sum_by_name("peak_mem_used").map(|v| v.as_usize()).unwrap_or_default() as u64;
            let labels = metrics.iter().flat_map(|metric| metric.labels());
            let executors = labels.filter(|label| label.name() == EXECUTOR_LABEL).map(|label| label.value().to_owned());
            self.executors.extend(executors);
            if let Some(source) = source_kind(plan) {
                let rows = metrics.output_rows().or_else(|| metrics.sum_by_name("rows_fetched").map(|v| v.as_usize()));
                let bytes = ["bytes_scanned", "bytes_received", "transferred_bytes"]
                    .iter()
                    .filter_map(|name| metrics.sum_by_name(name))
                    .map(|v| v.as_usize())
                    .sum::<usize>();
                let entry = self.read.0.entry(source).or_default();
                entry.0 += rows.unwrap_or_default() as u64;
                entry.1 += bytes as u64;
            }
        }
        for child in plan.children() {
            self.add(child.as_ref());
        }
    }
}

/// The kind of source a leaf of a plan reads: `parquet` (or another file format), `postgres`,
/// `cassandra`, `redshift`, `memory`; `cluster` for the results of a query that ran on one.
pub(crate) fn source_kind(plan: &dyn ExecutionPlan) -> Option<String> {
    use datafusion::datasource::physical_plan::FileScanConfig;
    use datafusion::datasource::source::DataSourceExec;
    if !plan.children().is_empty() {
        return None;
    }
    let kind = match plan.name() {
        "PostgresScanExec" => "postgres",
        "CassandraScanExec" => "cassandra",
        "UnloadExec" => "redshift",
        "DistributedQueryExec" => "cluster",
        "DataSourceExec" => {
            let source = plan.downcast_ref::<DataSourceExec>()?.data_source();
            return Some(match source.downcast_ref::<FileScanConfig>() {
                Some(files) => files.file_source().file_type().to_owned(),
                None => "memory".to_owned(),
            });
        }
        _ => return None,
    };
    Some(kind.to_owned())
}

#[derive(Debug)]
struct QueriesTable {
    history: Arc<QueryHistory>,
    /// Only this user's queries, when set.
    viewer: Option<String>,
}

fn schema() -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, false);
    let count = |name: &str| Field::new(name, DataType::UInt64, false);
    Arc::new(Schema::new(vec![
        text("id"),
        Field::new("started", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        text("user"),
        text("client"),
        text("kind"),
        // queued, running, finished, failed or cancelled
        text("state"),
        text("sql"),
        count("queued_ms"),
        count("planning_ms"),
        count("execution_ms"),
        count("elapsed_ms"),
        // returned to the client
        count("rows"),
        count("bytes"),
        count("rows_read"),
        count("bytes_read"),
        // per source: "parquet 1000 rows 2.0 MiB, postgres 3 rows 96 B"
        text("read"),
        count("spilled_bytes"),
        count("peak_memory_bytes"),
        text("error"),
        text("trace_id"),
        // Last: query logs written before it read it as null.
        Field::new("executors", DataType::Utf8, true),
    ]))
}

#[async_trait]
impl TableProvider for QueriesTable {
    fn schema(&self) -> SchemaRef {
        schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    /// Reads the history as it is when the query starts.
    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let mut records = self.history.snapshot();
        if let Some(viewer) = &self.viewer {
            records.retain(|r| &r.user == viewer);
            // The cluster's hosts and ports are the operators' business (see system.executors).
            records.iter_mut().for_each(|r| r.executors.clear());
        }
        let batch = batch(&records)?;
        MemTable::try_new(schema(), vec![vec![batch]])?.scan(state, projection, filters, limit).await
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::AsArray;
    use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider};
    use datafusion::prelude::SessionContext;

    use super::*;

    /// What `viewer` reads in the `executors` column of `system.<table>`.
    async fn executors_seen(history: &Arc<QueryHistory>, viewer: Option<&str>, table: &str) -> Vec<Option<String>> {
        let ctx = SessionContext::new();
        let catalog = MemoryCatalogProvider::new();
        catalog.register_schema("system", history.system_database(viewer.map(str::to_owned))).expect("schema");
        ctx.register_catalog("lakegate", Arc::new(catalog));
        let frame = ctx.sql(&format!("SELECT executors FROM lakegate.system.{table}")).await.expect("plans");
        let batches = frame.collect().await.expect("read");
        batches.iter().flat_map(|b| b.column(0).as_string::<i32>().iter().map(|v| v.map(str::to_owned))).collect()
    }

    /// Only admins see where a reader's cluster query ran, in `system.queries` and
    /// `system.query_log`; the reader still sees their own row.
    #[tokio::test(flavor = "multi_thread")]
    async fn executors_are_shown_to_admins_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let metrics = Arc::new(Metrics::new());
        let history = Arc::new(QueryHistory::new(metrics, Some((dir.path().to_path_buf(), 30))).expect("history"));
        history.keep(QueryRecord {
            id: "q1".into(),
            user: "reader".into(),
            state: "finished",
            started: Some(SystemTime::now()),
            executors: "10.0.0.7:50061".into(),
            ..QueryRecord::default()
        });
        history.flush_log().expect("log written");
        for table in ["queries", "query_log"] {
            let admin = executors_seen(&history, None, table).await;
            assert_eq!(admin, vec![Some("10.0.0.7:50061".to_owned())], "{table}");
            let reader = executors_seen(&history, Some("reader"), table).await;
            assert_eq!(reader.len(), 1, "{table}: the reader's own row");
            assert!(reader[0].as_deref().unwrap_or_default().is_empty(), "{table}: {reader:?}");
        }
    }
}
