//! Redshift tables: the PostgreSQL source's wire path in Redshift's dialect (a cursor, since
//! Redshift has no `COPY ... TO STDOUT`), plus the bulk path Spark's Redshift connector
//! users know: with a `tempdir`, a full scan runs `UNLOAD ... FORMAT AS PARQUET` to S3 and
//! reads the files back in parallel (see [`unload`]).

mod unload;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use lakegate_catalog::ParamSpec;
use url::Url;

use self::unload::{Credentials, UnloadExec};
use super::postgres::RemoteTable;
use crate::storage::{ObjectStores, is_s3};

/// Options of Redshift tables: the PostgreSQL ones, plus the Spark Redshift connector's.
pub(crate) static PARAMS: LazyLock<Vec<ParamSpec>> =
    LazyLock::new(|| [super::postgres::PARAMS, UNLOAD_PARAMS].concat());

const UNLOAD_PARAMS: &[ParamSpec] = &[
    ParamSpec::new("tempdir", "s3:// (or s3a://) prefix for UNLOAD: full scans unload Parquet there and read it back"),
    ParamSpec::new("aws_iam_role", "IAM role ARN Redshift assumes to write to tempdir"),
    ParamSpec::new(
        "forward_spark_s3_credentials",
        "true: give Redshift lakegate's own S3 keys for tempdir (instead of a role)",
    ),
    ParamSpec::new("temporary_aws_access_key_id", "S3 key id Redshift uses for tempdir"),
    ParamSpec::new("temporary_aws_secret_access_key", "S3 secret Redshift uses for tempdir, as a reference").secret(),
    ParamSpec::new("temporary_aws_session_token", "S3 session token Redshift uses for tempdir, as a reference")
        .secret(),
];

/// Where and how full scans are unloaded.
#[derive(Debug, Clone)]
struct Bulk {
    tempdir: Url,
    credentials: Credentials,
}

/// A Redshift table: the wire path, and the UNLOAD path when a `tempdir` is given.
#[derive(Debug)]
pub(crate) struct RedshiftTable {
    inner: RemoteTable,
    bulk: Option<Bulk>,
    stores: Arc<ObjectStores>,
}

impl RedshiftTable {
    /// # Errors
    /// A `tempdir` that is not an S3 URL, or one without credentials for Redshift to use.
    pub(crate) fn new(
        inner: RemoteTable,
        options: &BTreeMap<String, String>,
        stores: Arc<ObjectStores>,
    ) -> DFResult<Self> {
        let bulk = match options.get("tempdir") {
            None => None,
            Some(tempdir) => {
                let url = Url::parse(tempdir).ok().filter(|u| is_s3(u.scheme())).ok_or_else(|| {
                    DataFusionError::Configuration(format!("tempdir '{tempdir}' must be an s3:// or s3a:// URL"))
                })?;
                Some(Bulk { tempdir: url, credentials: Credentials::from_options(options)? })
            }
        };
        Ok(Self { inner, bulk, stores })
    }
}

#[async_trait]
impl TableProvider for RedshiftTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DFResult<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        // Only large reads are worth an UNLOAD: a scan with no LIMIT and no pushed filter
        // values (UNLOAD cannot bind parameters, and values are never spliced into SQL).
        if let Some(bulk) = &self.bulk
            && limit.is_none()
        {
            let (schema, query) = self.inner.query(projection, filters, None)?;
            if query.params.is_empty() {
                return Ok(Arc::new(UnloadExec::new(
                    &self.inner,
                    schema,
                    query.sql,
                    bulk.tempdir.clone(),
                    bulk.credentials.clone(),
                    Arc::clone(&self.stores),
                )));
            }
        }
        self.inner.scan(state, projection, filters, limit).await
    }
}
