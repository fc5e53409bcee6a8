//! The scan: one remote `SELECT` per partition, streamed into Arrow batches.
//!
//! Without parameters (no pushed filter values) PostgreSQL sends the rows as
//! `COPY (SELECT ...) TO STDOUT (FORMAT binary)`, its fastest way out. With parameters (COPY
//! cannot take any) PostgreSQL runs the bound statement to its end in one Execute, the rows
//! streamed back as they come: a portal fetched a row limit at a time never gets parallel
//! workers, so a selective scan of a big table would run single-threaded. A dialect without
//! COPY TO STDOUT (Redshift) still binds the statement to a cursor fetched `fetchsize` rows at
//! a time: no real Redshift is at hand to measure a change against. Each way at most one batch
//! per partition is in memory, whatever the table's size: the driver stops reading the socket
//! while a batch waits to be taken.

use std::fmt;
use std::sync::Arc;

use bytes::BytesMut;
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::Column;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use datafusion::prelude::lit;
use deadpool_postgres::{Object, Pool};
use futures::StreamExt;
use lakegate_catalog::{Options, TableSpec};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::Sender;
use tokio_postgres::types::{Format, FromSql, IsNull, ToSql, Type, to_sql_checked};

use super::decode::{CopyReader, Decoder};
use super::pushdown::RemoteQuery;
use super::{Error, RemoteTable, Server, connect, quote};
use crate::sources::scan_properties;

/// Scan settings from the table's options.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScanOptions {
    pub(crate) fetch_size: Option<usize>,
    partition_column: Option<String>,
    partitions: usize,
    lower_bound: Option<i64>,
    upper_bound: Option<i64>,
}

impl ScanOptions {
    /// # Errors
    /// A number option that is not a number, or `partitioncolumn` without `numpartitions`.
    pub(crate) fn parse(options: &Options) -> DFResult<Self> {
        let options = Self {
            fetch_size: options.integer("fetchsize")?.filter(|n| *n > 0),
            partition_column: options.text("partitioncolumn").map(str::to_owned),
            partitions: options.integer("numpartitions")?.unwrap_or(1),
            lower_bound: options.integer("lowerbound")?,
            upper_bound: options.integer("upperbound")?,
        };
        if options.partition_column.is_some() && options.partitions < 2 {
            return Err(DataFusionError::Configuration(
                "option 'partitioncolumn' needs 'numpartitions' of 2 or more".into(),
            ));
        }
        Ok(options)
    }
}

/// The extra filter of each parallel read, as Spark's JDBC source splits: strides between the
/// bounds, the first read also taking everything below (and NULLs), the last everything
/// above, so no row is missed whatever the bounds. `[None]` when the scan is not split.
///
/// # Errors
/// `partitioncolumn` is not an integer column, or its bounds cannot be read.
pub(crate) async fn splits(table: &RemoteTable) -> DFResult<Vec<Option<Expr>>> {
    let options = &table.options;
    let Some(name) = &options.partition_column else { return Ok(vec![None]) };
    // Splits are filters the database must evaluate exactly, or rows would be read twice.
    let column = table
        .columns
        .iter()
        .find(|c| c.field.name().eq_ignore_ascii_case(name))
        .filter(|c| c.native && matches!(c.field.data_type(), DataType::Int16 | DataType::Int32 | DataType::Int64));
    let Some(column) = column else {
        return Err(DataFusionError::Configuration(format!(
            "partitioncolumn '{name}' must be an integer column of {}",
            table.label
        )));
    };
    let (lower, upper) = match (options.lower_bound, options.upper_bound) {
        (Some(lower), Some(upper)) => (lower, upper),
        (lower, upper) => {
            let (min, max) = bounds(table, column.field.name()).await?;
            (lower.unwrap_or(min), upper.unwrap_or(max))
        }
    };
    let span = upper.saturating_sub(lower).max(0) as u64;
    let parts = (options.partitions as u64).min(span.max(1)).max(1);
    if parts == 1 {
        return Ok(vec![None]);
    }
    let stride = (span / parts) as i64;
    let value = |v: i64| match column.field.data_type() {
        DataType::Int16 => lit(v as i16),
        DataType::Int32 => lit(v as i32),
        _ => lit(v),
    };
    // Not `col()`, which would parse the name (`a.b` as a qualified name, quotes as quoting).
    let c = || Expr::Column(Column::new_unqualified(column.field.name()));
    let cut = |i: u64| lower + stride * i as i64;
    Ok((0..parts)
        .map(|i| {
            let split = match i {
                0 => c().lt(value(cut(1))).or(c().is_null()),
                i if i == parts - 1 => c().gt_eq(value(cut(i))),
                i => c().gt_eq(value(cut(i))).and(c().lt(value(cut(i + 1)))),
            };
            Some(split)
        })
        .collect())
}

/// The smallest and largest value of `column`, for splitting a scan without given bounds.
async fn bounds(table: &RemoteTable, column: &str) -> DFResult<(i64, i64)> {
    let name = quote::identifier(column);
    let sql = format!("SELECT CAST(min({name}) AS int8), CAST(max({name}) AS int8) FROM {}", table.table);
    let client = connect(&table.pool, &table.server).await?;
    let row = client.query_one(sql.as_str(), &[]).await.map_err(|e| Error::query(&table.label, &table.server, &e))?;
    let get = |i| row.try_get::<_, Option<i64>>(i).map_err(|e| Error::query(&table.label, &table.server, &e));
    Ok((get(0)?.unwrap_or(0), get(1)?.unwrap_or(0)))
}

/// A scan as it travels to another node: its table's spec (secrets as references; the node
/// connects with its own environment's), its result's schema (protobuf), and its queries, one
/// per partition, with their parameters as text.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ScanRecipe {
    pub(crate) spec: TableSpec,
    schema: Vec<u8>,
    queries: Vec<(String, Vec<String>)>,
    fetch_size: usize,
}

/// Reads one remote table: one query per output partition.
#[derive(Debug)]
pub(crate) struct PostgresScanExec {
    label: String,
    server: Server,
    pool: Pool,
    /// The spec of the table whose server the queries run on.
    spec: Arc<TableSpec>,
    queries: Vec<RemoteQuery>,
    schema: SchemaRef,
    fetch_size: usize,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl PostgresScanExec {
    pub(crate) fn new(table: &RemoteTable, schema: SchemaRef, queries: Vec<RemoteQuery>, fetch_size: usize) -> Self {
        let properties = scan_properties(&schema, queries.len());
        Self {
            label: table.label.clone(),
            server: table.server.clone(),
            pool: table.pool.clone(),
            spec: Arc::clone(&table.spec),
            queries,
            schema,
            fetch_size,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// What another node rebuilds this scan from (see [`ScanRecipe`]).
    pub(crate) fn recipe(&self) -> DFResult<ScanRecipe> {
        Ok(ScanRecipe {
            spec: TableSpec::clone(&self.spec),
            schema: crate::sources::schema_bytes(&self.schema)?,
            queries: self.queries.iter().map(|q| (q.sql.clone(), q.params.clone())).collect(),
            fetch_size: self.fetch_size,
        })
    }

    /// The scan `recipe` describes, over `table` (rebuilt from the recipe's spec on this node:
    /// its pool is this process's).
    pub(crate) fn from_recipe(table: &RemoteTable, recipe: ScanRecipe) -> DFResult<Self> {
        let schema = crate::sources::schema_from_bytes(&recipe.schema, &table.label)?;
        let queries = recipe.queries.into_iter().map(|(sql, params)| RemoteQuery { sql, params }).collect();
        Ok(Self::new(table, schema, queries, recipe.fetch_size))
    }

    /// How `query` is read (see the module comment).
    fn mode(&self, query: &RemoteQuery) -> Mode {
        match (self.server.dialect.copy_out, query.params.is_empty()) {
            (true, true) => Mode::Copy,
            (true, false) => Mode::Stream,
            (false, _) => Mode::Cursor,
        }
    }

    fn uses_copy(&self, query: &RemoteQuery) -> bool {
        self.mode(query) == Mode::Copy
    }

    /// The statement sent for `query`, as EXPLAIN shows it.
    fn statement(&self, query: &RemoteQuery) -> String {
        if self.uses_copy(query) {
            format!("COPY ({}) TO STDOUT (FORMAT binary)", query.sql)
        } else {
            query.sql.clone()
        }
    }
}

impl DisplayAs for PostgresScanExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresScanExec: {} {}", self.label, self.server)?;
        for query in &self.queries {
            write!(f, ", sql=[{}]", self.statement(query))?;
            if !query.params.is_empty() {
                write!(f, " params={:?}", query.params)?;
            }
        }
        Ok(())
    }
}

impl ExecutionPlan for PostgresScanExec {
    fn name(&self) -> &'static str {
        "PostgresScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DFResult<TreeNodeRecursion>,
    ) -> DFResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, _children: Vec<Arc<dyn ExecutionPlan>>) -> DFResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(&self, partition: usize, _context: Arc<TaskContext>) -> DFResult<SendableRecordBatchStream> {
        let query = self.queries.get(partition).cloned().ok_or_else(|| {
            DataFusionError::Internal(format!("{} has {} partitions, not {partition}", self.name(), self.queries.len()))
        })?;
        let read = Read {
            mode: self.mode(&query),
            query,
            schema: Arc::clone(&self.schema),
            fetch_size: self.fetch_size,
            rows: MetricBuilder::new(&self.metrics).output_rows(partition),
            bytes: MetricBuilder::new(&self.metrics).counter("bytes_received", partition),
            label: self.label.clone(),
            server: self.server.clone(),
            pool: self.pool.clone(),
        };
        let mut builder = RecordBatchReceiverStreamBuilder::new(Arc::clone(&self.schema), 2);
        let tx = builder.tx();
        builder.spawn(async move { read.run(tx).await });
        Ok(builder.build())
    }
}

/// How a read gets its rows (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Copy,
    Stream,
    Cursor,
}

/// One partition's read, run as its own task.
struct Read {
    query: RemoteQuery,
    mode: Mode,
    schema: SchemaRef,
    fetch_size: usize,
    rows: Count,
    bytes: Count,
    label: String,
    server: Server,
    pool: Pool,
}

/// A pooled connection that goes back to the pool only after a complete read: a read that
/// fails or is cancelled midway closes its connection, so no half-read result is left on it.
struct Lease(Option<Object>);

impl Lease {
    /// The leased connection, there until the lease is released or dropped.
    fn client(&mut self) -> DFResult<&mut Object> {
        self.0.as_mut().ok_or_else(|| DataFusionError::Internal("a connection lease without its connection".into()))
    }

    fn release(mut self) {
        self.0.take();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(Object::take(client));
        }
    }
}

/// A parameter sent as text, which the database parses for the type it infers, exactly as
/// it would a literal.
#[derive(Debug)]
struct TextParam<'a>(&'a str);

impl ToSql for TextParam<'_> {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// A field's bytes in the binary format, left for [`Decoder`] to read.
struct Raw<'a>(&'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

impl Read {
    fn error(&self, e: &tokio_postgres::Error) -> DataFusionError {
        Error::query(&self.label, &self.server, e).into()
    }

    fn decoders(&self) -> DFResult<Vec<Decoder>> {
        if self.schema.fields().is_empty() {
            // `SELECT 1`: one throw-away column that only counts rows.
            return Ok(vec![Decoder::new(&DataType::Int32, self.fetch_size)?]);
        }
        self.schema.fields().iter().map(|f| Decoder::new(f.data_type(), self.fetch_size)).collect()
    }

    fn batch(&self, decoders: &mut [Decoder], rows: usize) -> DFResult<RecordBatch> {
        let arrays: Vec<_> = decoders.iter_mut().map(Decoder::finish).collect();
        self.rows.add(rows);
        if self.schema.fields().is_empty() {
            let options = RecordBatchOptions::new().with_row_count(Some(rows));
            return Ok(RecordBatch::try_new_with_options(Arc::clone(&self.schema), Vec::new(), &options)?);
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), arrays)?)
    }

    /// `e`, about a value of the `i`th column, naming the column.
    fn value_error(&self, i: usize, e: DataFusionError) -> DataFusionError {
        // `SELECT 1` (no columns) has only the constant.
        let column = self.schema.fields().get(i).map_or("?column?", |f| f.name().as_str());
        let cause = match e {
            DataFusionError::Execution(message) => message,
            other => other.to_string(),
        };
        Error::Value { column: column.to_owned(), table: self.label.clone(), server: self.server.to_string(), cause }
            .into()
    }

    /// Decodes one row of a bound statement's result.
    fn push_row(&self, row: &tokio_postgres::Row, decoders: &mut [Decoder]) -> DFResult<()> {
        for (i, decoder) in decoders.iter_mut().enumerate() {
            let raw: Option<Raw<'_>> = row.try_get(i).map_err(|e| self.error(&e))?;
            self.bytes.add(raw.as_ref().map_or(0, |r| r.0.len()));
            decoder.push(raw.map(|r| r.0)).map_err(|e| self.value_error(i, e))?;
        }
        Ok(())
    }

    /// Streams the query's rows into `tx` in batches; stops quietly when the consumer leaves.
    async fn run(self, tx: Sender<DFResult<RecordBatch>>) -> DFResult<()> {
        // Leased from the start: whatever ends the read early (an error, the consumer
        // leaving, this task being cancelled at any await) closes the connection with it.
        let mut lease = Lease(Some(connect(&self.pool, &self.server).await?));
        let client = lease.client()?;
        let mut decoders = self.decoders()?;
        let mut pending = 0;
        let params: Vec<TextParam<'_>> = self.query.params.iter().map(|p| TextParam(p)).collect();
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        match self.mode {
            Mode::Copy => {
                let statement = format!("COPY ({}) TO STDOUT (FORMAT binary)", self.query.sql);
                let stream = client.copy_out(statement.as_str()).await.map_err(|e| self.error(&e))?;
                futures::pin_mut!(stream);
                let mut reader = CopyReader::default();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| self.error(&e))?;
                    self.bytes.add(chunk.len());
                    reader.feed(&chunk);
                    while reader.next_row(&mut decoders, |i, e| self.value_error(i, e))? {
                        pending += 1;
                        if pending == self.fetch_size {
                            if tx.send(self.batch(&mut decoders, pending)).await.is_err() {
                                return Ok(());
                            }
                            pending = 0;
                        }
                    }
                }
                if !reader.finished() {
                    return Err(DataFusionError::Execution(format!(
                        "{} at {}: the COPY stream ended early",
                        self.label, self.server
                    )));
                }
            }
            Mode::Stream => {
                let rows = client.query_raw(self.query.sql.as_str(), params).await.map_err(|e| self.error(&e))?;
                futures::pin_mut!(rows);
                while let Some(row) = rows.next().await {
                    self.push_row(&row.map_err(|e| self.error(&e))?, &mut decoders)?;
                    pending += 1;
                    if pending == self.fetch_size {
                        if tx.send(self.batch(&mut decoders, pending)).await.is_err() {
                            return Ok(());
                        }
                        pending = 0;
                    }
                }
            }
            Mode::Cursor => {
                let transaction = client.transaction().await.map_err(|e| self.error(&e))?;
                let statement = transaction.prepare(&self.query.sql).await.map_err(|e| self.error(&e))?;
                let cursor = transaction.bind(&statement, &params).await.map_err(|e| self.error(&e))?;
                let fetch = i32::try_from(self.fetch_size).unwrap_or(i32::MAX);
                loop {
                    let rows = transaction.query_portal_raw(&cursor, fetch).await.map_err(|e| self.error(&e))?;
                    futures::pin_mut!(rows);
                    let mut fetched = 0;
                    while let Some(row) = rows.next().await {
                        self.push_row(&row.map_err(|e| self.error(&e))?, &mut decoders)?;
                        fetched += 1;
                    }
                    if fetched > 0 && tx.send(self.batch(&mut decoders, fetched)).await.is_err() {
                        return Ok(());
                    }
                    if fetched < self.fetch_size {
                        break;
                    }
                }
                transaction.commit().await.map_err(|e| self.error(&e))?;
            }
        }
        // Only a connection whose result was read to its end goes back to the pool.
        lease.release();
        if pending > 0 {
            let _ = tx.send(self.batch(&mut decoders, pending)).await;
        }
        Ok(())
    }
}
