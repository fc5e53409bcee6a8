//! What a physical plan gets just before it runs: a `scan` span for each partition of each
//! source it reads, children of its `execute` span (DataFusion runs scans in tasks of its own,
//! which do not inherit the caller's span), and yields where operators multiply rows.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result as DFResult;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;

use crate::telemetry::SPANS;
use crate::{Error, Result};

/// `plan` with each leaf wrapped so that reading a partition of it opens a `scan` span under
/// `parent`, and each join's output made cooperative.
///
/// A join can make millions of rows from memory without waiting on anything, so the task
/// running it would never yield: a KILL would answer the client, but the task would burn a core
/// until its end, since a task stops only where it yields. Cooperative output yields when the
/// task's budget is spent.
pub(super) fn prepare(plan: Arc<dyn ExecutionPlan>, parent: &tracing::Span) -> Result<Arc<dyn ExecutionPlan>> {
    let prepared = plan.transform_up(|node| {
        if node.children().is_empty() && !parent.is_disabled() {
            let scan: Arc<dyn ExecutionPlan> = Arc::new(TracedScan { inner: node, parent: parent.clone() });
            return Ok(Transformed::yes(scan));
        }
        if node.name().ends_with("JoinExec") || node.name() == "UnnestExec" {
            return Ok(Transformed::yes(Arc::new(CooperativeExec::new(node)) as Arc<dyn ExecutionPlan>));
        }
        Ok(Transformed::no(node))
    });
    prepared.map(|t| t.data).map_err(Error::from)
}

#[derive(Debug)]
struct TracedScan {
    inner: Arc<dyn ExecutionPlan>,
    parent: tracing::Span,
}

impl DisplayAs for TracedScan {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TracedScan")
    }
}

impl ExecutionPlan for TracedScan {
    fn name(&self) -> &'static str {
        "TracedScan"
    }

    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DFResult<TreeNodeRecursion>,
    ) -> DFResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.inner.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.inner]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> DFResult<Arc<dyn ExecutionPlan>> {
        let inner = children.into_iter().next().unwrap_or_else(|| Arc::clone(&self.inner));
        Ok(Arc::new(Self { inner, parent: self.parent.clone() }))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> DFResult<SendableRecordBatchStream> {
        let span = tracing::info_span!(
            target: SPANS,
            parent: &self.parent,
            "scan",
            source = crate::history::source_kind(self.inner.as_ref()).unwrap_or_else(|| self.inner.name().to_owned()),
            partition,
            rows = tracing::field::Empty,
        );
        let rows = span.in_scope(|| self.inner.execute(partition, context))?;
        let schema = rows.schema();
        let mut count = 0usize;
        let counted = rows.map(move |batch| {
            let _entered = span.enter();
            if let Ok(batch) = &batch {
                count += batch.num_rows();
                span.record("rows", i64::try_from(count).unwrap_or(i64::MAX));
            }
            batch
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, counted)))
    }
}
