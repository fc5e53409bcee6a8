//! The SQL front: lakegate's own statements (Hive/Spark DDL, catalog browsing) are run here,
//! everything else is planned by DataFusion. Results stream; nothing is collected.

mod commands;
pub mod ddl;
pub(crate) mod rewrite;
mod script;
pub mod template;
pub mod types;

use datafusion::error::DataFusionError;
use datafusion::physical_plan::SendableRecordBatchStream;

pub use script::{ScriptStatement, split_statements};

use crate::session::Session;
use crate::{Error, Result};

/// What a statement produced.
pub enum Output {
    /// Rows, streamed as they are produced.
    Rows(SendableRecordBatchStream),
    /// A statement that returns no rows, with what it did.
    Done(String),
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Rows(s) => write!(f, "Rows({})", s.schema()),
            Output::Done(m) => write!(f, "Done({m})"),
        }
    }
}

/// Runs one statement in `session`.
///
/// # Errors
/// Syntax errors, unknown tables or databases (with close matches), source failures.
pub async fn execute(session: &Session, sql: &str) -> Result<Output> {
    if let Some(command) = ddl::parse(sql)? {
        return commands::run(session, command).await;
    }
    let state = session.ctx.state();
    let mut statement = state.sql_to_statement(sql, &state.config().options().sql_parser.dialect)?;
    if let Some(output) = write(session, &mut statement).await? {
        return Ok(output);
    }
    rewrite::struct_field_access(&mut statement);
    rewrite::layout_clauses_in_queries(&mut statement);
    let plan = state.statement_to_plan(statement).await.map_err(|e| name_missing_table(session, e))?;
    let frame = session.ctx.execute_logical_plan(plan).await?;
    Ok(Output::Rows(frame.execute_stream().await?))
}

/// `INSERT` and `EXPLAIN INSERT` into the catalog's Parquet tables, which lakegate writes itself.
async fn write(session: &Session, statement: &mut datafusion::sql::parser::Statement) -> Result<Option<Output>> {
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
    let plan = crate::write::plan(session, spec, insert.clone()).await?;
    if explain {
        let lines = crate::write::explain(plan).await?;
        return Ok(Some(commands::lines("plan", lines)?));
    }
    Ok(Some(Output::Done(crate::write::execute(session, plan).await?)))
}

/// DataFusion says "table 'lakegate.db.t' not found"; the catalog can say which names are close.
fn name_missing_table(session: &Session, error: DataFusionError) -> Error {
    let DataFusionError::Plan(message) = error.find_root() else { return error.into() };
    let Some(name) = message.strip_prefix("table '").and_then(|rest| rest.strip_suffix("' not found")) else {
        return error.into();
    };
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
