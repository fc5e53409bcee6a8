//! Hive-style writes into Parquet tables: `INSERT OVERWRITE|INTO TABLE t [PARTITION (...)]
//! SELECT ... [DISTRIBUTE BY] [SORT BY] [CLUSTER BY]`, published atomically per partition.
//!
//! DataFusion plans the SELECT; lakegate lays the rows out itself: hashed to writers by the
//! `DISTRIBUTE BY` columns (by default the partition columns, so a partition gets one file,
//! not one per thread), sorted within each writer by the partition columns and then `SORT BY`,
//! so each writer has one file open at a time. Files roll over at a target size.

mod exec;
mod files;
mod location;

pub use exec::LocalPlanner;
pub(crate) use exec::{decode_logical, decode_physical, encode_logical, encode_physical, written_table};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan, SortExpr, col, lit};
use datafusion::physical_plan::{ExecutionPlanProperties, displayable};
use datafusion::prelude::{DataFrame, SessionContext};
use futures::{StreamExt, TryStreamExt};
use lakegate_catalog::TableSpec;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tracing::Instrument;

use crate::storage::ObjectStores;
use crate::storage::commit::{self, Mode};
use crate::{Error, Result};

/// Files roll over at this size unless the table sets `write.target_file_size`.
const TARGET_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// What a write needs of the session that runs it.
pub(crate) struct Context<'a> {
    pub(crate) ctx: &'a SessionContext,
    pub(crate) stores: &'a ObjectStores,
    /// The other tables, whose locations an overwrite must not delete from.
    pub(crate) catalog: &'a lakegate_catalog::Catalog,
    /// Where managed tables live; it and its parent (the data dir) are no table's own location.
    pub(crate) warehouse: &'a std::path::Path,
    /// Told the rows and bytes written as they are written, for progress bars.
    pub(crate) on_written: Arc<dyn Fn(u64, u64) + Send + Sync>,
}

/// Resolves when a write must stop (KILL QUERY, a time limit), saying why.
pub(crate) type Stop = std::pin::Pin<Box<dyn std::future::Future<Output = crate::Stopped> + Send>>;

/// An INSERT into a Parquet table of the catalog, parsed and resolved by the SQL front.
pub(crate) struct Request {
    pub(crate) table: TableSpec,
    pub(crate) overwrite: bool,
    /// The `PARTITION (...)` spec in the table's order: `dt='2018-03-05'` is static
    /// (`Some`), `dt` dynamic (`None`); every partition column is dynamic without the clause.
    pub(crate) partitions: Vec<(String, Option<String>)>,
    /// `DISTRIBUTE BY` expressions, and `SORT BY` expressions with their order, as SQL over
    /// the query's columns.
    pub(crate) distribute_by: Vec<String>,
    pub(crate) sort_by: Vec<(String, SortOptions)>,
}

/// A planned write, before anything is written: the rows it writes are a logical plan, so a
/// write with placeholders plans (for prepared statements) and binds later.
pub struct WritePlan {
    spec: TableSpec,
    mode: Mode,
    /// Rows laid out for the writers: data columns, then partition columns, then sort keys,
    /// then distribution keys.
    rows: DataFrame,
    sort_keys: Vec<SortOptions>,
    distribute_keys: usize,
    data_columns: usize,
    partition_names: Vec<String>,
    /// Partitions replaced even when the query yields no rows (a fully static spec).
    static_partition: Option<String>,
    /// The partition columns' rows, for listing what a dry run would replace.
    partitions_frame: Option<DataFrame>,
    target_file_bytes: u64,
}

impl std::fmt::Debug for WritePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WritePlan").field("table", &self.spec.qualified_name()).field("mode", &self.mode).finish()
    }
}

impl WritePlan {
    /// The table written.
    pub(crate) fn table(&self) -> &TableSpec {
        &self.spec
    }
}

/// Whether Hive/Spark would store a `from` value into a `to` column (then cast).
fn assignable(from: &DataType, to: &DataType) -> bool {
    let string = |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    from == to
        || from.is_null()
        || (from.is_numeric() && to.is_numeric())
        || string(to)
        || (from.is_temporal() && to.is_temporal())
        || matches!((from, to), (DataType::Dictionary(_, v), t) if assignable(v, t))
        // Lists whose items are: `make_array('a')` into an ARRAY<STRING> column.
        || matches!((from, to), (DataType::List(f) | DataType::LargeList(f), DataType::List(t) | DataType::LargeList(t))
            if assignable(f.data_type(), t.data_type()))
}

/// Plans an INSERT into a Parquet table of the catalog, whose rows are `query`'s.
///
/// # Errors
/// A column count or type that does not fit the table (naming the column), a bad layout
/// expression, or an overwrite of a location that is not the table's own.
pub(crate) fn plan(context: &Context<'_>, request: Request, query: LogicalPlan) -> Result<WritePlan> {
    let Request { table: spec, overwrite, partitions, distribute_by, sort_by } = request;
    let table = spec.qualified_name();
    let mode = if overwrite { Mode::Overwrite } else { Mode::Append };
    if mode == Mode::Overwrite {
        location::refuse_shared(context, &spec, "INSERT OVERWRITE")?;
    }
    let frame = DataFrame::new(context.ctx.state(), query);

    // The query gives the data columns, then the dynamic partition columns, by position.
    let data_fields = spec.data_schema()?.fields().iter().map(|f| f.as_ref().clone()).collect::<Vec<_>>();
    let partition_fields =
        spec.partition_columns.iter().map(|c| c.field()).collect::<lakegate_catalog::Result<Vec<_>>>()?;
    let dynamic: Vec<&str> = partitions.iter().filter(|(_, v)| v.is_none()).map(|(c, _)| c.as_str()).collect();
    let expected: Vec<String> =
        data_fields.iter().map(|f| f.name().clone()).chain(dynamic.iter().map(|c| (*c).to_owned())).collect();
    let given = frame.schema().fields().len();
    if given != expected.len() {
        let hint = if dynamic.is_empty() {
            String::new()
        } else {
            format!("; the dynamic partition columns ({}) come last, in that order", dynamic.join(", "))
        };
        return Err(Error::Invalid(format!(
            "INSERT into {table} needs {} columns ({}) but the query gives {given}{hint}",
            expected.len(),
            expected.join(", ")
        )));
    }
    let query_columns: Vec<Expr> = frame.schema().columns().into_iter().map(Expr::Column).collect();
    let mut outputs = Vec::new();
    let mut next_query_column = 0..;
    for field in data_fields.iter().chain(&partition_fields) {
        let static_value = partitions.iter().find(|(c, _)| c == field.name()).and_then(|(_, v)| v.clone());
        let (expr, from) = match static_value {
            Some(value) => (lit(value), DataType::Utf8),
            None => {
                let index = next_query_column.next().unwrap_or_default();
                (query_columns[index].clone(), frame.schema().field(index).data_type().clone())
            }
        };
        if !assignable(&from, field.data_type()) {
            return Err(Error::Invalid(format!(
                "column '{}' of {table} is {} but the query gives {from}",
                field.name(),
                field.data_type()
            )));
        }
        outputs.push(expr.cast_to(field.data_type(), frame.schema())?.alias(field.name()));
    }
    let partition_names: Vec<String> = partition_fields.iter().map(|f| f.name().clone()).collect();
    let mut sort_keys = Vec::new();
    for (i, (expr, options)) in sort_by.iter().enumerate() {
        outputs.push(frame.parse_sql_expr(expr)?.alias(format!("__sort_{i}")));
        sort_keys.push(*options);
    }
    for (i, expr) in distribute_by.iter().enumerate() {
        outputs.push(frame.parse_sql_expr(expr)?.alias(format!("__distribute_{i}")));
    }
    let rows = frame.select(outputs)?;
    let partitions_frame = match dynamic.is_empty() {
        true => None,
        false => Some(
            rows.clone()
                .select(partition_names.iter().map(|n| col(n.as_str())).collect::<Vec<_>>())?
                .distinct()?
                .sort(partition_names.iter().map(|n| SortExpr::new(col(n.as_str()), true, true)).collect())?,
        ),
    };
    let static_partition = (!partitions.is_empty() && dynamic.is_empty())
        .then(|| partition_dir(partitions.iter().map(|(c, v)| (c.as_str(), v.as_deref()))));
    let target_file_bytes = crate::sources::parquet::target_file_size(&spec)?.unwrap_or(TARGET_FILE_BYTES);
    Ok(WritePlan {
        spec,
        mode,
        rows,
        sort_keys,
        distribute_keys: distribute_by.len(),
        data_columns: data_fields.len(),
        partition_names,
        static_partition,
        partitions_frame,
        target_file_bytes,
    })
}

impl WritePlan {
    /// How this write lays out its rows in files, as the files of `commit`, with the Parquet
    /// settings of `context`'s session.
    fn layout(&self, context: &Context<'_>, commit: String) -> Result<exec::Layout> {
        Ok(exec::Layout {
            spec: self.spec.clone(),
            commit,
            data_columns: self.data_columns,
            partition_names: self.partition_names.clone(),
            sort_keys: self.sort_keys.iter().map(|o| (o.descending, o.nulls_first)).collect(),
            distribute_keys: self.distribute_keys,
            target_file_bytes: self.target_file_bytes,
            parquet: exec::Layout::encode_parquet(&context.ctx.state().table_options().parquet)?,
        })
    }
}

/// Hive's name of a null partition value.
const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// The directory of a partition, `dt=2018-03-05/country=US`, with values escaped as DataFusion
/// and Hive read them.
fn partition_dir<'a>(values: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> String {
    const ESCAPED: &percent_encoding::AsciiSet =
        &percent_encoding::CONTROLS.add(b' ').add(b'%').add(b'/').add(b'?').add(b'#');
    values
        .into_iter()
        .map(|(column, value)| {
            format!("{column}={}", percent_encoding::utf8_percent_encode(value.unwrap_or(NULL_PARTITION), ESCAPED))
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The partition directory of row `row`, given the partition columns' names and arrays.
fn partition_dir_of_row(names: &[String], keys: &[datafusion::arrow::array::ArrayRef], row: usize) -> Result<String> {
    let values = keys
        .iter()
        .map(|array| {
            array.is_valid(row).then(|| datafusion::arrow::util::display::array_value_to_string(array, row)).transpose()
        })
        .collect::<std::result::Result<Vec<Option<String>>, _>>()?;
    Ok(partition_dir(names.iter().map(String::as_str).zip(values.iter().map(Option::as_deref))))
}

/// The table's root as the store sees it, and the store (unfiltered).
fn table_root(context: &Context<'_>, spec: &TableSpec) -> Result<(Arc<dyn ObjectStore>, Path)> {
    let url = crate::sources::parquet::table_url(context.stores, spec)?;
    let store = context.stores.raw_store(url.as_ref())?;
    Ok((store, url.prefix().clone()))
}

/// Hive's `ALTER TABLE t ADD PARTITION (...)`: each partition that has no data yet gets one
/// empty Parquet file, committed like any write, so `SHOW PARTITIONS` lists it and readers
/// (lakegate's and plain ones) see an empty partition; one that has data is left alone.
/// Returns how many partitions were added.
///
/// # Errors
/// A value that would leave the table's directory, or the store fails.
pub(crate) async fn add_partitions(
    context: &Context<'_>,
    spec: &TableSpec,
    partitions: &[Vec<(String, String)>],
) -> Result<usize> {
    let (store, root) = table_root(context, spec)?;
    let schema = spec.data_schema()?;
    let mut added = 0;
    for partition in partitions {
        let dir = commit::child(&root, &partition_dir(partition.iter().map(|(k, v)| (k.as_str(), Some(v.as_str())))));
        let existing: Vec<_> = store.list(Some(&dir)).try_collect().await.map_err(|e| Error::io(&dir, e.into()))?;
        if commit::visible(existing).iter().any(|o| o.location.as_ref().ends_with(".parquet")) {
            continue;
        }
        let parquet = datafusion::error::DataFusionError::from;
        let writer =
            datafusion::parquet::arrow::ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), None).map_err(parquet)?;
        let bytes = writer.into_inner().map_err(parquet)?;
        let id = commit::new_commit_id();
        let file = commit::child(&dir, &commit::data_file_name(&id, "000", 0));
        store.put(&file, bytes.into()).await.map_err(|e| Error::io(&file, e.into()))?;
        commit::publish(store.as_ref(), &dir, &id, commit::Mode::Append)
            .await
            .map_err(|e| Error::io(&dir, e.into()))?;
        added += 1;
    }
    if let Some(listings) = context.ctx.runtime_env().cache_manager.get_list_files_cache() {
        listings.clear();
    }
    Ok(added)
}

/// The table's directory when it is on local disk.
fn local_dir(spec: &TableSpec) -> Option<std::path::PathBuf> {
    let url = ListingTableUrl::parse(crate::storage::listing::listing_location(&spec.location)).ok()?;
    let url: &url::Url = url.as_ref();
    if url.scheme() == "file" { url.to_file_path().ok() } else { None }
}

/// What a write did.
#[derive(Debug)]
pub(crate) struct Wrote {
    /// Rows, files and partitions written, in words.
    pub(crate) summary: String,
    pub(crate) rows: u64,
    /// How long moving the files into place and publishing took.
    pub(crate) publish: std::time::Duration,
    /// The partition directories written or replaced (`dt=2024-01-05`), in order.
    pub(crate) partitions: Vec<String>,
}

/// Moves the staged files into their partitions, where they stay invisible until each
/// partition's marker names `commit`, then writes the markers.
async fn publish(
    store: &Arc<dyn ObjectStore>,
    root: &Path,
    table: &str,
    written: &[files::WrittenFile],
    dirs: &[Path],
    commit: &str,
    mode: Mode,
) -> Result<()> {
    let moves = written.iter().map(|f| {
        let (store, from, to) =
            (Arc::clone(store), f.staged.clone(), commit::child(root, &format!("{}/{}", f.partition, f.name)));
        async move { store.rename(&from, &to).await }
    });
    let moves: Vec<_> = moves.collect();
    futures::stream::iter(moves).buffer_unordered(16).try_collect::<Vec<_>>().await.map_err(|e| {
        datafusion::error::DataFusionError::ObjectStore(Box::new(e))
            .context(format!("moving the files of {table} into place"))
    })?;
    failpoint("moved");
    for (count, dir) in dirs.iter().enumerate() {
        commit::publish(store.as_ref(), dir, commit, mode).await.map_err(|e| {
            datafusion::error::DataFusionError::ObjectStore(Box::new(e)).context(format!("publishing {table}"))
        })?;
        if count == 0 {
            failpoint("published-one");
        }
    }
    Ok(())
}

/// Removes what `commit` left under `staging`: all of a failed write's files, or the files of
/// task runs a published write did not use. A failure only leaves garbage for VACUUM.
async fn discard_staged(store: &Arc<dyn ObjectStore>, staging: &Path, spec: &TableSpec, commit: &str) {
    let staged: Vec<Path> = store.list(Some(staging)).map_ok(|o| o.location).try_collect().await.unwrap_or_default();
    if let Err(e) = commit::delete(store.as_ref(), staged).await {
        tracing::warn!(table = %spec.qualified_name(), error = %e, "staged files left for vacuum");
    }
    // Local stores keep empty directories, and unfinished uploads that listings skip.
    if let Some(dir) = local_dir(spec) {
        let _ = tokio::fs::remove_dir_all(dir.join(commit::SYSTEM_DIR).join("staging").join(commit)).await;
    }
}

/// Runs a planned write and publishes it. `stop` is heeded until the files are written, never
/// while publishing, so a stopped write leaves every partition wholly old.
///
/// # Errors
/// The query or a write fails, or `stop` resolves first: nothing is published, and the staged
/// files are removed.
pub(crate) async fn execute(context: &Context<'_>, plan: WritePlan, stop: Option<Stop>) -> Result<Wrote> {
    let table = plan.spec.qualified_name();
    let (store, root) = table_root(context, &plan.spec)?;
    let commit = commit::new_commit_id();
    let staging = commit::staging_dir(&root, &commit);
    let layout = plan.layout(context, commit.clone())?;
    let writing = async {
        // Planned by the session: on its cluster when the rows' tables and this one travel.
        let logical = exec::WriteFiles::new(layout.clone(), plan.rows.logical_plan().clone())?.into_plan();
        let mut physical = context.ctx.state().create_physical_plan(&logical).await?;
        if let Some(local) = physical.downcast_ref::<exec::WriteExec>() {
            physical = Arc::new(local.with_progress(Arc::clone(&context.on_written))?);
        }
        let manifest = datafusion::physical_plan::collect(physical, context.ctx.task_ctx()).await?;
        exec::read_manifest(&layout, &staging, &manifest)
    };
    let result = match stop {
        Some(stop) => tokio::select! {
            written = writing => written,
            stopped = stop => Err(Error::Stopped(stopped)),
        },
        None => writing.await,
    };
    let written = match result {
        Ok(written) => written,
        Err(e) => {
            discard_staged(&store, &staging, &plan.spec, &commit).await;
            return Err(e);
        }
    };
    let mut partitions: BTreeMap<String, Vec<&files::WrittenFile>> = BTreeMap::new();
    for file in &written {
        partitions.entry(file.partition.clone()).or_default().push(file);
    }
    if let Some(dir) = &plan.static_partition {
        partitions.entry(dir.clone()).or_default();
    }
    if plan.partition_names.is_empty() && plan.mode == Mode::Overwrite {
        partitions.entry(String::new()).or_default();
    }
    failpoint("staged");
    let publishing = std::time::Instant::now();
    let dirs: Vec<Path> = partitions.keys().map(|dir| commit::child(&root, dir)).collect();
    let span = tracing::info_span!(target: crate::telemetry::SPANS, "commit", table = %table, partitions = dirs.len());
    publish(&store, &root, &table, &written, &dirs, &commit, plan.mode).instrument(span).await?;
    let publish_time = publishing.elapsed();
    if let Some(listings) = context.ctx.runtime_env().cache_manager.get_list_files_cache() {
        listings.clear();
    }
    failpoint("published");
    // What is left in staging was written by runs of a task that failed or was retried.
    discard_staged(&store, &staging, &plan.spec, &commit).await;
    // Readers now see the new files; the old ones can go. A failure here only leaves garbage.
    match commit::collect_garbage(store.as_ref(), &root, Some(&dirs), None).await {
        Ok(collected) => tracing::info!(%table, ?collected, "replaced files removed"),
        Err(e) => tracing::warn!(%table, error = %e, "replaced files left for vacuum"),
    }
    let rows: u64 = written.iter().map(|f| f.rows).sum();
    let bytes: u64 = written.iter().map(|f| f.bytes).sum();
    let verb = if plan.mode == Mode::Overwrite { "replaced" } else { "added to" };
    let mut summary = format!(
        "wrote {rows} row{} in {} files ({}) into {table}",
        if rows == 1 { "" } else { "s" },
        written.len(),
        crate::output::human_bytes(bytes)
    );
    let named: Vec<&String> = partitions.keys().filter(|k| !k.is_empty()).collect();
    if !named.is_empty() {
        summary.push_str(&format!("; {verb} {} partitions: {}", named.len(), abbreviate(&named)));
    }
    let partitions = named.into_iter().cloned().collect();
    Ok(Wrote { summary, rows, publish: publish_time, partitions })
}

/// Lists what a write would do, without writing: the physical plan and the partitions.
///
/// # Errors
/// The query fails (it runs, to find the dynamic partitions).
pub(crate) async fn explain(context: &Context<'_>, plan: WritePlan) -> Result<Vec<String>> {
    let rows = plan.rows.clone().create_physical_plan().await?;
    let physical =
        plan.layout(context, String::new())?.lay_out(rows, context.ctx.state().config().target_partitions())?;
    let mut lines = vec![format!(
        "{} {} ({} writers, files up to {})",
        if plan.mode == Mode::Overwrite { "INSERT OVERWRITE" } else { "INSERT INTO" },
        plan.spec.qualified_name(),
        physical.output_partitioning().partition_count(),
        crate::output::human_bytes(plan.target_file_bytes)
    )];
    lines.extend(displayable(physical.as_ref()).indent(false).to_string().lines().map(str::to_owned));
    let verb = if plan.mode == Mode::Overwrite { "replaces" } else { "adds to" };
    if let Some(dir) = &plan.static_partition {
        lines.push(format!("{verb} partition {dir}"));
    }
    if let Some(frame) = plan.partitions_frame {
        let mut dirs = BTreeSet::new();
        for batch in frame.collect().await? {
            for row in 0..batch.num_rows() {
                dirs.insert(partition_dir_of_row(&plan.partition_names, batch.columns(), row)?);
            }
        }
        lines.push(format!("{verb} {} partitions: {}", dirs.len(), dirs.into_iter().collect::<Vec<_>>().join(", ")));
    }
    Ok(lines)
}

/// Removes what no reader of `spec` can see: replaced files at once, and files of writes that
/// never published once older than `abandoned_after`.
///
/// # Errors
/// Listing or deleting fails.
pub(crate) async fn vacuum(
    context: &Context<'_>,
    spec: &TableSpec,
    abandoned_after: std::time::Duration,
) -> Result<String> {
    location::refuse_shared(context, spec, "VACUUM")?;
    let (store, root) = table_root(context, spec)?;
    let collected = commit::collect_garbage(store.as_ref(), &root, None, Some(abandoned_after))
        .await
        .map_err(|e| datafusion::error::DataFusionError::ObjectStore(Box::new(e)))?;
    Ok(format!(
        "vacuumed {}: {} replaced files, {} abandoned files, {} old markers removed",
        spec.qualified_name(),
        collected.replaced_files,
        collected.abandoned_files,
        collected.markers
    ))
}

/// Stops the process at a named step of a commit when `LAKEGATE_PAUSE_AT` names it, so tests
/// can kill a writer there: it prints `paused at <step>` on stderr and waits forever.
fn failpoint(step: &str) {
    if std::env::var("LAKEGATE_PAUSE_AT").is_ok_and(|s| s == step) {
        eprintln!("paused at {step}");
        loop {
            std::thread::park();
        }
    }
}

fn abbreviate(names: &[&String]) -> String {
    match names {
        [] => String::new(),
        [only] => (*only).clone(),
        [first, .., last] if names.len() > 6 => format!("{first} … {last}"),
        all => all.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_directories_escape_like_hive() {
        assert_eq!(
            partition_dir([("dt", Some("2018-03-05")), ("country", None)]),
            "dt=2018-03-05/country=__HIVE_DEFAULT_PARTITION__"
        );
        assert_eq!(partition_dir([("path", Some("a/b c"))]), "path=a%2Fb%20c");
    }

    #[test]
    fn hive_stores_numbers_into_strings_but_not_dates_into_ints() {
        assert!(assignable(&DataType::Int32, &DataType::Int64));
        assert!(assignable(&DataType::Date32, &DataType::Utf8));
        assert!(!assignable(&DataType::Date32, &DataType::Int32));
        let list = |t: DataType, name: &str| {
            DataType::List(std::sync::Arc::new(datafusion::arrow::datatypes::Field::new(name, t, true)))
        };
        assert!(assignable(&list(DataType::Utf8, "item"), &list(DataType::Utf8View, "element")));
        assert!(!assignable(&list(DataType::Date32, "item"), &list(DataType::Int32, "item")));
    }
}
