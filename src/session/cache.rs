//! Spark's `CACHE TABLE`, as persistent accelerations: a cache is a copy of a table (or of a
//! query's rows) in Parquet files on local disk under `<data-dir>/cache/<database>/<table>/`,
//! recorded in the catalog, so every session and every process on the data dir answers from
//! it, even while the source is down.
//!
//! Each load writes a new generation directory and then names it in the catalog in one
//! transaction: a query reads the old generation or the new one, never a mix. The previous
//! generation is kept until the next load, for queries that were reading it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Array, BooleanArray, Int64Array, StringArray, UInt64Array};
use datafusion::common::config::TableParquetOptions;
use datafusion::dataframe::{DataFrame, DataFrameWriteOptions};
use datafusion::functions_aggregate::expr_fn::max;
use datafusion::logical_expr::{Expr, ExprSchemable};
use datafusion::prelude::lit;
use futures::TryStreamExt;
use lakegate_catalog::{CacheDefinition, CacheState, ColumnSpec, TableSpec, parquet_bytes};
use serde::Deserialize;

use super::{Planned, Session};
use crate::output::{Output, human_bytes};
use crate::sql::ddl::TableName;
use crate::{Error, Result};

/// `[cache]`: where accelerations may grow.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Disk all caches together may take, in MiB (default 10240): a cache that would take more
    /// is refused and nothing of it is kept.
    pub disk_mb: Option<u64>,
    /// Rows of caches each process holds in memory, in MiB (default 1024; 0 for none): a
    /// cache whose rows fit is read into memory on first use, the others from their files.
    pub memory_mb: Option<u64>,
    /// Answers of queries that read only caches, kept for identical queries, in MiB (default
    /// 64; 0 for none): until a cache they read is loaded again, the least recently used first.
    pub answers_mb: Option<u64>,
}

pub(super) const DEFAULT_DISK_MB: u64 = 10 * 1024;
pub(super) const DEFAULT_MEMORY_MB: u64 = 1024;
pub(super) const DEFAULT_ANSWERS_MB: u64 = 64;
const OPTIONS: &[&str] = &["refresh_interval", "refresh_column"];
/// A failed load is retried no sooner than this, or its own interval when that is shorter.
const RETRY_AFTER: Duration = Duration::from_secs(10);
/// How often a cache of a Parquet table compares the table's committed files with its own.
pub(crate) const CHECK_FILES_EVERY: Duration = Duration::from_secs(30);

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn refresh_interval(definition: &CacheDefinition) -> Result<Option<Duration>> {
    match definition.options.get("refresh_interval") {
        Some(text) => crate::sql::parse_duration(text),
        None => Ok(None),
    }
}

fn database_of(session: &Session, table: &TableName) -> String {
    table.database.clone().unwrap_or_else(|| session.current_database())
}

impl Session {
    /// Absolute, since the catalog records it for every process, whatever its working directory.
    fn cache_dir(&self, database: &str, name: &str) -> PathBuf {
        let dir = self.data_dir.join("cache").join(database).join(name);
        std::path::absolute(&dir).unwrap_or(dir)
    }
}

/// `CACHE [LAZY] TABLE t [OPTIONS (...)] [AS query]`.
pub(super) async fn cache(
    session: &Session,
    table: TableName,
    lazy: bool,
    options: BTreeMap<String, String>,
    query: Option<String>,
) -> Result<Output> {
    let database = database_of(session, &table);
    let name = table.name;
    lakegate_catalog::check_name("table", &name)?;
    let catalog = session.catalog.catalog();
    catalog.require_database(&database)?;
    if let Some(key) = options.keys().find(|k| !OPTIONS.contains(&k.as_str())) {
        return Err(Error::Invalid(format!(
            "CACHE TABLE: unknown option '{key}'; valid options: {}",
            OPTIONS.join(", ")
        )));
    }
    let mut definition = CacheDefinition {
        query: query.clone(),
        columns: Vec::new(),
        options,
        created_by: session.principal.user.clone(),
    };
    refresh_interval(&definition)?;
    match &query {
        Some(query) => {
            if catalog.table(&database, &name).is_ok() {
                return Err(Error::Invalid(format!(
                    "CACHE TABLE {database}.{name} AS ...: a table {database}.{name} exists; cache it with CACHE TABLE {database}.{name}, or pick another name"
                )));
            }
            let schema = query_frame(session, query).await?.schema().as_arrow().clone();
            definition.columns =
                schema.fields().iter().map(|f| ColumnSpec::new(f.name(), f.data_type(), f.is_nullable())).collect();
        }
        None => {
            let spec = catalog.table(&database, &name)?;
            if let Some(column) = definition.options.get("refresh_column")
                && spec.schema()?.field_with_name(column).is_err()
            {
                return Err(Error::Invalid(format!("refresh_column '{column}' is not a column of {database}.{name}")));
            }
        }
    }
    if lazy {
        catalog.put_cache(&database, &name, &definition, &CacheState::default())?;
        return Ok(Output::Done(format!(
            "cached {database}.{name} lazily: `lakegate serve` loads it in the background, REFRESH TABLE {database}.{name} loads it now"
        )));
    }
    let started = std::time::Instant::now();
    let state = load(session, &database, &name, &definition, None).await?;
    let previous = catalog.cache(&database, &name)?.and_then(|c| c.state.directory());
    catalog.put_cache(&database, &name, &definition, &state)?;
    remove_old_generations(&session.cache_dir(&database, &name), previous.as_deref(), &state);
    Ok(Output::Done(format!(
        "cached {database}.{name}: {} rows, {} on disk, in {:.1} s",
        state.rows,
        human_bytes(state.bytes),
        started.elapsed().as_secs_f64()
    )))
}

/// The rows of a cached query, planned as `session`'s user (so with that user's grants).
async fn query_frame(session: &Session, query: &str) -> Result<DataFrame> {
    match session.plan(query).await? {
        Planned::Query(plan) => Ok(DataFrame::new(session.ctx.state(), plan)),
        _ => Err(Error::Invalid("CACHE TABLE ... AS takes a query (SELECT, WITH, VALUES)".into())),
    }
}

/// Reads the source into a new generation and returns the state naming it; the catalog is
/// not changed. With `append_to` (an intact generation and a `refresh_column`), only rows
/// whose column is above the generation's highest value are read, and the new generation is
/// the old files plus theirs.
///
/// # Errors
/// The source fails, or the cache would exceed the disk budget: the new generation is removed
/// and the message names the table.
async fn load(
    session: &Session,
    database: &str,
    name: &str,
    definition: &CacheDefinition,
    append_to: Option<&CacheState>,
) -> Result<CacheState> {
    let qualified = format!("{database}.{name}");
    let catalog = session.catalog.catalog();
    let (mut frame, columns, source_version) = match &definition.query {
        Some(query) => (query_frame(session, query).await?, definition.columns.clone(), None),
        None => {
            let spec = catalog.table(database, name)?;
            let provider = catalog.source_provider(&spec).await.unwrap_or_else(|unavailable| unavailable);
            let version = source_version(session, &spec).await;
            let columns = spec.columns.iter().chain(&spec.partition_columns).cloned().collect::<Vec<_>>();
            let mut frame = session.ctx.read_table(provider)?;
            // Rows of one partition together, so the files' statistics prune by partition
            // as the table's directories do.
            if !spec.partition_columns.is_empty() {
                let by = spec
                    .partition_columns
                    .iter()
                    .map(|c| Expr::Column(datafusion::common::Column::new_unqualified(&c.name)).sort(true, true));
                frame = frame.sort(by.collect())?;
            }
            (frame, columns, version)
        }
    };
    let data_spec = |dir: &Path| TableSpec {
        database: database.to_owned(),
        name: name.to_owned(),
        kind: crate::sources::parquet::KIND.to_owned(),
        location: dir.display().to_string(),
        columns: columns.clone(),
        ..TableSpec::default()
    };
    // Rows in the declared types, so the files read back as the table's own schema.
    let schema = data_spec(Path::new("")).schema()?;
    let cast = frame.schema().columns().into_iter().zip(schema.fields()).map(|(column, field)| {
        Expr::Column(column).cast_to(field.data_type(), frame.schema()).map(|e| e.alias(field.name()))
    });
    let cast = cast.collect::<datafusion::error::Result<Vec<_>>>()?;
    frame = frame.select(cast)?;

    let generation = crate::storage::commit::new_commit_id();
    let dir = session.cache_dir(database, name).join(&generation);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
    let mut base_rows = 0;
    if let (Some(previous), Some(column)) = (append_to, definition.options.get("refresh_column"))
        && let Some(old_spec) = &previous.data
    {
        let old = PathBuf::from(&old_spec.location);
        let old_data = catalog.sources().get(crate::sources::parquet::KIND)?.create(old_spec).await?;
        let column = || Expr::Column(datafusion::common::Column::new_unqualified(column));
        let highest = session.ctx.read_table(old_data)?.aggregate(vec![], vec![max(column())])?.collect().await?;
        let highest = datafusion::common::ScalarValue::try_from_array(highest[0].column(0), 0)?;
        if !highest.is_null() {
            frame = frame.filter(column().gt(lit(highest)))?;
        }
        link_files(&old, &dir)?;
        base_rows = previous.rows;
    }
    let used_by_others: u64 = catalog
        .caches()?
        .iter()
        .filter(|c| (c.database.as_str(), c.name.as_str()) != (database, name))
        .map(|c| c.state.bytes)
        .sum();
    let budget = session.cache_disk_mb.saturating_mul(1024 * 1024);
    let allowed = budget.saturating_sub(used_by_others);
    let over = || {
        Error::Invalid(format!(
            "caching {qualified} needs more than the {} left of the [cache] disk_mb budget ({} in all, {} taken by other caches); nothing was cached",
            human_bytes(allowed),
            human_bytes(budget),
            human_bytes(used_by_others)
        ))
    };
    let mut parquet = TableParquetOptions::default();
    parquet.global.max_row_group_size = 122_880;
    let path = dir.display().to_string();
    let writing = frame.write_parquet(&path, DataFrameWriteOptions::new(), Some(parquet));
    let watch_dir = dir.clone();
    // The files are watched as they grow, so a cache over the budget stops early.
    let watching = async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if parquet_bytes(&watch_dir).is_some_and(|bytes| bytes > allowed) {
                return;
            }
        }
    };
    let failed = |e: datafusion::error::DataFusionError| Error::Statement {
        location: format!("caching {qualified} failed, nothing was cached"),
        source: Box::new(e.into()),
    };
    let written = tokio::select! {
        written = writing => written.map_err(failed),
        () = watching => Err(over()),
    };
    let bytes = parquet_bytes(&dir).unwrap_or(u64::MAX);
    let written = written.and_then(|batches| if bytes > allowed { Err(over()) } else { Ok(batches) });
    let batches = match written {
        Ok(batches) => batches,
        Err(e) => {
            remove_abandoned(&dir).await;
            return Err(e);
        }
    };
    let rows: u64 = batches
        .iter()
        .filter_map(|b| b.column(0).as_any().downcast_ref::<UInt64Array>().map(|a| a.iter().flatten().sum::<u64>()))
        .sum();
    Ok(CacheState {
        data: Some(data_spec(&dir)),
        rows: base_rows + rows,
        bytes,
        loaded_at_ms: Some(now_ms()),
        attempted_at_ms: Some(now_ms()),
        last_error: None,
        source_version,
    })
}

/// Removes the generation of a stopped or failed load. The writer's tasks stop at their next
/// await once the write is dropped, so a file may still appear just after a first removal.
async fn remove_abandoned(dir: &Path) {
    for _ in 0..10 {
        let _ = std::fs::remove_dir_all(dir);
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !dir.exists() {
            return;
        }
    }
    tracing::warn!(dir = %dir.display(), "files of a failed cache load left on disk");
}

/// Hard links of the files of one generation into a new one (same disk, no copy).
fn link_files(from: &Path, to: &Path) -> Result<()> {
    for entry in std::fs::read_dir(from).map_err(|e| Error::io(from.display(), e))? {
        let entry = entry.map_err(|e| Error::io(from.display(), e))?;
        let target = to.join(entry.file_name());
        std::fs::hard_link(entry.path(), &target).map_err(|e| Error::io(target.display(), e))?;
    }
    Ok(())
}

/// Removes generations older than `previous` (kept for queries still reading it), and any a
/// failed load left, keeping the current one.
fn remove_old_generations(table_dir: &Path, previous: Option<&Path>, current: &CacheState) {
    let keep: Vec<PathBuf> = previous.into_iter().map(Path::to_path_buf).chain(current.directory()).collect();
    let Some(oldest_kept) = keep.iter().filter_map(|p| p.file_name()).min().map(|n| n.to_owned()) else { return };
    let Ok(entries) = std::fs::read_dir(table_dir) else { return };
    for entry in entries.flatten() {
        if entry.file_name() < oldest_kept
            && !keep.contains(&entry.path())
            && let Err(e) = std::fs::remove_dir_all(entry.path())
        {
            tracing::warn!(dir = %entry.path().display(), error = %e, "old cache generation left on disk");
        }
    }
}

/// For a Parquet table: what its committed files are now (names, sizes, times), hashed; a
/// cache loaded from other files is out of date.
async fn source_version(session: &Session, spec: &TableSpec) -> Option<String> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    if spec.kind != crate::sources::parquet::KIND {
        return None;
    }
    let url = crate::sources::parquet::table_url(&session.stores, spec).ok()?;
    let store = session.ctx.runtime_env().object_store(&url).ok()?;
    let mut files: Vec<(String, u64, i64)> = store
        .list(Some(url.prefix()))
        .map_ok(|meta| (meta.location.to_string(), meta.size, meta.last_modified.timestamp_millis()))
        .try_collect()
        .await
        .ok()?;
    files.sort();
    let mut hasher = DefaultHasher::new();
    files.hash(&mut hasher);
    Some(format!("{:016x}", hasher.finish()))
}

/// Loads a cache again (`REFRESH TABLE`, a write into its table, the server's refresher) and
/// names the new generation in the catalog. `None` when the table is not cached. A failed
/// load leaves the old generation in place and records the error in the cache's state.
///
/// # Errors
/// The load's error, naming the table.
pub(crate) async fn refresh(session: &Session, database: &str, name: &str) -> Result<Option<CacheState>> {
    let catalog = session.catalog.catalog();
    let Some(cache) = catalog.cache(database, name)? else { return Ok(None) };
    let intact = cache.state.directory().is_some_and(|dir| parquet_bytes(&dir) == Some(cache.state.bytes));
    let append = intact && !cache.stale && cache.definition.options.contains_key("refresh_column");
    let dir = session.cache_dir(database, name);
    match load(session, database, name, &cache.definition, append.then_some(&cache.state)).await {
        Ok(state) => {
            if catalog.swap_cache_state(database, name, &cache.state, &state)? {
                remove_old_generations(&dir, cache.state.directory().as_deref(), &state);
            } else if let Some(ours) = state.directory() {
                // Uncached, or refreshed by another process meanwhile: theirs stands.
                let _ = std::fs::remove_dir_all(ours);
            }
            Ok(Some(state))
        }
        Err(e) => {
            let failed =
                CacheState { last_error: Some(e.to_string()), attempted_at_ms: Some(now_ms()), ..cache.state.clone() };
            catalog.swap_cache_state(database, name, &cache.state, &failed)?;
            Err(e)
        }
    }
}

/// `UNCACHE TABLE [IF EXISTS] t`, and what `DROP TABLE` does to a cached table.
pub(crate) fn uncache(session: &Session, database: &str, name: &str) -> Result<bool> {
    let dropped = session.catalog.catalog().drop_cache(database, name)?;
    let dir = session.cache_dir(database, name);
    if dir.exists()
        && let Err(e) = std::fs::remove_dir_all(&dir)
    {
        tracing::warn!(dir = %dir.display(), error = %e, "files of an uncached table left on disk");
    }
    Ok(dropped)
}

pub(super) fn uncache_table(session: &Session, table: TableName, if_exists: bool) -> Result<Output> {
    let database = database_of(session, &table);
    if uncache(session, &database, &table.name)? || if_exists {
        return Ok(Output::Done(format!("uncached {database}.{}", table.name)));
    }
    Err(Error::Invalid(format!("{database}.{} is not cached (SHOW CACHED TABLES lists the caches)", table.name)))
}

pub(super) fn clear(session: &Session) -> Result<Output> {
    let caches = session.catalog.catalog().caches()?;
    for cache in &caches {
        uncache(session, &cache.database, &cache.name)?;
    }
    Ok(Output::Done(format!("uncached {} tables", caches.len())))
}

/// When a cache is next loaded by the server, if it is on a schedule.
fn next_refresh_ms(definition: &CacheDefinition, state: &CacheState) -> Option<i64> {
    let interval = refresh_interval(definition).ok().flatten()?;
    let last = state.loaded_at_ms.max(state.attempted_at_ms).unwrap_or_else(now_ms);
    Some(last + i64::try_from(interval.as_millis()).unwrap_or(i64::MAX))
}

/// Whether the server should load a cache now.
pub(crate) async fn due(session: &Session, cache: &lakegate_catalog::Cache, check_files: bool) -> bool {
    let now = now_ms();
    let interval = refresh_interval(&cache.definition).ok().flatten();
    let retry = i64::try_from(interval.unwrap_or(RETRY_AFTER).min(RETRY_AFTER).as_millis()).unwrap_or(i64::MAX);
    let recently_failed =
        cache.state.last_error.is_some() && cache.state.attempted_at_ms.is_some_and(|t| now - t < retry);
    if recently_failed {
        return false;
    }
    if cache.stale || cache.state.data.is_none() {
        return true;
    }
    if next_refresh_ms(&cache.definition, &cache.state).is_some_and(|next| next <= now) {
        return true;
    }
    if check_files && cache.definition.query.is_none() && cache.state.source_version.is_some() {
        let Ok(spec) = session.catalog.catalog().table(&cache.database, &cache.name) else { return false };
        return source_version(session, &spec).await != cache.state.source_version;
    }
    false
}

fn timestamp(ms: Option<i64>) -> Option<String> {
    ms.and_then(chrono::DateTime::from_timestamp_millis).map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

/// `SHOW CACHED TABLES`: the caches of databases the user may read.
pub(super) fn show(session: &Session) -> Result<Output> {
    let caches: Vec<_> =
        session.catalog.catalog().caches()?.into_iter().filter(|c| session.principal.may_read(&c.database)).collect();
    let text = |f: &dyn Fn(&lakegate_catalog::Cache) -> Option<String>| -> Arc<dyn Array> {
        Arc::new(caches.iter().map(f).collect::<StringArray>())
    };
    let number = |f: &dyn Fn(&lakegate_catalog::Cache) -> u64| -> Arc<dyn Array> {
        Arc::new(caches.iter().map(|c| i64::try_from(f(c)).ok()).collect::<Int64Array>())
    };
    let catalog = session.catalog.catalog();
    super::commands::rows_nullable(vec![
        ("database", text(&|c| Some(c.database.clone()))),
        ("table_name", text(&|c| Some(c.name.clone()))),
        (
            "source",
            text(&|c| match &c.definition.query {
                Some(_) => Some("query".to_owned()),
                None => catalog.table(&c.database, &c.name).ok().map(|t| t.kind),
            }),
        ),
        ("rows", number(&|c| c.state.rows)),
        ("bytes", number(&|c| c.state.bytes)),
        ("loaded_at", text(&|c| timestamp(c.state.loaded_at_ms))),
        ("next_refresh", text(&|c| timestamp(next_refresh_ms(&c.definition, &c.state)))),
        ("hits", number(&|c| c.hits)),
        ("loaded", Arc::new(caches.iter().map(|c| Some(c.state.data.is_some() && !c.stale)).collect::<BooleanArray>())),
        ("last_error", text(&|c| c.state.last_error.clone())),
    ])
}
