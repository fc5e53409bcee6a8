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

use datafusion::error::DataFusionError;
use datafusion::logical_expr::Expr;
use lakegate_catalog::TableSpec;
use serde::{Deserialize, Serialize};

use super::pushdown::{self, Select, TokenRange};
use super::{CassandraTable, Error, Remote, schema};
use crate::sources::scan_properties;

/// What a scan reads: what DataFusion asked of the table, and the token ranges each output
/// partition reads, one after the other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Scan {
    pub(crate) projection: Option<Vec<usize>>,
    #[serde(with = "exprs")]
    pub(crate) filters: Vec<Expr>,
    pub(crate) limit: Option<usize>,
    pub(crate) partitions: Vec<Vec<TokenRange>>,
}

/// What another node rebuilds a scan from: its table's spec (secrets as references) and the
/// scan, token ranges included, as dealt here (another node may see the ring otherwise).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ScanRecipe {
    pub(crate) spec: TableSpec,
    pub(crate) scan: Scan,
}

/// Filters travel as DataFusion's protobuf bytes: the pushed ones are columns, literals and
/// comparisons, which need no function registry to read back.
mod exprs {
    use datafusion::execution::TaskContext;
    use datafusion::logical_expr::Expr;
    use datafusion_proto::logical_plan::DefaultLogicalExtensionCodec;
    use datafusion_proto::logical_plan::from_proto::parse_exprs;
    use datafusion_proto::logical_plan::to_proto::serialize_exprs;
    use datafusion_proto::protobuf::LogicalExprList;
    use prost::Message;
    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(filters: &[Expr], s: S) -> Result<S::Ok, S::Error> {
        let expr = serialize_exprs(filters, &DefaultLogicalExtensionCodec {}).map_err(S::Error::custom)?;
        s.serialize_bytes(&LogicalExprList { expr }.encode_to_vec())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Expr>, D::Error> {
        let bytes = Vec::<u8>::deserialize(d)?;
        let list = LogicalExprList::decode(bytes.as_slice()).map_err(D::Error::custom)?;
        parse_exprs(&list.expr, &TaskContext::default(), &DefaultLogicalExtensionCodec {}).map_err(D::Error::custom)
    }
}

#[derive(Debug)]
pub(crate) struct CassandraScanExec {
    remote: Arc<Remote>,
    spec: Arc<TableSpec>,
    scan: Scan,
    /// The statements of each output partition.
    partitions: Vec<Vec<Select>>,
    /// Columns selected; for a scan that needs no column (`COUNT(*)`), the first key column,
    /// whose values are then dropped.
    columns: Vec<String>,
    schema: SchemaRef,
    /// Whether the filters fixed the partitions read (no token-range scan).
    fixed: bool,
    metrics: ExecutionPlanMetricsSet,
    properties: Arc<PlanProperties>,
}

impl CassandraScanExec {
    /// `scan` of `table`, whose filters must all be ones it pushes.
    pub(crate) fn new(table: &CassandraTable, scan: Scan) -> DFResult<Self> {
        let remote = Arc::clone(&table.remote);
        let filters: Vec<&Expr> = scan.filters.iter().collect();
        let plan = pushdown::plan(&filters, &table.keys, remote.target.allow_filtering);
        if plan.pushed.iter().any(|p| !p) {
            return Err(DataFusionError::Internal(format!(
                "Cassandra table {} was handed filters it did not accept",
                remote.target.label()
            )));
        }
        let schema = match &scan.projection {
            Some(p) => Arc::new(table.schema.project(p)?),
            None => Arc::clone(&table.schema),
        };
        let target = &remote.target;
        let mut columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        if columns.is_empty() {
            columns.extend(table.keys.partition.first().cloned());
        }
        let partitions = scan
            .partitions
            .iter()
            .map(|ranges| {
                ranges
                    .iter()
                    .map(|&range| {
                        pushdown::select(
                            &target.keyspace,
                            &target.table,
                            &columns,
                            &table.keys,
                            &plan,
                            range,
                            scan.limit,
                        )
                    })
                    .collect()
            })
            .collect();
        let properties = scan_properties(&schema, scan.partitions.len().max(1));
        Ok(Self {
            spec: Arc::clone(&table.spec),
            fixed: !plan.partition.is_empty(),
            remote,
            scan,
            partitions,
            columns,
            schema,
            metrics: ExecutionPlanMetricsSet::new(),
            properties,
        })
    }

    /// What another node rebuilds this scan from (see [`ScanRecipe`]).
    pub(crate) fn recipe(&self) -> ScanRecipe {
        ScanRecipe { spec: TableSpec::clone(&self.spec), scan: self.scan.clone() }
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
            let ranges: usize = self.scan.partitions.iter().map(Vec::len).sum();
            write!(f, ", reads=full table in {ranges} token ranges over {} partitions", self.partitions.len())?;
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
        let limit = self.scan.limit;
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

#[cfg(test)]
mod tests {
    use datafusion::logical_expr::{col, lit};
    use datafusion::scalar::ScalarValue;

    use super::*;

    /// A scan travels with its filters, limit and token ranges unchanged.
    #[test]
    fn scans_round_trip_through_their_recipe_bytes() {
        let filters = vec![
            col("id").eq(lit(42_i32)),
            col("name").in_list(vec![lit("NCIS"), lit("it's \"quoted\"")], false),
            col("day").between(lit(ScalarValue::Date32(Some(17_000))), lit(ScalarValue::Date32(Some(17_100)))),
            col("at").gt_eq(lit(ScalarValue::TimestampMillisecond(Some(1_520_000_000_000), None))),
        ];
        let ranges = vec![
            vec![TokenRange { start: None, end: Some(i64::MIN + 1) }, TokenRange { start: Some(7), end: Some(9) }],
            vec![TokenRange { start: Some(i64::MAX - 1), end: None }],
        ];
        let scan = Scan { projection: Some(vec![2, 0]), filters, limit: Some(10), partitions: ranges };
        let bytes = serde_json::to_vec(&scan).expect("encodes");
        let back: Scan = serde_json::from_slice(&bytes).expect("decodes");
        assert_eq!(back, scan);
    }
}
