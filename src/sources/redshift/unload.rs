//! Redshift's bulk read: `UNLOAD ('SELECT ...') TO 's3://tempdir/<id>/' ... FORMAT AS PARQUET`,
//! then the Parquet files read back concurrently and deleted, as Spark's Redshift connector
//! does. Each scan unloads into a folder of its own, removed even when the read fails.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::TaskContext;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream};
use deadpool_postgres::Pool;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt};
use object_store::path::Path;
use rand_core::RngCore;
use tokio::sync::mpsc::Sender;
use url::Url;

use crate::sources::postgres::{Error, RemoteTable, Server, connect, quote};
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
    pub(crate) fn from_options(options: &BTreeMap<String, String>) -> DFResult<Self> {
        if let Some(role) = options.get("aws_iam_role") {
            return Ok(Self::IamRole(role.clone()));
        }
        if let (Some(id), Some(secret)) = (options.get("temporary_aws_access_key_id"), options.get("temporary_aws_secret_access_key")) {
            return Ok(Self::Keys { id: id.clone(), secret: secret.clone(), token: options.get("temporary_aws_session_token").cloned() });
        }
        if options.get("forward_spark_s3_credentials").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
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

/// `s` as a Redshift string literal (see [`quote::redshift_literal`]).
fn quote(s: &str) -> String {
    quote::redshift_literal(s)
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
    label: String,
    server: Server,
    pool: Pool,
    select: String,
    tempdir: Url,
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
            label: table.label.clone(),
            server: table.server.clone(),
            pool: table.pool.clone(),
            select,
            tempdir,
            credentials,
            stores,
            schema,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// The folder of one scan: `s3://bucket/<tempdir path>/lakegate-unload-<random>/`.
    fn target(&self) -> String {
        let base = format!("s3://{}{}", self.tempdir.host_str().unwrap_or_default(), self.tempdir.path().trim_end_matches('/'));
        format!("{base}/lakegate-unload-{:016x}/", rand_core::OsRng.next_u64())
    }
}

impl DisplayAs for UnloadExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = format!("{}/lakegate-unload-<scan>/", self.tempdir.as_str().trim_end_matches('/'));
        write!(f, "UnloadExec: {} {}, sql=[{}]", self.label, self.server, unload_statement(&self.select, &target, &self.credentials, true))
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
        let target = self.target();
        let folder = Url::parse(&target).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let store = self.stores.raw_store(&folder)?;
        let unload = Unload {
            statement: unload_statement(&self.select, &target, &self.credentials, false),
            folder: Path::from(folder.path().trim_matches('/')),
            store,
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

struct Unload {
    statement: String,
    folder: Path,
    store: Arc<dyn ObjectStore>,
    schema: SchemaRef,
    label: String,
    server: Server,
    pool: Pool,
    rows: datafusion::physical_plan::metrics::Count,
}

impl Unload {
    async fn run(self, tx: Sender<DFResult<RecordBatch>>) -> DFResult<()> {
        let client = connect(&self.pool, &self.server).await?;
        client.batch_execute(&self.statement).await.map_err(|e| {
            DataFusionError::from(Error::query(&self.label, &self.server, &e))
        })?;
        drop(client);
        let result = self.read(&tx).await;
        // The unloaded files are only a means of transport: remove them whatever happened.
        let files = self.store.list(Some(&self.folder)).map_ok(|meta| meta.location).boxed();
        if let Err(e) = self.store.delete_stream(files).try_collect::<Vec<_>>().await {
            tracing::warn!(folder = %self.folder, %e, "could not remove the unloaded files");
        }
        result
    }

    async fn read(&self, tx: &Sender<DFResult<RecordBatch>>) -> DFResult<()> {
        let files: Vec<_> = self.store.list(Some(&self.folder)).try_collect().await?;
        futures::stream::iter(files)
            .map(|meta| async move {
                // Files are at most MAXFILESIZE, so one is read whole.
                let bytes = self.store.get(&meta.location).await?.bytes().await?;
                for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()? {
                    // Columns come back in the SELECT's order; Redshift's Parquet types are
                    // cast to the table's.
                    let batch = batch?;
                    let columns = self
                        .schema
                        .fields()
                        .iter()
                        .zip(batch.columns())
                        .map(|(field, column)| cast(column, field.data_type()))
                        .collect::<Result<Vec<_>, _>>()?;
                    let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
                    self.rows.add(batch.num_rows());
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
    fn a_tempdir_needs_credentials() {
        let err = Credentials::from_options(&BTreeMap::new()).unwrap_err().to_string();
        assert!(err.contains("aws_iam_role"), "{err}");
    }
}
