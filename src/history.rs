//! Recent statements of this process, kept for `SELECT * FROM system.queries`.

use std::collections::VecDeque;
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
    pub started: SystemTime,
    pub user: String,
    pub sql: String,
    pub rows: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    /// `ok`, `failed`, `cancelled` or `disconnected`, with the error when it failed.
    pub outcome: String,
}

/// The last [`KEPT`] statements, newest last.
#[derive(Debug, Default)]
pub struct QueryHistory {
    records: Mutex<VecDeque<QueryRecord>>,
}

impl QueryHistory {
    pub fn record(&self, record: QueryRecord) {
        let mut records = self.records.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if records.len() == KEPT {
            records.pop_front();
        }
        records.push_back(record);
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
        }
        let millis =
            |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(
                TimestampMillisecondArray::from(records.iter().map(|r| millis(r.started)).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter_values(records.iter().map(|r| r.user.as_str()))),
            Arc::new(StringArray::from_iter_values(records.iter().map(|r| r.sql.as_str()))),
            Arc::new(UInt64Array::from_iter_values(records.iter().map(|r| r.rows))),
            Arc::new(UInt64Array::from_iter_values(records.iter().map(|r| r.bytes))),
            Arc::new(UInt64Array::from_iter_values(records.iter().map(|r| r.elapsed.as_millis() as u64))),
            Arc::new(StringArray::from_iter_values(records.iter().map(|r| r.outcome.as_str()))),
        ];
        let batch = RecordBatch::try_new(schema(), columns)?;
        MemTable::try_new(schema(), vec![vec![batch]])?.scan(state, projection, filters, limit).await
    }
}
