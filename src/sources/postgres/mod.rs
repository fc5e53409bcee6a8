//! PostgreSQL tables (Aurora included), read with `tokio-postgres` from a connection pool.
//!
//! Registration connects once, checks the table and stores its columns (discovered from
//! `information_schema` unless declared). Scans push projection, exact filters and LIMIT
//! into one `SELECT`, stream it back in PostgreSQL's binary format and decode it straight
//! into Arrow; see [`pushdown`] for what is pushed and [`exec`] for how rows are streamed.
//! The Redshift source (`super::redshift`) shares all of this with its own dialect.

mod decode;
pub(crate) mod exec;
pub(crate) mod pushdown;
pub(crate) mod quote;
pub(crate) mod schema;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use lakegate_catalog::{ColumnSpec, ParamSpec, SourceFactory, TableSpec};
use url::Url;

use self::exec::{PostgresScanExec, ScanOptions};
use self::pushdown::{RemoteQuery, TableColumn, supports};
use self::schema::{RemoteColumn, remote_columns};
use crate::storage::ObjectStores;

/// Options of PostgreSQL tables. Spark's JDBC option names are accepted as they are
/// (`dbtable`, `fetchsize`, `partitionColumn`, ...), lower-cased like every option key.
pub(crate) const PARAMS: &[ParamSpec] = &[
    ParamSpec::new(
        "url",
        "connection URL when there is no LOCATION, e.g. jdbc:postgresql://host:5432/db or jdbc:redshift://... (Spark's spelling)",
    ),
    ParamSpec::new("table", "the remote table, [schema.]name (default schema public)"),
    ParamSpec::new("dbtable", "Spark's name for 'table'"),
    ParamSpec::new("user", "user name (or in the URL)"),
    ParamSpec::new("password", "password, as a reference such as ${env:PG_PASSWORD}").secret(),
    ParamSpec::new("sslmode", "disable (default) or require / verify-full: TLS, verifying the server's certificate"),
    ParamSpec::new(
        "sslrootcert",
        "PEM file of the CA that signed the server's certificate (default: the public web roots)",
    ),
    ParamSpec::new("fetchsize", "rows per round trip when reading with a cursor (default: the session's batch size)"),
    ParamSpec::new("partitioncolumn", "integer column to split scans on, read in parallel (with numpartitions)"),
    ParamSpec::new("numpartitions", "how many parallel reads partitioncolumn splits a scan into"),
    ParamSpec::new(
        "lowerbound",
        "partitioncolumn value where the first split ends (default: its minimum); no row is left out",
    ),
    ParamSpec::new(
        "upperbound",
        "partitioncolumn value where the last split starts (default: its maximum); no row is left out",
    ),
    ParamSpec::new("driver", "Spark's JDBC driver class: accepted and ignored"),
];

/// The SQL flavour of the remote database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    Postgres,
    Redshift,
}

impl Dialect {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Postgres => "PostgreSQL",
            Self::Redshift => "Redshift",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Redshift => "redshift",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Self::Postgres => 5432,
            Self::Redshift => 5439,
        }
    }

    /// The dialect a URL's scheme names (`postgres://`, `jdbc:redshift://`, ...).
    fn of_scheme(scheme: &str) -> Option<Self> {
        match scheme {
            "postgres" | "postgresql" => Some(Self::Postgres),
            "redshift" => Some(Self::Redshift),
            _ => None,
        }
    }
}

/// Errors of the PostgreSQL and Redshift sources, each naming the server it is about and
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

/// Where a table lives and who connects: everything but the password identifies a pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Server {
    pub(crate) dialect: Dialect,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) database: String,
    pub(crate) user: String,
    pub(crate) tls: bool,
    pub(crate) root_cert: Option<String>,
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {}:{} (database {})", self.dialect.name(), self.host, self.port, self.database)
    }
}

/// A table's connection settings, read from its location and options.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    pub(crate) server: Server,
    password: Option<String>,
    /// `[schema.]table` as written.
    pub(crate) table: String,
}

impl Connection {
    /// Reads `location` (`postgres://user@host:5432/db`, `jdbc:postgresql://...`,
    /// `jdbc:redshift://...?user=..&password=..`) and the resolved options; options win.
    ///
    /// # Errors
    /// [`Error::Location`] for an unparseable URL or one without host or database.
    pub(crate) fn parse(location: &str, options: &BTreeMap<String, String>, dialect: Dialect) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::Location {
            dialect: dialect.name(),
            location: mask_url(location),
            reason: reason.to_owned(),
        };
        let url =
            Url::parse(location.strip_prefix("jdbc:").unwrap_or(location)).map_err(|e| invalid(&e.to_string()))?;
        if Dialect::of_scheme(url.scheme()).is_none() {
            return Err(invalid("expected a postgres://, postgresql:// or redshift:// URL (jdbc: prefix allowed)"));
        }
        let query: HashMap<String, String> =
            url.query_pairs().map(|(k, v)| (k.to_lowercase(), v.into_owned())).collect();
        let decoded = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| invalid("no host"))?.to_owned();
        let database = decoded(url.path().trim_start_matches('/'));
        if database.is_empty() {
            return Err(invalid("no database: write postgres://host:5432/<database>"));
        }
        let user = options
            .get("user")
            .cloned()
            .or_else(|| (!url.username().is_empty()).then(|| decoded(url.username())))
            .or_else(|| query.get("user").cloned())
            .ok_or_else(|| invalid("no user: give OPTIONS (user '...') or postgres://<user>@host/db"))?;
        let password = options
            .get("password")
            .cloned()
            .or_else(|| url.password().map(decoded))
            .or_else(|| query.get("password").cloned());
        let sslmode = options
            .get("sslmode")
            .cloned()
            .or_else(|| query.get("sslmode").cloned())
            .or_else(|| query.get("ssl").filter(|v| *v == "true").map(|_| "require".to_owned()))
            .unwrap_or_else(|| "disable".to_owned());
        let tls = match sslmode.as_str() {
            "disable" | "allow" | "prefer" => false,
            "require" | "verify-ca" | "verify-full" => true,
            other => {
                return Err(invalid(&format!(
                    "unknown sslmode '{other}' (disable, require, verify-ca or verify-full)"
                )));
            }
        };
        let table = options.get("table").or_else(|| options.get("dbtable")).cloned().unwrap_or_default();
        Ok(Self {
            server: Server {
                dialect,
                host,
                port: url.port().unwrap_or(dialect.default_port()),
                database,
                user,
                tls,
                root_cert: options.get("sslrootcert").cloned(),
            },
            password,
            table,
        })
    }

    /// The location without credentials, as the catalog stores it.
    fn location(&self) -> String {
        let s = &self.server;
        let mut url = format!("{}://{}:{}/{}", s.dialect.kind(), s.host, s.port, s.database);
        if s.tls {
            url.push_str("?sslmode=require");
        }
        url
    }

    /// `(schema, table)`, quoted names taken literally and plain ones folded to lower case
    /// as the database does.
    ///
    /// # Errors
    /// No table given, or something other than a `[schema.]table` name (e.g. a subquery).
    pub(crate) fn schema_and_table(&self) -> Result<(String, String), Error> {
        let invalid =
            |reason: String| Error::Location { dialect: self.server.dialect.name(), location: self.location(), reason };
        if self.table.is_empty() {
            return Err(invalid("no table: give OPTIONS (table 'schema.name')".into()));
        }
        let name = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(&self.table)
            .and_then(|mut p| p.parse_object_name(false))
            .map_err(|e| invalid(format!("table '{}' is not a [schema.]name ({e})", self.table)))?;
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|part| part.as_ident())
            .map(|i| if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() })
            .collect();
        match parts.as_slice() {
            [table] => Ok(("public".to_owned(), table.clone())),
            [schema, table] => Ok((schema.clone(), table.clone())),
            _ => Err(invalid(format!("table '{}' is not a [schema.]name", self.table))),
        }
    }
}

/// `url` with any password replaced by `***`, for messages.
pub(crate) fn mask_url(url: &str) -> String {
    let (prefix, rest) = url.strip_prefix("jdbc:").map_or(("", url), |r| ("jdbc:", r));
    match Url::parse(rest) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
            if pairs.iter().any(|(k, _)| k.eq_ignore_ascii_case("password")) {
                let mut query = parsed.query_pairs_mut();
                query.clear();
                for (k, v) in &pairs {
                    query.append_pair(k, if k.eq_ignore_ascii_case("password") { "***" } else { v });
                }
            }
            format!("{prefix}{parsed}")
        }
        Err(_) => "(unparseable URL)".to_owned(),
    }
}

/// Connection pools, one per server and user, shared by every table and session.
#[derive(Debug, Default)]
pub struct Pools(Mutex<HashMap<(Server, Option<String>), Pool>>);

impl Pools {
    /// The pool for `connection`, created on first use (no connection is opened until then).
    ///
    /// # Errors
    /// A TLS root certificate file that cannot be read.
    pub(crate) fn get(&self, connection: &Connection) -> Result<Pool, Error> {
        let key = (connection.server.clone(), connection.password.clone());
        let mut pools = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(pool) = pools.get(&key) {
            return Ok(pool.clone());
        }
        let server = &connection.server;
        let mut config = tokio_postgres::Config::new();
        config
            .host(&server.host)
            .port(server.port)
            .dbname(&server.database)
            .user(&server.user)
            .application_name("lakegate")
            .connect_timeout(Duration::from_secs(10));
        if let Some(password) = &connection.password {
            config.password(password);
        }
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = if server.tls {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            Manager::from_config(config, tls_connector(server)?, manager_config)
        } else {
            Manager::from_config(config, tokio_postgres::NoTls, manager_config)
        };
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(15)))
            .build()
            .map_err(|e| Error::Connect { server: server.to_string(), cause: e.to_string() })?;
        pools.insert(key, pool.clone());
        Ok(pool)
    }
}

fn tls_connector(server: &Server) -> Result<tokio_postgres_rustls::MakeRustlsConnect, Error> {
    let connect_error = |cause: String| Error::Connect { server: server.to_string(), cause };
    let mut roots = rustls::RootCertStore::empty();
    match &server.root_cert {
        Some(path) => {
            let pem =
                std::fs::read(path).map_err(|e| connect_error(format!("cannot read sslrootcert '{path}': {e}")))?;
            for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| connect_error(format!("sslrootcert '{path}': {e}")))?;
                roots.add(cert).map_err(|e| connect_error(format!("sslrootcert '{path}': {e}")))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| connect_error(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// A pooled connection, with connection errors told apart from authentication failures.
pub(crate) async fn connect(pool: &Pool, server: &Server) -> Result<deadpool_postgres::Object, Error> {
    pool.get().await.map_err(|e| {
        let cause = match &e {
            deadpool_postgres::PoolError::Backend(pg) => {
                let auth = pg.code().is_some_and(|c| c.code().starts_with("28"));
                if auth {
                    return Error::Authentication {
                        user: server.user.clone(),
                        server: server.to_string(),
                        cause: describe(pg),
                    };
                }
                describe(pg)
            }
            other => other.to_string(),
        };
        Error::Connect { server: server.to_string(), cause }
    })
}

/// The PostgreSQL and Redshift sources: one implementation, two dialects.
#[derive(Debug)]
pub struct RemoteSource {
    dialect: Dialect,
    pools: Arc<Pools>,
    /// Where Redshift's UNLOAD files are read from.
    stores: Arc<ObjectStores>,
}

impl RemoteSource {
    pub fn new(dialect: Dialect, pools: Arc<Pools>, stores: Arc<ObjectStores>) -> Self {
        Self { dialect, pools, stores }
    }

    /// The connection of `spec`, whose options are `resolved`. Spark's `url` option stands in
    /// for a missing LOCATION; the URL's scheme may switch a JDBC table to Redshift.
    fn connection(&self, spec: &TableSpec, resolved: &BTreeMap<String, String>) -> Result<Connection, Error> {
        let location = self.location_of(spec, resolved);
        if location.is_empty() {
            return Err(Error::Location {
                dialect: self.dialect.name(),
                location: String::new(),
                reason: format!("give LOCATION '{}://host:port/database' or OPTIONS (url '...')", self.dialect.kind()),
            });
        }
        let scheme = location.strip_prefix("jdbc:").unwrap_or(&location).split("://").next().unwrap_or_default();
        let dialect = Dialect::of_scheme(scheme).unwrap_or(self.dialect);
        let mut connection = Connection::parse(&location, resolved, dialect)?;
        // A reference may also sit in the URL itself (`...?password=${env:RS_PASSWORD}`).
        connection.password =
            connection.password.map(|p| lakegate_catalog::resolve_reference(&p)).transpose().map_err(|e| {
                Error::Location { dialect: dialect.name(), location: mask_url(&location), reason: e.to_string() }
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
        spec.kind = connection.server.dialect.kind().to_owned();
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

    /// The connection's pool and the remote table's columns.
    ///
    /// # Errors
    /// Unreachable server, failed authentication, [`Error::NoSuchTable`].
    async fn remote(&self, connection: &Connection) -> DFResult<(Pool, Vec<RemoteColumn>)> {
        let (schema, table) = connection.schema_and_table()?;
        let pool = self.pools.get(connection)?;
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
    pub(crate) async fn create(&self, spec: &TableSpec, resolved: &BTreeMap<String, String>) -> DFResult<RemoteTable> {
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

#[async_trait]
impl SourceFactory for RemoteSource {
    fn kind(&self) -> &'static str {
        self.dialect.kind()
    }

    fn aliases(&self) -> &'static [&'static str] {
        match self.dialect {
            Dialect::Postgres => &["postgresql", "aurora", "jdbc", "org.apache.spark.sql.jdbc"],
            Dialect::Redshift => {
                &["com.databricks.spark.redshift", "io.github.spark_redshift_community.spark.redshift"]
            }
        }
    }

    fn params(&self) -> &'static [ParamSpec] {
        match self.dialect {
            Dialect::Postgres => PARAMS,
            Dialect::Redshift => &super::redshift::PARAMS,
        }
    }

    async fn prepare(&self, _session: &dyn Session, spec: TableSpec) -> DFResult<TableSpec> {
        let resolved = self.resolve_options(&spec)?;
        RemoteSource::prepare(self, spec, &resolved).await
    }

    async fn create(&self, spec: &TableSpec) -> DFResult<Arc<dyn TableProvider>> {
        let resolved = self.resolve_options(spec)?;
        let table = RemoteSource::create(self, spec, &resolved).await?;
        match self.dialect {
            Dialect::Postgres => Ok(Arc::new(table)),
            Dialect::Redshift => {
                Ok(Arc::new(super::redshift::RedshiftTable::new(table, &resolved, Arc::clone(&self.stores))?))
            }
        }
    }
}

/// A remote table as DataFusion sees it.
#[derive(Debug)]
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
        let fetch = self.options.fetch_size.unwrap_or(state.config().batch_size());
        Ok(Arc::new(PostgresScanExec::new(self, schema, queries, fetch)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn every_url_spelling_gives_one_server() {
        let plain =
            Connection::parse("postgres://app@db.internal/shop", &options(&[("table", "users")]), Dialect::Postgres)
                .expect("url");
        let jdbc = Connection::parse(
            "jdbc:postgresql://db.internal:5432/shop?user=app&password=secret",
            &options(&[("dbtable", "users")]),
            Dialect::Postgres,
        )
        .expect("jdbc url");
        assert_eq!(plain.server, jdbc.server);
        assert_eq!(jdbc.password.as_deref(), Some("secret"));
        assert_eq!(jdbc.location(), "postgres://db.internal:5432/shop");
        let redshift =
            Connection::parse("jdbc:redshift://wh.example:5439/dev?user=etl", &BTreeMap::new(), Dialect::Redshift)
                .expect("redshift");
        assert_eq!((redshift.server.port, redshift.server.dialect), (5439, Dialect::Redshift));
    }

    #[test]
    fn bad_locations_are_explained_without_the_password() {
        let err = Connection::parse("postgres://app:hunter2@db.internal", &BTreeMap::new(), Dialect::Postgres)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no database") && !err.contains("hunter2"), "{err}");
        let err =
            Connection::parse("mysql://db/x", &options(&[("user", "a")]), Dialect::Postgres).unwrap_err().to_string();
        assert!(err.contains("postgres://"), "{err}");
        assert_eq!(
            mask_url("jdbc:redshift://h:5439/dev?user=etl&password=s3cret"),
            "jdbc:redshift://h:5439/dev?user=etl&password=***"
        );
    }

    #[test]
    fn table_names_fold_like_postgres() {
        let with = |table: &str| {
            Connection::parse("postgres://a@h/d", &options(&[("table", table)]), Dialect::Postgres).expect("url")
        };
        assert_eq!(with("Users").schema_and_table().expect("name"), ("public".into(), "users".into()));
        assert_eq!(with(r#"crm."Users""#).schema_and_table().expect("name"), ("crm".into(), "Users".into()));
        assert!(with("(SELECT 1) t").schema_and_table().is_err());
    }
}
