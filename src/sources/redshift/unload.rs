//! Redshift's bulk read: `UNLOAD ('SELECT ...') TO 's3://tempdir/<id>/' ... FORMAT AS PARQUET`,
//! then the Parquet files read back concurrently and deleted, as Spark's Redshift connector
//! does. Each scan unloads into a folder of its own, removed even when the read fails.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::TaskContext;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use deadpool_postgres::Pool;
use futures::{StreamExt, TryStreamExt};
use lakegate_catalog::{Options, TableSpec};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::Sender;
use tokio::sync::oneshot;
use url::Url;

use crate::sources::postgres::{Error, RemoteTable, Server, connect};
use crate::sources::scan_properties;
use crate::storage::ObjectStores;

/// Files read at once after an UNLOAD, each at most [`MAX_FILE_MB`] (UNLOAD's MAXFILESIZE).
const CONCURRENT_FILES: usize = 4;
const MAX_FILE_MB: usize = 64;

/// How Redshift is allowed to write to the tempdir.
#[derive(Clone)]
pub(crate) enum Credentials {
    IamRole(String),
    Keys { id: String, secret: String, token: Option<String> },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.clause(true))
    }
}

impl Credentials {
    /// # Errors
    /// None of a role, keys, or `forward_spark_s3_credentials` with keys in the environment.
    pub(crate) fn from_options(options: &Options) -> DFResult<Self> {
        if let Some(role) = options.text("aws_iam_role") {
            return Ok(Self::IamRole(role.to_owned()));
        }
        if let (Some(id), Some(secret)) =
            (options.text("temporary_aws_access_key_id"), options.text("temporary_aws_secret_access_key"))
        {
            return Ok(Self::Keys {
                id: id.to_owned(),
                secret: secret.to_owned(),
                token: options.text("temporary_aws_session_token").map(str::to_owned),
            });
        }
        if options.bool("forward_spark_s3_credentials")? == Some(true) {
            let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
            return match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
                (Some(id), Some(secret)) => Ok(Self::Keys { id, secret, token: env("AWS_SESSION_TOKEN") }),
                _ => Err(DataFusionError::Configuration(
                    "forward_spark_s3_credentials needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in lakegate's environment".into(),
                )),
            };
        }
        Err(DataFusionError::Configuration(
            "a Redshift tempdir needs credentials for Redshift to write there: aws_iam_role, \
             temporary_aws_access_key_id + temporary_aws_secret_access_key, or forward_spark_s3_credentials 'true'"
                .into(),
        ))
    }

    /// The UNLOAD authorization clause; `masked` hides secrets, for display.
    fn clause(&self, masked: bool) -> String {
        let secret = |s: &str| if masked { "'***'".to_owned() } else { quote(s) };
        match self {
            Self::IamRole(arn) => format!("IAM_ROLE {}", quote(arn)),
            Self::Keys { id, secret: key, token } => {
                let mut clause = format!("ACCESS_KEY_ID {} SECRET_ACCESS_KEY {}", quote(id), secret(key));
                if let Some(token) = token {
                    clause.push_str(&format!(" SESSION_TOKEN {}", secret(token)));
                }
                clause
            }
        }
    }
}

/// `text` as a Redshift string literal. Redshift, like PostgreSQL before
/// `standard_conforming_strings`, reads a backslash in a literal as an escape, so
/// backslashes are doubled as well as quotes (what its `QUOTE_LITERAL` does); a name such as
/// `back\slash` inside UNLOAD's query literal then reaches the inner query unchanged.
fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('\'');
    for c in text.chars() {
        match c {
            '\'' => quoted.push_str("''"),
            '\\' => quoted.push_str("\\\\"),
            c => quoted.push(c),
        }
    }
    quoted.push('\'');
    quoted
}

/// The UNLOAD statement writing `select`'s rows as Parquet under `target`. The query is a
/// string literal inside UNLOAD, so its own quotes and backslashes are doubled.
pub(crate) fn unload_statement(select: &str, target: &str, credentials: &Credentials, masked: bool) -> String {
    format!(
        "UNLOAD ({}) TO {} {} FORMAT AS PARQUET MAXFILESIZE {MAX_FILE_MB} MB",
        quote(select),
        quote(target),
        credentials.clause(masked)
    )
}

/// A full scan of a Redshift table through UNLOAD.
#[derive(Debug)]
pub(crate) struct UnloadExec {
    /// The spec of the table unloaded: what another node rebuilds it from.
    spec: Arc<TableSpec>,
    label: String,
    server: Server,
    pool: Pool,
    select: String,
    tempdir: Url,
    /// The folder the first execution unloads into, chosen with the plan so that EXPLAIN
    /// shows the statement that runs.
    target: String,
    executions: AtomicUsize,
    credentials: Credentials,
    stores: Arc<ObjectStores>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl UnloadExec {
    pub(crate) fn new(
        table: &RemoteTable,
        schema: SchemaRef,
        select: String,
        tempdir: Url,
        credentials: Credentials,
        stores: Arc<ObjectStores>,
    ) -> Self {
        let properties = scan_properties(&schema, 1);
        Self {
            spec: Arc::clone(&table.spec),
            label: table.label.clone(),
            server: table.server.clone(),
            pool: table.pool.clone(),
            select,
            target: unload_folder(&tempdir),
            tempdir,
            executions: AtomicUsize::new(0),
            credentials,
            stores,
            schema,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

/// What an UNLOAD scan travels to a cluster's executor as: its table's spec (the executor
/// rebuilds the table with its own pool, credentials and stores), its result's schema
/// (protobuf), and its SELECT, which binds no values. The executor chooses the folder.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct UnloadRecipe {
    pub(crate) spec: TableSpec,
    pub(super) schema: Vec<u8>,
    pub(super) select: String,
}

impl UnloadExec {
    /// # Errors
    /// The schema has a type protobuf cannot carry.
    pub(crate) fn recipe(&self) -> DFResult<UnloadRecipe> {
        Ok(UnloadRecipe {
            spec: TableSpec::clone(&self.spec),
            schema: crate::sources::schema_bytes(&self.schema)?,
            select: self.select.clone(),
        })
    }
}

/// A new folder for one scan: `s3://bucket/<tempdir path>/lakegate-unload-<random>/`, in the
/// `s3://` form Redshift takes whatever scheme (`s3a://`) the tempdir was given with.
fn unload_folder(tempdir: &Url) -> String {
    let base = format!("s3://{}{}", tempdir.host_str().unwrap_or_default(), tempdir.path().trim_end_matches('/'));
    format!("{base}/lakegate-unload-{:016x}/", rand_core::OsRng.next_u64())
}

impl DisplayAs for UnloadExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let statement = unload_statement(&self.select, &self.target, &self.credentials, true);
        write!(f, "UnloadExec: {} {}, sql=[{statement}]", self.label, self.server)
    }
}

impl ExecutionPlan for UnloadExec {
    fn name(&self) -> &'static str {
        "UnloadExec"
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
        if partition != 0 {
            return Err(DataFusionError::Internal(format!("UnloadExec has one partition, not {partition}")));
        }
        // The first execution uses the folder EXPLAIN showed; a plan run again must not
        // read (or delete) another run's files, so it gets a folder of its own.
        let target = if self.executions.fetch_add(1, Ordering::Relaxed) == 0 {
            self.target.clone()
        } else {
            unload_folder(&self.tempdir)
        };
        let folder = Url::parse(&target).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let store = self.stores.raw_store(&folder)?;
        let unload = Unload {
            statement: unload_statement(&self.select, &target, &self.credentials, false),
            cleanup: Cleanup::new(store, Path::from(folder.path().trim_matches('/'))),
            schema: Arc::clone(&self.schema),
            label: self.label.clone(),
            server: self.server.clone(),
            pool: self.pool.clone(),
            rows: MetricBuilder::new(&self.metrics).output_rows(0),
        };
        let mut builder = RecordBatchReceiverStreamBuilder::new(Arc::clone(&self.schema), 2);
        let tx = builder.tx();
        builder.spawn(async move { unload.run(tx).await });
        Ok(builder.build())
    }
}

/// Deletes one scan's unloaded files, at the latest when dropped: the files are only a
/// means of transport, and a read that fails, or whose query is dropped or cancelled (its
/// task aborted at any await), must not leave them in the tempdir.
struct Cleanup {
    store: Arc<dyn ObjectStore>,
    folder: Path,
    done: bool,
}

impl Cleanup {
    fn new(store: Arc<dyn ObjectStore>, folder: Path) -> Self {
        Self { store, folder, done: false }
    }

    /// Deletes the files now (or, if this is cut off midway, as it drops).
    async fn run(mut self) {
        delete_folder(Arc::clone(&self.store), self.folder.clone()).await;
        self.done = true;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Dropped without `run`: the deletion cannot be awaited here, so it gets a task.
        let (store, folder) = (Arc::clone(&self.store), self.folder.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(delete_folder(store, folder));
            }
            Err(_) => {
                tracing::warn!(%folder, "no runtime to remove the unloaded files with; they are left in the tempdir")
            }
        }
    }
}

async fn delete_folder(store: Arc<dyn ObjectStore>, folder: Path) {
    let files = store.list(Some(&folder)).map_ok(|meta| meta.location).boxed();
    if let Err(e) = store.delete_stream(files).try_collect::<Vec<_>>().await {
        tracing::warn!(%folder, %e, "could not remove the unloaded files");
    }
}

/// Runs `unload` (the UNLOAD statement) in a task of its own and waits for it, taking
/// `cleanup` back once the files are written. If the waiting side is dropped meanwhile,
/// the statement is not cut off mid-way: it finishes, and since nobody takes `cleanup` back,
/// it deletes what was written (dropping the statement's future would instead leave the
/// UNLOAD running on Redshift, writing files after any clean-up).
async fn unload_detached<F>(unload: F, cleanup: Cleanup) -> DFResult<Cleanup>
where
    F: Future<Output = DFResult<()>> + Send + 'static,
{
    let (hand_back, received) = oneshot::channel();
    tokio::spawn(async move {
        let result = unload.await;
        // Refused when the reader is gone: the guard comes back and deletes as it drops.
        let _ = hand_back.send((result, cleanup));
    });
    match received.await {
        Ok((Ok(()), cleanup)) => Ok(cleanup),
        Ok((Err(e), cleanup)) => {
            cleanup.run().await;
            Err(e)
        }
        Err(_) => Err(DataFusionError::Execution("the UNLOAD task ended without an answer (it panicked)".into())),
    }
}

struct Unload {
    statement: String,
    cleanup: Cleanup,
    schema: SchemaRef,
    label: String,
    server: Server,
    pool: Pool,
    rows: datafusion::physical_plan::metrics::Count,
}

impl Unload {
    async fn run(self, tx: Sender<DFResult<RecordBatch>>) -> DFResult<()> {
        let Self { statement, cleanup, schema, label, server, pool, rows } = self;
        let unload = async move {
            let client = connect(&pool, &server).await?;
            client.batch_execute(&statement).await.map_err(|e| DataFusionError::from(Error::query(&label, &server, &e)))
        };
        let cleanup = unload_detached(unload, cleanup).await?;
        let result = read(&cleanup.store, &cleanup.folder, &schema, &rows, &tx).await;
        cleanup.run().await;
        result
    }
}

async fn read(
    store: &Arc<dyn ObjectStore>,
    folder: &Path,
    schema: &SchemaRef,
    rows: &datafusion::physical_plan::metrics::Count,
    tx: &Sender<DFResult<RecordBatch>>,
) -> DFResult<()> {
    let files: Vec<_> = store.list(Some(folder)).try_collect().await?;
    futures::stream::iter(files)
        .map(|meta| async move {
            // Files are at most MAXFILESIZE, so one is read whole.
            let bytes = store.get(&meta.location).await?.bytes().await?;
            for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()? {
                let batch = batch?;
                let batch = to_schema(&batch, schema)?;
                rows.add(batch.num_rows());
                if tx.send(Ok(batch)).await.is_err() {
                    break;
                }
            }
            Ok::<_, DataFusionError>(())
        })
        .buffer_unordered(CONCURRENT_FILES)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// An unloaded batch as the scan's schema: columns come back in the SELECT's order, in
/// Redshift's Parquet types, and are cast to the table's. With no columns (`count(*)`, whose
/// SELECT has only a constant) only the row count is kept.
fn to_schema(batch: &RecordBatch, schema: &SchemaRef) -> DFResult<RecordBatch> {
    if schema.fields().is_empty() {
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        return Ok(RecordBatch::try_new_with_options(Arc::clone(schema), Vec::new(), &options)?);
    }
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, column)| cast(column, field.data_type()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unload_quotes_the_query_and_names_the_role() {
        let sql = unload_statement(
            r#"SELECT CAST("name" AS varchar(65535)) FROM "public"."programs""#,
            "s3://lake/tmp/lakegate-unload-1/",
            &Credentials::IamRole("arn:aws:iam::123456789012:role/unload".into()),
            false,
        );
        assert_eq!(
            sql,
            r#"UNLOAD ('SELECT CAST("name" AS varchar(65535)) FROM "public"."programs"') TO 's3://lake/tmp/lakegate-unload-1/' IAM_ROLE 'arn:aws:iam::123456789012:role/unload' FORMAT AS PARQUET MAXFILESIZE 64 MB"#
        );
    }

    #[test]
    fn quotes_inside_the_query_are_doubled_and_keys_masked_for_display() {
        let keys = Credentials::Keys { id: "AKIA1".into(), secret: "s3cr3t".into(), token: Some("tok".into()) };
        let shown = unload_statement("SELECT 'it''s'", "s3://b/t/", &keys, true);
        assert_eq!(
            shown,
            "UNLOAD ('SELECT ''it''''s''') TO 's3://b/t/' ACCESS_KEY_ID 'AKIA1' SECRET_ACCESS_KEY '***' SESSION_TOKEN '***' FORMAT AS PARQUET MAXFILESIZE 64 MB"
        );
        assert!(unload_statement("SELECT 1", "s3://b/t/", &keys, false).contains("SECRET_ACCESS_KEY 's3cr3t'"));
        assert!(!format!("{keys:?}").contains("s3cr3t"));
    }

    #[test]
    fn backslashes_in_names_are_doubled_inside_the_literal() {
        let sql = unload_statement(
            r#"SELECT CAST("back\slash" AS int4) FROM "public"."it's""#,
            "s3://b/t/",
            &Credentials::IamRole("r".into()),
            true,
        );
        assert!(
            sql.starts_with(r#"UNLOAD ('SELECT CAST("back\\slash" AS int4) FROM "public"."it''s"') TO 's3://b/t/'"#),
            "{sql}"
        );
    }

    /// `count(*)` reads no column: Redshift unloads a named constant, and the batches read
    /// back keep only their row count.
    #[test]
    fn an_empty_projection_unloads_a_constant_and_counts_its_rows() {
        use crate::sources::postgres::pushdown::RemoteQuery;
        use crate::sources::postgres::quote;
        use datafusion::arrow::array::Int32Array;
        use datafusion::arrow::datatypes::{DataType, Field, Schema};

        let select = RemoteQuery::select(&quote::table("public", "sales"), &[], &[], None, &super::super::DIALECT)
            .expect("renders");
        assert_eq!(
            unload_statement(
                &select.sql,
                "s3://lake/tmp/lakegate-unload-1/",
                &Credentials::IamRole("arn:r".into()),
                false
            ),
            r#"UNLOAD ('SELECT 1 AS "row" FROM "public"."sales"') TO 's3://lake/tmp/lakegate-unload-1/' IAM_ROLE 'arn:r' FORMAT AS PARQUET MAXFILESIZE 64 MB"#
        );
        let unloaded = Arc::new(Schema::new(vec![Field::new("row", DataType::Int32, false)]));
        let batch = RecordBatch::try_new(unloaded, vec![Arc::new(Int32Array::from(vec![1; 5]))]).expect("batch");
        let counted = to_schema(&batch, &Arc::new(Schema::empty())).expect("no columns");
        assert_eq!((counted.num_columns(), counted.num_rows()), (0, 5));
    }

    #[test]
    fn each_scan_unloads_into_a_folder_of_its_own_in_s3_form() {
        let tempdir = Url::parse("s3a://lake/tmp/redshift/").expect("url");
        let (a, b) = (unload_folder(&tempdir), unload_folder(&tempdir));
        assert_ne!(a, b);
        let id = a.strip_prefix("s3://lake/tmp/redshift/lakegate-unload-").and_then(|r| r.strip_suffix('/'));
        assert!(id.is_some_and(|id| id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit())), "{a}");
    }

    fn store_with_files() -> (Arc<dyn ObjectStore>, Path) {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        (store, Path::from("tmp/lakegate-unload-1"))
    }

    async fn put(store: &Arc<dyn ObjectStore>, path: &str) {
        store.put(&Path::from(path), bytes::Bytes::from_static(b"parquet").into()).await.expect("put");
    }

    async fn files(store: &Arc<dyn ObjectStore>) -> Vec<String> {
        let listed: Vec<_> = store.list(None).try_collect().await.expect("lists");
        let mut names: Vec<String> = listed.into_iter().map(|m| m.location.to_string()).collect();
        names.sort();
        names
    }

    /// Waits (a little) for a clean-up task to have run.
    async fn settle(store: &Arc<dyn ObjectStore>, expected: &[&str]) {
        for _ in 0..200 {
            if files(store).await == expected {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(files(store).await, expected);
    }

    #[tokio::test]
    async fn a_dropped_cleanup_still_deletes_the_scans_files_only() {
        let (store, folder) = store_with_files();
        put(&store, "tmp/lakegate-unload-1/0000_part_00.parquet").await;
        put(&store, "tmp/lakegate-unload-1/0001_part_00.parquet").await;
        put(&store, "tmp/other/keep.parquet").await;
        drop(Cleanup::new(Arc::clone(&store), folder));
        settle(&store, &["tmp/other/keep.parquet"]).await;
    }

    /// A query dropped while its UNLOAD runs: the UNLOAD (here a task that writes a file
    /// after a while) is waited out, and what it wrote is deleted.
    #[tokio::test]
    async fn files_unloaded_after_the_query_was_dropped_are_deleted() {
        let (store, folder) = store_with_files();
        let (written_tx, written) = oneshot::channel();
        let writer = Arc::clone(&store);
        let unload = async move {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            put(&writer, "tmp/lakegate-unload-1/0000_part_00.parquet").await;
            let _ = written_tx.send(());
            Ok(())
        };
        let waited = tokio::time::timeout(
            std::time::Duration::from_millis(10),
            unload_detached(unload, Cleanup::new(Arc::clone(&store), folder)),
        );
        assert!(waited.await.is_err(), "the reader gives up before the UNLOAD ends");
        written.await.expect("the UNLOAD ran to its end");
        settle(&store, &[]).await;
    }

    #[tokio::test]
    async fn a_failed_unload_deletes_what_it_wrote() {
        let (store, folder) = store_with_files();
        let writer = Arc::clone(&store);
        let unload = async move {
            put(&writer, "tmp/lakegate-unload-1/0000_part_00.parquet").await;
            Err(DataFusionError::Execution("S3 write failed".into()))
        };
        let err = unload_detached(unload, Cleanup::new(Arc::clone(&store), folder)).await.err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("S3 write failed")));
        assert_eq!(files(&store).await, Vec::<String>::new());
    }

    #[test]
    fn redshift_literals_double_quotes_and_backslashes() {
        use datafusion::sql::sqlparser::dialect::RedshiftSqlDialect;
        use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
        assert_eq!(quote(r#"SELECT "back\slash", 'it''s'"#), r#"'SELECT "back\\slash", ''it''''s'''"#);
        let tokens = Tokenizer::new(&RedshiftSqlDialect {}, r"'a\\b''c'").tokenize().expect("tokenizes");
        assert!(matches!(tokens.as_slice(), [Token::SingleQuotedString(s)] if s == r"a\b'c"), "{tokens:?}");
    }

    #[test]
    fn a_tempdir_needs_credentials() {
        let err = Credentials::from_options(&Options::default()).unwrap_err().to_string();
        assert!(err.contains("aws_iam_role"), "{err}");
    }
}
