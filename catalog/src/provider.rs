//! The catalog as DataFusion sees it: databases are schemas, tables are built lazily.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::cache::{Cache, CacheDefinition, CacheState, CachedTable, Usage};
use crate::error::did_you_mean;
use crate::store::{DEFAULT_DATABASE, Store, parse_spec};
use crate::{Error, Result, Sources, TableSpec};

type TableKey = (String, String);
/// Providers by table, each with the spec JSON it was built from.
/// By table: the stored text it was built from, its provider, and the spec of a table read
/// from its own source (stored or mounted, not a cache).
type ProviderCache = HashMap<TableKey, (String, Arc<dyn TableProvider>, Option<TableSpec>)>;

/// The persistent catalog, shared by every session of a process.
#[derive(Debug)]
pub struct Catalog {
    store: Store,
    sources: Sources,
    /// Built providers, keyed by table and valid while the stored spec is unchanged, so a
    /// table re-created by another process is rebuilt here too.
    providers: Mutex<ProviderCache>,
    /// This process's use of the caches.
    usage: Arc<Usage>,
    /// The remote tables of each mounted database, with when they were listed.
    mounted: Mutex<HashMap<String, (std::time::Instant, Vec<String>)>>,
}

/// How long a mounted database's listing of remote tables is reused.
const MOUNT_LISTING_TTL: std::time::Duration = std::time::Duration::from_secs(10);

impl Catalog {
    /// Opens (creating if needed) the catalog file at `path`.
    ///
    /// # Errors
    /// [`Error::Open`] when the file cannot be opened or is not a lakegate catalog.
    pub fn open(path: &Path, sources: Sources) -> Result<Arc<Self>> {
        Ok(Arc::new(Self {
            store: Store::open(path)?,
            sources,
            providers: Mutex::default(),
            usage: Arc::default(),
            mounted: Mutex::default(),
        }))
    }

    pub fn default_database() -> &'static str {
        DEFAULT_DATABASE
    }

    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// A DataFusion catalog for one session: the shared tables plus that session's temporaries,
    /// and `builtin` databases the process provides (such as `system`), which are not stored.
    pub fn session(self: &Arc<Self>, builtin: Vec<(String, Arc<dyn SchemaProvider>)>) -> Arc<SessionCatalog> {
        Arc::new(SessionCatalog { catalog: Arc::clone(self), temporary: Arc::default(), builtin })
    }

    /// # Errors
    /// [`Error::Storage`] when the catalog file cannot be read.
    pub fn databases(&self) -> Result<Vec<String>> {
        self.store.databases()
    }

    /// Creates a database; returns false when it existed and `if_not_exists` was given.
    ///
    /// # Errors
    /// [`Error::DatabaseExists`] without `if_not_exists`.
    pub fn create_database(&self, name: &str, comment: Option<&str>, if_not_exists: bool) -> Result<bool> {
        check_name("database", name)?;
        self.store.create_database(name, comment, if_not_exists, None)
    }

    /// Creates a database that shows every table of a remote schema or keyspace: `mount` is
    /// a table spec of a source that can list its tables (kind, location, options) without a
    /// table. Listing the tables proves the source reachable; nothing is stored if it fails.
    ///
    /// # Errors
    /// A source that cannot mount, bad options or a clear-text secret, an unreachable
    /// source, or [`Error::DatabaseExists`] without `if_not_exists`.
    pub async fn mount_database(
        &self,
        name: &str,
        comment: Option<&str>,
        mut mount: TableSpec,
        if_not_exists: bool,
    ) -> Result<bool> {
        check_name("database", name)?;
        if if_not_exists && self.store.database_exists(name)? {
            return Ok(false);
        }
        mount.database = name.to_owned();
        self.sources.check_options(&mount, true)?;
        let factory = self.sources.get(&mount.kind)?;
        let tables = factory.list_tables(&mount).await?;
        let json = serde_json::to_string(&mount).map_err(|source| Error::Corrupt { table: name.to_owned(), source })?;
        let created = self.store.create_database(name, comment, if_not_exists, Some(&json))?;
        self.lock_mounted().insert(name.to_owned(), (std::time::Instant::now(), tables));
        Ok(created)
    }

    /// The remote schema `database` mounts, if it is a mounted database.
    ///
    /// # Errors
    /// The catalog cannot be read, or the stored mount is not a spec.
    pub fn mount(&self, database: &str) -> Result<Option<TableSpec>> {
        self.store.mount_json(database)?.map(|json| parse_spec(database, &json)).transpose()
    }

    fn lock_mounted(&self) -> std::sync::MutexGuard<'_, HashMap<String, (std::time::Instant, Vec<String>)>> {
        self.mounted.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The remote tables a mounted database shows, listed again after a few seconds (or at
    /// once after [`Catalog::forget_listing`]); empty for other databases.
    ///
    /// # Errors
    /// The remote source cannot be listed.
    pub async fn mounted_tables(&self, database: &str) -> Result<Vec<String>> {
        match self.mount(database)? {
            Some(mount) => self.list_mounted(database, &mount).await,
            None => Ok(Vec::new()),
        }
    }

    /// The remote tables `mount`, the mount of `database`, shows.
    async fn list_mounted(&self, database: &str, mount: &TableSpec) -> Result<Vec<String>> {
        if let Some((at, names)) = self.lock_mounted().get(database)
            && at.elapsed() < MOUNT_LISTING_TTL
        {
            return Ok(names.clone());
        }
        let names = self.sources.get(&mount.kind)?.list_tables(mount).await?;
        self.lock_mounted().insert(database.to_owned(), (std::time::Instant::now(), names.clone()));
        Ok(names)
    }

    /// Forgets a mounted database's listing: `REFRESH DATABASE`.
    pub fn forget_listing(&self, database: &str) {
        self.lock_mounted().remove(database);
    }

    /// The provider of table `name` of mounted `database`, if the remote schema has it.
    async fn mounted_provider(&self, database: &str, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(mount) = self.mount(database)? else { return Ok(None) };
        if !self.list_mounted(database, &mount).await?.iter().any(|t| t == name) {
            return Ok(None);
        }
        let key = (database.to_owned(), name.to_owned());
        let version = format!("mount {}", serde_json::to_string(&mount).unwrap_or_default());
        if let Some((built_from, provider, _)) = self.lock_providers().get(&key)
            && *built_from == version
        {
            return Ok(Some(Arc::clone(provider)));
        }
        let factory = self.sources.get(&mount.kind)?;
        // Remote sources discover a table's columns without a query session.
        let session = datafusion::execution::context::SessionContext::new().state();
        let prepared = factory.prepare(&session, factory.mounted_table(&mount, name)).await;
        let (provider, spec) = match prepared {
            Ok(spec) => match self.source_provider(&spec).await {
                Ok(provider) => (provider, spec),
                Err(unavailable) => return Ok(Some(unavailable)),
            },
            Err(cause) => {
                let name = format!("{database}.{name}");
                tracing::warn!(table = %name, %cause, "mounted table unavailable");
                let schema = Arc::new(datafusion::arrow::datatypes::Schema::empty());
                return Ok(Some(Arc::new(UnavailableTable { name, schema, cause: cause.to_string() })));
            }
        };
        self.lock_providers().insert(key, (version, Arc::clone(&provider), Some(spec)));
        Ok(Some(provider))
    }

    /// # Errors
    /// [`Error::UnknownDatabase`] (unless `if_exists`), [`Error::DatabaseNotEmpty`] without `cascade`.
    pub fn drop_database(&self, name: &str, if_exists: bool, cascade: bool) -> Result<bool> {
        self.store.drop_database(name, if_exists, cascade)
    }

    /// # Errors
    /// [`Error::UnknownDatabase`] with close matches.
    pub fn require_database(&self, name: &str) -> Result<()> {
        self.store.require_database(name)
    }

    /// Every table of `database`, in name order.
    ///
    /// # Errors
    /// [`Error::UnknownDatabase`] with close matches.
    pub fn tables(&self, database: &str) -> Result<Vec<TableSpec>> {
        self.store.require_database(database)?;
        self.store.tables(database)
    }

    /// The stored spec of one table.
    ///
    /// # Errors
    /// [`Error::UnknownTable`] or [`Error::UnknownDatabase`], with close matches.
    pub fn table(&self, database: &str, name: &str) -> Result<TableSpec> {
        self.store.require_database(database)?;
        match self.store.table_json(database, name)? {
            Some(json) => parse_spec(&format!("{database}.{name}"), &json),
            None => Err(self.unknown_table(database, name)),
        }
    }

    fn unknown_table(&self, database: &str, name: &str) -> Error {
        let known = self.store.table_names(database).unwrap_or_default();
        Error::UnknownTable {
            name: format!("{database}.{name}"),
            hint: did_you_mean(name, known.iter().map(String::as_str)),
        }
    }

    /// Checks a new table with its source, then stores it. Nothing is stored if any step fails.
    /// Returns false when the table existed and `if_not_exists` was given (the source is not asked).
    ///
    /// # Errors
    /// Unknown database, source or option, a clear-text secret, or whatever the source reports
    /// about the location (unreachable, missing, unreadable).
    pub async fn create_table(&self, session: &dyn Session, spec: TableSpec, if_not_exists: bool) -> Result<bool> {
        check_name("table", &spec.name)?;
        self.store.require_database(&spec.database)?;
        self.sources.check_options(&spec, true)?;
        // A query's cache (`CACHE TABLE name AS SELECT`) holds the name too.
        let (table, cache) = self.store.table_and_cache_json(&spec.database, &spec.name)?;
        let taken = table.is_some() || cache.is_some();
        if taken {
            return if if_not_exists { Ok(false) } else { Err(Error::TableExists(spec.qualified_name())) };
        }
        let factory = self.sources.get(&spec.kind)?;
        let spec = factory.prepare(session, spec).await?;
        // Again after the source completed the spec, which may have moved a password out of
        // a URL into the options.
        self.sources.check_options(&spec, true)?;
        self.store.insert_table(&spec, if_not_exists)
    }

    /// # Errors
    /// [`Error::UnknownTable`] (unless `if_exists`).
    pub fn drop_table(&self, database: &str, name: &str, if_exists: bool) -> Result<bool> {
        self.store.require_database(database)?;
        let dropped = self.store.delete_table(database, name)?;
        self.lock_providers().remove(&(database.to_owned(), name.to_owned()));
        if !dropped && !if_exists {
            return Err(self.unknown_table(database, name));
        }
        Ok(dropped)
    }

    fn lock_providers(&self) -> std::sync::MutexGuard<'_, ProviderCache> {
        self.providers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The provider of a stored table or cache, built on first use and rebuilt when its
    /// stored spec or cache state changes (here or in another process).
    async fn provider(&self, database: &str, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let (table, cache) = self.store.table_and_cache_json(database, name)?;
        let version = match (&table, &cache) {
            (None, None) => return self.mounted_provider(database, name).await,
            (table, None) => table.clone().unwrap_or_default(),
            (table, Some((definition, state))) => format!("{}\n{definition}\n{state}", table.as_deref().unwrap_or("")),
        };
        let key = (database.to_owned(), name.to_owned());
        if let Some((built_from, provider, _)) = self.lock_providers().get(&key)
            && *built_from == version
        {
            return Ok(Some(Arc::clone(provider)));
        }
        let qualified = format!("{database}.{name}");
        let spec = table.map(|json| parse_spec(&qualified, &json)).transpose()?;
        let (provider, spec) = match (cache, spec) {
            (Some((definition, state)), spec) => {
                (self.cached_table(key.clone(), spec, &definition, &state).await?, None)
            }
            (None, Some(spec)) => match self.source_provider(&spec).await {
                Ok(provider) => (provider, Some(spec)),
                Err(unavailable) => return Ok(Some(unavailable)),
            },
            (None, None) => return Ok(None),
        };
        self.lock_providers().insert(key, (version, Arc::clone(&provider), spec));
        Ok(Some(provider))
    }

    /// The spec `provider` was built from, when it is a table of this catalog read from its
    /// own source (not a cache or a session's temporary table): what another process rebuilds
    /// it from.
    pub fn spec_of(&self, provider: &Arc<dyn TableProvider>) -> Option<TableSpec> {
        let providers = self.lock_providers();
        let mut built = providers.values().filter(|(_, p, _)| std::ptr::addr_eq(Arc::as_ptr(p), Arc::as_ptr(provider)));
        built.next().and_then(|(_, _, spec)| spec.clone())
    }

    /// The provider of a table's own source, never its cache. A table whose source fails to
    /// build still resolves, to a provider that reports the failure when scanned (the `Err`
    /// here), so one broken table never breaks listing or queries of the others.
    ///
    /// # Errors
    /// The stand-in for an unavailable table.
    pub async fn source_provider(
        &self,
        spec: &TableSpec,
    ) -> std::result::Result<Arc<dyn TableProvider>, Arc<dyn TableProvider>> {
        let built = match self.sources.get(&spec.kind) {
            Ok(factory) => factory.create(spec).await,
            Err(e) => Err(e.into()),
        };
        built.map_err(|cause| {
            tracing::warn!(table = %spec.qualified_name(), %cause, "table unavailable");
            let schema = spec.schema().unwrap_or_else(|_| Arc::new(datafusion::arrow::datatypes::Schema::empty()));
            Arc::new(UnavailableTable { name: spec.qualified_name(), schema, cause: cause.to_string() }) as _
        })
    }

    async fn cached_table(
        &self,
        key: TableKey,
        spec: Option<TableSpec>,
        definition: &str,
        state: &str,
    ) -> Result<Arc<dyn TableProvider>> {
        let name = format!("{}.{}", key.0, key.1);
        let definition: CacheDefinition =
            serde_json::from_str(definition).map_err(|source| Error::Corrupt { table: name.clone(), source })?;
        let state: CacheState =
            serde_json::from_str(state).map_err(|source| Error::Corrupt { table: name.clone(), source })?;
        let schema = match &spec {
            Some(spec) => spec.schema()?,
            None => TableSpec { columns: definition.columns.clone(), ..TableSpec::default() }.schema()?,
        };
        let data = match &state.data {
            Some(data) => match self.sources.get(&data.kind)?.create(data).await {
                Ok(provider) => Some((provider, PathBuf::from(&data.location), state.bytes)),
                Err(e) => {
                    tracing::warn!(table = %name, error = %e, "cache unreadable; reading the source");
                    None
                }
            },
            None => None,
        };
        if data.is_none() {
            self.usage.mark_stale(key.clone());
        }
        Ok(Arc::new(CachedTable {
            key,
            schema,
            data,
            source: spec,
            sources: self.sources.clone(),
            usage: Arc::clone(&self.usage),
        }))
    }

    /// Every cache, with this process's use of it.
    ///
    /// # Errors
    /// [`Error::Storage`], or [`Error::Corrupt`] naming the cache.
    pub fn caches(&self) -> Result<Vec<Cache>> {
        let mut caches = Vec::new();
        for (database, name, definition, state) in self.store.caches()? {
            let key = (database, name);
            caches.push(self.parse_cache(key, &definition, &state)?);
        }
        Ok(caches)
    }

    /// The cache of `database.name`, if it is cached.
    ///
    /// # Errors
    /// [`Error::Storage`], or [`Error::Corrupt`] naming the cache.
    pub fn cache(&self, database: &str, name: &str) -> Result<Option<Cache>> {
        match self.store.cache_json(database, name)? {
            Some((definition, state)) => {
                Ok(Some(self.parse_cache((database.to_owned(), name.to_owned()), &definition, &state)?))
            }
            None => Ok(None),
        }
    }

    fn parse_cache(&self, key: TableKey, definition: &str, state: &str) -> Result<Cache> {
        let corrupt = |source| Error::Corrupt { table: format!("{}.{}", key.0, key.1), source };
        Ok(Cache {
            hits: self.usage.hits(&key),
            stale: self.usage.is_stale(&key),
            definition: serde_json::from_str(definition).map_err(corrupt)?,
            state: serde_json::from_str(state).map_err(corrupt)?,
            database: key.0,
            name: key.1,
        })
    }

    /// Stores a new cache (or replaces one), definition and state together.
    ///
    /// # Errors
    /// [`Error::UnknownDatabase`], [`Error::InvalidName`], [`Error::Storage`].
    pub fn put_cache(
        &self,
        database: &str,
        name: &str,
        definition: &CacheDefinition,
        state: &CacheState,
    ) -> Result<()> {
        check_name("table", name)?;
        self.store.require_database(database)?;
        self.store.put_cache(
            database,
            name,
            &to_json(database, name, definition)?,
            &to_json(database, name, state)?,
        )?;
        self.usage.loaded(&(database.to_owned(), name.to_owned()));
        Ok(())
    }

    /// Replaces a cache's state, when it is still `expected`: a refresh that raced another one,
    /// or `UNCACHE TABLE`, changes nothing. Returns whether it was replaced.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub fn swap_cache_state(
        &self,
        database: &str,
        name: &str,
        expected: &CacheState,
        state: &CacheState,
    ) -> Result<bool> {
        let swapped = self.store.swap_cache_state(
            database,
            name,
            &to_json(database, name, expected)?,
            &to_json(database, name, state)?,
        )?;
        if swapped && state.data.is_some() && state.last_error.is_none() {
            self.usage.loaded(&(database.to_owned(), name.to_owned()));
        }
        Ok(swapped)
    }

    /// Forgets a cache (its files are the caller's to remove); false when there was none.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub fn drop_cache(&self, database: &str, name: &str) -> Result<bool> {
        let key = (database.to_owned(), name.to_owned());
        self.usage.forget(&key);
        self.lock_providers().remove(&key);
        self.store.delete_cache(database, name)
    }

    /// How much of the caches' rows this process may hold in memory (`[cache] memory_mb`);
    /// the rest is read from their files.
    pub fn set_cache_memory(&self, bytes: u64) {
        self.usage.set_memory_budget(bytes);
    }

    /// Marks a cache out of date: this process reads the table's source instead until the
    /// cache is loaded again.
    pub fn mark_cache_stale(&self, database: &str, name: &str) {
        self.usage.mark_stale((database.to_owned(), name.to_owned()));
    }
}

fn to_json(database: &str, name: &str, value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|source| Error::Corrupt { table: format!("{database}.{name}"), source })
}

/// One session's view of the catalog: persistent tables plus tables registered for the
/// session only (`CREATE TEMPORARY VIEW ... USING`, `CREATE VIEW`, `CREATE TABLE AS`).
#[derive(Debug)]
pub struct SessionCatalog {
    catalog: Arc<Catalog>,
    temporary: Arc<Mutex<HashMap<TableKey, Arc<dyn TableProvider>>>>,
    builtin: Vec<(String, Arc<dyn SchemaProvider>)>,
}

impl SessionCatalog {
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Registers a table for this session only; its options may hold secrets in clear since
    /// nothing is stored.
    ///
    /// # Errors
    /// Unknown source or option, or what the source reports about the location.
    pub async fn create_temporary(&self, session: &dyn Session, spec: TableSpec, replace: bool) -> Result<()> {
        check_name("table", &spec.name)?;
        self.catalog.sources.check_options(&spec, false)?;
        let factory = self.catalog.sources.get(&spec.kind)?;
        let key = (spec.database.clone(), spec.name.clone());
        if !replace && self.temporaries().contains_key(&key) {
            return Err(Error::TableExists(spec.qualified_name()));
        }
        let spec = factory.prepare(session, spec).await?;
        let provider = factory.create(&spec).await?;
        self.temporaries().insert(key, provider);
        Ok(())
    }

    /// Names of this session's temporary tables in `database`.
    pub fn temporary_names(&self, database: &str) -> Vec<String> {
        let mut names: Vec<_> =
            self.temporaries().keys().filter(|(db, _)| db == database).map(|(_, n)| n.clone()).collect();
        names.sort();
        names
    }

    fn temporaries(&self) -> std::sync::MutexGuard<'_, HashMap<TableKey, Arc<dyn TableProvider>>> {
        self.temporary.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl CatalogProvider for SessionCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = self.catalog.databases().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot list databases");
            Vec::new()
        });
        names.extend(self.builtin.iter().map(|(name, _)| name.clone()));
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if let Some((_, schema)) = self.builtin.iter().find(|(n, _)| n == name) {
            return Some(Arc::clone(schema));
        }
        match self.catalog.store.database_exists(name) {
            Ok(true) => Some(Arc::new(Database {
                name: name.to_owned(),
                catalog: Arc::clone(&self.catalog),
                temporary: Arc::clone(&self.temporary),
            })),
            Ok(false) => None,
            Err(e) => {
                tracing::error!(database = name, error = %e, "cannot read the catalog");
                None
            }
        }
    }

    /// `CREATE SCHEMA` through DataFusion: stored as a database (the provider itself is not kept).
    fn register_schema(
        &self,
        name: &str,
        _schema: Arc<dyn SchemaProvider>,
    ) -> DFResult<Option<Arc<dyn SchemaProvider>>> {
        self.catalog.create_database(name, None, true)?;
        Ok(None)
    }

    fn deregister_schema(&self, name: &str, cascade: bool) -> DFResult<Option<Arc<dyn SchemaProvider>>> {
        let schema = self.schema(name);
        self.catalog.drop_database(name, true, cascade)?;
        Ok(schema)
    }
}

/// One database of a session's catalog.
#[derive(Debug)]
struct Database {
    name: String,
    catalog: Arc<Catalog>,
    temporary: Arc<Mutex<HashMap<TableKey, Arc<dyn TableProvider>>>>,
}

impl Database {
    /// A mounted database's remote tables, for DataFusion's synchronous listing
    /// ([`wait_in_place`]); none for other databases.
    fn mounted_names(&self) -> Vec<String> {
        let Ok(Some(mount)) = self.catalog.mount(&self.name) else { return Vec::new() };
        match wait_in_place(self.catalog.list_mounted(&self.name, &mount)) {
            Some(Ok(names)) => names,
            Some(Err(e)) => {
                tracing::warn!(database = %self.name, error = %e, "cannot list the mounted database");
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    fn temporary(&self, name: &str) -> Option<Arc<dyn TableProvider>> {
        let temporaries = self.temporary.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        temporaries.get(&(self.name.clone(), name.to_owned())).map(Arc::clone)
    }
}

#[async_trait]
impl SchemaProvider for Database {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.catalog.store.table_names(&self.name).unwrap_or_else(|e| {
            tracing::error!(database = %self.name, error = %e, "cannot list tables");
            Vec::new()
        });
        // A query's cache (`CACHE TABLE name AS SELECT`) is a table of its own.
        if let Ok(caches) = self.catalog.store.caches() {
            names.extend(caches.into_iter().filter(|(db, ..)| *db == self.name).map(|(_, name, ..)| name));
        }
        names.extend(self.mounted_names());
        let temporaries = self.temporary.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        names.extend(temporaries.keys().filter(|(db, _)| *db == self.name).map(|(_, n)| n.clone()));
        names.sort();
        names.dedup();
        names
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        if let Some(provider) = self.temporary(name) {
            return Ok(Some(provider));
        }
        Ok(self.catalog.provider(&self.name, name).await?)
    }

    async fn table_type(&self, name: &str) -> DFResult<Option<TableType>> {
        if let Some(provider) = self.temporary(name) {
            return Ok(Some(provider.table_type()));
        }
        let (table, cache) = self.catalog.store.table_and_cache_json(&self.name, name)?;
        let stored = table.is_some() || cache.is_some();
        let mounted = !stored && self.catalog.mounted_tables(&self.name).await?.iter().any(|t| t == name);
        Ok((stored || mounted).then_some(TableType::Base))
    }

    /// DataFusion's `CREATE VIEW` / `CREATE TABLE AS`: kept for this session only.
    fn register_table(&self, name: String, table: Arc<dyn TableProvider>) -> DFResult<Option<Arc<dyn TableProvider>>> {
        if self.catalog.store.table_json(&self.name, &name)?.is_some() {
            return Err(Error::TableExists(format!("{}.{name}", self.name)).into());
        }
        let mut temporaries = self.temporary.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(temporaries.insert((self.name.clone(), name), table))
    }

    fn deregister_table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        let mut temporaries = self.temporary.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(temporaries.remove(&(self.name.clone(), name.to_owned())))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.temporary(name).is_some()
            || matches!(self.catalog.store.table_and_cache_json(&self.name, name), Ok((Some(_), _) | (_, Some(_))))
            || self.mounted_names().iter().any(|t| t == name)
    }
}

/// Runs `future` to its end from one of DataFusion's synchronous catalog methods (listing
/// names), which must reach a remote catalog: on a worker of the multi-threaded runtime it
/// blocks that worker only, handing its other tasks on; elsewhere (no runtime, or a
/// current-thread one, where blocking would stall everything) it runs nothing: `None`.
pub fn wait_in_place<F: std::future::Future>(future: F) -> Option<F::Output> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return None;
    }
    Some(tokio::task::block_in_place(|| handle.block_on(future)))
}

/// Stands in for a table whose source could not be built: it lists and describes like the
/// real table, and scanning it reports why it is unavailable.
#[derive(Debug)]
struct UnavailableTable {
    name: String,
    schema: SchemaRef,
    cause: String,
}

#[async_trait]
impl TableProvider for UnavailableTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::Plan(format!("table {} is unavailable: {}", self.name, self.cause)))
    }
}

/// Database and table names become directory names (a managed table lives in
/// `warehouse/<database>/<table>`), so a name that could leave its directory is refused
/// before anything is created.
///
/// # Errors
/// [`Error::InvalidName`] for an empty name, `.` or `..`, or one containing `/`, `\\` or NUL.
pub fn check_name(what: &'static str, name: &str) -> Result<()> {
    let bad = name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']);
    if bad { Err(Error::InvalidName { what, name: name.to_owned() }) } else { Ok(()) }
}
