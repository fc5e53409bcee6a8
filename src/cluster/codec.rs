//! How lakegate's tables travel to a Ballista scheduler: as their catalog spec, never as a
//! provider's state.
//!
//! A stored table is sent as the [`TableSpec`] it was registered with. Specs hold secrets only
//! as `${env:NAME}` references, so a plan's bytes never carry a password or key: the
//! scheduler rebuilds the table through its own sources, and each node resolves references
//! from its own environment. Everything else (shuffles, file formats) is Ballista's own codec,
//! which this one wraps.

use std::sync::Arc;

use async_trait::async_trait;
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::TableReference;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use lakegate_catalog::{Sources, TableSpec, wait_in_place};

use super::compact::CompactViewsExec;
use super::splits::{SplitFiles, SplitsRecipe};
use crate::storage::ObjectStores;

/// Marks a table sent as its spec, so decoding tells it from Ballista's own encodings.
const SPEC_TAG: &[u8] = b"lakegate.table.v1\n";

/// Marks a scan of a lakegate source (see [`crate::sources::encode_scan`]).
const SCAN_TAG: &[u8] = b"lakegate.scan.v2\n";

/// Marks a task's splits of such a scan (see [`SplitFiles`]).
const SPLITS_TAG: &[u8] = b"lakegate.splits.v1\n";

/// Marks a [`CompactViewsExec`]: nothing but the tag, its input travels as a child.
const COMPACT_TAG: &[u8] = b"lakegate.compact.v1\n";

/// A stored table on its way to the cluster: its spec and schema, nothing built from them.
/// Only ever encoded; a plan that still holds one is never run here.
#[derive(Debug)]
pub(crate) struct TableOnCluster {
    pub(crate) spec: TableSpec,
    pub(crate) schema: SchemaRef,
}

#[async_trait]
impl TableProvider for TableOnCluster {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _: &dyn Session,
        _: Option<&Vec<usize>>,
        _: &[Expr],
        _: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::Internal(format!(
            "table {} was prepared for the cluster but planned in-process",
            self.spec.qualified_name()
        )))
    }
}

/// Ballista's logical codec, plus lakegate's tables as specs. `sources` builds them again on
/// the receiving side (the scheduler); a client that only sends has none.
#[derive(Debug)]
pub struct TableCodec {
    ballista: BallistaLogicalExtensionCodec,
    sources: Option<Sources>,
}

impl TableCodec {
    /// A codec that sends tables; receiving one is an error.
    pub fn sending() -> Self {
        Self { ballista: BallistaLogicalExtensionCodec::default(), sources: None }
    }

    /// A codec that also builds received tables through `sources`.
    pub fn receiving(sources: Sources) -> Self {
        Self { ballista: BallistaLogicalExtensionCodec::default(), sources: Some(sources) }
    }

    /// The table `spec` describes, built by this node's sources, with the `schema` the plan
    /// was made for.
    fn build(&self, spec: &TableSpec, schema: &SchemaRef) -> DFResult<Arc<dyn TableProvider>> {
        let table = spec.qualified_name();
        let sources = self
            .sources
            .as_ref()
            .ok_or_else(|| DataFusionError::Internal(format!("table {table} arrived where no sources are")))?;
        let factory = sources.get(&spec.kind).map_err(DataFusionError::from)?;
        // Ballista decodes plans synchronously; building a PostgreSQL table reads its columns.
        let built = wait_in_place(factory.create(spec)).ok_or_else(|| {
            DataFusionError::Internal(format!("table {table} cannot be built outside a multi-threaded runtime"))
        })??;
        if built.schema().fields() != schema.fields() {
            return Err(DataFusionError::Plan(format!(
                "table {table} has other columns on this node than where the query was planned"
            )));
        }
        Ok(built)
    }
}

/// The bytes a stored table travels as.
pub(crate) fn encode_spec(spec: &TableSpec) -> DFResult<Vec<u8>> {
    let mut buf = SPEC_TAG.to_vec();
    serde_json::to_writer(&mut buf, spec).map_err(|e| DataFusionError::External(Box::new(e)))?;
    Ok(buf)
}

impl LogicalExtensionCodec for TableCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[LogicalPlan], ctx: &TaskContext) -> DFResult<Extension> {
        match crate::write::decode_logical(buf, inputs) {
            Some(write) => write,
            None => self.ballista.try_decode(buf, inputs, ctx),
        }
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> DFResult<()> {
        match crate::write::encode_logical(node.node.as_ref()) {
            Some(write) => {
                buf.extend(write);
                Ok(())
            }
            None => self.ballista.try_encode(node, buf),
        }
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> DFResult<Arc<dyn TableProvider>> {
        let Some(json) = buf.strip_prefix(SPEC_TAG) else {
            return self.ballista.try_decode_table_provider(buf, table_ref, schema, ctx);
        };
        let spec: TableSpec = serde_json::from_slice(json)
            .map_err(|e| DataFusionError::Plan(format!("the spec of table {table_ref} does not parse: {e}")))?;
        self.build(&spec, &schema)
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> DFResult<()> {
        match node.downcast_ref::<TableOnCluster>() {
            Some(table) => {
                buf.extend(encode_spec(&table.spec)?);
                Ok(())
            }
            None => self.ballista.try_encode_table_provider(table_ref, node, buf),
        }
    }

    fn try_decode_file_format(&self, buf: &[u8], ctx: &TaskContext) -> DFResult<Arc<dyn FileFormatFactory>> {
        self.ballista.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(&self, buf: &mut Vec<u8>, node: Arc<dyn FileFormatFactory>) -> DFResult<()> {
        self.ballista.try_encode_file_format(buf, node)
    }
}

/// Ballista's physical codec, plus lakegate's own plan nodes: the scans of its sources
/// (PostgreSQL's, Cassandra's) as their table's spec and what they read, rebuilt by each
/// executor's own `sources`; a task's splits of them; writes, which write through each
/// executor's own `stores`; and the compaction of a stage's output.
#[derive(Debug)]
pub struct ExecCodec {
    ballista: BallistaPhysicalExtensionCodec,
    sources: Sources,
    stores: Arc<ObjectStores>,
}

impl ExecCodec {
    pub fn new(sources: Sources, stores: Arc<ObjectStores>) -> Self {
        Self { ballista: BallistaPhysicalExtensionCodec::default(), sources, stores }
    }
}

impl PhysicalExtensionCodec for ExecCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        if let Some(write) = crate::write::decode_physical(buf, inputs, &self.stores) {
            return write;
        }
        if buf == COMPACT_TAG {
            let [input] = inputs else {
                return Err(DataFusionError::Internal("a view compaction has one input".to_owned()));
            };
            return Ok(Arc::new(CompactViewsExec::new(Arc::clone(input))));
        }
        if let Some(json) = buf.strip_prefix(SPLITS_TAG) {
            let recipe: SplitsRecipe = serde_json::from_slice(json)
                .map_err(|e| DataFusionError::Internal(format!("a task's splits do not parse: {e}")))?;
            let scan = self.decode_scan(&recipe.scan)?;
            return Ok(SplitFiles::scan_of(scan, recipe.splits));
        }
        match buf.strip_prefix(SCAN_TAG) {
            Some(scan) => self.decode_scan(scan),
            None => self.ballista.try_decode(buf, inputs, ctx, converter),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> DFResult<()> {
        if let Some(write) = crate::write::encode_physical(node.as_ref()) {
            buf.extend(write?);
            return Ok(());
        }
        if node.is::<CompactViewsExec>() {
            buf.extend_from_slice(COMPACT_TAG);
            return Ok(());
        }
        if let Some(splits) = SplitFiles::of(node.as_ref()) {
            let (scan, splits) = splits?;
            let scan = crate::sources::encode_scan(scan.as_ref())
                .ok_or_else(|| DataFusionError::Internal("splits of a scan that does not travel".to_owned()))??;
            buf.extend_from_slice(SPLITS_TAG);
            let recipe = SplitsRecipe { scan, splits };
            return serde_json::to_writer(buf, &recipe).map_err(|e| DataFusionError::External(Box::new(e)));
        }
        match crate::sources::encode_scan(node.as_ref()) {
            // Every task would read all of its splits (see `SplitFiles`): never a wrong answer.
            Some(_) if node.properties().partitioning.partition_count() > 1 => Err(DataFusionError::NotImplemented(
                format!("a scan of several splits travels only as its splits' files: {}", node.name()),
            )),
            Some(scan) => {
                buf.extend_from_slice(SCAN_TAG);
                buf.extend(scan?);
                Ok(())
            }
            None => self.ballista.try_encode(node, buf, converter),
        }
    }
}

impl ExecCodec {
    fn decode_scan(&self, bytes: &[u8]) -> DFResult<Arc<dyn ExecutionPlan>> {
        // Rebuilding the table checks its columns on its server (a round trip).
        wait_in_place(crate::sources::decode_scan(&self.sources, bytes)).ok_or_else(|| {
            DataFusionError::Internal("a scan cannot be rebuilt outside a multi-threaded runtime".to_owned())
        })?
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::provider_as_source;
    use datafusion::logical_expr::LogicalPlanBuilder;
    use datafusion::prelude::SessionContext;
    use datafusion_proto::logical_plan::AsLogicalPlan;
    use datafusion_proto::protobuf::LogicalPlanNode;
    use prost::Message;

    use super::*;
    use crate::sources;
    use crate::storage::ObjectStores;

    fn plan_over(spec: TableSpec) -> LogicalPlan {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
        let table = provider_as_source(Arc::new(TableOnCluster { spec, schema }));
        LogicalPlanBuilder::scan("lakegate.db.t", table, None).and_then(LogicalPlanBuilder::build).expect("a scan")
    }

    /// A plan's bytes hold a secret's reference, never its value: PATH is set wherever tests
    /// run, and stands for a password here.
    #[test]
    fn plans_carry_references_not_secrets() {
        let secret = std::env::var("PATH").expect("PATH is set");
        let spec = TableSpec {
            database: "db".into(),
            name: "t".into(),
            kind: "postgres".into(),
            location: "postgres://reader@db.internal:5432/app".into(),
            options: [("password".to_owned(), "${env:PATH}".to_owned())].into(),
            ..TableSpec::default()
        };
        let node = LogicalPlanNode::try_from_logical_plan(&plan_over(spec), &TableCodec::sending()).expect("encodes");
        let bytes = node.encode_to_vec();
        let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(contains(b"${env:PATH}"), "the reference travels");
        assert!(!contains(secret.as_bytes()), "the value does not");
    }

    /// A table sent as its spec is rebuilt by the receiver's own sources, under its name.
    #[tokio::test(flavor = "multi_thread")]
    async fn tables_are_rebuilt_from_their_specs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let spec = TableSpec {
            database: "db".into(),
            name: "t".into(),
            kind: "parquet".into(),
            location: dir.path().display().to_string(),
            columns: vec![lakegate_catalog::ColumnSpec::new("x", &DataType::Int64, true)],
            ..TableSpec::default()
        };
        let node = LogicalPlanNode::try_from_logical_plan(&plan_over(spec), &TableCodec::sending()).expect("encodes");
        let stores = Arc::new(ObjectStores::new(Default::default()));
        let receiving = TableCodec::receiving(sources::all(&stores, &Default::default()));
        let plan = node.try_into_logical_plan(&SessionContext::new().task_ctx(), &receiving).expect("decodes");
        let LogicalPlan::TableScan(scan) = plan else { panic!("a scan: {plan}") };
        assert_eq!(scan.table_name.to_string(), "lakegate.db.t");
        let provider = datafusion::datasource::source_as_provider(&scan.source).expect("a provider");
        assert!(provider.downcast_ref::<datafusion::datasource::listing::ListingTable>().is_some());
        // A sender has no sources: what it receives is refused, naming the table.
        let refused = node.try_into_logical_plan(&SessionContext::new().task_ctx(), &TableCodec::sending());
        assert!(refused.expect_err("refused").to_string().contains("db.t"));
    }
}
