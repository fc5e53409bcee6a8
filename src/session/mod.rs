//! The session: the one entry point through which every front end (the CLI, the REPL, batch
//! scripts, the Flight SQL server, the demo) plans and runs statements.
//!
//! [`Lakegate`] is one process: its catalog, object stores, runtime and geodata layers.
//! [`Session`] is one user's: a DataFusion context over the shared catalog, with its own
//! settings and temporary tables, and only what its role allows. Everything a session needs is
//! set on its `SessionConfig`/`RuntimeEnv`, so the same configuration can be handed to a
//! distributed engine unchanged.

mod answers;
mod batch;
mod cache;
mod commands;
mod execute;
mod layers;
mod memory;
mod progress;
mod scans;
mod slots;

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use lakegate_catalog::{Catalog, SessionCatalog};
use serde::Deserialize;

pub use self::cache::CacheConfig;
pub use self::execute::{Origin, Planned};
pub use self::layers::{GeodataConfig, LayerConfig};
use self::layers::{Layers, fetch_remote_layers};
pub use self::progress::Progress;
use crate::access::Principal;
use crate::cluster::{self, ClusterConfig, ClusterPlanner};
use crate::history::QueryHistory;
use crate::metrics::Metrics;
pub use crate::output::Output;
use crate::sources::cassandra::CassandraConfig;
pub use crate::sql::ddl::{Command, parse_database_name, parse_table_name};
pub use crate::sql::{CATALOG, ScriptStatement, number_placeholders, redact, split_statements, template};
use crate::storage::{ObjectStores, S3Config};
use crate::{Error, Result, sources};

/// `[execution]`: how queries run.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutionConfig {
    /// Parallelism of a query; default: the number of cores.
    pub target_partitions: Option<usize>,
    pub batch_size: Option<usize>,
    /// Memory a process may use for query execution, in MiB; queries that need more spill
    /// or fail instead of taking the machine down. Default: unlimited.
    pub memory_limit_mb: Option<usize>,
    /// How long a listing of a table's files is reused, in seconds (default 10): files that
    /// other writers add appear within this time, or at once after `MSCK REPAIR TABLE` or
    /// `REFRESH TABLE`.
    pub listing_cache_seconds: Option<u64>,
    /// The longest a statement may run, e.g. `"30m"` (default: no limit); a session may set its
    /// own with `SET statement_timeout = '30s'`.
    pub query_timeout: Option<String>,
}

/// What a lakegate process is opened with: each part's own section, composed by
/// [`crate::Config`] from the configuration file, the environment and flags.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    /// Where the embedded catalog and the default warehouse live.
    pub data_dir: PathBuf,
    pub s3: S3Config,
    pub cassandra: CassandraConfig,
    pub execution: ExecutionConfig,
    pub geodata: GeodataConfig,
    /// `[server] allowed_locations`: where tables may be located (anywhere when empty).
    pub allowed_locations: Vec<String>,
    /// `[server] max_concurrent_queries`: statements running at once (default: no limit).
    pub max_concurrent_queries: Option<usize>,
    /// `[server] max_queries_per_user`: statements of one user running at once.
    pub max_queries_per_user: Option<usize>,
    /// `[telemetry] query_log`: keep ended statements in `system.query_log` for this many days.
    pub query_log_days: Option<u32>,
    pub cache: CacheConfig,
    /// `[[catalogs]]`: metastores whose databases appear as `<name>.<database>.<table>`.
    pub catalogs: Vec<crate::metastore::CatalogConfig>,
    /// `[cluster]`: the Ballista scheduler queries run on, if any.
    pub cluster: ClusterConfig,
}

/// One lakegate process: its configuration, catalog and execution runtime.
#[derive(Debug)]
pub struct Lakegate {
    config: EngineConfig,
    catalog: Arc<Catalog>,
    runtime: Arc<RuntimeEnv>,
    stores: Arc<ObjectStores>,
    layers: Layers,
    history: Arc<QueryHistory>,
    metrics: Arc<Metrics>,
    slots: Arc<slots::Slots>,
    /// Answers of queries over caches, for identical queries of every session.
    answers: Arc<answers::Answers>,
    /// `[execution] query_timeout`.
    query_timeout: Option<std::time::Duration>,
    /// `[[catalogs]]`, by name.
    metastores: Vec<(String, crate::metastore::HiveCatalog)>,
    /// Plans queries for the cluster, when `[cluster] scheduler` is set.
    cluster: Option<Arc<ClusterPlanner>>,
}

impl Lakegate {
    /// Opens the data directory (creating it), its catalog and the object stores, and loads
    /// the geodata layers.
    ///
    /// # Errors
    /// The data directory cannot be created, the catalog cannot be opened, or a layer does
    /// not load.
    pub async fn open(config: impl Into<EngineConfig>) -> Result<Self> {
        let config = config.into();
        let data_dir = &config.data_dir;
        std::fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir.display(), e))?;
        let stores = Arc::new(ObjectStores::new(config.s3.clone()));
        let runtime = runtime(&config, &stores, Listings::Kept)?;
        let query_timeout = match &config.execution.query_timeout {
            Some(text) => crate::sql::parse_duration(text).map_err(|_| {
                Error::Config(format!(
                    "[execution] query_timeout = '{text}' is not a duration: write e.g. '30m' or '90s'"
                ))
            })?,
            None => None,
        };
        let catalog = Catalog::open(&data_dir.join("catalog.db"), sources::all(&stores, &config.cassandra))?;
        catalog.set_cache_memory(config.cache.memory_mb.unwrap_or(cache::DEFAULT_MEMORY_MB) * 1024 * 1024);
        let geodata = fetch_remote_layers(&config.geodata, &stores, &data_dir.join("geodata")).await?;
        let layers = Layers::load(&geodata)?;
        let cluster = config
            .cluster
            .scheduler
            .as_deref()
            .map(|scheduler| Arc::new(ClusterPlanner::new(scheduler, Arc::clone(&catalog), Arc::clone(&stores))));
        let metrics = Arc::new(Metrics::new());
        let log = config.query_log_days.map(|days| (data_dir.join("query_log"), days));
        let history = Arc::new(QueryHistory::new(Arc::clone(&metrics), log)?);
        if config.query_log_days.is_some() {
            // Written every few seconds, and when the process ends (`Drop`).
            let history = Arc::downgrade(&history);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    let Some(history) = history.upgrade() else { break };
                    // File work, off the workers that answer queries.
                    let flushed = tokio::task::spawn_blocking(move || history.flush_log()).await;
                    if let Ok(Err(e)) = flushed {
                        tracing::warn!(error = %e, "query log not written; retrying");
                    }
                }
            });
        }
        let slots = Arc::new(slots::Slots::new(config.max_concurrent_queries, config.max_queries_per_user));
        let metastores = config
            .catalogs
            .iter()
            .map(|c| Ok((c.name.clone(), crate::metastore::HiveCatalog::new(c).map_err(Error::Config)?)))
            .collect::<Result<Vec<_>>>()?;
        let answers_mb = config.cache.answers_mb.unwrap_or(cache::DEFAULT_ANSWERS_MB);
        let answers = Arc::new(answers::Answers::new(
            usize::try_from(answers_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX),
        ));
        Ok(Self {
            config,
            catalog,
            runtime,
            stores,
            layers,
            history,
            metrics,
            slots,
            answers,
            query_timeout,
            metastores,
            cluster,
        })
    }

    /// What a scheduler or executor of a cluster builds from `config`: its object stores,
    /// sources and geodata functions, without a catalog (the clients have that).
    ///
    /// # Errors
    /// A geodata layer does not load.
    pub async fn cluster_node(config: impl Into<EngineConfig>) -> Result<cluster::Node> {
        let config = config.into();
        let stores = Arc::new(ObjectStores::new(config.s3.clone()));
        // Clients write the tables and forget their own listings; a scheduler lists afresh.
        let runtime = runtime(&config, &stores, Listings::Fresh)?;
        let geodata = fetch_remote_layers(&config.geodata, &stores, &config.data_dir.join("geodata")).await?;
        let layers = Layers::load(&geodata)?;
        let functions = lakegate_udfs::geodata_udfs(layers.current()).into_iter().map(Arc::new).collect();
        let sources = sources::all(&stores, &config.cassandra);
        Ok(cluster::Node { runtime, stores, sources, functions })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Queries this process has sent to its cluster (none without `[cluster] scheduler`).
    pub fn queries_on_cluster(&self) -> u64 {
        self.cluster.as_ref().map_or(0, |cluster| cluster.sent())
    }

    /// Statements served by this process, newest last (`system.queries`).
    pub fn history(&self) -> &QueryHistory {
        &self.history
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The metrics in Prometheus's text format, with the memory pool's use as of now.
    pub fn render_metrics(&self) -> String {
        use datafusion::execution::memory_pool::MemoryLimit;
        let pool = &self.runtime.memory_pool;
        self.metrics.memory_reserved.set(i64::try_from(pool.reserved()).unwrap_or(i64::MAX));
        let limit = match pool.memory_limit() {
            MemoryLimit::Finite(bytes) => i64::try_from(bytes).unwrap_or(i64::MAX),
            MemoryLimit::Infinite | MemoryLimit::Unknown => 0,
        };
        self.metrics.memory_limit.set(limit);
        self.metrics.render()
    }

    /// Whether the catalog can be read: what `/readyz` checks.
    ///
    /// # Errors
    /// The catalog's error.
    pub fn check_ready(&self) -> Result<()> {
        self.catalog.databases().map(|_| ()).map_err(Error::from)
    }

    /// Keeps the caches loaded, for as long as it runs (`serve` runs it): loads `LAZY` caches
    /// and caches whose files went missing, reloads on each cache's `refresh_interval`, and
    /// reloads a cached Parquet table's cache when the table's committed files change. A
    /// failed load is logged, recorded in the cache's state, and retried.
    pub async fn refresh_caches(self: Arc<Self>) {
        let mut last_files_check = std::time::Instant::now();
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let check_files = last_files_check.elapsed() >= cache::CHECK_FILES_EVERY;
            if check_files {
                last_files_check = std::time::Instant::now();
            }
            let caches = match self.catalog.caches() {
                Ok(caches) if caches.is_empty() => continue,
                Ok(caches) => caches,
                Err(e) => {
                    tracing::warn!(error = %e, "caches not listed; retrying");
                    continue;
                }
            };
            let session = self.session().with_client("cache");
            for cache in caches {
                if !cache::due(&session, &cache, check_files).await {
                    continue;
                }
                let table = format!("{}.{}", cache.database, cache.name);
                let started = std::time::Instant::now();
                match cache::refresh(&session, &cache.database, &cache.name).await {
                    Ok(Some(state)) => {
                        tracing::info!(%table, rows = state.rows, bytes = state.bytes, seconds = started.elapsed().as_secs_f64(), "cache loaded");
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(%table, error = %e, "cache not loaded; retrying later"),
                }
            }
        }
    }

    /// Where managed tables (created without LOCATION) are stored.
    pub fn warehouse_dir(&self) -> PathBuf {
        self.config.data_dir.join("warehouse")
    }

    /// A new session of this process's own user (the CLI, the REPL, a server without
    /// configured users): an admin.
    pub fn session(&self) -> Session {
        self.session_as(Principal::local(crate::access::ANONYMOUS))
    }

    /// A new session of `principal`: its own settings and temporary tables over the shared
    /// catalog, and only what its role allows.
    pub fn session_as(&self, principal: Principal) -> Session {
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(CATALOG, Catalog::default_database());
        if let Some(n) = self.config.execution.target_partitions {
            config = config.with_target_partitions(n);
        }
        if let Some(n) = self.config.execution.batch_size {
            config = config.with_batch_size(n);
        }
        if self.cluster.is_some() {
            config = ClusterPlanner::session_config(config);
        }
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(Arc::clone(&self.runtime))
            .with_default_features()
            .with_optimizer_rule(Arc::new(crate::sources::rewrite::PushToDatabases));
        state = match &self.cluster {
            Some(cluster) => state.with_query_planner(Arc::clone(cluster) as _),
            None => state.with_query_planner(Arc::new(crate::write::LocalPlanner::new(Arc::clone(&self.stores)))),
        };
        let state = state.build();
        // `SELECT * FROM 's3://bucket/file.parquet'` reads files without registering them: any
        // file the server can reach, so for admins only.
        let ctx = SessionContext::new_with_state(state);
        let ctx = if principal.is_admin() { ctx.enable_url_table() } else { ctx };
        let viewer = (!principal.is_admin()).then(|| principal.user.clone());
        let system = self.history.system_database(viewer);
        if principal.is_admin() {
            // The cluster's hosts and ports are the operators' business, not every reader's.
            let scheduler = self.config.cluster.scheduler.clone();
            let _ = system.register_table("executors".into(), Arc::new(cluster::ExecutorsTable::new(scheduler)));
        }
        let catalog = self.catalog.session(vec![("system".to_owned(), system)]);
        ctx.register_catalog(CATALOG, Arc::clone(&catalog) as _);
        for (name, metastore) in &self.metastores {
            ctx.register_catalog(name, Arc::new(metastore.clone()));
        }
        lakegate_udfs::register_all(&ctx, self.layers.current());
        Session {
            ctx,
            catalog,
            warehouse: self.warehouse_dir(),
            data_dir: self.config.data_dir.clone(),
            cache_disk_mb: self.config.cache.disk_mb.unwrap_or(cache::DEFAULT_DISK_MB),
            stores: Arc::clone(&self.stores),
            progress: Arc::default(),
            principal: Arc::new(principal),
            history: Arc::clone(&self.history),
            slots: Arc::clone(&self.slots),
            answers: Arc::clone(&self.answers),
            client: "cli".into(),
            statement_timeout: Arc::new(std::sync::Mutex::new(self.query_timeout)),
            allowed_locations: self.config.allowed_locations.clone().into(),
            metastores: self.metastores.clone().into(),
        }
    }
}

/// Whether a process keeps the listings of tables' files for a while.
enum Listings {
    /// For `[execution] listing_cache_seconds`: a process that writes tables forgets its own.
    Kept,
    /// Listed for every query: a cluster's nodes, which never hear of the clients' writes.
    Fresh,
}

/// The runtime of a process's queries: its object stores, file listings, and the
/// `[execution] memory_limit_mb` pool.
fn runtime(config: &EngineConfig, stores: &Arc<ObjectStores>, listings: Listings) -> Result<Arc<RuntimeEnv>> {
    let mut runtime = RuntimeEnvBuilder::new().with_object_store_registry(Arc::clone(stores) as _);
    runtime = match listings {
        // DataFusion keeps file listings forever by default; a gateway must see new partitions.
        Listings::Kept => runtime.with_object_list_cache_ttl(Some(std::time::Duration::from_secs(
            config.execution.listing_cache_seconds.unwrap_or(10),
        ))),
        Listings::Fresh => runtime.with_object_list_cache_limit(0),
    };
    if let Some(mb) = config.execution.memory_limit_mb {
        runtime = runtime.with_memory_pool(Arc::new(memory::QueryPool::new(mb * 1024 * 1024)));
    }
    Ok(runtime.build_arc()?)
}

impl Drop for Lakegate {
    /// The statements not yet in the query log go there before the process ends.
    fn drop(&mut self) {
        if let Err(e) = self.history.flush_log() {
            eprintln!("warning: the last statements did not reach the query log: {e}");
        }
    }
}

/// One user's session: a DataFusion context over the shared catalog.
#[derive(Clone)]
pub struct Session {
    pub(crate) ctx: SessionContext,
    pub(crate) catalog: Arc<SessionCatalog>,
    pub(crate) warehouse: PathBuf,
    /// Where caches keep their files (`<data-dir>/cache`).
    pub(crate) data_dir: PathBuf,
    /// `[cache] disk_mb`.
    pub(crate) cache_disk_mb: u64,
    pub(crate) stores: Arc<ObjectStores>,
    pub(crate) progress: Arc<Progress>,
    /// Who runs this session's statements.
    pub(crate) principal: Arc<Principal>,
    /// `[server] allowed_locations`: where tables may be located (anywhere when empty).
    pub(crate) allowed_locations: Arc<[String]>,
    /// The process's statements, running and recent.
    pub(crate) history: Arc<QueryHistory>,
    /// The process's statement slots.
    pub(crate) slots: Arc<slots::Slots>,
    /// The process's answers of queries over caches.
    pub(crate) answers: Arc<answers::Answers>,
    /// The program whose statements these are, for `system.queries` (`cli` unless set).
    pub(crate) client: Arc<str>,
    /// How long a statement may run: `[execution] query_timeout`, or `SET statement_timeout`.
    pub(crate) statement_timeout: Arc<std::sync::Mutex<Option<std::time::Duration>>>,
    /// `[[catalogs]]`, by name: the session's catalogs wrap them.
    pub(crate) metastores: Arc<[(String, crate::metastore::HiveCatalog)]>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("id", &self.ctx.session_id()).finish_non_exhaustive()
    }
}

impl Session {
    /// This session, its statements listed as sent by `client` (e.g. `repl`).
    #[must_use]
    pub fn with_client(mut self, client: &str) -> Self {
        self.client = client.into();
        self
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Rows and bytes this session's writes have written so far.
    pub fn write_progress(&self) -> Arc<Progress> {
        Arc::clone(&self.progress)
    }

    /// How long a statement of this session may run.
    pub fn statement_timeout(&self) -> Option<std::time::Duration> {
        *self.statement_timeout.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What the writer needs of this session.
    pub(crate) fn write_context(&self) -> crate::write::Context<'_> {
        let progress = Arc::clone(&self.progress);
        crate::write::Context {
            ctx: &self.ctx,
            stores: &self.stores,
            catalog: self.catalog.catalog(),
            warehouse: &self.warehouse,
            on_written: Arc::new(move |rows, bytes| progress.add(rows, bytes)),
        }
    }

    /// The databases this session sees (stored ones and `system`) that its user may read,
    /// sorted.
    pub fn readable_databases(&self) -> Vec<String> {
        use datafusion::catalog::CatalogProvider;
        let mut names: Vec<String> =
            self.catalog.schema_names().into_iter().filter(|d| self.principal.may_read(d)).collect();
        names.sort();
        names.dedup();
        names
    }

    /// The names of the `[[catalogs]]` beside lakegate's own (metastores).
    pub fn other_catalogs(&self) -> Vec<String> {
        let mut names = self.ctx.catalog_names();
        names.retain(|c| c != CATALOG && c != "datafusion");
        names.sort();
        names
    }

    /// The metastore of `[[catalogs]]` called `name`.
    pub(crate) fn metastore(&self, name: &str) -> Option<&crate::metastore::HiveCatalog> {
        self.metastores.iter().find(|(n, _)| n == name).map(|(_, m)| m)
    }

    /// `(catalog, database)` when `database` names a database of another catalog, as
    /// `hive.sales` does.
    pub(crate) fn metastore_database(&self, database: Option<&str>) -> Option<(String, String)> {
        let (catalog, database) = database?.split_once('.')?;
        self.other_catalogs().iter().any(|c| c == catalog).then(|| (catalog.to_owned(), database.to_owned()))
    }

    /// The databases of `catalog` (one of [`Session::other_catalogs`]) this session may read:
    /// granted by their qualified names, `hive.sales`.
    pub fn readable_databases_of(&self, catalog: &str) -> Vec<String> {
        let Some(provider) = self.ctx.catalog(catalog) else { return Vec::new() };
        let mut names = provider.schema_names();
        names.retain(|d| self.principal.may_read(&format!("{catalog}.{d}")));
        names.sort();
        names
    }

    /// The tables of `database` in `catalog` (one of [`Session::other_catalogs`]), with their
    /// schemas when `with_schemas` (each read from the catalog: a table whose definition
    /// cannot be read comes with its error), else with empty ones.
    pub async fn tables_of(
        &self,
        catalog: &str,
        database: &str,
        with_schemas: bool,
    ) -> Vec<(String, Result<SchemaRef>)> {
        let Some(schema) = self.ctx.catalog(catalog).and_then(|c| c.schema(database)) else { return Vec::new() };
        let mut tables = Vec::new();
        for name in schema.table_names() {
            if !with_schemas {
                tables.push((name, Ok(Arc::new(datafusion::arrow::datatypes::Schema::empty()))));
                continue;
            }
            match schema.table(&name).await {
                Ok(Some(provider)) => tables.push((name, Ok(provider.schema()))),
                Ok(None) => {}
                Err(e) => tables.push((name, Err(e.into()))),
            }
        }
        tables
    }

    /// The tables this session sees in `database` (stored ones, `system`'s, its temporary
    /// views) with their schemas: the stored schema where there is one, so listing never
    /// reaches out to a source. A table whose schema cannot be had comes with its error, so
    /// one broken table never hides the others.
    pub async fn tables(&self, database: &str) -> Vec<(String, Result<SchemaRef>)> {
        use datafusion::catalog::CatalogProvider;
        let Some(schema_provider) = self.catalog.schema(database) else { return Vec::new() };
        let stored = self.catalog.catalog();
        let mut tables = Vec::new();
        for name in schema_provider.table_names() {
            let schema = match stored.table(database, &name) {
                Ok(spec) => spec.schema().map_err(Error::from),
                Err(_) => match schema_provider.table(&name).await {
                    Ok(Some(provider)) => Ok(provider.schema()),
                    Ok(None) => continue,
                    Err(e) => Err(e.into()),
                },
            };
            tables.push((name, schema));
        }
        tables
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The database unqualified names resolve to.
    pub fn current_database(&self) -> String {
        // Read in place: `ctx.state()` copies the whole session state.
        self.ctx.state_ref().read().config().options().catalog.default_schema.clone()
    }
}
