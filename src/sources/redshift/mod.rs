//! Redshift tables: PostgreSQL's wire code in Redshift's [`DIALECT`] (a cursor, since
//! Redshift has no `COPY ... TO STDOUT`), plus the bulk path Spark's Redshift connector
//! users know: with a `tempdir`, a full scan runs `UNLOAD ... FORMAT AS PARQUET` to S3 and
//! reads the files back in parallel (see [`unload`]).

mod unload;

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use lakegate_catalog::{Capabilities, Options, ParamSpec, SourceFactory, TableSpec};
use url::Url;

use self::unload::Credentials;
pub(crate) use self::unload::{UnloadExec, UnloadRecipe};
use super::postgres::{Dialect, RemoteTable, Wire, WireSource};
use crate::storage::{ObjectStores, is_s3};

/// Redshift's SQL: its TEXT is VARCHAR(256), so strings are cast to the widest VARCHAR
/// instead (a cast to TEXT would cut longer values); no arrays, no COPY TO STDOUT; and the
/// constant a column-less scan selects is named, since UNLOAD writes it as a Parquet column.
pub const DIALECT: Dialect = Dialect {
    name: "Redshift",
    kind: "redshift",
    schemes: &["redshift"],
    default_port: 5439,
    copy_out: false,
    constant_column: r#"1 AS "row""#,
    text_type: "varchar(65535)",
    binary_type: "varbyte",
    arrays: false,
};

/// Options of Redshift tables: the PostgreSQL ones, plus the Spark Redshift connector's.
static PARAMS: LazyLock<Vec<ParamSpec>> = LazyLock::new(|| [super::postgres::PARAMS, UNLOAD_PARAMS].concat());

const UNLOAD_PARAMS: &[ParamSpec] = &[
    ParamSpec::new("tempdir", "s3:// (or s3a://) prefix for UNLOAD: full scans unload Parquet there and read it back"),
    ParamSpec::new("aws_iam_role", "IAM role ARN Redshift assumes to write to tempdir"),
    ParamSpec::new(
        "forward_spark_s3_credentials",
        "true: give Redshift lakegate's own S3 keys for tempdir (instead of a role)",
    )
    .bool(),
    ParamSpec::new("temporary_aws_access_key_id", "S3 key id Redshift uses for tempdir"),
    ParamSpec::new("temporary_aws_secret_access_key", "S3 secret Redshift uses for tempdir, as a reference").secret(),
    ParamSpec::new("temporary_aws_session_token", "S3 session token Redshift uses for tempdir, as a reference")
        .secret(),
];

/// Redshift tables, on the connections PostgreSQL tables use.
#[derive(Debug)]
pub struct RedshiftSource {
    wire: WireSource,
    /// Where UNLOAD's files are read from.
    stores: Arc<ObjectStores>,
}

impl RedshiftSource {
    pub fn new(wire: Arc<Wire>, stores: Arc<ObjectStores>) -> Self {
        Self { wire: WireSource::new(&DIALECT, wire), stores }
    }
}

#[async_trait]
impl SourceFactory for RedshiftSource {
    fn kind(&self) -> &'static str {
        DIALECT.kind
    }

    fn name(&self) -> &'static str {
        DIALECT.name
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["com.databricks.spark.redshift", "io.github.spark_redshift_community.spark.redshift"]
    }

    /// Its reads run on a cluster's executors: cursor reads as PostgreSQL's do, and an UNLOAD
    /// as one task, which runs the statement and reads its files back.
    fn capabilities(&self) -> Capabilities {
        Capabilities { runs_on_cluster: true, ..Capabilities::default() }
    }

    fn params(&self) -> &'static [ParamSpec] {
        &PARAMS
    }

    async fn list_tables(&self, mount: &TableSpec) -> DFResult<Vec<String>> {
        let resolved = self.resolve_options(mount)?;
        self.wire.list_tables(mount, &resolved).await
    }

    fn mounted_table(&self, mount: &TableSpec, name: &str) -> TableSpec {
        super::postgres::mounted_table(mount, name)
    }

    async fn prepare(&self, _session: &dyn Session, spec: TableSpec) -> DFResult<TableSpec> {
        let resolved = self.resolve_options(&spec)?;
        self.wire.prepare(spec, &resolved).await
    }

    async fn create(&self, spec: &TableSpec) -> DFResult<Arc<dyn TableProvider>> {
        let resolved = self.resolve_options(spec)?;
        let table = self.wire.create(spec, &resolved).await?;
        Ok(Arc::new(RedshiftTable::new(table, &resolved, Arc::clone(&self.stores))?))
    }
}

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
    pub(crate) fn new(inner: RemoteTable, options: &Options, stores: Arc<ObjectStores>) -> DFResult<Self> {
        let bulk = match options.text("tempdir") {
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

    /// The table as read over the wire, which pushed aggregates and top-n queries use.
    pub(crate) fn remote(&self) -> &RemoteTable {
        &self.inner
    }

    /// The UNLOAD scan `recipe` describes, over this table rebuilt on this node: its pool, the
    /// credentials Redshift writes with and the store its files are read from are this node's.
    ///
    /// # Errors
    /// The table has no `tempdir` here, or the recipe's schema does not decode.
    pub(crate) fn unload_from(&self, recipe: UnloadRecipe) -> DFResult<Arc<dyn ExecutionPlan>> {
        let bulk = self
            .bulk
            .as_ref()
            .ok_or_else(|| DataFusionError::Internal(format!("{} has no tempdir to unload into", self.inner.label)))?;
        let schema = super::schema_from_bytes(&recipe.schema, &self.inner.label)?;
        Ok(self.unload(bulk, schema, recipe.select))
    }

    fn unload(&self, bulk: &Bulk, schema: SchemaRef, select: String) -> Arc<dyn ExecutionPlan> {
        let (tempdir, credentials) = (bulk.tempdir.clone(), bulk.credentials.clone());
        Arc::new(UnloadExec::new(&self.inner, schema, select, tempdir, credentials, Arc::clone(&self.stores)))
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
                return Ok(self.unload(bulk, schema, query.sql));
            }
        }
        self.inner.scan(state, projection, filters, limit).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use datafusion::arrow::datatypes::{DataType, Field};

    use super::*;
    use crate::sources::postgres::schema::wire_type;
    use crate::sources::postgres::{Connection, POSTGRES};

    #[test]
    fn redshift_urls_name_its_port_and_dialect() {
        let redshift =
            Connection::parse("jdbc:redshift://wh.example/dev?user=etl", &BTreeMap::new(), &DIALECT).expect("redshift");
        assert_eq!((redshift.server.port, redshift.server.dialect), (5439, &DIALECT));
        assert_eq!(redshift.location(), "redshift://wh.example:5439/dev");
    }

    #[test]
    fn a_jdbc_url_picks_its_dialect_and_unknown_schemes_are_listed() {
        let wire = Wire::new(vec![&POSTGRES, &DIALECT]);
        assert_eq!(wire.dialect_of("jdbc:redshift://h:5439/dev", &POSTGRES).expect("known"), &DIALECT);
        assert_eq!(wire.dialect_of("postgres://h/d", &DIALECT).expect("known"), &POSTGRES);
        let err = wire.dialect_of("mysql://h/d", &POSTGRES).unwrap_err().to_string();
        assert!(err.contains("postgres://, postgresql:// or redshift://"), "{err}");
    }

    #[test]
    fn strings_are_cast_to_the_widest_varchar_and_arrays_are_refused() {
        let text = Field::new("c", DataType::Utf8, true);
        assert_eq!(wire_type(&text, &DIALECT).expect("text"), "varchar(65535)");
        let list = Field::new("c", DataType::new_list(DataType::Int64, true), true);
        assert!(wire_type(&list, &DIALECT).is_err());
    }
}
