//! An existing Hive Metastore or AWS Glue Data Catalog as a catalog beside lakegate's own: its
//! databases and tables appear as `<catalog>.<database>.<table>` (as in Trino), read through
//! to the metastore with a short cache, nothing copied. A query's partitions come from the metastore's partition
//! list, filtered there by the query's partition predicates (`get_partitions_by_filter`, as
//! Spark and Trino do), so a one-day query of a table with 10,000 partitions fetches one
//! partition's metadata and lists one directory.

mod client;
mod glue;
mod table;
mod thrift;
mod types;
mod views;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::common::plan_err;
use datafusion::error::{DataFusionError, Result as DFResult};
use lakegate_catalog::TableSpec;
use serde::Deserialize;

use self::client::{HiveColumn, HiveTable, MetastoreClient, ThriftClient};
use self::glue::GlueClient;
use self::table::HiveTableProvider;
pub use self::views::expand_views;

/// The partition columns of a metastore table; none for any other table.
pub fn partition_columns(provider: &dyn TableProvider) -> Vec<String> {
    match provider.downcast_ref::<HiveTableProvider>() {
        Some(table) => table.partition_columns(),
        None => Vec::new(),
    }
}

/// The metastore table `database.table` of `catalog` (named `name`) as lakegate's writer takes it.
///
/// # Errors
/// No such table, the metastore cannot be reached, or the table is not Parquet.
pub async fn write_spec(catalog: &dyn CatalogProvider, name: &str, database: &str, table: &str) -> DFResult<TableSpec> {
    let provider = metastore_table(catalog, database, table).await?;
    let hive = provider.downcast_ref::<HiveTableProvider>().ok_or_else(|| missing(database, table))?;
    hive.write_spec(name).map_err(DataFusionError::NotImplemented)
}

/// After a write into `database.table` of `catalog`: the partitions it made, added to the
/// metastore so Spark and Hive read them.
///
/// # Errors
/// The metastore cannot be reached or refuses the partitions.
pub async fn add_partitions(
    catalog: &dyn CatalogProvider,
    database: &str,
    table: &str,
    dirs: &[String],
) -> DFResult<()> {
    let provider = metastore_table(catalog, database, table).await?;
    let hive = provider.downcast_ref::<HiveTableProvider>().ok_or_else(|| missing(database, table))?;
    hive.add_partitions(dirs).await
}

fn external(e: client::MetastoreError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

fn missing(database: &str, table: &str) -> DataFusionError {
    DataFusionError::Plan(format!("no table {database}.{table} in the metastore"))
}

async fn metastore_table(
    catalog: &dyn CatalogProvider,
    database: &str,
    table: &str,
) -> DFResult<Arc<dyn TableProvider>> {
    let schema = catalog.schema(database).ok_or_else(|| missing(database, table))?;
    schema.table(table).await?.ok_or_else(|| missing(database, table))
}

/// `[[catalogs]]`: a catalog that lives elsewhere.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// The catalog's name in SQL: `SELECT * FROM <name>.<database>.<table>`.
    pub name: String,
    /// `hive_metastore` or `glue`.
    pub kind: String,
    /// A Hive metastore's `thrift://host:9083`.
    #[serde(default)]
    pub uri: String,
    /// Glue's AWS region (else the AWS SDK's: `AWS_REGION`, the profile).
    pub region: Option<String>,
    /// Glue's endpoint, for a Glue-compatible service or a VPC endpoint (else AWS's own).
    /// Credentials come from the AWS SDK's chain (environment, profile, instance role),
    /// never from this file.
    pub endpoint: Option<String>,
    /// How long names and table definitions are reused before the metastore is asked again
    /// (default 10 s).
    pub cache_seconds: Option<u64>,
}

/// The kinds of `[[catalogs]]` this build knows.
const KINDS: &[&str] = &["hive_metastore", "glue"];

/// One metastore, shared by every session of the process.
#[derive(Debug, Clone)]
pub struct HiveCatalog(Arc<Metastore>);

/// What was read from a metastore, with when.
type Cached<K, V> = Mutex<HashMap<K, (Instant, V)>>;

/// A metastore's client and what was read from it, each kept for the cache interval.
#[derive(Debug)]
struct Metastore {
    /// The catalog's name in SQL.
    name: String,
    client: Arc<dyn MetastoreClient>,
    ttl: Duration,
    databases: Mutex<Option<(Instant, Vec<String>)>>,
    table_names: Cached<String, Vec<String>>,
    tables: Cached<(String, String), Arc<dyn TableProvider>>,
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl HiveCatalog {
    /// The catalog `config` describes; nothing is asked of the metastore until it is used,
    /// so a metastore that is down stops only its own tables.
    ///
    /// # Errors
    /// An unknown kind, a name that is not a plain identifier, or a URI that is not
    /// `thrift://host:port`.
    pub fn new(config: &CatalogConfig) -> Result<Self, String> {
        if !KINDS.contains(&config.kind.as_str()) {
            return Err(format!(
                "catalog '{}': unknown kind '{}'; lakegate knows {}",
                config.name,
                config.kind,
                KINDS.join(", ")
            ));
        }
        let plain = config.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if config.name.is_empty() || !plain || ["lakegate", "datafusion"].contains(&config.name.as_str()) {
            return Err(format!(
                "catalog name '{}' must be lower-case letters, digits and _, and not lakegate or datafusion",
                config.name
            ));
        }
        let client: Arc<dyn MetastoreClient> = match config.kind.as_str() {
            "glue" => Arc::new(GlueClient::new(config.region.clone(), config.endpoint.clone())?),
            _ => Arc::new(ThriftClient::new(&config.uri)?),
        };
        Ok(Self(Arc::new(Metastore {
            name: config.name.clone(),
            client,
            ttl: Duration::from_secs(config.cache_seconds.unwrap_or(10)),
            databases: Mutex::new(None),
            table_names: Mutex::new(HashMap::new()),
            tables: Mutex::new(HashMap::new()),
        })))
    }

    /// Creates `spec` (its database this metastore's): an external Parquet table at
    /// `spec.location`, else under the database's location, which Spark and Hive read as
    /// their own. `Ok(false)`: it exists and `if_not_exists` was given.
    ///
    /// # Errors
    /// A type Hive cannot say, no location, or the metastore refuses.
    pub async fn create_table(&self, spec: &TableSpec, if_not_exists: bool) -> DFResult<bool> {
        let (metastore, database, name) = (&self.0, spec.database.as_str(), spec.name.as_str());
        if metastore.client.table(database, name).await.map_err(external)?.is_some() {
            return if if_not_exists { Ok(false) } else { plan_err!("table {database}.{name} already exists") };
        }
        let location = match spec.location.as_str() {
            "" => match metastore.client.database_location(database).await.map_err(external)? {
                Some(root) => format!("{}/{name}", root.trim_end_matches('/')),
                None => {
                    return plan_err!("database {database} has no location: give the table one with LOCATION '...'");
                }
            },
            given => given.to_owned(),
        };
        let column = |c: &lakegate_catalog::ColumnSpec| -> DFResult<HiveColumn> {
            let field = c.field().map_err(|e| DataFusionError::Plan(e.to_string()))?;
            let hive_type = types::hive_name(field.data_type()).ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "column {} has type {}, which Hive cannot store",
                    c.name,
                    field.data_type()
                ))
            })?;
            Ok(HiveColumn { name: c.name.to_lowercase(), hive_type })
        };
        let mut table = HiveTable::parquet(database, name, &location);
        table.columns = spec.columns.iter().map(column).collect::<DFResult<_>>()?;
        table.partition_keys = spec.partition_columns.iter().map(column).collect::<DFResult<_>>()?;
        if let Some(comment) = &spec.comment {
            table.parameters.insert("comment".into(), comment.clone());
        }
        metastore.client.create_table(&table).await.map_err(external)?;
        metastore.forget(database, name);
        Ok(true)
    }

    /// Drops `database.name` from this metastore, keeping its files (Spark jobs may still read
    /// them). `Ok(false)`: there was no such table and `if_exists` was given.
    ///
    /// # Errors
    /// No such table, or the metastore refuses.
    pub async fn drop_table(&self, database: &str, name: &str, if_exists: bool) -> DFResult<bool> {
        let metastore = &self.0;
        match metastore.client.table(database, name).await.map_err(external)? {
            None if if_exists => return Ok(false),
            None => return Err(missing(database, name)),
            // As Hive and Spark: DROP TABLE does not drop a view.
            Some(table) if table.is_view() => {
                return plan_err!("{database}.{name} is a view: drop it with DROP VIEW in Spark or Hive");
            }
            Some(_) => {}
        }
        metastore.client.drop_table(database, name).await.map_err(external)?;
        metastore.forget(database, name);
        Ok(true)
    }
}

impl Metastore {
    fn fresh(&self, at: Instant) -> bool {
        at.elapsed() < self.ttl
    }

    /// After lakegate changed a table: its name and definition are read again.
    fn forget(&self, database: &str, name: &str) {
        let database = database.to_lowercase();
        locked(&self.table_names).remove(&database);
        locked(&self.tables).remove(&(database, name.to_lowercase()));
    }

    /// A metastore call from DataFusion's synchronous listing methods
    /// ([`lakegate_catalog::wait_in_place`]); `None` when it fails or cannot wait.
    fn blocking<T>(&self, call: impl std::future::Future<Output = client::Result<T>>) -> Option<T> {
        lakegate_catalog::wait_in_place(call)?
            .inspect_err(|e| tracing::warn!(error = %e, "cannot list the metastore"))
            .ok()
    }

    fn database_names(&self) -> Vec<String> {
        if let Some((at, names)) = locked(&self.databases).as_ref()
            && self.fresh(*at)
        {
            return names.clone();
        }
        let names = self.blocking(self.client.databases()).unwrap_or_default();
        *locked(&self.databases) = Some((Instant::now(), names.clone()));
        names
    }

    fn table_names(&self, database: &str) -> Vec<String> {
        if let Some((at, names)) = locked(&self.table_names).get(database)
            && self.fresh(*at)
        {
            return names.clone();
        }
        let names = self.blocking(self.client.tables(database)).unwrap_or_default();
        locked(&self.table_names).insert(database.to_owned(), (Instant::now(), names.clone()));
        names
    }

    async fn table(&self, database: &str, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        let key = (database.to_owned(), name.to_lowercase());
        if let Some((at, provider)) = locked(&self.tables).get(&key)
            && self.fresh(*at)
        {
            return Ok(Some(Arc::clone(provider)));
        }
        let Some(table) = self.client.table(&key.0, &key.1).await.map_err(external)? else { return Ok(None) };
        let provider: Arc<dyn TableProvider> =
            Arc::new(HiveTableProvider::try_new(Arc::clone(&self.client), &self.name, table)?);
        locked(&self.tables).insert(key, (Instant::now(), Arc::clone(&provider)));
        Ok(Some(provider))
    }
}

impl CatalogProvider for HiveCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.0.database_names()
    }

    /// Any name is a database until a table is looked up in it: that lookup is async, this is not.
    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        Some(Arc::new(HiveDatabase { metastore: Arc::clone(&self.0), name: name.to_lowercase() }))
    }
}

/// One database of a metastore.
#[derive(Debug)]
struct HiveDatabase {
    metastore: Arc<Metastore>,
    name: String,
}

#[async_trait]
impl SchemaProvider for HiveDatabase {
    fn table_names(&self) -> Vec<String> {
        self.metastore.table_names(&self.name)
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        self.metastore.table(&self.name, name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        self.table_names().iter().any(|t| t.eq_ignore_ascii_case(name))
    }
}
