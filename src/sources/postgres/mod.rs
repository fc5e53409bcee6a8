//! PostgreSQL tables (Aurora included), read with `tokio-postgres` from a connection pool.
//!
//! Registration connects once, checks the table and stores its columns (discovered from
//! `information_schema` unless declared). Scans push projection, exact filters and LIMIT
//! into one `SELECT`, stream it back in PostgreSQL's binary format and decode it straight
//! into Arrow; see [`pushdown`] for what is pushed and [`exec`] for how rows are streamed.
//! Other databases on PostgreSQL's wire protocol build their sources on [`WireSource`],
//! with a [`Dialect`] of their own.

mod connection;
mod decode;
mod dialect;
pub(crate) mod exec;
pub(crate) mod pushdown;
pub(crate) mod pushed;
pub(crate) mod quote;
pub(crate) mod schema;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use deadpool_postgres::Pool;
use lakegate_catalog::{Capabilities, ColumnSpec, Options, ParamSpec, SourceFactory, TableSpec};

pub use self::connection::Wire;
pub(crate) use self::connection::{Connection, Server, connect, mask_url};
pub use self::dialect::{Dialect, POSTGRES};
use self::exec::ScanOptions;
pub(crate) use self::exec::{PostgresScanExec, ScanRecipe};
use self::pushdown::{RemoteQuery, TableColumn, supports};
use self::schema::{RemoteColumn, remote_columns};

/// Options of PostgreSQL tables. Spark's JDBC option names are accepted as they are
/// (`dbtable`, `fetchsize`, `partitionColumn`, ...), lower-cased like every option key.
pub(crate) const PARAMS: &[ParamSpec] = &[
    ParamSpec::new(
        "url",
        "connection URL when there is no LOCATION, e.g. jdbc:postgresql://host:5432/db (Spark's spelling)",
    ),
    ParamSpec::new("table", "the remote table, [schema.]name (default schema public)"),
    ParamSpec::new("dbtable", "Spark's name for 'table'"),
    ParamSpec::new(
        "schema",
        "the remote schema a mounted database (CREATE DATABASE ... STORED AS) shows; default public",
    ),
    ParamSpec::new("user", "user name (or in the URL)"),
    ParamSpec::new("password", "password, as a reference such as ${env:PG_PASSWORD}").secret(),
    ParamSpec::new("sslmode", "disable (default) or require / verify-full: TLS, verifying the server's certificate")
        .one_of(&["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]),
    ParamSpec::new(
        "sslrootcert",
        "PEM file of the CA that signed the server's certificate (default: the public web roots)",
    ),
    ParamSpec::new("fetchsize", "rows per batch, and per round trip of a cursor (default: the session's batch size)")
        .integer(0, i64::MAX),
    ParamSpec::new("partitioncolumn", "integer column to split scans on, read in parallel (with numpartitions)"),
    ParamSpec::new("numpartitions", "how many parallel reads partitioncolumn splits a scan into").integer(0, i64::MAX),
    ParamSpec::new(
        "lowerbound",
        "partitioncolumn value where the first split ends (default: its minimum); no row is left out",
    )
    .integer(i64::MIN, i64::MAX),
    ParamSpec::new(
        "upperbound",
        "partitioncolumn value where the last split starts (default: its maximum); no row is left out",
    )
    .integer(i64::MIN, i64::MAX),
    ParamSpec::new("driver", "Spark's JDBC driver class: accepted and ignored"),
];

/// Errors of the sources on PostgreSQL's wire protocol, each naming the server it is about and
/// never the password.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("invalid {dialect} location '{location}': {reason}")]
    Location { dialect: &'static str, location: String, reason: String },
    #[error("authentication failed for user '{user}' at {server}: {cause}")]
    Authentication { user: String, server: String, cause: String },
    #[error("cannot connect to {server}: {cause}")]
    Connect { server: String, cause: String },
    #[error("table {table} does not exist in {server}")]
    NoSuchTable { table: String, server: String },
    #[error(
        "column '{column}' of {table} is gone from {server}: the table was altered after it was registered; \
         DROP TABLE and CREATE it again to read its new columns"
    )]
    ColumnGone { column: String, table: String, server: String },
    #[error("{table} at {server}: {cause}")]
    Query { table: String, server: String, cause: String },
    #[error("column '{column}' of {table} at {server}: {cause}")]
    Value { column: String, table: String, server: String, cause: String },
}

impl Error {
    /// A driver error while reading `table` from `server`.
    pub(crate) fn query(table: &str, server: &Server, e: &tokio_postgres::Error) -> Self {
        Self::Query { table: table.to_owned(), server: server.to_string(), cause: describe(e) }
    }
}

impl From<Error> for DataFusionError {
    fn from(e: Error) -> Self {
        DataFusionError::External(Box::new(e))
    }
}

/// A driver error with its causes, in one line. Server errors give severity, message and hint.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("{}: {}", db.severity(), db.message());
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" ({detail})"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
        return text;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// A source on PostgreSQL's wire protocol in one dialect: what PostgreSQL's factory is built
/// on, and what the factories of other such databases reuse.
#[derive(Debug)]
pub struct WireSource {
    dialect: &'static Dialect,
    wire: Arc<Wire>,
}

impl WireSource {
    pub fn new(dialect: &'static Dialect, wire: Arc<Wire>) -> Self {
        Self { dialect, wire }
    }

    /// The connection of `spec`, whose options are `resolved`. Spark's `url` option stands in
    /// for a missing LOCATION; the URL's scheme may switch a JDBC table to another dialect.
    fn connection(&self, spec: &TableSpec, resolved: &BTreeMap<String, String>) -> Result<Connection, Error> {
        let location = self.location_of(spec, resolved);
        if location.is_empty() {
            return Err(Error::Location {
                dialect: self.dialect.name,
                location: String::new(),
                reason: format!("give LOCATION '{}://host:port/database' or OPTIONS (url '...')", self.dialect.kind),
            });
        }
        let dialect = self.wire.dialect_of(&location, self.dialect)?;
        let mut connection = Connection::parse(&location, resolved, dialect)?;
        // A reference may also sit in the URL itself (`...?password=${env:PG_PASSWORD}`).
        connection.password =
            connection.password.map(|p| lakegate_catalog::resolve_reference(&p)).transpose().map_err(|e| {
                Error::Location { dialect: dialect.name, location: mask_url(&location), reason: e.to_string() }
            })?;
        Ok(connection)
    }

    fn location_of(&self, spec: &TableSpec, options: &BTreeMap<String, String>) -> String {
        if spec.location.is_empty() { options.get("url").cloned().unwrap_or_default() } else { spec.location.clone() }
    }

    /// Checks a new table: connects, finds the table, and completes the spec with its columns.
    /// Credentials move from the URL into the options, so the stored location has none.
    ///
    /// # Errors
    /// Bad location, unreachable server, failed authentication, missing table or column.
    pub(crate) async fn prepare(
        &self,
        mut spec: TableSpec,
        resolved: &BTreeMap<String, String>,
    ) -> DFResult<TableSpec> {
        let connection = self.connection(&spec, resolved)?;
        // The password as written (a `${env:...}` reference stays one), wherever it was given.
        let written =
            Connection::parse(&self.location_of(&spec, &spec.options), &spec.options, connection.server.dialect)?;
        let (_, remote) = self.remote(&connection).await?;
        if spec.columns.is_empty() {
            spec.columns = remote.iter().map(|c| ColumnSpec::new(&c.name, &c.arrow_type(), c.nullable)).collect();
        } else {
            table_columns(&spec, &remote, &connection)?;
        }
        spec.kind = connection.server.dialect.kind.to_owned();
        spec.location = connection.location();
        spec.options.remove("url");
        spec.options.insert("user".into(), written.server.user);
        if !spec.options.contains_key("table") && !spec.options.contains_key("dbtable") {
            spec.options.insert("table".into(), connection.table.clone());
        }
        if let Some(password) = written.password {
            spec.options.insert("password".into(), password);
        }
        Ok(spec)
    }

    /// The tables and views of the remote schema a mounted database shows.
    ///
    /// # Errors
    /// Bad location, unreachable server, failed authentication.
    pub(crate) async fn list_tables(
        &self,
        spec: &TableSpec,
        resolved: &BTreeMap<String, String>,
    ) -> DFResult<Vec<String>> {
        let connection = self.connection(spec, resolved)?;
        let schema = mounted_schema(resolved);
        let pool = self.wire.pool(&connection)?;
        let client = connect(&pool, &connection.server).await?;
        let rows = client
            .query(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
                &[&schema],
            )
            .await
            .map_err(|e| Error::query(schema, &connection.server, &e))?;
        Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
    }

    /// The connection's pool and the remote table's columns.
    ///
    /// # Errors
    /// Unreachable server, failed authentication, [`Error::NoSuchTable`].
    async fn remote(&self, connection: &Connection) -> DFResult<(Pool, Vec<RemoteColumn>)> {
        let (schema, table) = connection.schema_and_table()?;
        let pool = self.wire.pool(connection)?;
        let client = connect(&pool, &connection.server).await?;
        let remote = remote_columns(&client, &schema, &table)
            .await
            .map_err(|e| Error::query(&connection.table, &connection.server, &e))?;
        if remote.is_empty() {
            return Err(Error::NoSuchTable {
                table: format!("{schema}.{table}"),
                server: connection.server.to_string(),
            }
            .into());
        }
        Ok((pool, remote))
    }

    /// Builds the provider: reads the remote columns again, so a table altered since its
    /// registration is reported by name instead of read wrongly.
    ///
    /// # Errors
    /// As [`Self::prepare`], and [`Error::ColumnGone`].
    pub(crate) async fn create(&self, spec: &TableSpec, resolved: &Options) -> DFResult<RemoteTable> {
        let connection = self.connection(spec, resolved)?;
        let (schema, table) = connection.schema_and_table()?;
        let (pool, remote) = self.remote(&connection).await?;
        let columns = table_columns(spec, &remote, &connection)?;
        let options = ScanOptions::parse(resolved)?;
        Ok(RemoteTable {
            schema: Arc::new(Schema::new(columns.iter().map(|c| c.field.clone()).collect::<Vec<_>>())),
            columns,
            table: quote::table(&schema, &table),
            label: format!("{schema}.{table}"),
            server: connection.server,
            pool,
            options,
            spec: Arc::new(spec.clone()),
        })
    }
}

/// The spec's columns, each checked against the remote table.
fn table_columns(spec: &TableSpec, remote: &[RemoteColumn], connection: &Connection) -> DFResult<Vec<TableColumn>> {
    spec.columns
        .iter()
        .map(|column| {
            let field = column.field()?;
            let Some(found) = remote.iter().find(|r| r.name == column.name) else {
                return Err(Error::ColumnGone {
                    column: column.name.clone(),
                    table: connection.table.clone(),
                    server: connection.server.to_string(),
                }
                .into());
            };
            schema::wire_type(&field, connection.server.dialect)?;
            Ok(TableColumn { native: found.compares_natively(field.data_type()), field })
        })
        .collect()
}

/// The remote schema a mounted database shows: its `schema` option, else `public`.
fn mounted_schema(options: &BTreeMap<String, String>) -> &str {
    options.get("schema").map_or("public", String::as_str)
}

/// Table `name` of the schema `mount` shows, named so that any name comes through as itself.
pub(crate) fn mounted_table(mount: &TableSpec, name: &str) -> TableSpec {
    let mut spec = mount.clone();
    spec.name = name.to_owned();
    spec.options.insert("table".into(), quote::table(mounted_schema(&mount.options), name));
    spec
}

/// PostgreSQL and Aurora tables.
#[derive(Debug)]
pub struct PostgresSource(WireSource);

impl PostgresSource {
    pub fn new(wire: Arc<Wire>) -> Self {
        Self(WireSource::new(&POSTGRES, wire))
    }
}

#[async_trait]
impl SourceFactory for PostgresSource {
    fn kind(&self) -> &'static str {
        POSTGRES.kind
    }

    fn name(&self) -> &'static str {
        POSTGRES.name
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["postgresql", "aurora", "jdbc", "org.apache.spark.sql.jdbc"]
    }

    /// Its scans run on a cluster's executors, each connecting with its own environment;
    /// a split read's queries are each a task.
    fn capabilities(&self) -> Capabilities {
        Capabilities { runs_on_cluster: true, ..Capabilities::default() }
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    async fn prepare(&self, _session: &dyn Session, spec: TableSpec) -> DFResult<TableSpec> {
        let resolved = self.resolve_options(&spec)?;
        self.0.prepare(spec, &resolved).await
    }

    async fn list_tables(&self, mount: &TableSpec) -> DFResult<Vec<String>> {
        let resolved = self.resolve_options(mount)?;
        self.0.list_tables(mount, &resolved).await
    }

    fn mounted_table(&self, mount: &TableSpec, name: &str) -> TableSpec {
        mounted_table(mount, name)
    }

    async fn create(&self, spec: &TableSpec) -> DFResult<Arc<dyn TableProvider>> {
        let resolved = self.resolve_options(spec)?;
        Ok(Arc::new(self.0.create(spec, &resolved).await?))
    }
}

/// A remote table as DataFusion sees it.
#[derive(Debug, Clone)]
pub(crate) struct RemoteTable {
    schema: SchemaRef,
    pub(crate) columns: Vec<TableColumn>,
    /// `"schema"."table"`, quoted for the remote SQL (see [`quote`]).
    pub(crate) table: String,
    /// `schema.table`, for messages and EXPLAIN.
    pub(crate) label: String,
    pub(crate) server: Server,
    pub(crate) pool: Pool,
    pub(crate) options: ScanOptions,
    /// What it was built from: what another node rebuilds it from.
    pub(crate) spec: Arc<TableSpec>,
}

impl RemoteTable {
    /// The `SELECT` for one scan: the projected columns and the filters that are exact.
    pub(crate) fn query(
        &self,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<(SchemaRef, RemoteQuery)> {
        let chosen: Vec<&TableColumn> = match projection {
            Some(indices) => indices.iter().map(|&i| &self.columns[i]).collect(),
            None => self.columns.iter().collect(),
        };
        let schema = Arc::new(Schema::new(chosen.iter().map(|c| c.field.clone()).collect::<Vec<_>>()));
        let pushed: Vec<Expr> = filters.iter().filter(|f| supports(f, &self.columns)).cloned().collect();
        let query = RemoteQuery::select(&self.table, &chosen, &pushed, limit, self.server.dialect)?;
        Ok((schema, query))
    }
}

impl RemoteTable {
    /// The scan running `queries` (one per partition), `fetchsize` rows per batch.
    pub(crate) fn scan_exec(
        &self,
        state: &dyn Session,
        schema: SchemaRef,
        queries: Vec<RemoteQuery>,
    ) -> Arc<dyn ExecutionPlan> {
        let fetch = self.options.fetch_size.unwrap_or(state.config().batch_size());
        Arc::new(PostgresScanExec::new(self, schema, queries, fetch))
    }

    /// One query per parallel read (see [`exec::splits`]).
    pub(crate) async fn queries(
        &self,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<(SchemaRef, Vec<RemoteQuery>)> {
        let mut schema = Arc::clone(&self.schema);
        let mut queries = Vec::new();
        for split in exec::splits(self).await? {
            let mut filters = filters.to_vec();
            filters.extend(split);
            let (projected, query) = self.query(projection, &filters, limit)?;
            schema = projected;
            queries.push(query);
        }
        Ok((schema, queries))
    }
}

#[async_trait]
impl TableProvider for RemoteTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DFResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if supports(f, &self.columns) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let (schema, queries) = self.queries(projection, filters, limit).await?;
        Ok(self.scan_exec(state, schema, queries))
    }
}
