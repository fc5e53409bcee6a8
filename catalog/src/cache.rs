//! Accelerations: `CACHE TABLE` copies of a table (or of a query's rows) kept as Parquet files
//! on local disk under the data dir, shared by every session and every process on it.
//!
//! The catalog stores each cache's definition and its state. The state names the current
//! generation (one directory of files) and each load replaces it in one transaction, so a query
//! reads one generation, whole: never a mix of old and new rows. Loading is the session's job
//! (it plans and writes); here caches are only read, and a cache whose files are missing or
//! changed is never read: the table's own source answers instead, and the cache is marked stale
//! for the next refresh.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use serde::{Deserialize, Serialize};

use crate::{ColumnSpec, Sources, TableSpec};

/// What `CACHE TABLE` asked for, kept until `UNCACHE TABLE`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheDefinition {
    /// `CACHE TABLE name AS SELECT ...`: the query as written; `None` caches the table itself.
    pub query: Option<String>,
    /// The query's columns, known before its first load (a `LAZY` cache has no files yet).
    pub columns: Vec<ColumnSpec>,
    /// `OPTIONS (...)`, keys lower-cased: `refresh_interval`, `refresh_column`.
    pub options: BTreeMap<String, String>,
    /// Who cached it: a query cache reads with this user's grants, like a view.
    pub created_by: String,
}

/// What a cache holds now.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheState {
    /// The current generation's files, as a Parquet table; `None` until the first load.
    pub data: Option<TableSpec>,
    pub rows: u64,
    /// The files' size on disk: a generation whose files no longer add up to it is not read.
    pub bytes: u64,
    /// When the data were read from the source (milliseconds since the epoch).
    pub loaded_at_ms: Option<i64>,
    /// When a load last started or failed, for retrying failed refreshes no faster than their interval.
    pub attempted_at_ms: Option<i64>,
    pub last_error: Option<String>,
    /// For a Parquet source: a fingerprint of the committed files the data came from.
    pub source_version: Option<String>,
}

impl CacheState {
    /// The directory of the current generation's files.
    pub fn directory(&self) -> Option<PathBuf> {
        self.data.as_ref().map(|spec| PathBuf::from(&spec.location))
    }
}

/// One cache as listed: its table, definition, state, and this process's use of it.
#[derive(Debug, Clone)]
pub struct Cache {
    pub database: String,
    pub name: String,
    pub definition: CacheDefinition,
    pub state: CacheState,
    /// Scans answered from the cache by this process.
    pub hits: u64,
    /// Marked for reloading: its files were missing, or it has never been loaded.
    pub stale: bool,
}

type TableKey = (String, String);

/// A cache's rows in memory, for one generation.
#[derive(Debug)]
enum InMemory {
    /// Being read from the files; scans read the files meanwhile.
    Loading,
    Loaded {
        table: Arc<MemTable>,
        bytes: u64,
    },
    /// Larger than what the memory budget had left: read from the files.
    TooBig,
}

/// What the caches' readers tell the refresher, within one process, and the caches' rows
/// this process holds in memory.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    hits: Mutex<HashMap<TableKey, u64>>,
    stale: Mutex<HashSet<TableKey>>,
    /// `[cache] memory_mb`, in bytes.
    memory_budget: AtomicU64,
    /// By table: the generation directory the rows came from, and the rows.
    in_memory: Mutex<HashMap<TableKey, (PathBuf, InMemory)>>,
}

impl Usage {
    pub(crate) fn set_memory_budget(&self, bytes: u64) {
        self.memory_budget.store(bytes, Ordering::Relaxed);
    }

    /// The rows of `key`'s generation `dir`, if this process holds them in memory.
    fn rows_in_memory(&self, key: &TableKey, dir: &Path) -> Option<Arc<MemTable>> {
        match self.in_memory.lock().unwrap_or_else(|p| p.into_inner()).get(key) {
            Some((from, InMemory::Loaded { table, .. })) if from == dir => Some(Arc::clone(table)),
            _ => None,
        }
    }

    /// Whether the caller should read generation `dir` into memory: the first to ask for a
    /// generation does, when the budget may hold it.
    fn start_loading(&self, key: &TableKey, dir: &Path, bytes_on_disk: u64) -> bool {
        let budget = self.memory_budget.load(Ordering::Relaxed);
        let mut held = self.in_memory.lock().unwrap_or_else(|p| p.into_inner());
        if held.get(key).is_some_and(|(from, _)| from == dir) {
            return false;
        }
        // Parquet is smaller than its rows in memory: no use reading what cannot fit.
        let fits = budget > 0 && bytes_on_disk <= budget;
        held.insert(key.clone(), (dir.to_path_buf(), if fits { InMemory::Loading } else { InMemory::TooBig }));
        fits
    }

    /// Reads every row of `plan` in the background and holds them, if they fit the budget.
    fn load(
        self: &Arc<Self>,
        key: TableKey,
        dir: PathBuf,
        plan: Arc<dyn ExecutionPlan>,
        task: Arc<TaskContext>,
        partitions: usize,
    ) {
        let usage = Arc::clone(self);
        tokio::spawn(async move {
            let schema = plan.schema();
            let loaded: DFResult<(MemTable, u64)> = async {
                let batches = datafusion::physical_plan::collect(plan, task).await?;
                let bytes: u64 = batches.iter().map(|b| b.get_array_memory_size() as u64).sum();
                let parts = partitions.max(1);
                let mut split = vec![Vec::new(); parts];
                for (i, batch) in batches.into_iter().enumerate() {
                    split[i % parts].push(batch);
                }
                Ok((MemTable::try_new(schema, split)?, bytes))
            }
            .await;
            let budget = usage.memory_budget.load(Ordering::Relaxed);
            let mut held = usage.in_memory.lock().unwrap_or_else(|p| p.into_inner());
            let others: u64 = held
                .iter()
                .filter(|(k, _)| **k != key)
                .map(|(_, (_, m))| if let InMemory::Loaded { bytes, .. } = m { *bytes } else { 0 })
                .sum();
            let state = match loaded {
                Ok((table, bytes)) if others + bytes <= budget => InMemory::Loaded { table: Arc::new(table), bytes },
                Ok(_) => InMemory::TooBig,
                Err(e) => {
                    tracing::warn!(table = %format!("{}.{}", key.0, key.1), error = %e, "cache not held in memory");
                    InMemory::TooBig
                }
            };
            // Unless a newer generation took its place meanwhile.
            if held.get(&key).is_some_and(|(from, _)| *from == dir) {
                held.insert(key, (dir, state));
            }
        });
    }

    fn hit(&self, key: &TableKey) {
        *self.hits.lock().unwrap_or_else(|p| p.into_inner()).entry(key.clone()).or_default() += 1;
    }

    pub(crate) fn hits(&self, key: &TableKey) -> u64 {
        self.hits.lock().unwrap_or_else(|p| p.into_inner()).get(key).copied().unwrap_or_default()
    }

    pub(crate) fn mark_stale(&self, key: TableKey) {
        self.stale.lock().unwrap_or_else(|p| p.into_inner()).insert(key);
    }

    pub(crate) fn is_stale(&self, key: &TableKey) -> bool {
        self.stale.lock().unwrap_or_else(|p| p.into_inner()).contains(key)
    }

    pub(crate) fn loaded(&self, key: &TableKey) {
        self.stale.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    pub(crate) fn forget(&self, key: &TableKey) {
        self.loaded(key);
        self.in_memory.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
        self.hits.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// The total size of the Parquet files under `dir`, or `None` when it cannot be read.
pub fn parquet_bytes(dir: &Path) -> Option<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).ok()? {
        let entry = entry.ok()?;
        let kind = entry.file_type().ok()?;
        if kind.is_dir() {
            total += parquet_bytes(&entry.path())?;
        } else if entry.path().extension().is_some_and(|e| e == "parquet") {
            total += entry.metadata().ok()?.len();
        }
    }
    Some(total)
}

/// A cached table as queries see it: the cache's files while they are intact, else the
/// table's source.
#[derive(Debug)]
pub(crate) struct CachedTable {
    pub(crate) key: TableKey,
    pub(crate) schema: SchemaRef,
    /// The current generation: its provider, directory and size.
    pub(crate) data: Option<(Arc<dyn TableProvider>, PathBuf, u64)>,
    /// The cached table's own spec; `None` for a query's cache.
    pub(crate) source: Option<TableSpec>,
    pub(crate) sources: Sources,
    pub(crate) usage: Arc<Usage>,
}

impl CachedTable {
    fn name(&self) -> String {
        format!("{}.{}", self.key.0, self.key.1)
    }

    /// The generation a scan would read now: its directory while the cache is not stale and
    /// its files are intact, the test [`TableProvider::scan`] makes.
    fn current_generation(&self) -> Option<&Path> {
        let (_, dir, bytes) = self.data.as_ref()?;
        (!self.usage.is_stale(&self.key) && parquet_bytes(dir) == Some(*bytes)).then_some(dir.as_path())
    }
}

/// What a scan of `provider` reads now, when it is a cache that would answer from its own
/// files: its generation's directory, which no other load ever names. Rows computed from it
/// stay right for as long as this stays the same.
pub fn cache_generation(provider: &dyn TableProvider) -> Option<PathBuf> {
    let cached = provider.downcast_ref::<CachedTable>()?;
    cached.current_generation().map(Path::to_path_buf)
}

/// Counts a use of the cache `provider` that did not scan it (a reused answer), for
/// `SHOW CACHED TABLES`.
pub fn count_cache_hit(provider: &dyn TableProvider) {
    if let Some(cached) = provider.downcast_ref::<CachedTable>() {
        cached.usage.hit(&cached.key);
    }
}

#[async_trait]
impl TableProvider for CachedTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Filters are re-applied above the scan: the files prune with them, and a scan that falls
    /// back to the source gets them too, whatever that source does with them.
    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DFResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        if let Some((provider, dir, bytes)) = &self.data
            && !self.usage.is_stale(&self.key)
        {
            if parquet_bytes(dir) == Some(*bytes) {
                self.usage.hit(&self.key);
                if let Some(rows) = self.usage.rows_in_memory(&self.key, dir) {
                    return rows.scan(state, projection, filters, limit).await;
                }
                if self.usage.start_loading(&self.key, dir, *bytes) {
                    let all = provider.scan(state, None, &[], None).await?;
                    let partitions = state.config().target_partitions();
                    self.usage.load(self.key.clone(), dir.clone(), all, state.task_ctx(), partitions);
                }
                return provider.scan(state, projection, filters, limit).await;
            }
            tracing::warn!(table = %self.name(), dir = %dir.display(), "cache files missing or changed; reading the source");
        }
        self.usage.mark_stale(self.key.clone());
        let Some(spec) = &self.source else {
            return Err(DataFusionError::Plan(format!(
                "the cache {} holds no data yet (or lost its files); it is loaded again by REFRESH TABLE {0}",
                self.name()
            )));
        };
        let source = self.sources.get(&spec.kind)?.create(spec).await?;
        source.scan(state, projection, filters, limit).await
    }
}
