//! The SQL front: lakegate's own statements (Hive/Spark DDL, catalog browsing) are run here,
//! everything else is planned by DataFusion. Results stream; nothing is collected.

mod commands;
pub mod ddl;
pub(crate) mod rewrite;
mod script;
pub mod template;
mod tokens;
pub mod types;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ParamValues;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::SendableRecordBatchStream;

pub use script::{ScriptStatement, split_statements};
pub use tokens::{number_placeholders, redact};

use crate::session::Session;
use crate::{Error, Result};

/// What a statement produced.
pub enum Output {
    /// Rows, streamed as they are produced.
    Rows(SendableRecordBatchStream),
    /// A statement that returns no rows, with what it did.
    Done(String),
    /// A write, with what it did and how many rows it wrote.
    Wrote { message: String, rows: u64 },
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Rows(s) => write!(f, "Rows({})", s.schema()),
            Output::Done(m) | Output::Wrote { message: m, .. } => write!(f, "Done({m})"),
        }
    }
}

/// What a statement is, found without running it.
#[derive(Debug)]
pub enum Planned {
    /// A query: its rows are computed as they are streamed.
    Query(LogicalPlan),
    /// A statement with effects (DDL, writes, settings, lakegate's own commands): it runs in
    /// [`execute`].
    Command,
}

/// Plans `sql` without running anything.
///
/// # Errors
/// Syntax errors, unknown tables or databases (with close matches).
pub async fn plan(session: &Session, sql: &str) -> Result<Planned> {
    plan_with(session, sql, None).await
}

/// [`plan`] with `params` bound to the placeholders (`$1`, `$2`...) as typed values.
///
/// # Errors
/// As [`plan`]; a value whose type does not fit its placeholder.
pub async fn plan_with(session: &Session, sql: &str, params: Option<&ParamValues>) -> Result<Planned> {
    if ddl::parse(sql)?.is_some() {
        return Ok(Planned::Command);
    }
    let state = session.ctx.state();
    let mut statement = state.sql_to_statement(sql, &state.config().options().sql_parser.dialect)?;
    if lakegate_write(session, &mut statement)?.is_some() {
        return Ok(Planned::Command);
    }
    rewrite::struct_field_access(&mut statement);
    rewrite::layout_clauses_in_queries(&mut statement);
    let plan = bind(state.statement_to_plan(statement).await.map_err(|e| name_missing_table(session, e))?, params)?;
    session.principal.check_plan(&plan, crate::session::CATALOG, &session.current_database())?;
    let effects =
        matches!(plan, LogicalPlan::Ddl(_) | LogicalPlan::Dml(_) | LogicalPlan::Statement(_) | LogicalPlan::Copy(_));
    Ok(if effects { Planned::Command } else { Planned::Query(plan) })
}

/// The placeholders of `sql` (`$1`, `$2`...) and the types DataFusion infers for them (for an
/// INSERT, from the table's columns), without running anything.
///
/// # Errors
/// `sql` does not parse or plan.
pub async fn parameter_types(
    session: &Session,
    sql: &str,
) -> Result<std::collections::HashMap<String, Option<DataType>>> {
    if ddl::parse(sql)?.is_some() {
        return Ok(Default::default());
    }
    let state = session.ctx.state();
    let statement = state.sql_to_statement(sql, &state.config().options().sql_parser.dialect)?;
    Ok(state.statement_to_plan(statement).await?.get_parameter_types()?)
}

/// Streams the rows of a planned query.
///
/// # Errors
/// Physical planning fails.
pub async fn run_query(session: &Session, plan: LogicalPlan) -> Result<SendableRecordBatchStream> {
    Ok(session.ctx.execute_logical_plan(plan).await?.execute_stream().await?)
}

/// Runs one statement in `session`.
///
/// # Errors
/// Syntax errors, unknown tables or databases (with close matches), source failures.
pub async fn execute(session: &Session, sql: &str) -> Result<Output> {
    execute_with(session, sql, None).await
}

/// [`execute`] with `params` bound to the placeholders (`$1`, `$2`...) as typed values.
///
/// # Errors
/// As [`execute`]; parameters given to a statement that takes none (lakegate's DDL).
pub async fn execute_with(session: &Session, sql: &str, params: Option<&ParamValues>) -> Result<Output> {
    if let Planned::Query(plan) = plan_with(session, sql, params).await? {
        return Ok(Output::Rows(run_query(session, plan).await?));
    }
    if let Some(command) = ddl::parse(sql)? {
        if params.is_some() {
            return Err(Error::Unsupported(
                "parameters in this statement: only queries and INSERTs take bound values".into(),
            ));
        }
        session.principal.check_command(&command, &session.current_database())?;
        return commands::run(session, command).await;
    }
    let state = session.ctx.state();
    let mut statement = state.sql_to_statement(sql, &state.config().options().sql_parser.dialect)?;
    if let Some((spec, insert, explain)) = lakegate_write(session, &mut statement)? {
        session.principal.require_write(&spec.database)?;
        let plan = crate::write::plan(session, spec, insert, params).await?;
        if explain {
            return commands::lines("plan", crate::write::explain(plan).await?);
        }
        let (message, rows) = crate::write::execute(session, plan).await?;
        return Ok(Output::Wrote { message, rows });
    }
    // DataFusion's own DDL and DML (CREATE VIEW, SET, INSERT into a temporary table) run here.
    let plan = bind(state.statement_to_plan(statement).await.map_err(|e| name_missing_table(session, e))?, params)?;
    session.principal.check_plan(&plan, crate::session::CATALOG, &session.current_database())?;
    Ok(Output::Rows(run_query(session, plan).await?))
}

/// `plan` with `params` put in place of its placeholders, as literals of the plan (not text).
pub(crate) fn bind(plan: LogicalPlan, params: Option<&ParamValues>) -> Result<LogicalPlan> {
    Ok(match params {
        Some(params) => plan.with_param_values(params.clone())?,
        None => plan,
    })
}

/// An `INSERT` or `EXPLAIN INSERT` into one of the catalog's Parquet tables, which lakegate
/// writes itself: the table, the statement, and whether it is explained.
fn lakegate_write(
    session: &Session,
    statement: &mut datafusion::sql::parser::Statement,
) -> Result<Option<(lakegate_catalog::TableSpec, sqlparser::ast::Insert, bool)>> {
    use datafusion::sql::parser::Statement as DF;
    use sqlparser::ast::Statement as Sql;
    let (sql, explain) = match statement {
        DF::Statement(sql) => (sql, false),
        DF::Explain(explain) => match explain.statement.as_mut() {
            DF::Statement(sql) => (sql, true),
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    let Sql::Insert(insert) = sql.as_mut() else { return Ok(None) };
    let Some(spec) = crate::write::target(session, insert)? else { return Ok(None) };
    Ok(Some((spec, insert.clone(), explain)))
}

/// DataFusion says "table 'lakegate.db.t' not found"; the catalog can say which names are close.
fn name_missing_table(session: &Session, error: DataFusionError) -> Error {
    let DataFusionError::Plan(message) = error.find_root() else { return error.into() };
    let Some(name) = message.strip_prefix("table '").and_then(|rest| rest.strip_suffix("' not found")) else {
        return error.into();
    };
    // Files named by path or URL are tables only for admins (see `Lakegate::session_as`).
    if name.contains('/') && !session.principal.is_admin() {
        return session.principal.deny("reading files by path or URL needs the admin role");
    }
    let parts: Vec<&str> = name.split('.').collect();
    let (database, table) = match parts.as_slice() {
        [_, database, table] | [database, table] => (database.to_string(), table.to_string()),
        [table] => (session.current_database(), table.to_string()),
        _ => return error.into(),
    };
    match session.catalog.catalog().table(&database, &table) {
        Err(e) => e.into(),
        Ok(_) => error.into(),
    }
}
