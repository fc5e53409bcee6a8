//! Runs lakegate's own statements (parsed by the SQL front) against the catalog.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use lakegate_catalog::{Catalog, ColumnSpec, TableSpec, mask_secrets};

use super::Session;
use crate::output::Output;
use crate::sql::ddl::{Command, CreateTable, TableName, matches_pattern};
use crate::sql::types;
use crate::{Error, Result};

pub(super) async fn run(session: &Session, command: Command) -> Result<Output> {
    let catalog = session.catalog.catalog();
    match command {
        Command::CreateDatabase { name, if_not_exists, comment, mount: None } => {
            let created = catalog.create_database(&name, comment.as_deref(), if_not_exists)?;
            Ok(done(created, format!("created database {name}"), format!("database {name} already exists")))
        }
        Command::CreateDatabase { name, if_not_exists, comment, mount: Some(mount) } => {
            let location = mount.location.unwrap_or_default();
            // The catalog keeps the location as written: a password belongs in OPTIONS, as a reference.
            let url = url::Url::parse(&location.replacen("jdbc:", "", 1)).ok();
            if url.is_some_and(|u| u.password().is_some() || u.query_pairs().any(|(k, _)| k == "password")) {
                return Err(Error::Invalid(format!(
                    "the LOCATION of database {name} holds a password: give OPTIONS ('password' '${{env:NAME}}') instead"
                )));
            }
            let spec = TableSpec {
                database: name.clone(),
                name: String::new(),
                kind: mount.kind,
                location,
                options: mount.options,
                columns: Vec::new(),
                partition_columns: Vec::new(),
                comment: comment.clone(),
            };
            let created = catalog.mount_database(&name, comment.as_deref(), spec, if_not_exists).await?;
            let tables = catalog.mounted_tables(&name).await?.len();
            Ok(done(
                created,
                format!("created database {name}: {tables} remote tables"),
                format!("database {name} already exists"),
            ))
        }
        Command::RefreshDatabase { name } => {
            catalog.require_database(&name)?;
            catalog.forget_listing(&name);
            let tables = catalog.mounted_tables(&name).await?.len();
            Ok(Output::Done(format!("refreshed database {name}: {tables} remote tables")))
        }
        Command::DropDatabase { name, if_exists, cascade } => {
            let dropped = catalog.drop_database(&name, if_exists, cascade)?;
            Ok(done(dropped, format!("dropped database {name}"), format!("database {name} does not exist")))
        }
        Command::DropTable { table, if_exists } if session.metastore_database(table.database.as_deref()).is_some() => {
            let (other, database) = session.metastore_database(table.database.as_deref()).unwrap_or_default();
            let metastore =
                session.metastore(&other).ok_or_else(|| Error::Unsupported(format!("no catalog {other}")))?;
            let dropped = metastore.drop_table(&database, &table.name, if_exists).await?;
            let name = format!("{other}.{database}.{}", table.name);
            Ok(done(
                dropped,
                format!("dropped table {name} (its files are kept)"),
                format!("table {name} does not exist"),
            ))
        }
        Command::CreateTable(create) => create_table(session, create).await,
        Command::DropTable { table, if_exists } => {
            let database = database_of(session, &table);
            if session.ctx.deregister_table(format!("{database}.{}", table.name).as_str())?.is_some() {
                return Ok(Output::Done(format!("dropped temporary table {}", table.name)));
            }
            let dropped = catalog.drop_table(&database, &table.name, if_exists)?;
            super::cache::uncache(session, &database, &table.name)?;
            Ok(done(
                dropped,
                format!("dropped table {database}.{} (its files are kept)", table.name),
                format!("table {database}.{} does not exist", table.name),
            ))
        }
        Command::ShowDatabases { catalog: Some(other), pattern } => {
            known_catalog(session, &other)?;
            let mut names = session.readable_databases_of(&other);
            names.retain(|n| pattern.as_deref().is_none_or(|p| matches_pattern(p, n)));
            rows(vec![("database", strings(names))])
        }
        Command::ShowDatabases { catalog: None, pattern } => {
            let names: Vec<String> = catalog
                .databases()?
                .into_iter()
                .filter(|n| pattern.as_deref().is_none_or(|p| matches_pattern(p, n)) && session.principal.may_read(n))
                .collect();
            rows(vec![("database", strings(names))])
        }
        Command::ShowTables { database: Some(qualified), pattern }
            if session.metastore_database(Some(&qualified)).is_some() =>
        {
            let (other, database) = session.metastore_database(Some(&qualified)).unwrap_or_default();
            let mut names: Vec<String> =
                session.tables_of(&other, &database, false).await.into_iter().map(|(name, _)| name).collect();
            names.retain(|n| pattern.as_deref().is_none_or(|p| matches_pattern(p, n)));
            names.sort();
            rows(vec![
                ("database", strings(vec![qualified; names.len()])),
                ("table_name", strings(names.clone())),
                ("source", strings(vec![other; names.len()])),
                ("is_temporary", Arc::new(names.iter().map(|_| Some(false)).collect::<BooleanArray>())),
            ])
        }
        Command::ShowGrants => {
            let principal = &session.principal;
            let databases = if principal.is_admin() { "*".to_owned() } else { principal.databases.join(", ") };
            rows(vec![
                ("user", strings(vec![principal.user.clone()])),
                ("role", strings(vec![principal.role.to_string()])),
                ("databases", strings(vec![databases])),
            ])
        }
        Command::ShowTables { database, pattern } => {
            let database = database.unwrap_or_else(|| session.current_database());
            let wanted = |name: &str| pattern.as_deref().is_none_or(|p| matches_pattern(p, name));
            let mut listed: Vec<(String, String, bool)> = catalog
                .tables(&database)?
                .into_iter()
                .filter(|t| wanted(&t.name))
                .map(|t| (t.name, t.kind, false))
                .collect();
            if let Some(mount) = catalog.mount(&database)? {
                let remote = catalog.mounted_tables(&database).await?;
                listed.extend(remote.into_iter().filter(|n| wanted(n)).map(|n| (n, mount.kind.clone(), false)));
            }
            let cached_queries =
                catalog.caches()?.into_iter().filter(|c| c.database == database && c.definition.query.is_some());
            listed.extend(cached_queries.filter(|c| wanted(&c.name)).map(|c| (c.name, "cache".to_owned(), false)));
            let temporary = session.catalog.temporary_names(&database);
            listed.extend(temporary.into_iter().filter(|n| wanted(n)).map(|n| (n, "temporary".to_owned(), true)));
            listed.sort();
            rows(vec![
                ("database", strings(vec![database; listed.len()])),
                ("table_name", strings(listed.iter().map(|(name, _, _)| name.clone()).collect())),
                ("source", strings(listed.iter().map(|(_, kind, _)| kind.clone()).collect())),
                (
                    "is_temporary",
                    Arc::new(listed.iter().map(|(_, _, temporary)| Some(*temporary)).collect::<BooleanArray>()),
                ),
            ])
        }
        Command::Describe { table } => describe(session, &table).await,
        Command::ShowCreateTable { table } => {
            let spec = catalog.table(&database_of(session, &table), &table.name)?;
            let sources = catalog.sources();
            let options = mask_secrets(&spec.options, |k| sources.is_secret(&spec.kind, k));
            rows(vec![("createtab_stmt", strings(vec![render_create(&spec, &options)?]))])
        }
        Command::ShowPartitions { table } => {
            let partitions = table_partitions(session, &table).await?;
            rows(vec![("partition", strings(partitions))])
        }
        Command::RepairTable { table } => {
            if let Some(listings) = session.ctx.runtime_env().cache_manager.get_list_files_cache() {
                listings.clear();
            }
            let database = database_of(session, &table);
            if let Some(state) = super::cache::refresh(session, &database, &table.name).await? {
                return Ok(Output::Done(format!(
                    "refreshed {database}.{} and its cache: {} rows, {}",
                    table.name,
                    state.rows,
                    crate::output::human_bytes(state.bytes)
                )));
            }
            let spec = catalog.table(&database_of(session, &table), &table.name)?;
            if spec.partition_columns.is_empty() {
                return Ok(Output::Done(format!("refreshed {}", spec.qualified_name())));
            }
            let partitions = table_partitions(session, &table).await?;
            Ok(Output::Done(format!("refreshed {}: {} partitions", spec.qualified_name(), partitions.len())))
        }
        Command::Vacuum { table, retain_hours } => {
            let spec = catalog.table(&database_of(session, &table), &table.name)?;
            if !catalog.sources().capabilities(&spec.kind).vacuum {
                return Err(Error::Unsupported(format!(
                    "VACUUM {}: only {} tables have files to vacuum",
                    spec.qualified_name(),
                    catalog.sources().names_that(|can| can.vacuum).join(" and ")
                )));
            }
            let retain = std::time::Duration::from_secs_f64(retain_hours.unwrap_or(1.0).max(0.0) * 3600.0);
            Ok(Output::Done(crate::write::vacuum(&session.write_context(), &spec, retain).await?))
        }
        Command::AddPartitions { table, partitions } => {
            let spec = catalog.table(&database_of(session, &table), &table.name)?;
            if !catalog.sources().capabilities(&spec.kind).lists_partitions {
                return Err(not_partitioned(catalog, &spec));
            }
            let names: Vec<&str> = spec.partition_columns.iter().map(|c| c.name.as_str()).collect();
            for partition in &partitions {
                let given: Vec<&str> = partition.iter().map(|(k, _)| k.as_str()).collect();
                if given != names {
                    return Err(Error::Invalid(format!(
                        "ADD PARTITION ({}) does not match the partition columns of {} ({})",
                        given.join(", "),
                        spec.qualified_name(),
                        names.join(", ")
                    )));
                }
            }
            let added = crate::write::add_partitions(&session.write_context(), &spec, &partitions).await?;
            Ok(Output::Done(format!(
                "added {added} of {} partitions to {} (the others hold data already)",
                partitions.len(),
                spec.qualified_name()
            )))
        }
        Command::IgnoredSetting { key } => {
            tracing::info!(%key, "Hive/Spark setting ignored");
            Ok(Output::Done(format!("ignored {key}: a Hive/Spark setting lakegate does not need")))
        }
        Command::KillQuery { id } => {
            let Some(owner) = session.history.owner(&id) else {
                return Err(Error::Invalid(format!(
                    "no query '{id}' is running (SELECT id FROM system.queries WHERE state = 'running')"
                )));
            };
            let principal = &session.principal;
            if owner != principal.user && !principal.is_admin() {
                return Err(
                    principal.deny(format!("killing another user's query ('{id}' is {owner}'s) needs the admin role"))
                );
            }
            let reason = format!("query '{id}' was killed by {}", principal.user);
            let stopped = session.history.stop(&id, &reason);
            tracing::info!(query = %id, by = %principal.user, owner = %owner, stopped, "kill query");
            Ok(Output::Done(if stopped {
                format!("killed query {id}")
            } else {
                format!("query {id} had already ended")
            }))
        }
        Command::SetStatementTimeout { timeout } => {
            *session.statement_timeout.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = timeout;
            Ok(Output::Done(match timeout {
                Some(limit) => format!("statements of this session stop after {} s", limit.as_secs_f64()),
                None => "statements of this session run without a time limit".to_owned(),
            }))
        }
        Command::CacheTable { table, lazy, options, query } => {
            super::cache::cache(session, table, lazy, options, query).await
        }
        Command::UncacheTable { table, if_exists } => super::cache::uncache_table(session, table, if_exists),
        Command::ClearCache => super::cache::clear(session),
        Command::ShowCachedTables => super::cache::show(session),
        Command::Use { database } => {
            catalog.require_database(&database)?;
            session.ctx.state_ref().write().config_mut().options_mut().catalog.default_schema = database.clone();
            Ok(Output::Done(format!("using database {database}")))
        }
    }
}

async fn table_partitions(session: &Session, table: &TableName) -> Result<Vec<String>> {
    let catalog = session.catalog.catalog();
    let spec = catalog.table(&database_of(session, table), &table.name)?;
    if !catalog.sources().capabilities(&spec.kind).lists_partitions || spec.partition_columns.is_empty() {
        return Err(not_partitioned(catalog, &spec));
    }
    Ok(crate::sources::parquet::partitions(&session.ctx.state(), &session.stores, &spec).await?)
}

fn not_partitioned(catalog: &Catalog, spec: &TableSpec) -> Error {
    let kinds = catalog.sources().names_that(|can| can.lists_partitions).join(" or ");
    Error::Unsupported(format!("{} is not a partitioned {kinds} table", spec.qualified_name()))
}

/// One text column, a row per line.
pub(super) fn lines(column: &str, lines: Vec<String>) -> Result<Output> {
    rows(vec![(column, strings(lines))])
}

fn done(changed: bool, did: String, nothing: String) -> Output {
    Output::Done(if changed { did } else { nothing })
}

fn database_of(session: &Session, table: &TableName) -> String {
    table.database.clone().unwrap_or_else(|| session.current_database())
}

fn strings(values: Vec<String>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}

fn rows(columns: Vec<(&str, ArrayRef)>) -> Result<Output> {
    rows_of(columns, false)
}

/// Rows whose columns may hold NULLs.
pub(super) fn rows_nullable(columns: Vec<(&str, ArrayRef)>) -> Result<Output> {
    rows_of(columns, true)
}

fn rows_of(columns: Vec<(&str, ArrayRef)>, nullable: bool) -> Result<Output> {
    let schema = Arc::new(Schema::new(
        columns.iter().map(|(name, array)| Field::new(*name, array.data_type().clone(), nullable)).collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns.into_iter().map(|(_, a)| a).collect())?;
    let stream = futures::stream::once(async move { Ok(batch) });
    Ok(Output::Rows(Box::pin(RecordBatchStreamAdapter::new(schema, stream))))
}

async fn create_table(session: &Session, create: CreateTable) -> Result<Output> {
    let database = database_of(session, &create.table);
    let name = create.table.name.clone();
    let kind = create.kind.clone().unwrap_or_else(|| crate::sources::DEFAULT_KIND.to_owned());
    let mut columns = create.columns;
    let mut partition_columns = Vec::new();
    for (column, data_type) in create.partitioned_by {
        let declared = columns.iter().position(|(n, _)| *n == column).map(|i| columns.remove(i).1);
        let data_type = match (data_type, declared) {
            (Some(_), Some(_)) => {
                return Err(Error::Invalid(format!(
                    "partition column '{column}' is declared twice: give its type either in the column list or in PARTITIONED BY"
                )));
            }
            (Some(t), None) => t,
            (None, Some(DataType::Utf8View)) => DataType::Utf8,
            (None, Some(t)) => t,
            (None, None) if columns.is_empty() => DataType::Utf8,
            (None, None) => {
                return Err(Error::Invalid(format!(
                    "partition column '{column}' is not among the declared columns; declare it, or give its type: PARTITIONED BY ({column} STRING)"
                )));
            }
        };
        partition_columns.push(ColumnSpec::new(column, &data_type, true));
    }
    // A table of a metastore's database (`hive.sales.t`) is created there.
    let metastore = session.metastore_database(create.table.database.as_deref());
    match &metastore {
        Some((other, database)) => {
            let name = format!("{other}.{database}.{name}");
            if create.temporary || kind != crate::sources::parquet::KIND {
                return Err(Error::Unsupported(format!(
                    "CREATE TABLE {name}: lakegate creates Parquet tables in a metastore; create other tables in Spark or Hive"
                )));
            }
            if let Some(key) = create.options.keys().next() {
                return Err(Error::Unsupported(format!(
                    "CREATE TABLE {name}: a metastore table keeps no OPTIONS ('{key}'); give its place with LOCATION"
                )));
            }
        }
        None => {
            lakegate_catalog::check_name("database", &database)?;
            lakegate_catalog::check_name("table", &name)?;
        }
    }
    let location = match create.location {
        // A metastore's location is written as Spark and Hive write it (`s3a://`, `file:/`).
        Some(location) if metastore.is_some() => allowed_location(session, location)?,
        Some(location) => allowed_location(session, absolute_location(&location)?)?,
        // The metastore puts it under the database's location.
        None if metastore.is_some() => String::new(),
        None if session.catalog.catalog().sources().capabilities(&kind).writable => {
            let dir = session.warehouse.join(&database).join(&name);
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
            dir.display().to_string()
        }
        None => String::new(),
    };
    let spec = TableSpec {
        database: metastore.as_ref().map_or_else(|| database.clone(), |(_, database)| database.clone()),
        name: name.clone(),
        kind,
        location,
        options: create.options,
        columns: columns.iter().map(|(n, t)| ColumnSpec::new(n, t, true)).collect(),
        partition_columns,
        comment: create.comment,
    };
    if let Some((other, database)) = metastore {
        let catalog = session.metastore(&other).ok_or_else(|| Error::Unsupported(format!("no catalog {other}")))?;
        let created = catalog.create_table(&spec, create.if_not_exists).await?;
        let name = format!("{other}.{database}.{name}");
        return Ok(done(created, format!("created table {name}"), format!("table {name} already exists")));
    }
    let state = session.ctx.state();
    if create.temporary {
        session.catalog.create_temporary(&state, spec, true).await?;
        return Ok(Output::Done(format!("created temporary table {name}")));
    }
    let created = session.catalog.catalog().create_table(&state, spec, create.if_not_exists).await?;
    Ok(done(created, format!("created table {database}.{name}"), format!("table {database}.{name} already exists")))
}

/// `location` when it lies under one of `[server] allowed_locations` (or none are set).
/// Locations are compared lexically, path segment by path segment, after `s3a://`/`s3n://`
/// became `s3://`; a location with a `..` segment is refused outright.
fn allowed_location(session: &Session, location: String) -> Result<String> {
    let allowed = &session.allowed_locations;
    if allowed.is_empty() || location.is_empty() {
        return Ok(location);
    }
    let normal = |l: &str| -> String {
        let l = l
            .strip_prefix("s3a://")
            .or_else(|| l.strip_prefix("s3n://"))
            .map_or_else(|| l.to_owned(), |rest| format!("s3://{rest}"));
        l.strip_prefix("file://").unwrap_or(&l).trim_end_matches('/').to_owned()
    };
    let wanted = normal(&location);
    let escapes = wanted.split('/').any(|segment| segment == "..");
    let inside = |prefix: &String| {
        let prefix = normal(prefix);
        wanted == prefix || wanted.starts_with(&format!("{prefix}/"))
    };
    if !escapes && allowed.iter().any(inside) {
        return Ok(location);
    }
    Err(session
        .principal
        .deny(format!("LOCATION '{location}' is outside [server] allowed_locations ({})", allowed.join(", "))))
}

/// Plain paths are made absolute, so the catalog means the same place from any directory.
fn absolute_location(location: &str) -> Result<String> {
    let has_scheme = location.split_once("://").is_some_and(|(scheme, _)| scheme.len() > 1);
    if has_scheme {
        return Ok(location.to_owned());
    }
    let absolute = std::path::absolute(location).map_err(|e| Error::io(location, e))?;
    Ok(absolute.display().to_string())
}

fn known_catalog(session: &Session, name: &str) -> Result<()> {
    if session.other_catalogs().iter().any(|c| c == name) {
        return Ok(());
    }
    let mut known = vec![crate::sql::CATALOG.to_owned()];
    known.extend(session.other_catalogs());
    Err(Error::Unsupported(format!("no catalog '{name}'; there are {}", known.join(", "))))
}

async fn describe(session: &Session, table: &TableName) -> Result<Output> {
    let database = database_of(session, table);
    let (fields, partitions): (Vec<Field>, Vec<String>) = match session.catalog.catalog().table(&database, &table.name)
    {
        Ok(spec) => {
            let schema = spec.schema()?;
            (
                schema.fields().iter().map(|f| f.as_ref().clone()).collect(),
                spec.partition_columns.into_iter().map(|c| c.name).collect(),
            )
        }
        Err(e) => match session.ctx.table_provider(format!("{database}.{}", table.name).as_str()).await {
            Ok(provider) => (
                provider.schema().fields().iter().map(|f| f.as_ref().clone()).collect(),
                crate::metastore::partition_columns(provider.as_ref()),
            ),
            Err(_) => return Err(e.into()),
        },
    };
    rows(vec![
        ("col_name", strings(fields.iter().map(|f| f.name().clone()).collect())),
        ("data_type", strings(fields.iter().map(|f| types::to_sql(f.data_type())).collect())),
        ("arrow_type", strings(fields.iter().map(|f| f.data_type().to_string()).collect())),
        (
            "is_partition",
            Arc::new(BooleanArray::from(fields.iter().map(|f| partitions.contains(f.name())).collect::<Vec<_>>())),
        ),
    ])
}

fn quote(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain { name.to_owned() } else { format!("`{}`", name.replace('`', "``")) }
}

fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The statement that re-creates `spec`, with `options` (already masked) in it.
fn render_create(spec: &TableSpec, options: &std::collections::BTreeMap<String, String>) -> Result<String> {
    let mut sql = format!("CREATE EXTERNAL TABLE {}.{} (\n", quote(&spec.database), quote(&spec.name));
    let columns = spec
        .columns
        .iter()
        .map(|c| Ok(format!("  {} {}", quote(&c.name), types::to_sql(c.field()?.data_type()))))
        .collect::<lakegate_catalog::Result<Vec<_>>>()?;
    sql.push_str(&columns.join(",\n"));
    sql.push_str(&format!("\n)\nSTORED AS {}", spec.kind.to_uppercase()));
    if !spec.partition_columns.is_empty() {
        let partitions = spec
            .partition_columns
            .iter()
            .map(|c| Ok(format!("{} {}", quote(&c.name), types::to_sql(c.field()?.data_type()))))
            .collect::<lakegate_catalog::Result<Vec<_>>>()?;
        sql.push_str(&format!("\nPARTITIONED BY ({})", partitions.join(", ")));
    }
    if !spec.location.is_empty() {
        sql.push_str(&format!("\nLOCATION {}", literal(&spec.location)));
    }
    if !options.is_empty() {
        let pairs: Vec<_> = options.iter().map(|(k, v)| format!("{} {}", literal(k), literal(v))).collect();
        sql.push_str(&format!("\nOPTIONS ({})", pairs.join(", ")));
    }
    if let Some(comment) = &spec.comment {
        sql.push_str(&format!("\nCOMMENT {}", literal(comment)));
    }
    Ok(sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_become_absolute_and_urls_stay() {
        assert_eq!(absolute_location("s3a://b/t").expect("url"), "s3a://b/t");
        let abs = absolute_location("data/t").expect("path");
        assert!(std::path::Path::new(&abs).is_absolute() && abs.ends_with("data/t"), "{abs}");
    }
}
