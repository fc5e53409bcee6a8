//! Scans read in independent splits, dressed as file scans so a cluster hands each split to
//! one task.
//!
//! A PostgreSQL table read by `partitionColumn` is one query per output partition, a Cassandra
//! scan one group of token ranges per output partition. Ballista's scheduler restricts each
//! task's plan to its own partitions only for the leaves it knows (file scans, shuffle reads):
//! any other leaf of several partitions runs whole in every task, and its rows come back once
//! per task. So on the scheduler, [`SplitsAsFiles`] turns each such scan into a file scan whose
//! files are the scan's splits: `split/<i>` is read by running the scan's partition `i`.

use std::fmt;
use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{
    FileGroup, FileOpenFuture, FileOpener, FileScanConfig, FileScanConfigBuilder, FileSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::TaskContext;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::{DisplayFormatType, ExecutionPlan, displayable};
use futures::{FutureExt, StreamExt};
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

/// The path of split `i`'s stand-in file.
fn split_path(i: usize) -> String {
    format!("split/{i}")
}

fn split_of(file: &PartitionedFile) -> DFResult<usize> {
    let path = file.object_meta.location.as_ref();
    path.strip_prefix("split/")
        .and_then(|i| i.parse().ok())
        .ok_or_else(|| DataFusionError::Internal(format!("{path} is not the file of a split")))
}

/// A scan, and the splits of it that a plan reads.
pub(crate) type Splits<'a> = (&'a Arc<dyn ExecutionPlan>, Vec<usize>);

/// A scan's splits as the files of a file scan (see the module comment).
#[derive(Debug, Clone)]
pub(crate) struct SplitFiles {
    /// The scan; its partition `i` reads split `i`.
    scan: Arc<dyn ExecutionPlan>,
    schema: TableSchema,
    metrics: ExecutionPlanMetricsSet,
}

impl SplitFiles {
    /// `scan` as a file scan of one file per partition; each file group is one file, so a
    /// task given a group reads exactly one split.
    pub(crate) fn scan_of(
        scan: Arc<dyn ExecutionPlan>,
        splits: impl IntoIterator<Item = usize>,
    ) -> Arc<DataSourceExec> {
        let groups = splits.into_iter().map(|i| FileGroup::new(vec![PartitionedFile::new(split_path(i), 0)])).collect();
        let schema = TableSchema::from(scan.schema());
        let source = Arc::new(Self { scan, schema, metrics: ExecutionPlanMetricsSet::new() });
        // No file is read through the store: `file://` is one every runtime has.
        let config = FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), source).with_file_groups(groups);
        DataSourceExec::from_data_source(config.build())
    }

    /// The scan and its splits, when `plan` is a scan of splits.
    pub(crate) fn of(plan: &dyn ExecutionPlan) -> Option<DFResult<Splits<'_>>> {
        let config = plan.downcast_ref::<DataSourceExec>()?.data_source().downcast_ref::<FileScanConfig>()?;
        let source = config.file_source().downcast_ref::<Self>()?;
        let splits: DFResult<Vec<usize>> = config.file_groups.iter().flat_map(FileGroup::iter).map(split_of).collect();
        Some(splits.map(|splits| (&source.scan, splits)))
    }
}

impl FileSource for SplitFiles {
    fn create_file_opener(
        &self,
        _: Arc<dyn ObjectStore>,
        _: &FileScanConfig,
        _: usize,
    ) -> DFResult<Arc<dyn FileOpener>> {
        Ok(Arc::new(SplitOpener { scan: Arc::clone(&self.scan) }))
    }

    fn table_schema(&self) -> &TableSchema {
        &self.schema
    }

    fn with_batch_size(&self, _: usize) -> Arc<dyn FileSource> {
        Arc::new(self.clone())
    }

    fn metrics(&self) -> &ExecutionPlanMetricsSet {
        &self.metrics
    }

    fn file_type(&self) -> &str {
        "splits"
    }

    fn fmt_extra(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, ", splits of {}", displayable(self.scan.as_ref()).one_line().to_string().trim_end())
    }

    /// A split is one unit: it is never cut by byte ranges.
    fn supports_repartitioning(&self) -> bool {
        false
    }

    fn repartitioned(
        &self,
        _: usize,
        _: usize,
        _: Option<datafusion::physical_expr::LexOrdering>,
        _: &FileScanConfig,
    ) -> DFResult<Option<FileScanConfig>> {
        Ok(None)
    }

    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DFResult<TreeNodeRecursion>,
    ) -> DFResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }
}

struct SplitOpener {
    scan: Arc<dyn ExecutionPlan>,
}

impl FileOpener for SplitOpener {
    fn open(&self, file: PartitionedFile) -> DFResult<FileOpenFuture> {
        // The scans dressed here read their servers over their own connections and take
        // nothing from the task's context, which a file opener is not given.
        let rows = self.scan.execute(split_of(&file)?, Arc::new(TaskContext::default()))?;
        Ok(async move { Ok(rows.boxed()) }.boxed())
    }
}

/// Turns every scan of several splits into a file scan of them: on a scheduler, after every
/// other rule, so the plan is otherwise what it would be in-process.
#[derive(Debug, Default)]
pub(crate) struct SplitsAsFiles;

impl PhysicalOptimizerRule for SplitsAsFiles {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _: &ConfigOptions) -> DFResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let splits = node.properties().partitioning.partition_count();
            if splits > 1 && node.children().is_empty() && crate::sources::reads_splits(node.as_ref()) {
                return Ok(Transformed::yes(SplitFiles::scan_of(node, 0..splits) as _));
            }
            Ok(Transformed::no(node))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "splits_as_files"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// What a scan of splits travels as: its scan's bytes (see [`crate::sources::encode_scan`])
/// and the splits this task reads.
#[derive(Serialize, Deserialize)]
pub(crate) struct SplitsRecipe {
    pub(crate) scan: Vec<u8>,
    pub(crate) splits: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::memory::MemorySourceConfig;
    use datafusion::physical_plan::collect;
    use datafusion::prelude::SessionContext;

    use super::*;

    /// A scan of three splits dressed for a task given splits 0 and 2 reads those two, each
    /// once, and says which they are.
    #[tokio::test]
    async fn a_task_reads_exactly_its_splits() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let split = |values: Vec<i64>| {
            vec![RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(Int64Array::from(values))]).expect("a batch")]
        };
        let partitions = [split(vec![1, 2]), split(vec![30]), split(vec![500, 600])];
        let scan = MemorySourceConfig::try_new_exec(&partitions, Arc::clone(&schema), None).expect("a scan");
        let task = SplitFiles::scan_of(scan, [0, 2]);
        let (_, splits) = SplitFiles::of(task.as_ref()).expect("a scan of splits").expect("split files");
        assert_eq!(splits, vec![0, 2]);
        assert_eq!(task.properties().partitioning.partition_count(), 2);
        let batches = collect(task, SessionContext::new().task_ctx()).await.expect("read");
        let mut read: Vec<i64> = batches
            .iter()
            .flat_map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().expect("ints").values().to_vec())
            .collect();
        read.sort_unstable();
        assert_eq!(read, vec![1, 2, 500, 600]);
    }
}
