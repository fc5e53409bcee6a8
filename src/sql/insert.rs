//! INSERTs into the catalog's tables: the target resolved, Hive's `PARTITION` spec and layout
//! clauses (`DISTRIBUTE BY`, `SORT BY`, `CLUSTER BY`) read, so the writer gets a request.

use datafusion::arrow::compute::SortOptions;
use datafusion::sql::parser::Statement;
use lakegate_catalog::{SessionCatalog, TableSpec};
use sqlparser::ast::{BinaryOperator, Expr as SqlExpr, OrderByExpr, Query, SetExpr, TableObject, Value};

use super::ddl;
use crate::write::Request;
use crate::{Error, Result};

/// An `INSERT` (or `EXPLAIN INSERT`) into one of the catalog's tables, resolved: lakegate
/// writes these itself.
pub(crate) struct CatalogInsert {
    /// The SELECT or VALUES whose rows are written, without Hive's layout clauses.
    pub(crate) query: Box<Query>,
    pub(crate) request: Request,
    pub(crate) explain: bool,
}

/// The INSERT of `statement` when its target is a table of the catalog (not a temporary
/// table, which DataFusion writes), or `other_catalog`: the target's definition when it is a
/// table of another catalog (`hive.sales.events`, [`insert_target`]).
///
/// # Errors
/// The target does not exist, or is a remote source, which lakegate does not write.
pub(crate) fn catalog_insert(
    catalog: &SessionCatalog,
    current_database: &str,
    statement: &Statement,
    other_catalog: Option<TableSpec>,
) -> Result<Option<CatalogInsert>> {
    use sqlparser::ast::Statement as Sql;
    let (sql, explain) = match statement {
        Statement::Statement(sql) => (sql, false),
        Statement::Explain(explain) => match explain.statement.as_ref() {
            Statement::Statement(sql) => (sql, true),
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    let Sql::Insert(insert) = sql.as_ref() else { return Ok(None) };
    let TableObject::TableName(name) = &insert.table else { return Ok(None) };
    let name = ddl::table_name(name)?;
    let database = name.database.unwrap_or_else(|| current_database.to_owned());
    if catalog.temporary_names(&database).contains(&name.name) {
        return Ok(None);
    }
    let table = match other_catalog {
        Some(table) => table,
        None => catalog.catalog().table(&database, &name.name)?,
    };
    let sources = catalog.catalog().sources();
    if !sources.capabilities(&table.kind).writable {
        return Err(Error::Unsupported(format!(
            "INSERT into {} ({} table): lakegate writes {} tables only",
            table.qualified_name(),
            table.kind,
            sources.names_that(|can| can.writable).join(" and ")
        )));
    }
    let mut insert = insert.clone();
    if !insert.columns.is_empty() {
        return Err(Error::Unsupported(format!(
            "INSERT with a column list into {}: select the columns in the table's order",
            table.qualified_name()
        )));
    }
    let Some(mut query) = insert.source.take() else {
        return Err(Error::Syntax(format!("INSERT into {} needs a SELECT or VALUES", table.qualified_name())));
    };
    let (distribute_by, sort_by) = take_layout_clauses(&mut query);
    let sort_by = sort_by
        .iter()
        .map(|order| {
            let options = SortOptions {
                descending: order.options.asc == Some(false),
                nulls_first: order.options.nulls_first.unwrap_or(order.options.asc != Some(false)),
            };
            (order.expr.to_string(), options)
        })
        .collect();
    let request = Request {
        partitions: partition_spec(&table, insert.partitioned.as_deref())?,
        table,
        overwrite: insert.overwrite,
        distribute_by: distribute_by.iter().map(ToString::to_string).collect(),
        sort_by,
    };
    Ok(Some(CatalogInsert { query, request, explain }))
}

/// The table an INSERT (or `EXPLAIN INSERT`) writes, as written.
///
/// # Errors
/// The target is not a table name.
pub(crate) fn insert_target(statement: &Statement) -> Result<Option<ddl::TableName>> {
    let sql = match statement {
        Statement::Statement(sql) => sql,
        Statement::Explain(explain) => match explain.statement.as_ref() {
            Statement::Statement(sql) => sql,
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    let sqlparser::ast::Statement::Insert(insert) = sql.as_ref() else { return Ok(None) };
    let TableObject::TableName(name) = &insert.table else { return Ok(None) };
    ddl::table_name(name).map(Some)
}

/// One entry of a `PARTITION (...)` spec: `dt='2018-03-05'` (static) or `dt` (dynamic).
fn partition_spec(spec: &TableSpec, clause: Option<&[SqlExpr]>) -> Result<Vec<(String, Option<String>)>> {
    let names: Vec<&str> = spec.partition_columns.iter().map(|c| c.name.as_str()).collect();
    let Some(clause) = clause else { return Ok(names.iter().map(|n| ((*n).to_owned(), None)).collect()) };
    if names.is_empty() {
        return Err(Error::Invalid(format!("{} is not partitioned; drop the PARTITION clause", spec.qualified_name())));
    }
    let mut entries = Vec::new();
    for expr in clause {
        let (column, value) = match expr {
            SqlExpr::Identifier(column) => (column.value.clone(), None),
            SqlExpr::BinaryOp { left, op: BinaryOperator::Eq, right } => match (left.as_ref(), right.as_ref()) {
                (SqlExpr::Identifier(column), SqlExpr::Value(value)) => {
                    let text = match &value.value {
                        Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) | Value::Number(s, _) => s.clone(),
                        other => {
                            return Err(Error::Syntax(format!(
                                "partition value {other} for '{}': give a string or a number",
                                column.value
                            )));
                        }
                    };
                    (column.value.clone(), Some(text))
                }
                _ => return Err(Error::Syntax(format!("PARTITION entry '{expr}': write column='value' or column"))),
            },
            other => return Err(Error::Syntax(format!("PARTITION entry '{other}': write column='value' or column"))),
        };
        if !names.contains(&column.as_str()) {
            return Err(Error::Invalid(format!(
                "'{column}' is not a partition column of {}; its partition columns are {}",
                spec.qualified_name(),
                names.join(", ")
            )));
        }
        if entries.iter().any(|(c, _)| *c == column) {
            return Err(Error::Invalid(format!("partition column '{column}' is given twice")));
        }
        entries.push((column, value));
    }
    // Hive's order: the spec lists the partition columns in the table's order, static first.
    let ordered: Vec<(String, Option<String>)> =
        names.iter().filter_map(|n| entries.iter().find(|(c, _)| c == n).cloned()).collect();
    if let Some(missing) = names.iter().find(|n| !entries.iter().any(|(c, _)| c == *n)) {
        return Err(Error::Invalid(format!(
            "PARTITION clause of {} misses partition column '{missing}'; list every partition column ({})",
            spec.qualified_name(),
            names.join(", ")
        )));
    }
    if let Some(first_dynamic) = ordered.iter().position(|(_, v)| v.is_none())
        && let Some((column, _)) = ordered[first_dynamic..].iter().find(|(_, v)| v.is_some())
    {
        return Err(Error::Invalid(format!(
            "static partition '{column}' comes after dynamic partition '{}'; static partitions must come first, as in Hive",
            ordered[first_dynamic].0
        )));
    }
    Ok(ordered)
}

/// Hive's clauses of the SELECT that lay rows out, taken out of it: `DISTRIBUTE BY` and
/// `SORT BY`, or `CLUSTER BY x` for both.
fn take_layout_clauses(query: &mut sqlparser::ast::Query) -> (Vec<SqlExpr>, Vec<OrderByExpr>) {
    let SetExpr::Select(select) = query.body.as_mut() else { return (Vec::new(), Vec::new()) };
    let cluster_by = std::mem::take(&mut select.cluster_by);
    if !cluster_by.is_empty() {
        let sort_by = cluster_by
            .iter()
            .map(|e| OrderByExpr { expr: e.clone(), options: Default::default(), with_fill: None })
            .collect();
        return (cluster_by, sort_by);
    }
    (std::mem::take(&mut select.distribute_by), std::mem::take(&mut select.sort_by))
}
