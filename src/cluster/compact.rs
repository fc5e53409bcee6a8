//! Stage outputs written as small as their rows.
//!
//! Strings read from Parquet are views into whole decoded pages, and a filter or a slice keeps
//! those pages alive. Arrow IPC writes every buffer a view array holds, so Ballista's plain
//! shuffle writer (a query's last stage, a stage gathered into one partition such as a
//! broadcast join's build side) wrote each batch with the pages behind it: 1.5 M `l_comment`
//! values (41 MB) went out as 677 MB, and the client read them back at 12 MB/s. Ballista's hash
//! shuffle already compacts its output; [`CompactOutputs`] does the same for the plain writer.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BinaryViewArray, StringViewArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildStats, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, Statistics, StatisticsArgs,
    replace_children_if_necessary,
};
use futures::StreamExt;

/// On the scheduler, after every other rule: puts a [`CompactViewsExec`] where Ballista will
/// put a plain shuffle writer (under the plan's root, and under each node that gathers its
/// input's partitions), when what is written there holds string or binary views.
#[derive(Debug)]
pub(crate) struct CompactOutputs;

impl PhysicalOptimizerRule for CompactOutputs {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = plan
            .transform_up(|node| {
                if !gathers(node.as_ref()) {
                    return Ok(Transformed::no(node));
                }
                let input = compacted(Arc::clone(node.children()[0]));
                replace_children_if_necessary(node, vec![input]).map(Transformed::yes)
            })?
            .data;
        Ok(if gathers(plan.as_ref()) { plan } else { compacted(plan) })
    }

    fn name(&self) -> &str {
        "compact_outputs"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Whether Ballista ends a stage under this node, writing its input as it comes.
fn gathers(node: &dyn ExecutionPlan) -> bool {
    node.is::<CoalescePartitionsExec>() || node.is::<SortPreservingMergeExec>()
}

fn compacted(plan: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    let views =
        plan.schema().fields().iter().any(|f| matches!(f.data_type(), DataType::Utf8View | DataType::BinaryView));
    if views && !plan.is::<CompactViewsExec>() { Arc::new(CompactViewsExec::new(plan)) } else { plan }
}

/// Passes its input's batches on with their string and binary views copied into buffers of
/// their own when the buffers they hold are mostly other rows' bytes.
#[derive(Debug)]
pub(crate) struct CompactViewsExec {
    input: Arc<dyn ExecutionPlan>,
}

impl CompactViewsExec {
    pub(crate) fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        Self { input }
    }
}

impl DisplayAs for CompactViewsExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "CompactViewsExec")
    }
}

impl ExecutionPlan for CompactViewsExec {
    fn name(&self) -> &'static str {
        "CompactViewsExec"
    }

    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    // Ballista broadcasts a join's build side only when its statistics say it is small.
    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn statistics_from_inputs(&self, inputs: &[Arc<Statistics>], _: &StatisticsArgs) -> Result<Arc<Statistics>> {
        Ok(Arc::clone(&inputs[0]))
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self::new(children.swap_remove(0))))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let compacted = input.map(|batch| batch.and_then(|batch| Ok(compact(batch)?)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, compacted)))
    }
}

/// The batch with each top-level view column that holds over twice the bytes its rows use
/// copied into a buffer of its own; other columns are shared as they are.
pub(crate) fn compact(batch: RecordBatch) -> std::result::Result<RecordBatch, ArrowError> {
    fn wasteful(used: usize, held: usize) -> bool {
        held > 2 * used
    }
    let mut changed = false;
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|column| -> ArrayRef {
            if let Some(strings) = column.as_any().downcast_ref::<StringViewArray>() {
                let held = strings.data_buffers().iter().map(|b| b.len()).sum();
                if wasteful(strings.total_buffer_bytes_used(), held) {
                    changed = true;
                    return Arc::new(strings.gc());
                }
            } else if let Some(bytes) = column.as_any().downcast_ref::<BinaryViewArray>() {
                let held = bytes.data_buffers().iter().map(|b| b.len()).sum();
                if wasteful(bytes.total_buffer_bytes_used(), held) {
                    changed = true;
                    return Arc::new(bytes.gc());
                }
            }
            Arc::clone(column)
        })
        .collect();
    if changed { RecordBatch::try_new(batch.schema(), columns) } else { Ok(batch) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::ipc::writer::StreamWriter;

    fn ipc_bytes(batch: &RecordBatch) -> usize {
        let mut out = Vec::new();
        let mut writer = StreamWriter::try_new(&mut out, &batch.schema()).unwrap();
        writer.write(batch).unwrap();
        writer.finish().unwrap();
        out.len()
    }

    #[test]
    fn a_slice_of_long_strings_is_written_as_its_own_rows() {
        let values: Vec<String> =
            (0..10_000).map(|i| format!("a comment long enough to live in a buffer {i}")).collect();
        let strings = StringViewArray::from_iter_values(values.iter());
        let schema = Arc::new(Schema::new(vec![Field::new("comment", DataType::Utf8View, false)]));
        let whole = RecordBatch::try_new(schema, vec![Arc::new(strings)]).unwrap();
        let slice = whole.slice(100, 100);

        let compacted = compact(slice.clone()).unwrap();

        assert_eq!(compacted, slice, "same rows");
        assert!(ipc_bytes(&slice) > 50 * ipc_bytes(&compacted) / 2, "the slice alone carried every page");
        assert!(ipc_bytes(&compacted) < 2 * 100 * values[0].len(), "compacted: {} bytes", ipc_bytes(&compacted));
        let untouched = compact(whole.clone()).unwrap();
        assert!(Arc::ptr_eq(untouched.column(0), whole.column(0)), "a batch using its buffers is shared, not copied");
    }

    /// Under the root and under each gathering node, and only where views are written.
    #[test]
    fn compaction_goes_where_ballista_writes_views_as_they_come() {
        use datafusion::datasource::memory::MemorySourceConfig;
        use datafusion::physical_plan::displayable;

        let schema = Arc::new(Schema::new(vec![
            Field::new("comment", DataType::Utf8View, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let scan = || MemorySourceConfig::try_new_exec(&[vec![], vec![]], Arc::clone(&schema), None).unwrap();
        let shown = |plan: Arc<dyn ExecutionPlan>| {
            let plan = CompactOutputs.optimize(plan, &ConfigOptions::default()).unwrap();
            displayable(plan.as_ref())
                .indent(false)
                .to_string()
                .lines()
                .map(|l| l.trim().split(':').next().unwrap().to_owned())
                .collect::<Vec<_>>()
        };

        assert_eq!(shown(scan()), ["CompactViewsExec", "DataSourceExec"]);
        let gathered = Arc::new(CoalescePartitionsExec::new(scan()));
        assert_eq!(shown(gathered), ["CoalescePartitionsExec", "CompactViewsExec", "DataSourceExec"]);
        let numbers = Arc::new(
            datafusion::physical_plan::projection::ProjectionExec::try_new(
                vec![(datafusion::physical_expr::expressions::col("n", &schema).unwrap(), "n".to_owned())],
                scan(),
            )
            .unwrap(),
        );
        assert_eq!(shown(numbers), ["ProjectionExec", "DataSourceExec"], "no views, nothing to compact");
    }

    /// Ballista broadcasts a join's build side only when its statistics say it is small, so
    /// compacting it must not hide them.
    #[test]
    fn compaction_keeps_its_inputs_statistics() {
        use datafusion::arrow::array::Int64Array;
        use datafusion::datasource::memory::MemorySourceConfig;
        use datafusion::physical_plan::StatisticsContext;

        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(Int64Array::from(vec![1, 2, 3]))]).unwrap();
        let scan = MemorySourceConfig::try_new_exec(&[vec![batch]], schema, None).unwrap();
        let rows = |plan: &Arc<dyn ExecutionPlan>| {
            StatisticsContext::new().compute(plan.as_ref(), &StatisticsArgs::new()).unwrap().num_rows
        };
        let compacted: Arc<dyn ExecutionPlan> = Arc::new(CompactViewsExec::new(Arc::clone(&scan) as _));
        assert_eq!(rows(&compacted), rows(&(scan as _)));
        assert_eq!(rows(&compacted).get_value(), Some(&3));
    }
}
