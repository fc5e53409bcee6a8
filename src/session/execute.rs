//! A statement is planned once, into what it will do, and then run: `execute` is `plan` then
//! `run`, with no second parse.

use std::collections::HashMap;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ParamValues;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::sql::parser::Statement;

use super::{Session, commands};
use crate::output::Output;
use crate::sql::ddl::{self, Command};
use crate::sql::{self, CATALOG, rewrite};
use crate::write::WritePlan;
use crate::{Error, Result};

/// A statement, planned: what it will do when run.
#[derive(Debug)]
pub enum Planned {
    /// A query: its rows are computed as they are streamed.
    Query(LogicalPlan),
    /// One of lakegate's own statements (Hive/Spark DDL, catalog browsing, VACUUM...).
    Command(Command),
    /// An INSERT into a Parquet table of the catalog, which lakegate writes itself; with
    /// `explain`, its plan is shown instead.
    Write { plan: Box<WritePlan>, explain: bool },
    /// DataFusion's own statements with effects: CREATE VIEW, SET, an INSERT into a temporary
    /// table.
    Statement(LogicalPlan),
}

impl Session {
    /// Plans `sql` without running anything.
    ///
    /// # Errors
    /// Syntax errors, unknown tables or databases (with close matches), a privilege the
    /// session's user lacks.
    pub async fn plan(&self, sql: &str) -> Result<Planned> {
        self.plan_with(sql, None).await
    }

    /// [`Session::plan`] with `params` bound to the placeholders (`$1`, `$2`...) as typed
    /// values.
    ///
    /// # Errors
    /// As [`Session::plan`]; a value whose type does not fit its placeholder; parameters given
    /// to a statement that takes none (lakegate's DDL).
    pub async fn plan_with(&self, sql: &str, params: Option<&ParamValues>) -> Result<Planned> {
        if let Some(command) = ddl::parse(sql)? {
            if params.is_some() {
                return Err(Error::Unsupported(
                    "parameters in this statement: only queries and INSERTs take bound values".into(),
                ));
            }
            return Ok(Planned::Command(command));
        }
        let state = self.ctx.state();
        let mut statement = state.sql_to_statement(sql, &state.config().options().sql_parser.dialect)?;
        if let Some(insert) = sql::catalog_insert(&self.catalog, &self.current_database(), &statement)? {
            self.principal.require_write(&insert.request.table.database)?;
            let mut query = Statement::Statement(Box::new(sqlparser::ast::Statement::Query(insert.query)));
            rewrite::struct_field_access(&mut query);
            let rows = sql::bind(state.statement_to_plan(query).await?, params)?;
            let plan = crate::write::plan(&self.write_context(), insert.request, rows)?;
            return Ok(Planned::Write { plan: Box::new(plan), explain: insert.explain });
        }
        rewrite::struct_field_access(&mut statement);
        rewrite::layout_clauses_in_queries(&mut statement);
        let plan = state.statement_to_plan(statement).await.map_err(|e| self.name_missing_table(e))?;
        let plan = sql::bind(plan, params)?;
        self.principal.check_plan(&plan, CATALOG, &self.current_database())?;
        let effects = matches!(
            plan,
            LogicalPlan::Ddl(_) | LogicalPlan::Dml(_) | LogicalPlan::Statement(_) | LogicalPlan::Copy(_)
        );
        Ok(if effects { Planned::Statement(plan) } else { Planned::Query(plan) })
    }

    /// Runs what [`Session::plan`] planned from `sql`, listed in `system.queries` while it
    /// runs, under a new id that `KILL QUERY` takes.
    ///
    /// # Errors
    /// A privilege the session's user lacks, source failures, a write that fails (nothing of
    /// it is published), [`Error::Stopped`] when killed or over the time limit.
    pub async fn run(&self, sql: &str, planned: Planned) -> Result<Output> {
        self.run_as(&uuid::Uuid::new_v4().to_string(), sql, planned).await
    }

    /// [`Session::run`] under the id `id`.
    ///
    /// # Errors
    /// As [`Session::run`].
    pub async fn run_as(&self, id: &str, sql: &str, planned: Planned) -> Result<Output> {
        let plan = match planned {
            Planned::Query(plan) | Planned::Statement(plan) => plan,
            Planned::Command(command) => {
                self.principal.check_command(&command, &self.current_database())?;
                // A KILL must not wait for the query it kills, nor be killed itself.
                return match command {
                    Command::KillQuery { .. } | Command::SetStatementTimeout { .. } => {
                        commands::run(self, command).await
                    }
                    command => self.stoppable(id, sql, commands::run(self, command)).await,
                };
            }
            Planned::Write { plan, explain: true } => {
                let explained = self.stoppable(id, sql, crate::write::explain(&self.write_context(), *plan)).await?;
                return commands::lines("plan", explained);
            }
            Planned::Write { plan, explain: false } => {
                let (running, stop) = self.start(id, sql);
                let (message, rows) = crate::write::execute(&self.write_context(), *plan, Some(Box::pin(stop))).await?;
                drop(running);
                return Ok(Output::Wrote { message, rows });
            }
        };
        Ok(Output::Rows(self.run_query_as(id, sql, plan).await?))
    }

    /// Lists `id` as running and returns what resolves when it must stop: a KILL, or the
    /// session's time limit.
    fn start(
        &self,
        id: &str,
        sql: &str,
    ) -> (crate::history::Running, impl std::future::Future<Output = crate::Stopped> + Send + 'static) {
        let (running, mut killed) = self.history.start(id, &self.principal.user, &sql::redact(sql));
        let timeout = self.statement_timeout();
        let stop = async move {
            let killed = async move {
                // A closed channel (the statement left the running list) is no reason to stop.
                let Ok(reason) = killed.wait_for(Option::is_some).await.map(|r| r.clone()) else {
                    return std::future::pending().await;
                };
                crate::Stopped { reason: reason.unwrap_or_default(), timed_out: false }
            };
            match timeout {
                Some(limit) => tokio::select! {
                    stopped = killed => stopped,
                    () = tokio::time::sleep(limit) => crate::Stopped {
                        reason: format!(
                            "the query ran longer than its time limit of {} (statement_timeout / [execution] query_timeout)",
                            humantime(limit)
                        ),
                        timed_out: true,
                    },
                },
                None => killed.await,
            }
        };
        (running, stop)
    }

    /// `work`, stopped when the statement is killed or runs out of time.
    async fn stoppable<T>(&self, id: &str, sql: &str, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        let (_running, stop) = self.start(id, sql);
        tokio::select! {
            result = work => result,
            stopped = stop => Err(Error::Stopped(stopped)),
        }
    }

    /// Runs one statement.
    ///
    /// # Errors
    /// Syntax errors, unknown tables or databases (with close matches), source failures.
    pub async fn execute(&self, sql: &str) -> Result<Output> {
        self.execute_with(sql, None).await
    }

    /// [`Session::execute`] with `params` bound to the placeholders (`$1`, `$2`...) as typed
    /// values.
    ///
    /// # Errors
    /// As [`Session::execute`] and [`Session::plan_with`].
    pub async fn execute_with(&self, sql: &str, params: Option<&ParamValues>) -> Result<Output> {
        let planned = self.plan_with(sql, params).await?;
        self.run(sql, planned).await
    }

    /// Streams the rows of `plan`, planned from `sql`, listed as query `id` in
    /// `system.queries` until the stream ends or is dropped. A KILL or the time limit ends the
    /// stream with a [`crate::Stopped`] error and drops the query, and its memory with it.
    ///
    /// # Errors
    /// Physical planning fails.
    pub async fn run_query_as(&self, id: &str, sql: &str, plan: LogicalPlan) -> Result<SendableRecordBatchStream> {
        let (running, stop) = self.start(id, sql);
        let stream = self.ctx.execute_logical_plan(plan).await?.execute_stream().await?;
        Ok(stoppable_stream(stream, running, stop))
    }

    /// The placeholders of `sql` (`$1`, `$2`...) and the types DataFusion infers for them (for
    /// an INSERT, from the table's columns), without running anything.
    ///
    /// # Errors
    /// `sql` does not parse or plan.
    pub async fn parameter_types(&self, sql: &str) -> Result<HashMap<String, Option<DataType>>> {
        if ddl::parse(sql)?.is_some() {
            return Ok(HashMap::new());
        }
        let state = self.ctx.state();
        let statement = state.sql_to_statement(sql, &state.config().options().sql_parser.dialect)?;
        Ok(state.statement_to_plan(statement).await?.get_parameter_types()?)
    }

    /// DataFusion says "table 'lakegate.db.t' not found"; the catalog can say which names
    /// are close.
    fn name_missing_table(&self, error: DataFusionError) -> Error {
        let DataFusionError::Plan(message) = error.find_root() else { return error.into() };
        let Some(name) = message.strip_prefix("table '").and_then(|rest| rest.strip_suffix("' not found")) else {
            return error.into();
        };
        // Files named by path or URL are tables only for admins (see `Lakegate::session_as`).
        if name.contains('/') && !self.principal.is_admin() {
            return self.principal.deny("reading files by path or URL needs the admin role");
        }
        let parts: Vec<&str> = name.split('.').collect();
        let (database, table) = match parts.as_slice() {
            [_, database, table] | [database, table] => (database.to_string(), table.to_string()),
            [table] => (self.current_database(), table.to_string()),
            _ => return error.into(),
        };
        match self.catalog.catalog().table(&database, &table) {
            Err(e) => e.into(),
            Ok(_) => error.into(),
        }
    }
}

/// `stream`, ended by `stop` with its error; `running` is dropped with it.
fn stoppable_stream(
    stream: SendableRecordBatchStream,
    running: crate::history::Running,
    stop: impl std::future::Future<Output = crate::Stopped> + Send + 'static,
) -> SendableRecordBatchStream {
    use futures::StreamExt;
    let schema = stream.schema();
    let stop = futures::stream::once(stop).map(|stopped| Err(DataFusionError::External(Box::new(stopped))));
    // The rows until the end or the stop, whichever comes first; after a stop, nothing.
    let rows = futures::stream::select(stream.map(Some).chain(futures::stream::once(async { None })), stop.map(Some))
        .take_while(|item| std::future::ready(item.is_some()))
        .filter_map(std::future::ready)
        .scan(false, |stopped, item: datafusion::error::Result<_>| {
            let done = *stopped;
            *stopped = item.as_ref().err().is_some_and(|e| crate::Stopped::find(e).is_some());
            std::future::ready((!done).then_some(item))
        })
        .map(move |item| {
            let _ = &running;
            item
        });
    Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, rows))
}

/// `limit` as people write it: `30s`, `1.5s`, `500ms`.
fn humantime(limit: std::time::Duration) -> String {
    if limit.as_millis() < 1000 { format!("{}ms", limit.as_millis()) } else { format!("{}s", limit.as_secs_f64()) }
}
