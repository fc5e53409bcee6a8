//! The scan: CQL statements run page by page, each page turned into one record batch.
//!
//! A scan whose partition key is fixed is one statement. Otherwise the token ring is split
//! into ranges, dealt round-robin to the plan's partitions, and each partition reads its
//! ranges one after the other while the other partitions run concurrently.

use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::Result as DFResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, ReplaceChildrenOptions,
};
use scylla::response::PagingState;
use scylla::value::{CqlValue, Row};

use super::pushdown::{self, CqlPlan, Keys, Select, TokenRange};
use super::{Error, Remote, schema};
use crate::sources::scan_properties;

#[derive(Debug)]
pub(crate) struct CassandraScanExec {
    remote: Arc<Remote>,
    /// The statements of each output partition.
    partitions: Vec<Vec<Select>>,
    /// Columns selected; for a scan that needs no column (`COUNT(*)`), the first key column,
    /// whose values are then dropped.
    columns: Vec<String>,
    schema: SchemaRef,
    /// Whether the filters fixed the partitions read (no token-range scan).
    fixed: bool,
    ranges: usize,
    limit: Option<usize>,
    metrics: ExecutionPlanMetricsSet,
    properties: Arc<PlanProperties>,
}

impl CassandraScanExec {
    pub(crate) fn new(
        remote: Arc<Remote>,
        keys: &Keys,
        plan: CqlPlan,
        schema: SchemaRef,
        limit: Option<usize>,
        target_partitions: usize,
    ) -> Self {
        let target = &remote.target;
        let mut columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        if columns.is_empty() {
            columns.extend(keys.partition.first().cloned());
        }
        let fixed = !plan.partition.is_empty();
        let ranges = if fixed {
            vec![TokenRange { start: None, end: None }]
        } else {
            let ring = remote.ring();
            let ring_ranges = ring.len().max(1) + 1;
            let per_range = target.splits.div_ceil(ring_ranges).max(1);
            pushdown::token_ranges(&ring, per_range)
        };
        let count = ranges.len();
        let width = target_partitions.clamp(1, count);
        let mut partitions = vec![Vec::new(); width];
        for (i, range) in ranges.into_iter().enumerate() {
            let select = pushdown::select(&target.keyspace, &target.table, &columns, keys, &plan, range, limit);
            partitions[i % width].push(select);
        }
        let properties = scan_properties(&schema, width);
        Self {
            remote,
            partitions,
            columns,
            schema,
            fixed,
            ranges: count,
            limit,
            metrics: ExecutionPlanMetricsSet::new(),
            properties,
        }
    }
}

impl DisplayAs for CassandraScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = &self.remote.target;
        // The statement with the most restrictions stands for all: for a full scan, an inner
        // token range rather than one of the two halves of the wrap-around range.
        let Some(first) = self.partitions.iter().flatten().max_by_key(|s| s.values.len()) else {
            return write!(f, "CassandraScanExec");
        };
        write!(f, "CassandraScanExec: table={}, cql={}", target.label(), first.cql)?;
        if self.fixed {
            let values: Vec<String> = first.values.iter().map(CqlValue::to_string).collect();
            write!(f, ", values=[{}], reads=only the partitions named", values.join(", "))?;
        } else {
            write!(f, ", reads=full table in {} token ranges over {} partitions", self.ranges, self.partitions.len())?;
        }
        write!(f, ", consistency={:?}, fetch_size={}", target.consistency, target.fetch_size)
    }
}

impl ExecutionPlan for CassandraScanExec {
    fn name(&self) -> &'static str {
        "CassandraScanExec"
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

    fn replace_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> DFResult<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(&self, partition: usize, _context: Arc<TaskContext>) -> DFResult<SendableRecordBatchStream> {
        let selects = self.partitions.get(partition).cloned().unwrap_or_default();
        let page = Page {
            remote: Arc::clone(&self.remote),
            schema: Arc::clone(&self.schema),
            columns: self.columns.clone(),
            rows: MetricBuilder::new(&self.metrics).counter("rows_fetched", partition),
            pages: MetricBuilder::new(&self.metrics).counter("pages_fetched", partition),
            bytes: MetricBuilder::new(&self.metrics).counter("bytes_received", partition),
        };
        let limit = self.limit;
        let mut builder = RecordBatchReceiverStreamBuilder::new(Arc::clone(&self.schema), 2);
        let tx = builder.tx();
        builder.spawn(async move {
            let mut remaining = limit.unwrap_or(usize::MAX);
            for select in selects {
                let statement = page.remote.prepared(&select.cql).await?;
                let mut paging = PagingState::start();
                while remaining > 0 {
                    let (batch, next) = page.fetch(&statement, &select.values, paging).await?;
                    let batch = if batch.num_rows() > remaining { batch.slice(0, remaining) } else { batch };
                    remaining -= batch.num_rows();
                    if batch.num_rows() > 0 && tx.send(Ok(batch)).await.is_err() {
                        return Ok(()); // the consumer is gone: the query was cancelled or is done
                    }
                    match next {
                        ControlFlow::Continue(state) => paging = state,
                        ControlFlow::Break(()) => break,
                    }
                }
            }
            Ok(())
        });
        Ok(builder.build())
    }
}

/// What a partition's task needs to fetch and convert pages.
struct Page {
    remote: Arc<Remote>,
    schema: SchemaRef,
    columns: Vec<String>,
    rows: Count,
    pages: Count,
    /// The fetched rows' size as Arrow arrays: the driver does not tell the wire size.
    bytes: Count,
}

impl Page {
    async fn fetch(
        &self,
        statement: &scylla::statement::prepared::PreparedStatement,
        values: &[CqlValue],
        paging: PagingState,
    ) -> DFResult<(RecordBatch, ControlFlow<(), PagingState>)> {
        let remote = &self.remote;
        let (result, next) =
            remote.session.execute_single_page(statement, values, paging).await.map_err(|e| remote.query_error(e))?;
        let rows_result = result.into_rows_result().map_err(|e| remote.query_error(e))?;
        let rows = rows_result
            .rows::<Row>()
            .map_err(|e| remote.query_error(e))?
            .collect::<Result<Vec<Row>, _>>()
            .map_err(|e| remote.query_error(e))?;
        self.rows.add(rows.len());
        self.pages.add(1);
        let batch = self.batch(&rows)?;
        self.bytes.add(batch.get_array_memory_size());
        Ok((batch, next.into_paging_control_flow()))
    }

    fn batch(&self, rows: &[Row]) -> DFResult<RecordBatch> {
        if self.schema.fields().is_empty() {
            let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
            return Ok(RecordBatch::try_new_with_options(Arc::clone(&self.schema), Vec::new(), &options)?);
        }
        let arrays = self
            .schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, field)| {
                let values: Vec<Option<&CqlValue>> =
                    rows.iter().map(|r| r.columns.get(i).and_then(Option::as_ref)).collect();
                schema::to_array(&self.columns[i], &values, field.data_type())
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), arrays)?)
    }
}
