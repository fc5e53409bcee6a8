//! A write as a plan node, so it runs wherever the plan runs: in this process, or on a
//! cluster's executors, each writing the files of its own partitions.
//!
//! [`WriteFiles`] is the logical node over the rows to write; [`WritePlanner`] turns it into
//! [`WriteExec`] over the rows laid out for the writers (hashed by `DISTRIBUTE BY`, sorted by
//! partition and `SORT BY`). Each output partition of a `WriteExec` writes its files under the
//! commit's staging directory and answers with one row per file (the manifest). Nothing is
//! visible until whoever started the write publishes exactly the files of the manifest, so a
//! task that failed, or ran twice, leaves only invisible files behind.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt64Type};
use datafusion::catalog::Session;
use datafusion::common::config::TableParquetOptions;
use datafusion::common::file_options::parquet_writer::ParquetWriterOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, DFSchemaRef};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::TaskContext;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, LexRequirement, OrderingRequirements, PhysicalExpr, PhysicalSortExpr,
};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::distribution_requirements::InputDistributionRequirements;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::expressions::col as physical_col;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use datafusion_proto::generated::datafusion_common as protobuf;
use lakegate_catalog::TableSpec;
use prost::Message;
use serde::{Deserialize, Serialize};

use super::files::{Progress, Writer, WrittenFile};
use crate::Error;
use crate::storage::ObjectStores;
use crate::storage::commit;

/// How a write lays its rows out in files, all that a node needs to write its share.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Layout {
    /// The table written (secrets only as references).
    pub(crate) spec: TableSpec,
    /// The commit the files are named by and staged under.
    pub(crate) commit: String,
    /// The rows' columns: data, then partition, then `__sort_*`, then `__distribute_*`.
    pub(crate) data_columns: usize,
    pub(crate) partition_names: Vec<String>,
    /// `SORT BY` keys: descending, nulls first.
    pub(crate) sort_keys: Vec<(bool, bool)>,
    pub(crate) distribute_keys: usize,
    pub(crate) target_file_bytes: u64,
    /// The writing session's Parquet settings (`TableParquetOptions` as protobuf), so every
    /// node writes the files that session would.
    pub(crate) parquet: Vec<u8>,
}

impl Layout {
    /// `options` as [`Layout::parquet`] holds them.
    pub(crate) fn encode_parquet(options: &TableParquetOptions) -> DFResult<Vec<u8>> {
        let mut options = options.clone();
        // The Arrow writer embeds the schema itself; this flag is only about DataFusion's own sink.
        options.global.skip_arrow_metadata = true;
        Ok(protobuf::TableParquetOptions::try_from(&options)?.encode_to_vec())
    }

    /// The Parquet writer's properties these settings give.
    fn writer_properties(&self) -> DFResult<WriterProperties> {
        let options = protobuf::TableParquetOptions::decode(self.parquet.as_slice())
            .map_err(|e| DataFusionError::Plan(format!("a write's Parquet settings: {e}")))?;
        Ok(ParquetWriterOptions::try_from(&TableParquetOptions::try_from(&options)?)?.writer_options().clone())
    }

    /// The columns the rows are hashed to writers by: `DISTRIBUTE BY`, else the partition
    /// columns; none when there is neither (then one writer).
    fn hash_keys(&self, schema: &SchemaRef) -> DFResult<Vec<Arc<dyn PhysicalExpr>>> {
        if self.distribute_keys > 0 {
            (0..self.distribute_keys).map(|i| physical_col(&format!("__distribute_{i}"), schema)).collect()
        } else {
            self.partition_names.iter().map(|n| physical_col(n, schema)).collect()
        }
    }

    /// Each writer's order: by partition, then by the `SORT BY` keys.
    fn ordering(&self, schema: &SchemaRef) -> DFResult<Option<LexOrdering>> {
        let mut ordering: Vec<PhysicalSortExpr> = self
            .partition_names
            .iter()
            .map(|n| Ok(PhysicalSortExpr::new(physical_col(n, schema)?, SortOptions::default())))
            .collect::<DFResult<_>>()?;
        for (i, (descending, nulls_first)) in self.sort_keys.iter().enumerate() {
            let options = SortOptions { descending: *descending, nulls_first: *nulls_first };
            ordering.push(PhysicalSortExpr::new(physical_col(&format!("__sort_{i}"), schema)?, options));
        }
        Ok(LexOrdering::new(ordering))
    }

    /// `rows` hashed to `writers` writers and sorted within each: what [`WriteExec`] requires.
    pub(crate) fn lay_out(&self, rows: Arc<dyn ExecutionPlan>, writers: usize) -> DFResult<Arc<dyn ExecutionPlan>> {
        let schema = rows.schema();
        let hash_keys = self.hash_keys(&schema)?;
        let rows: Arc<dyn ExecutionPlan> = if !hash_keys.is_empty() {
            Arc::new(RepartitionExec::try_new(rows, Partitioning::Hash(hash_keys, writers.max(1)))?)
        } else if rows.output_partitioning().partition_count() > 1 {
            // Nothing to spread rows by: one writer, so files follow the target size, not threads.
            Arc::new(CoalescePartitionsExec::new(rows))
        } else {
            rows
        };
        Ok(match self.ordering(&schema)? {
            Some(ordering) => Arc::new(SortExec::new(ordering, rows).with_preserve_partitioning(true)),
            None => rows,
        })
    }
}

/// The columns of a write's manifest: one row per file written.
static MANIFEST: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("partition", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("staged", DataType::Utf8, false),
        Field::new("rows", DataType::UInt64, false),
        Field::new("bytes", DataType::UInt64, false),
    ]))
});

fn manifest_batch(files: &[WrittenFile]) -> DFResult<RecordBatch> {
    let strings =
        |f: fn(&WrittenFile) -> &str| Arc::new(StringArray::from_iter_values(files.iter().map(f))) as Arc<dyn Array>;
    let numbers = |f: fn(&WrittenFile) -> u64| Arc::new(files.iter().map(f).collect::<UInt64Array>()) as Arc<dyn Array>;
    Ok(RecordBatch::try_new(
        Arc::clone(&MANIFEST),
        vec![
            strings(|f| &f.partition),
            strings(|f| &f.name),
            strings(|f| f.staged.as_ref()),
            numbers(|f| f.rows),
            numbers(|f| f.bytes),
        ],
    )?)
}

/// The files a manifest lists, each checked to be a file of `layout`'s commit staged under
/// `staging`: a manifest comes from other processes, and its names become paths.
pub(crate) fn read_manifest(
    layout: &Layout,
    staging: &object_store::path::Path,
    batches: &[RecordBatch],
) -> crate::Result<Vec<WrittenFile>> {
    let mut files = Vec::new();
    // After losing an executor, Ballista may hand the client a finished task's answer twice;
    // a file's name is unique to the writer that wrote it, so one listed twice alike is one file.
    let mut seen = std::collections::HashMap::new();
    for batch in batches {
        if batch.schema().fields() != MANIFEST.fields() {
            return Err(Error::Internal(format!("a write's manifest has columns {}", batch.schema())));
        }
        let column = |i: usize| batch.column(i).as_string::<i32>();
        let (partitions, names, staged) = (column(0), column(1), column(2));
        let (rows, bytes) =
            (batch.column(3).as_primitive::<UInt64Type>(), batch.column(4).as_primitive::<UInt64Type>());
        for i in 0..batch.num_rows() {
            let (partition, name, path) = (partitions.value(i), names.value(i), staged.value(i));
            let expected = commit::child(staging, &format!("{partition}/{name}"));
            let own = commit::is_file_of(name, &layout.commit)
                && !name.contains('/')
                && is_partition_of(partition, &layout.partition_names)
                && expected.as_ref() == path;
            if !own {
                return Err(Error::Internal(format!("a write's manifest lists {path}, not a file of this write")));
            }
            match seen.insert(path.to_owned(), (rows.value(i), bytes.value(i))) {
                None => {}
                Some(before) if before == (rows.value(i), bytes.value(i)) => continue,
                Some(_) => return Err(Error::Internal(format!("a write's manifest lists {path} twice, unlike"))),
            }
            files.push(WrittenFile {
                partition: partition.to_owned(),
                name: name.to_owned(),
                staged: expected,
                rows: rows.value(i),
                bytes: bytes.value(i),
            });
        }
    }
    Ok(files)
}

/// Whether `dir` is a partition directory of a table partitioned by `columns`
/// (`dt=2018-03-05/country=US`; empty for an unpartitioned table).
fn is_partition_of(dir: &str, columns: &[String]) -> bool {
    if columns.is_empty() {
        return dir.is_empty();
    }
    let parts: Vec<&str> = dir.split('/').collect();
    parts.len() == columns.len()
        && parts.iter().zip(columns).all(|(part, column)| {
            part.strip_prefix(column.as_str())
                .and_then(|rest| rest.strip_prefix('='))
                .is_some_and(|value| !value.is_empty() && value != "." && value != "..")
        })
}

/// The logical node of a write: its rows, and how they become files.
#[derive(Debug, Clone)]
pub(crate) struct WriteFiles {
    layout: Arc<Layout>,
    /// `layout` as JSON: what the node is compared and hashed by, and travels as.
    json: String,
    rows: LogicalPlan,
    schema: DFSchemaRef,
}

impl WriteFiles {
    pub(crate) fn new(layout: Layout, rows: LogicalPlan) -> DFResult<Self> {
        let json = serde_json::to_string(&layout).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let schema = Arc::new(DFSchema::try_from(Arc::clone(&MANIFEST))?);
        Ok(Self { layout: Arc::new(layout), json, rows, schema })
    }

    /// The logical plan of this write.
    pub(crate) fn into_plan(self) -> LogicalPlan {
        LogicalPlan::Extension(Extension { node: Arc::new(self) })
    }

    pub(crate) fn table(&self) -> &TableSpec {
        &self.layout.spec
    }
}

impl PartialEq for WriteFiles {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json && self.rows == other.rows
    }
}

impl Eq for WriteFiles {}

impl Hash for WriteFiles {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.json.hash(state);
        self.rows.hash(state);
    }
}

impl PartialOrd for WriteFiles {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        (&self.json, &self.rows).partial_cmp(&(&other.json, &other.rows))
    }
}

impl UserDefinedLogicalNodeCore for WriteFiles {
    fn name(&self) -> &str {
        "WriteFiles"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.rows]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "WriteFiles: {} commit={}", self.layout.spec.qualified_name(), self.layout.commit)
    }

    fn with_exprs_and_inputs(&self, _: Vec<Expr>, mut inputs: Vec<LogicalPlan>) -> DFResult<Self> {
        let rows = inputs.pop().ok_or_else(|| DataFusionError::Internal("WriteFiles needs its rows".to_owned()))?;
        Ok(Self { rows, ..self.clone() })
    }
}

/// The table `plan` writes, if it is a write.
pub(crate) fn written_table(plan: &LogicalPlan) -> Option<&TableSpec> {
    let LogicalPlan::Extension(extension) = plan else { return None };
    extension.node.as_any().downcast_ref::<WriteFiles>().map(WriteFiles::table)
}

/// Marks a write sent to another node, logical or physical.
const WRITE_TAG: &[u8] = b"lakegate.write.v1\n";

/// The bytes a write's logical node travels as (its rows travel as its input), if `node` is one.
pub(crate) fn encode_logical(node: &dyn UserDefinedLogicalNode) -> Option<Vec<u8>> {
    let write = node.as_any().downcast_ref::<WriteFiles>()?;
    Some([WRITE_TAG, write.json.as_bytes()].concat())
}

/// The write `buf` holds, over `inputs`; `None` when `buf` is not a write.
pub(crate) fn decode_logical(buf: &[u8], inputs: &[LogicalPlan]) -> Option<DFResult<Extension>> {
    let json = buf.strip_prefix(WRITE_TAG)?;
    Some((|| {
        let layout: Layout =
            serde_json::from_slice(json).map_err(|e| DataFusionError::Plan(format!("a write: {e}")))?;
        let rows = inputs.first().cloned().ok_or_else(|| DataFusionError::Plan("a write without rows".to_owned()))?;
        Ok(Extension { node: Arc::new(WriteFiles::new(layout, rows)?) })
    })())
}

/// The bytes a [`WriteExec`] travels as, if `plan` is one (its rows travel as its input).
pub(crate) fn encode_physical(plan: &dyn ExecutionPlan) -> Option<DFResult<Vec<u8>>> {
    let write = plan.downcast_ref::<WriteExec>()?;
    let mut buf = WRITE_TAG.to_vec();
    Some(
        serde_json::to_writer(&mut buf, write.layout.as_ref())
            .map(|()| buf)
            .map_err(|e| DataFusionError::External(Box::new(e))),
    )
}

/// The [`WriteExec`] `buf` holds, writing through this node's `stores`; `None` when `buf` is
/// not a write.
pub(crate) fn decode_physical(
    buf: &[u8],
    inputs: &[Arc<dyn ExecutionPlan>],
    stores: &Arc<ObjectStores>,
) -> Option<DFResult<Arc<dyn ExecutionPlan>>> {
    let json = buf.strip_prefix(WRITE_TAG)?;
    Some((|| {
        let layout: Layout =
            serde_json::from_slice(json).map_err(|e| DataFusionError::Plan(format!("a write: {e}")))?;
        let rows = inputs.first().cloned().ok_or_else(|| DataFusionError::Plan("a write without rows".to_owned()))?;
        Ok(Arc::new(WriteExec::try_new(rows, Arc::new(layout), Arc::clone(stores))?) as _)
    })())
}

/// Writes each partition of its rows (laid out by [`Layout::lay_out`]) as Parquet files under
/// the commit's staging directory; each partition answers with its manifest.
pub(crate) struct WriteExec {
    rows: Arc<dyn ExecutionPlan>,
    layout: Arc<Layout>,
    writer: WriterProperties,
    /// What the layout requires of the rows: hashed by these keys (none: one partition) and
    /// sorted by this ordering within each partition.
    hash_keys: Vec<Arc<dyn PhysicalExpr>>,
    ordering: Option<LexOrdering>,
    stores: Arc<ObjectStores>,
    /// Told the rows and bytes written, for progress bars (in-process only).
    progress: Option<Progress>,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for WriteExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteExec").field("layout", &self.layout).finish_non_exhaustive()
    }
}

impl WriteExec {
    /// # Errors
    /// The rows lack a column the layout names, or the Parquet settings do not decode.
    pub(crate) fn try_new(
        rows: Arc<dyn ExecutionPlan>,
        layout: Arc<Layout>,
        stores: Arc<ObjectStores>,
    ) -> DFResult<Self> {
        let schema = rows.schema();
        let (hash_keys, ordering) = (layout.hash_keys(&schema)?, layout.ordering(&schema)?);
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&MANIFEST)),
            Partitioning::UnknownPartitioning(rows.output_partitioning().partition_count()),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        let writer = layout.writer_properties()?;
        Ok(Self { rows, layout, writer, hash_keys, ordering, stores, progress: None, properties })
    }

    /// This write, telling `progress` what it writes.
    pub(crate) fn with_progress(&self, progress: Progress) -> DFResult<Self> {
        let mut write = Self::try_new(Arc::clone(&self.rows), Arc::clone(&self.layout), Arc::clone(&self.stores))?;
        write.progress = Some(progress);
        Ok(write)
    }
}

impl DisplayAs for WriteExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WriteExec: {} commit={}", self.layout.spec.qualified_name(), self.layout.commit)
    }
}

impl ExecutionPlan for WriteExec {
    fn name(&self) -> &'static str {
        "WriteExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.rows]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DFResult<TreeNodeRecursion>,
    ) -> DFResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    // The layout is what makes one sorted file per partition and writer: optimizers must keep it.
    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        let distribution = match self.hash_keys.is_empty() {
            true => Distribution::SinglePartition,
            false => Distribution::KeyPartitioned(self.hash_keys.clone()),
        };
        InputDistributionRequirements::new(vec![distribution])
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        let ordering = self.ordering.clone();
        vec![ordering.and_then(|o| LexRequirement::new(o.into_iter().map(Into::into))).map(OrderingRequirements::new)]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let rows = children.pop().ok_or_else(|| DataFusionError::Internal("WriteExec needs its rows".to_owned()))?;
        let mut write = Self::try_new(rows, Arc::clone(&self.layout), Arc::clone(&self.stores))?;
        write.progress = self.progress.clone();
        Ok(Arc::new(write))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> DFResult<SendableRecordBatchStream> {
        let rows = self.rows.execute(partition, Arc::clone(&context))?;
        let url = crate::sources::parquet::table_url(&self.stores, &self.layout.spec)?;
        let store = self.stores.raw_store(url.as_ref())?;
        let staging = commit::staging_dir(url.prefix(), &self.layout.commit);
        let writer = Writer::new(
            partition,
            Arc::clone(&self.layout),
            self.writer.clone(),
            store,
            staging,
            self.progress.clone(),
        );
        let written = async move {
            let files = writer.run(rows).await.map_err(|e| match e {
                Error::DataFusion(e) => e,
                other => DataFusionError::External(Box::new(other)),
            })?;
            manifest_batch(&files)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&MANIFEST), futures::stream::once(written))))
    }
}

/// Plans [`WriteFiles`] as [`WriteExec`] over its laid-out rows.
#[derive(Debug)]
struct WritePlanner {
    stores: Arc<ObjectStores>,
}

#[async_trait]
impl ExtensionPlanner for WritePlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> DFResult<Option<Arc<dyn ExecutionPlan>>> {
        let Some(write) = node.as_any().downcast_ref::<WriteFiles>() else { return Ok(None) };
        let [rows] = physical_inputs else {
            return Err(DataFusionError::Internal("WriteFiles has one input".to_owned()));
        };
        let rows = write.layout.lay_out(Arc::clone(rows), session.config().target_partitions())?;
        Ok(Some(Arc::new(WriteExec::try_new(rows, Arc::clone(&write.layout), Arc::clone(&self.stores))?)))
    }
}

/// DataFusion's planner, plus lakegate's writes; every session plans with it (or a cluster's
/// planner over it), and so does a scheduler.
#[derive(Debug)]
pub struct LocalPlanner {
    stores: Arc<ObjectStores>,
}

impl LocalPlanner {
    pub fn new(stores: Arc<ObjectStores>) -> Self {
        Self { stores }
    }
}

#[async_trait]
impl QueryPlanner for LocalPlanner {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        session: &dyn Session,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let writes = Arc::new(WritePlanner { stores: Arc::clone(&self.stores) });
        DefaultPhysicalPlanner::with_extension_planners(vec![writes]).create_physical_plan(plan, session).await
    }
}

#[cfg(test)]
mod tests {
    use datafusion::physical_plan::empty::EmptyExec;

    use super::*;

    fn layout(commit: &str) -> Layout {
        Layout {
            spec: TableSpec { database: "db".into(), name: "t".into(), kind: "parquet".into(), ..TableSpec::default() },
            commit: commit.to_owned(),
            data_columns: 1,
            partition_names: vec!["dt".to_owned()],
            sort_keys: vec![(true, false)],
            distribute_keys: 0,
            target_file_bytes: 1 << 20,
            parquet: Layout::encode_parquet(&TableParquetOptions::default()).expect("encodes"),
        }
    }

    fn manifest(partition: &str, name: &str, staged: &str) -> RecordBatch {
        let file = WrittenFile {
            partition: partition.to_owned(),
            name: name.to_owned(),
            staged: object_store::path::Path::from(staged),
            rows: 3,
            bytes: 100,
        };
        manifest_batch(&[file]).expect("a manifest")
    }

    /// A manifest comes from other processes: only files of this write, staged where this
    /// write stages them, become paths to publish.
    #[test]
    fn manifests_name_only_files_of_their_write() {
        let commit = commit::new_commit_id();
        let layout = layout(&commit);
        let staging = commit::staging_dir(&object_store::path::Path::from("lake/t"), &commit);
        let name = commit::data_file_name(&commit, "000-0a1b2c3d", 0);
        let good = format!("{staging}/dt=2018-03-05/{name}");
        let files = read_manifest(&layout, &staging, &[manifest("dt=2018-03-05", &name, &good)]).expect("accepted");
        assert_eq!((files[0].staged.as_ref(), files[0].rows), (good.as_str(), 3));
        let twice = [manifest("dt=2018-03-05", &name, &good), manifest("dt=2018-03-05", &name, &good)];
        assert_eq!(read_manifest(&layout, &staging, &twice).expect("one file").len(), 1, "a file listed twice alike");
        let mut unlike = manifest("dt=2018-03-05", &name, &good);
        unlike = unlike.slice(0, 1);
        let rows: Arc<dyn Array> = Arc::new(UInt64Array::from(vec![4_u64]));
        let mut columns = unlike.columns().to_vec();
        columns[3] = rows;
        let unlike = RecordBatch::try_new(unlike.schema(), columns).expect("a manifest");
        let twice = [manifest("dt=2018-03-05", &name, &good), unlike];
        assert!(read_manifest(&layout, &staging, &twice).is_err(), "a file listed twice, unlike");
        let other = commit::data_file_name(&commit::new_commit_id(), "000-0a1b2c3d", 0);
        for (partition, name, staged) in [
            ("country=US", name.as_str(), format!("{staging}/country=US/{name}")),
            ("", name.as_str(), format!("{staging}/{name}")),
            ("../../etc", name.as_str(), format!("{staging}/../../etc/{name}")),
            ("dt=2018-03-05", other.as_str(), format!("{staging}/dt=2018-03-05/{other}")),
            ("dt=2018-03-05", name.as_str(), format!("lake/other/dt=2018-03-05/{name}")),
            ("dt=2018-03-05", "notes.txt", format!("{staging}/dt=2018-03-05/notes.txt")),
        ] {
            let refused = read_manifest(&layout, &staging, &[manifest(partition, name, &staged)]);
            assert!(refused.is_err(), "{partition} {name} {staged} was accepted");
        }
    }

    /// A write crosses to an executor with its layout and the session's Parquet settings.
    #[test]
    fn writes_travel_with_their_layout_and_parquet_options() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Int64, true),
            Field::new("dt", DataType::Utf8, true),
            Field::new("__sort_0", DataType::Int64, true),
        ]));
        let mut parquet = TableParquetOptions::default();
        parquet.global.compression = Some("zstd(7)".to_owned());
        let layout = Layout { parquet: Layout::encode_parquet(&parquet).expect("encodes"), ..layout("c") };
        let stores = Arc::new(ObjectStores::new(Default::default()));
        let rows = Arc::new(EmptyExec::new(Arc::clone(&schema)).with_partitions(3));
        let write = WriteExec::try_new(rows, Arc::new(layout.clone()), Arc::clone(&stores)).expect("a write");
        let bytes = encode_physical(&write).expect("a write").expect("encodes");
        let rows: Arc<dyn ExecutionPlan> = Arc::new(EmptyExec::new(schema));
        let decoded = decode_physical(&bytes, &[rows], &stores).expect("a write").expect("decodes");
        let decoded = decoded.downcast_ref::<WriteExec>().expect("a WriteExec");
        assert_eq!(serde_json::to_string(decoded.layout.as_ref()).ok(), serde_json::to_string(&layout).ok());
        let column = datafusion::parquet::schema::types::ColumnPath::from("x");
        let compression = decoded.writer.compression(&column);
        assert_eq!(compression.to_string().to_lowercase(), "zstd(zstdlevel(7))");
        assert!(decode_physical(b"something else", &[], &stores).is_none());
    }
}
