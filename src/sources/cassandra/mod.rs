//! Cassandra and ScyllaDB tables, read with the `scylla` driver.
//!
//! `CREATE EXTERNAL TABLE t STORED AS CASSANDRA LOCATION 'cassandra://host:9042/ks/table'`, or
//! Spark's `USING org.apache.spark.sql.cassandra OPTIONS (keyspace 'ks', table 'table')` with
//! the contact points of `[cassandra]` in the config file. Registration reads the schema from
//! the cluster's metadata; scans split the token ring into ranges read in parallel, or, when
//! the filters fix the partition key, read only those partitions (see `pushdown`).

mod exec;
mod pushdown;
mod schema;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session as DfSession, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use lakegate_catalog::{ColumnSpec, ParamSpec, SourceFactory, TableSpec};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::cluster::metadata::Table;
use scylla::statement::Consistency;
use scylla::statement::prepared::PreparedStatement;
use serde::Deserialize;

/// `[cassandra]`: the cluster that Cassandra tables without contact points of their own read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CassandraConfig {
    /// `host:port` of one or more nodes; the driver discovers the rest of the cluster.
    pub contact_points: Vec<String>,
    pub username: Option<String>,
    /// A `${env:NAME}` reference (or a literal).
    pub password: Option<String>,
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong with a Cassandra table, each naming what to check.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no Cassandra contact points for {table}: give LOCATION 'cassandra://host:9042/keyspace/table', \
         OPTIONS (contact_points 'host:9042'), or contact_points in the [cassandra] section of lakegate.toml"
    )]
    NoContactPoints { table: String },
    #[error(
        "Cassandra table {table} needs a keyspace and a table: LOCATION 'cassandra://host:port/keyspace/table' or OPTIONS (keyspace '...', table '...')"
    )]
    NoKeyspaceOrTable { table: String },
    #[error("bad Cassandra location '{location}': expected cassandra://host:port[,host:port...]/keyspace/table")]
    BadLocation { location: String },
    #[error("cannot connect to Cassandra at {contact_points}: {source}")]
    Connect { contact_points: String, source: Box<dyn std::error::Error + Send + Sync> },
    #[error("Cassandra keyspace '{keyspace}' does not exist at {contact_points} (keyspaces: {known})")]
    UnknownKeyspace { keyspace: String, contact_points: String, known: String },
    #[error("Cassandra table '{keyspace}.{table}' does not exist at {contact_points} (tables in {keyspace}: {known})")]
    UnknownTable { keyspace: String, table: String, contact_points: String, known: String },
    #[error("column '{column}' of Cassandra table {table} does not exist (columns: {known})")]
    UnknownColumn { table: String, column: String, known: String },
    #[error("column '{column}': CQL type {cql} has no Arrow mapping")]
    UnsupportedType { column: String, cql: String },
    #[error("option '{key}': {message}")]
    BadOption { key: &'static str, message: String },
    #[error("column '{column}': value {value} does not fit {data_type}")]
    Conversion { column: String, value: String, data_type: String },
    #[error("Cassandra table {table} at {contact_points}: {source}")]
    Query { table: String, contact_points: String, source: Box<dyn std::error::Error + Send + Sync> },
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
}

impl From<Error> for DataFusionError {
    fn from(e: Error) -> Self {
        DataFusionError::External(Box::new(e))
    }
}

const PARAMS: &[ParamSpec] = &[
    ParamSpec::new("keyspace", "the keyspace (Spark's spelling; or give it in LOCATION)"),
    ParamSpec::new("table", "the table (Spark's spelling; or give it in LOCATION)"),
    ParamSpec::new("contact_points", "host:port[,host:port...]; default: LOCATION's, else [cassandra] contact_points"),
    ParamSpec::new("username", "user for password authentication"),
    ParamSpec::new("password", "password, as a reference such as ${env:CASSANDRA_PASSWORD}").secret(),
    ParamSpec::new("consistency", "read consistency level: ONE, LOCAL_ONE, QUORUM, LOCAL_QUORUM, ALL, ...")
        .default("LOCAL_ONE"),
    ParamSpec::new("fetch_size", "rows per page fetched from Cassandra").default("5000"),
    ParamSpec::new("splits", "token ranges a full scan is split into (0: one per range of the ring)").default("0"),
    ParamSpec::new("allow_filtering", "push comparisons on any column with ALLOW FILTERING (true/false)")
        .default("false"),
];

/// Where a table lives and how to read it, from its LOCATION, OPTIONS and the config.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    contact_points: Vec<String>,
    keyspace: String,
    table: String,
    username: Option<String>,
    password: Option<String>,
    consistency: Consistency,
    fetch_size: i32,
    splits: usize,
    allow_filtering: bool,
}

impl Target {
    fn label(&self) -> String {
        format!("{}.{}", self.keyspace, self.table)
    }

    fn contact_points(&self) -> String {
        self.contact_points.join(",")
    }
}

/// `cassandra://h1:9042,h2:9042/ks/table` → (hosts, keyspace, table); every part optional.
fn parse_location(location: &str) -> Result<(Vec<String>, Option<String>, Option<String>)> {
    if location.is_empty() {
        return Ok((Vec::new(), None, None));
    }
    let bad = || Error::BadLocation { location: location.to_owned() };
    let rest = location.strip_prefix("cassandra://").ok_or_else(bad)?;
    let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
    let hosts = hosts.split(',').filter(|h| !h.is_empty()).map(str::to_owned).collect();
    let mut parts = path.split('/').filter(|p| !p.is_empty()).map(str::to_owned);
    let (keyspace, table) = (parts.next(), parts.next());
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok((hosts, keyspace, table))
}

fn consistency(value: &str) -> Result<Consistency> {
    Ok(match value.to_ascii_uppercase().as_str() {
        "ANY" => Consistency::Any,
        "ONE" => Consistency::One,
        "TWO" => Consistency::Two,
        "THREE" => Consistency::Three,
        "QUORUM" => Consistency::Quorum,
        "ALL" => Consistency::All,
        "LOCAL_QUORUM" => Consistency::LocalQuorum,
        "EACH_QUORUM" => Consistency::EachQuorum,
        "LOCAL_ONE" => Consistency::LocalOne,
        "SERIAL" => Consistency::Serial,
        "LOCAL_SERIAL" => Consistency::LocalSerial,
        _ => {
            return Err(Error::BadOption {
                key: "consistency",
                message: format!(
                    "'{value}' is not a consistency level (ONE, LOCAL_ONE, QUORUM, LOCAL_QUORUM, ALL, ...)"
                ),
            });
        }
    })
}

fn number<T: std::str::FromStr>(options: &BTreeMap<String, String>, key: &'static str) -> Result<T> {
    let value = options.get(key).map(String::as_str).unwrap_or_default();
    value.parse().map_err(|_| Error::BadOption { key, message: format!("'{value}' is not a valid number") })
}

/// One driver session per set of contact points and credentials, shared by every table with
/// the same ones: a table with the right user and a wrong password never rides on another
/// table's signed-in session. The password is kept only as a digest.
type SessionKey = (Vec<String>, Option<String>, Option<[u8; 32]>);

#[derive(Debug)]
pub struct CassandraSource {
    config: CassandraConfig,
    sessions: tokio::sync::Mutex<HashMap<SessionKey, Arc<Session>>>,
}

impl CassandraSource {
    pub fn new(config: CassandraConfig) -> Self {
        Self { config, sessions: tokio::sync::Mutex::default() }
    }

    fn target(&self, spec: &TableSpec) -> DFResult<Target> {
        let options = self.resolve_options(spec)?;
        let (hosts, keyspace, table) = parse_location(&spec.location)?;
        let from_options = options.get("contact_points").map(|c| c.split(',').map(|h| h.trim().to_owned()).collect());
        let contact_points: Vec<String> = from_options
            .or_else(|| (!hosts.is_empty()).then_some(hosts))
            .unwrap_or_else(|| self.config.contact_points.clone());
        if contact_points.is_empty() {
            return Err(Error::NoContactPoints { table: spec.qualified_name() }.into());
        }
        let keyspace = options.get("keyspace").cloned().or(keyspace);
        let table = options.get("table").cloned().or(table);
        let (Some(keyspace), Some(table)) = (keyspace, table) else {
            return Err(Error::NoKeyspaceOrTable { table: spec.qualified_name() }.into());
        };
        let username = options.get("username").cloned().or_else(|| self.config.username.clone());
        let password = match options.get("password") {
            Some(p) => Some(p.clone()),
            None => self.config.password.as_deref().map(lakegate_catalog::resolve_reference).transpose()?,
        };
        let allow_filtering = options.get("allow_filtering").map(String::as_str).unwrap_or("false");
        let allow_filtering = allow_filtering.parse().map_err(|_| Error::BadOption {
            key: "allow_filtering",
            message: format!("'{allow_filtering}' is not true or false"),
        })?;
        let fetch_size: i32 = number(&options, "fetch_size")?;
        if fetch_size <= 0 {
            return Err(Error::BadOption { key: "fetch_size", message: "must be positive".into() }.into());
        }
        Ok(Target {
            contact_points,
            keyspace,
            table,
            username,
            password,
            consistency: consistency(options.get("consistency").map(String::as_str).unwrap_or("LOCAL_ONE"))?,
            fetch_size,
            splits: number(&options, "splits")?,
            allow_filtering,
        })
    }

    /// The shared session for `target`'s cluster, connecting on first use.
    async fn session(&self, target: &Target) -> Result<Arc<Session>> {
        let mut key_points = target.contact_points.clone();
        key_points.sort();
        let password = target.password.as_ref().map(|p| {
            use sha2::Digest;
            sha2::Sha256::digest(p.as_bytes()).into()
        });
        let key = (key_points, target.username.clone(), password);
        let mut sessions = self.sessions.lock().await;
        if let Some(session) = sessions.get(&key) {
            return Ok(Arc::clone(session));
        }
        let mut builder =
            SessionBuilder::new().known_nodes(&target.contact_points).connection_timeout(Duration::from_secs(10));
        if let Some(user) = &target.username {
            builder = builder.user(user, target.password.clone().unwrap_or_default());
        }
        let session = builder
            .build()
            .await
            .map_err(|e| Error::Connect { contact_points: target.contact_points(), source: Box::new(e) })?;
        let session = Arc::new(session);
        sessions.insert(key, Arc::clone(&session));
        Ok(session)
    }

    /// The table's metadata, refreshing the driver's copy once if it does not know the table
    /// (it may have been created a moment ago).
    async fn metadata(&self, session: &Session, target: &Target, refresh: bool) -> Result<Table> {
        let connect_error = |e: Box<dyn std::error::Error + Send + Sync>| Error::Connect {
            contact_points: target.contact_points(),
            source: e,
        };
        if refresh {
            session.refresh_metadata().await.map_err(|e| connect_error(Box::new(e)))?;
        }
        let state = session.get_cluster_state();
        let Some(keyspace) = state.get_keyspace(&target.keyspace) else {
            if !refresh {
                return Box::pin(self.metadata(session, target, true)).await;
            }
            let mut known: Vec<&str> =
                state.keyspaces_iter().map(|(k, _)| k).filter(|k| !k.starts_with("system")).collect();
            known.sort_unstable();
            return Err(Error::UnknownKeyspace {
                keyspace: target.keyspace.clone(),
                contact_points: target.contact_points(),
                known: known.join(", "),
            });
        };
        match keyspace.tables.get(&target.table) {
            Some(table) => Ok(table.clone()),
            None if !refresh => Box::pin(self.metadata(session, target, true)).await,
            None => {
                let mut known: Vec<&str> = keyspace.tables.keys().map(String::as_str).collect();
                known.sort_unstable();
                Err(Error::UnknownTable {
                    keyspace: target.keyspace.clone(),
                    table: target.table.clone(),
                    contact_points: target.contact_points(),
                    known: known.join(", "),
                })
            }
        }
    }
}

#[async_trait]
impl SourceFactory for CassandraSource {
    fn kind(&self) -> &'static str {
        "cassandra"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["org.apache.spark.sql.cassandra", "scylla", "scylladb"]
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    async fn prepare(&self, _session: &dyn DfSession, mut spec: TableSpec) -> DFResult<TableSpec> {
        let target = self.target(&spec)?;
        let session = self.session(&target).await?;
        let table = self.metadata(&session, &target, true).await?;
        let order = schema::ordered_columns(&table);
        let discovered = order
            .iter()
            .map(|name| {
                let column = &table.columns[*name];
                Ok(ColumnSpec::new(*name, &schema::arrow_type(name, &column.typ)?, true))
            })
            .collect::<Result<Vec<_>>>()?;
        if spec.columns.is_empty() {
            spec.columns = discovered;
        } else {
            // Declared columns are a projection of the remote table, with its types.
            spec.columns = spec
                .columns
                .iter()
                .map(|declared| {
                    discovered.iter().find(|c| c.name == declared.name).cloned().ok_or_else(|| Error::UnknownColumn {
                        table: target.label(),
                        column: declared.name.clone(),
                        known: order.join(", "),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
        }
        spec.kind = self.kind().to_owned();
        if spec.location.is_empty() {
            spec.location = format!("cassandra:///{}/{}", target.keyspace, target.table);
        }
        Ok(spec)
    }

    async fn create(&self, spec: &TableSpec) -> DFResult<Arc<dyn TableProvider>> {
        let target = self.target(spec)?;
        let session = self.session(&target).await?;
        let table = self.metadata(&session, &target, false).await?;
        let keys = pushdown::Keys {
            partition: table.partition_key.clone(),
            clustering: table.clustering_key.clone(),
            types: table.columns.iter().map(|(name, c)| (name.clone(), c.typ.clone())).collect(),
        };
        Ok(Arc::new(CassandraTable {
            schema: spec.data_schema()?,
            keys,
            remote: Arc::new(Remote { session, target, prepared: Mutex::default() }),
        }))
    }
}

/// The cluster side of a table: its session, and the statements prepared for it so far.
#[derive(Debug)]
pub(crate) struct Remote {
    session: Arc<Session>,
    target: Target,
    prepared: Mutex<HashMap<String, PreparedStatement>>,
}

impl Remote {
    /// `cql`, prepared once per table and reused by later scans.
    async fn prepared(&self, cql: &str) -> Result<PreparedStatement> {
        let cached = self.prepared.lock().unwrap_or_else(|p| p.into_inner()).get(cql).cloned();
        if let Some(statement) = cached {
            return Ok(statement);
        }
        let mut statement = self.session.prepare(cql).await.map_err(|e| self.query_error(e))?;
        statement.set_consistency(self.target.consistency);
        statement.set_page_size(self.target.fetch_size);
        self.prepared.lock().unwrap_or_else(|p| p.into_inner()).insert(cql.to_owned(), statement.clone());
        Ok(statement)
    }

    fn query_error(&self, e: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Query { table: self.target.label(), contact_points: self.target.contact_points(), source: Box::new(e) }
    }

    /// The tokens of the ring, as the driver last saw them.
    fn ring(&self) -> Vec<i64> {
        let state = self.session.get_cluster_state();
        state.replica_locator().ring().iter().map(|(token, _)| token.value()).collect()
    }
}

#[derive(Debug)]
struct CassandraTable {
    schema: SchemaRef,
    keys: pushdown::Keys,
    remote: Arc<Remote>,
}

#[async_trait]
impl TableProvider for CassandraTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DFResult<Vec<TableProviderFilterPushDown>> {
        let plan = pushdown::plan(filters, &self.keys, self.remote.target.allow_filtering);
        Ok(plan
            .pushed
            .iter()
            .map(|&p| if p { TableProviderFilterPushDown::Exact } else { TableProviderFilterPushDown::Unsupported })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let filters: Vec<&Expr> = filters.iter().collect();
        let plan = pushdown::plan(&filters, &self.keys, self.remote.target.allow_filtering);
        if plan.pushed.iter().any(|p| !p) {
            return Err(DataFusionError::Internal(format!(
                "Cassandra table {} was handed filters it did not accept",
                self.remote.target.label()
            )));
        }
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => Arc::clone(&self.schema),
        };
        let partitions = state.config().target_partitions();
        Ok(Arc::new(exec::CassandraScanExec::new(
            Arc::clone(&self.remote),
            &self.keys,
            plan,
            schema,
            limit,
            partitions,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_name_hosts_keyspace_and_table() {
        let (hosts, ks, t) = parse_location("cassandra://a:9042,b:9043/shop/programs").expect("valid");
        assert_eq!(hosts, ["a:9042", "b:9043"]);
        assert_eq!((ks.as_deref(), t.as_deref()), (Some("shop"), Some("programs")));
        let (hosts, ks, t) = parse_location("cassandra:///shop/programs").expect("valid");
        assert!(hosts.is_empty());
        assert_eq!((ks.as_deref(), t.as_deref()), (Some("shop"), Some("programs")));
        assert!(parse_location("postgres://x/y").is_err());
        assert!(parse_location("cassandra://h/a/b/c").is_err());
    }

    #[test]
    fn consistency_levels_parse_and_typos_are_named() {
        assert_eq!(consistency("local_quorum").expect("valid"), Consistency::LocalQuorum);
        assert!(consistency("QUORAM").unwrap_err().to_string().contains("QUORAM"));
    }
}
