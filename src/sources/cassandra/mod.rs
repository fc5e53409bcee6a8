//! Cassandra and ScyllaDB tables, read with the `scylla` driver.
//!
//! `CREATE EXTERNAL TABLE t STORED AS CASSANDRA LOCATION 'cassandra://host:9042/ks/table'`, or
//! Spark's `USING org.apache.spark.sql.cassandra OPTIONS (keyspace 'ks', table 'table')` with
//! the contact points of `[cassandra]` in the config file. Registration reads the schema from
//! the cluster's metadata; scans split the token ring into ranges read in parallel, or, when
//! the filters fix the partition key, read only those partitions (see `pushdown`).

mod connection;
mod exec;
mod pushdown;
mod schema;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session as DfSession, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use lakegate_catalog::{Capabilities, ColumnSpec, ParamSpec, SourceFactory, TableSpec};
use scylla::client::session::Session;
use scylla::cluster::metadata::Table;
use scylla::statement::prepared::PreparedStatement;

pub use self::connection::CassandraConfig;
use self::connection::{CONSISTENCY_LEVELS, Sessions, Target};
pub(crate) use self::exec::{CassandraScanExec, ScanRecipe};
use self::pushdown::TokenRange;

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
        .one_of(CONSISTENCY_LEVELS)
        .default("LOCAL_ONE"),
    ParamSpec::new("fetch_size", "rows per page fetched from Cassandra").integer(1, i32::MAX as i64).default("5000"),
    ParamSpec::new("splits", "token ranges a full scan is split into (0: one per range of the ring)")
        .integer(0, i64::MAX)
        .default("0"),
    ParamSpec::new("allow_filtering", "push comparisons on any column with ALLOW FILTERING (true/false)")
        .bool()
        .default("false"),
];

#[derive(Debug)]
pub struct CassandraSource {
    config: CassandraConfig,
    sessions: Sessions,
}

impl CassandraSource {
    pub fn new(config: CassandraConfig) -> Self {
        Self { config, sessions: Sessions::default() }
    }

    fn target(&self, spec: &TableSpec) -> DFResult<Target> {
        Target::new(spec, &self.resolve_options(spec)?, &self.config)
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
            return Err(unknown_keyspace(&state, target));
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

/// The error for a keyspace the cluster does not have, naming the ones it has.
fn unknown_keyspace(state: &scylla::cluster::ClusterState, target: &Target) -> Error {
    let mut known: Vec<&str> = state.keyspaces_iter().map(|(k, _)| k).filter(|k| !k.starts_with("system")).collect();
    known.sort_unstable();
    Error::UnknownKeyspace {
        keyspace: target.keyspace.clone(),
        contact_points: target.contact_points(),
        known: known.join(", "),
    }
}

#[async_trait]
impl SourceFactory for CassandraSource {
    fn kind(&self) -> &'static str {
        "cassandra"
    }

    fn name(&self) -> &'static str {
        "Cassandra"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["org.apache.spark.sql.cassandra", "scylla", "scylladb"]
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    /// Its scans run on a cluster's executors, each with its own session to Cassandra; each
    /// group of token ranges is a task.
    fn capabilities(&self) -> Capabilities {
        Capabilities { runs_on_cluster: true, ..Capabilities::default() }
    }

    /// The tables of the keyspace a mounted database (`LOCATION 'cassandra://host:9042/ks'`) shows.
    async fn list_tables(&self, mount: &TableSpec) -> DFResult<Vec<String>> {
        let mut probe = mount.clone();
        probe.options.insert("table".into(), String::new());
        let target = self.target(&probe)?;
        let session = self.sessions.get(&target).await?;
        session
            .refresh_metadata()
            .await
            .map_err(|e| Error::Connect { contact_points: target.contact_points(), source: Box::new(e) })?;
        let state = session.get_cluster_state();
        let Some(keyspace) = state.get_keyspace(&target.keyspace) else {
            return Err(unknown_keyspace(&state, &target).into());
        };
        let mut names: Vec<String> = keyspace.tables.keys().cloned().collect();
        names.sort();
        Ok(names)
    }

    async fn prepare(&self, _session: &dyn DfSession, mut spec: TableSpec) -> DFResult<TableSpec> {
        let target = self.target(&spec)?;
        let session = self.sessions.get(&target).await?;
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
        let session = self.sessions.get(&target).await?;
        let table = self.metadata(&session, &target, false).await?;
        let keys = pushdown::Keys {
            partition: table.partition_key.clone(),
            clustering: table.clustering_key.clone(),
            types: table.columns.iter().map(|(name, c)| (name.clone(), c.typ.clone())).collect(),
        };
        Ok(Arc::new(CassandraTable {
            spec: Arc::new(spec.clone()),
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
pub(crate) struct CassandraTable {
    spec: Arc<TableSpec>,
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
        let pushed: Vec<&Expr> = filters.iter().collect();
        let fixed = !pushdown::plan(&pushed, &self.keys, self.remote.target.allow_filtering).partition.is_empty();
        let partitions = if fixed {
            vec![vec![TokenRange { start: None, end: None }]]
        } else {
            self.token_ranges(state.config().target_partitions())
        };
        let scan = exec::Scan { projection: projection.cloned(), filters: filters.to_vec(), limit, partitions };
        Ok(Arc::new(exec::CassandraScanExec::new(self, scan)?))
    }
}

impl CassandraTable {
    /// The token ring split into ranges (at least the table's `splits`), dealt round-robin to
    /// at most `partitions` groups.
    fn token_ranges(&self, partitions: usize) -> Vec<Vec<TokenRange>> {
        let ring = self.remote.ring();
        let ring_ranges = ring.len().max(1) + 1;
        let per_range = self.remote.target.splits.div_ceil(ring_ranges).max(1);
        let ranges = pushdown::token_ranges(&ring, per_range);
        let width = partitions.clamp(1, ranges.len());
        let mut groups = vec![Vec::new(); width];
        for (i, range) in ranges.into_iter().enumerate() {
            groups[i % width].push(range);
        }
        groups
    }

    /// The scan `recipe` describes, over this table (built on this node from the recipe's
    /// spec: its session is this process's).
    pub(crate) fn scan_from(&self, recipe: exec::ScanRecipe) -> DFResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(exec::CassandraScanExec::new(self, recipe.scan)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(options: &[(&str, &str)]) -> TableSpec {
        TableSpec {
            database: "default".into(),
            name: "t".into(),
            kind: "cassandra".into(),
            location: "cassandra://h:9042/ks/t".into(),
            options: options.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            columns: Vec::new(),
            partition_columns: Vec::new(),
            comment: None,
        }
    }

    #[test]
    fn consistency_levels_parse_and_typos_are_named() {
        let source = CassandraSource::new(CassandraConfig::default());
        let target = source.target(&spec(&[("consistency", "local_quorum")])).expect("valid");
        assert_eq!(target.consistency, scylla::statement::Consistency::LocalQuorum);
        assert_eq!((target.fetch_size, target.splits, target.allow_filtering), (5000, 0, false));
        let bad = PARAMS.iter().find(|p| p.name == "consistency").expect("declared").check("QUORAM");
        assert!(bad.unwrap_err().to_string().contains("QUORAM"));
    }
}
