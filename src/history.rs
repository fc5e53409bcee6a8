//! Recent and running statements of this process, for `SELECT * FROM system.queries`, and
//! the running ones' stop signals, for `KILL QUERY` and time limits.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMillisecondArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, Session, TableProvider};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

/// How many statements are kept.
const KEPT: usize = 1000;

/// One finished statement.
#[derive(Debug, Clone)]
pub struct QueryRecord {
    /// The id `KILL QUERY` took while it ran.
    pub id: String,
    pub started: SystemTime,
    pub user: String,
    pub sql: String,
    pub rows: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    /// `ok`, `failed`, `cancelled` or `disconnected`, with the error when it failed.
    pub outcome: String,
}

/// The last [`KEPT`] statements, newest last, and those running now.
#[derive(Debug, Default)]
pub struct QueryHistory {
    records: Mutex<VecDeque<QueryRecord>>,
    running: Mutex<HashMap<String, RunningQuery>>,
}

/// A statement while it runs.
#[derive(Debug)]
struct RunningQuery {
    user: String,
    sql: String,
    started: SystemTime,
    /// Set to why it must stop; the statement watches it.
    stop: tokio::sync::watch::Sender<Option<String>>,
}

/// Keeps a statement in the running list until dropped.
#[derive(Debug)]
pub struct Running {
    history: Arc<QueryHistory>,
    id: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        lock(&self.history.running).remove(&self.id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl QueryHistory {
    pub fn record(&self, record: QueryRecord) {
        let mut records = self.records.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if records.len() == KEPT {
            records.pop_front();
        }
        records.push_back(record);
    }

    /// Lists `id` as running `sql` (already redacted) for `user` until the returned guard is
    /// dropped; the receiver learns why, when it must stop.
    pub fn start(
        self: &Arc<Self>,
        id: &str,
        user: &str,
        sql: &str,
    ) -> (Running, tokio::sync::watch::Receiver<Option<String>>) {
        let (stop, watch) = tokio::sync::watch::channel(None);
        let query = RunningQuery { user: user.to_owned(), sql: sql.to_owned(), started: SystemTime::now(), stop };
        lock(&self.running).insert(id.to_owned(), query);
        (Running { history: Arc::clone(self), id: id.to_owned() }, watch)
    }

    /// The user running query `id`, if it runs.
    pub fn owner(&self, id: &str) -> Option<String> {
        lock(&self.running).get(id).map(|q| q.user.clone())
    }

    /// Tells query `id` to stop, for `reason`; false when it does not run.
    pub fn stop(&self, id: &str, reason: &str) -> bool {
        lock(&self.running).get(id).is_some_and(|q| q.stop.send(Some(reason.to_owned())).is_ok())
    }

    fn snapshot(&self) -> Vec<QueryRecord> {
        self.records.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).iter().cloned().collect()
    }

    /// The `system` database: `system.queries`.
    /// The `system` database as `viewer` sees it: `None` sees every user's queries, a user
    /// only their own.
    pub fn system_database(self: &Arc<Self>, viewer: Option<String>) -> Arc<dyn SchemaProvider> {
        let system = MemorySchemaProvider::new();
        let table = Arc::new(QueriesTable { history: Arc::clone(self), viewer });
        // A fresh provider has no table of that name, so this cannot fail.
        let _ = system.register_table("queries".into(), table);
        Arc::new(system)
    }
}

#[derive(Debug)]
struct QueriesTable {
    history: Arc<QueryHistory>,
    /// Only this user's queries, when set.
    viewer: Option<String>,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("started", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        Field::new("user", DataType::Utf8, false),
        Field::new("sql", DataType::Utf8, false),
        Field::new("rows", DataType::UInt64, false),
        Field::new("bytes", DataType::UInt64, false),
        Field::new("elapsed_ms", DataType::UInt64, false),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
        // running, finished, failed or cancelled
        Field::new("state", DataType::Utf8, false),
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
        let mut states: Vec<&str> = records.iter().map(|r| state_of(&r.outcome)).collect();
        let now = SystemTime::now();
        for (id, query) in lock(&self.history.running).iter() {
            records.push(QueryRecord {
                id: id.clone(),
                started: query.started,
                user: query.user.clone(),
                sql: query.sql.clone(),
                rows: 0,
                bytes: 0,
                elapsed: now.duration_since(query.started).unwrap_or_default(),
                outcome: String::new(),
            });
            states.push("running");
        }
        let mut records: Vec<(QueryRecord, &str)> = records.into_iter().zip(states).collect();
        if let Some(viewer) = &self.viewer {
            records.retain(|(r, _)| &r.user == viewer);
        }
        let millis =
            |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(
                TimestampMillisecondArray::from(records.iter().map(|(r, _)| millis(r.started)).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter_values(records.iter().map(|(r, _)| r.user.as_str()))),
            Arc::new(StringArray::from_iter_values(records.iter().map(|(r, _)| r.sql.as_str()))),
            Arc::new(UInt64Array::from_iter_values(records.iter().map(|(r, _)| r.rows))),
            Arc::new(UInt64Array::from_iter_values(records.iter().map(|(r, _)| r.bytes))),
            Arc::new(UInt64Array::from_iter_values(records.iter().map(|(r, _)| r.elapsed.as_millis() as u64))),
            Arc::new(StringArray::from_iter_values(records.iter().map(|(r, _)| r.outcome.as_str()))),
            Arc::new(StringArray::from_iter_values(records.iter().map(|(r, _)| r.id.as_str()))),
            Arc::new(StringArray::from_iter_values(records.iter().map(|(_, state)| *state))),
        ];
        let batch = RecordBatch::try_new(schema(), columns)?;
        MemTable::try_new(schema(), vec![vec![batch]])?.scan(state, projection, filters, limit).await
    }
}

/// The state of a finished statement, from its outcome.
fn state_of(outcome: &str) -> &'static str {
    match outcome {
        "ok" => "finished",
        o if o.starts_with("cancelled") || o.starts_with("disconnected") => "cancelled",
        _ => "failed",
    }
}
