//! A statement is planned once, into what it will do, and then run: `execute` is `plan` then
//! `run`, with no second parse.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ParamValues;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use datafusion::sql::parser::Statement;
use futures::StreamExt;
use tracing::Instrument;

use super::answers::{Answer, Lookup, Recorder};
use super::slots::Slot;
use super::{Session, commands};
use crate::history::{QueryRecord, Tracked};
use crate::output::Output;
use crate::sql::ddl::{self, Command};
use crate::sql::{self, CATALOG, rewrite};
use crate::telemetry::SPANS;
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

/// Who sent a statement, under which id, and how long planning it took: what
/// `system.queries` shows of it beside its SQL.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The id `KILL QUERY` takes.
    pub id: String,
    /// The program that sent it (`ADBC`, `JDBC`, `Python`, `cli`...).
    pub client: String,
    pub planning: Duration,
}

impl Origin {
    /// A statement of `client` under a new id.
    pub fn new(client: &str) -> Self {
        Self { id: uuid::Uuid::new_v4().to_string(), client: client.to_owned(), planning: Duration::ZERO }
    }
}

impl Planned {
    /// What `system.queries` and the metrics call it.
    pub fn kind(&self) -> &'static str {
        match self {
            Planned::Query(_) => "query",
            Planned::Command(_) => "command",
            Planned::Write { .. } => "write",
            Planned::Statement(_) => "statement",
        }
    }
}

/// A statement, parsed.
enum Parsed {
    Command(Command),
    Statement(Statement),
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
        let parsed = tracing::info_span!(target: SPANS, "parse").in_scope(|| self.parse(sql))?;
        self.plan_parsed(parsed, params).instrument(tracing::info_span!(target: SPANS, "plan")).await
    }

    fn parse(&self, sql: &str) -> Result<Parsed> {
        if let Some(command) = ddl::parse(sql)? {
            return Ok(Parsed::Command(command));
        }
        let state = self.ctx.state_ref();
        let state = state.read();
        Ok(Parsed::Statement(state.sql_to_statement(sql, &state.config().options().sql_parser.dialect)?))
    }

    async fn plan_parsed(&self, parsed: Parsed, params: Option<&ParamValues>) -> Result<Planned> {
        let mut statement = match parsed {
            Parsed::Command(_) if params.is_some() => {
                return Err(Error::Unsupported(
                    "parameters in this statement: only queries and INSERTs take bound values".into(),
                ));
            }
            Parsed::Command(command) => return Ok(Planned::Command(command)),
            Parsed::Statement(statement) => statement,
        };
        let state = self.ctx.state();
        // An INSERT into a metastore's table (`hive.sales.events`): its definition comes from there.
        let target = sql::insert_target(&statement)?;
        let metastore_target = target.and_then(|t| self.metastore_database(t.database.as_deref()).zip(Some(t.name)));
        let other = match metastore_target {
            Some(((catalog, database), name)) => {
                let provider =
                    self.ctx.catalog(&catalog).ok_or_else(|| Error::Unsupported(format!("no catalog {catalog}")))?;
                Some(crate::metastore::write_spec(provider.as_ref(), &catalog, &database, &name).await?)
            }
            None => None,
        };
        if let Some(insert) = sql::catalog_insert(&self.catalog, &self.current_database(), &statement, other)? {
            self.principal.require_write(&insert.request.table.database)?;
            let mut query = Statement::Statement(Box::new(sqlparser::ast::Statement::Query(insert.query)));
            rewrite::struct_field_access(&mut query);
            let rows = self.expand_views(state.statement_to_plan(query).await?, &state).await?;
            let rows = sql::bind(rows, params)?;
            // What the INSERT reads needs the same grants as a query of it.
            self.check_plan(&rows)?;
            let plan = crate::write::plan(&self.write_context(), insert.request, rows)?;
            return Ok(Planned::Write { plan: Box::new(plan), explain: insert.explain });
        }
        rewrite::struct_field_access(&mut statement);
        rewrite::layout_clauses_in_queries(&mut statement);
        let plan = state.statement_to_plan(statement).await.map_err(|e| self.name_missing_table(e))?;
        let plan = self.expand_views(plan, &state).await?;
        let plan = sql::bind(plan, params)?;
        self.check_plan(&plan)?;
        let effects = matches!(
            plan,
            LogicalPlan::Ddl(_) | LogicalPlan::Dml(_) | LogicalPlan::Statement(_) | LogicalPlan::Copy(_)
        );
        Ok(if effects { Planned::Statement(plan) } else { Planned::Query(plan) })
    }

    /// `plan` with the metastores' views it reads planned in place, each level of them only
    /// once this session's user is found to be allowed to read it.
    async fn expand_views(&self, plan: LogicalPlan, state: &SessionState) -> Result<LogicalPlan> {
        crate::metastore::expand_views(plan, state, |plan| self.check_plan(plan)).await
    }

    /// Whether this session's user may run `plan`, its names read as the session reads them
    /// (`SET datafusion.catalog.default_catalog` included).
    fn check_plan(&self, plan: &LogicalPlan) -> Result<()> {
        let state = self.ctx.state_ref();
        let catalog = state.read().config().options().catalog.default_catalog.clone();
        self.principal.check_plan(plan, CATALOG, &catalog, &self.current_database())
    }

    /// Runs what [`Session::plan`] planned from `sql`, listed in `system.queries` while it
    /// runs, under a new id that `KILL QUERY` takes.
    ///
    /// # Errors
    /// A privilege the session's user lacks, source failures, a write that fails (nothing of
    /// it is published), [`Error::Stopped`] when killed or over the time limit.
    pub async fn run(&self, sql: &str, planned: Planned) -> Result<Output> {
        self.run_as(Origin::new(&self.client), sql, planned).await
    }

    /// [`Session::run`] of a statement from `origin`. A query's rows are computed as they are
    /// streamed; it stays listed as running until its stream ends or is dropped.
    ///
    /// # Errors
    /// As [`Session::run`].
    pub async fn run_as(&self, origin: Origin, sql: &str, planned: Planned) -> Result<Output> {
        let kind = planned.kind();
        let (tracked, mut stop) = self.start(&origin, kind, sql);
        // A KILL must not wait for a slot behind the query it kills, nor an operator's look at
        // `system.queries` behind the queries it lists.
        let unqueued = match &planned {
            Planned::Command(command) => {
                matches!(command, Command::KillQuery { .. } | Command::SetStatementTimeout { .. })
            }
            Planned::Query(plan) => reads_only_system(plan),
            _ => false,
        };
        let slot = if unqueued { Ok(Slot::default()) } else { self.admit(&tracked, &mut stop).await };
        let slot = match slot {
            Ok(slot) => slot,
            Err(e) => {
                tracked.finish(Err(&e), None);
                return Err(e);
            }
        };
        let plan = match planned {
            Planned::Query(plan) | Planned::Statement(plan) => {
                return Ok(Output::Rows(self.stream(tracked, stop, plan, slot).await?));
            }
            Planned::Command(command) => command,
            Planned::Write { plan, explain: true } => {
                let explained = until_stopped(stop, crate::write::explain(&self.write_context(), *plan)).await;
                tracked.finish(explained.as_ref().map(|_| ()), None);
                return commands::lines("plan", explained?);
            }
            Planned::Write { plan, explain: false } => {
                let target = (plan.table().database.clone(), plan.table().name.clone());
                let execute = tracing::info_span!(target: SPANS, "execute");
                let wrote =
                    crate::write::execute(&self.write_context(), *plan, Some(Box::pin(stop))).instrument(execute).await;
                let metrics = self.history.metrics();
                match &wrote {
                    Ok(wrote) => {
                        metrics.commits.with_label_values(&["published"]).inc();
                        metrics.commit_duration.observe(wrote.publish.as_secs_f64());
                    }
                    Err(_) => metrics.commits.with_label_values(&["failed"]).inc(),
                }
                tracked.finish(wrote.as_ref().map(|_| ()), None);
                let mut wrote = wrote?;
                // A metastore's table: the partitions it does not know yet are added there, so
                // Spark and Hive read them too.
                if let Some((catalog, database)) = self.metastore_database(Some(&target.0))
                    && let Some(provider) = self.ctx.catalog(&catalog)
                {
                    crate::metastore::add_partitions(provider.as_ref(), &database, &target.1, &wrote.partitions)
                        .await?;
                    wrote.summary.push_str(&format!("; partitions registered in the metastore {catalog}"));
                }
                // As Spark re-caches a cached table it writes: later statements read the new rows.
                match super::cache::refresh(self, &target.0, &target.1).await {
                    Ok(Some(_)) => wrote.summary.push_str("; its cache was refreshed"),
                    Ok(None) => {}
                    Err(e) => {
                        self.catalog.catalog().mark_cache_stale(&target.0, &target.1);
                        tracing::warn!(table = %format!("{}.{}", target.0, target.1), error = %e, "cache not refreshed after a write");
                        wrote.summary.push_str(&format!(
                            "; its cache was not refreshed ({e}) and answers from the source until it is"
                        ));
                    }
                }
                return Ok(Output::Wrote { message: wrote.summary, rows: wrote.rows });
            }
        };
        let result = async {
            self.principal.check_command(&plan, &self.current_database())?;
            match plan {
                // A KILL must not wait for the query it kills, nor be killed itself.
                command @ (Command::KillQuery { .. } | Command::SetStatementTimeout { .. }) => {
                    commands::run(self, command).await
                }
                command => until_stopped(stop, commands::run(self, command)).await,
            }
        }
        .await;
        tracked.finish(result.as_ref().map(|_| ()), None);
        result
    }

    /// A slot to run in: at once when one is free, else after waiting, listed as `queued`,
    /// for its turn. A KILL or the time limit ends the wait.
    async fn admit(&self, tracked: &Tracked, stop: &mut crate::write::Stop) -> Result<Slot> {
        let user = &self.principal.user;
        if let Some(slot) = self.slots.try_acquire(user) {
            return Ok(slot);
        }
        tracked.set_queued(true);
        tokio::select! {
            slot = self.slots.acquire(user) => {
                tracked.set_queued(false);
                Ok(slot)
            }
            stopped = stop.as_mut() => Err(Error::Stopped(stopped)),
        }
    }

    /// Lists a statement as running and returns what resolves when it must stop: a KILL, or
    /// the session's time limit.
    fn start(&self, origin: &Origin, kind: &'static str, sql: &str) -> (Tracked, crate::write::Stop) {
        let (tracked, mut killed) = self.history.start(self.record(origin, kind, sql));
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
        (tracked, Box::pin(stop))
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
        self.execute_as(Origin::new(&self.client), None, sql, params).await
    }

    /// Plans and runs a statement from `origin` in its own `statement` span (a child of the
    /// client's trace when it sent a W3C `traceparent`); a statement that does not plan is
    /// recorded as failed.
    ///
    /// # Errors
    /// As [`Session::execute`] and [`Session::plan_with`].
    pub async fn execute_as(
        &self,
        mut origin: Origin,
        traceparent: Option<&str>,
        sql: &str,
        params: Option<&ParamValues>,
    ) -> Result<Output> {
        let span = crate::telemetry::statement_span(&origin.id, &self.principal.user, &origin.client, traceparent);
        async {
            let planned = self.plan_from(&mut origin, sql, params).await?;
            self.run_as(origin, sql, planned).await
        }
        .instrument(span)
        .await
    }

    /// [`Session::plan_with`] for a statement from `origin`, whose planning time it sets; a
    /// statement that does not plan is recorded, in `system.queries` and the metrics, as failed.
    ///
    /// # Errors
    /// As [`Session::plan_with`].
    pub async fn plan_from(&self, origin: &mut Origin, sql: &str, params: Option<&ParamValues>) -> Result<Planned> {
        let started = Instant::now();
        let planned = self.plan_with(sql, params).await;
        origin.planning = started.elapsed();
        if let Err(e) = &planned {
            self.history.failed_to_plan(self.record(origin, "query", sql), e);
        }
        planned
    }

    /// What `system.queries` shows of a statement from `origin` before it ends.
    fn record(&self, origin: &Origin, kind: &'static str, sql: &str) -> QueryRecord {
        QueryRecord {
            id: origin.id.clone(),
            user: self.principal.user.clone(),
            client: origin.client.clone(),
            kind,
            sql: sql::redact(sql),
            planning: origin.planning,
            trace_id: crate::telemetry::trace_id(&tracing::Span::current()),
            ..QueryRecord::default()
        }
    }

    /// Streams the rows of query `plan`, planned from `sql` by `origin`, listed in
    /// `system.queries` until the stream ends or is dropped. A KILL or the time limit ends the
    /// stream with a [`crate::Stopped`] error and drops the query, and its memory with it.
    ///
    /// # Errors
    /// Physical planning fails.
    pub async fn run_query_as(
        &self,
        origin: Origin,
        sql: &str,
        plan: LogicalPlan,
    ) -> Result<SendableRecordBatchStream> {
        let (tracked, mut stop) = self.start(&origin, "query", sql);
        let slot = if reads_only_system(&plan) { Ok(Slot::default()) } else { self.admit(&tracked, &mut stop).await };
        let slot = match slot {
            Ok(slot) => slot,
            Err(e) => {
                tracked.finish(Err(&e), None);
                return Err(e);
            }
        };
        self.stream(tracked, stop, plan, slot).await
    }

    /// The query's rows, holding its `slot` until the stream ends or is dropped.
    async fn stream(
        &self,
        tracked: Tracked,
        mut stop: crate::write::Stop,
        plan: LogicalPlan,
        slot: Slot,
    ) -> Result<SendableRecordBatchStream> {
        let execute = tracing::info_span!(target: SPANS, "execute");
        let physical = async {
            let frame = self.ctx.execute_logical_plan(plan).await?;
            let task = frame.task_ctx();
            let (state, written) = frame.into_parts();
            let plan = state.optimize(&written)?;
            let (reused, recorder) = self.reuse_answer(&written, &plan, &state, &mut stop).await?;
            let physical = match reused {
                Some(answer) => {
                    let batch = answer.batch.clone();
                    MemorySourceConfig::try_new_exec(&[vec![batch]], answer.batch.schema(), None)? as _
                }
                None => state.query_planner().create_physical_plan(&plan, &state).await?,
            };
            Ok::<_, Error>((physical, task, recorder))
        }
        .instrument(execute.clone())
        .await;
        let (physical, task, answer) = match physical {
            Ok(planned) => planned,
            Err(e) => {
                tracked.finish(Err(&e), None);
                return Err(e);
            }
        };
        let physical = super::scans::prepare(physical, &execute)?;
        let rows = match datafusion::physical_plan::execute_stream(Arc::clone(&physical), Arc::new(task)) {
            Ok(rows) => rows,
            Err(e) => {
                let e = Error::from(e);
                tracked.finish(Err(&e), Some(physical.as_ref()));
                return Err(e);
            }
        };
        let schema = rows.schema();
        let stream = TrackedStream {
            rows,
            stop,
            tracked: Some(tracked),
            answer,
            plan: physical,
            statement: tracing::Span::current(),
            _execute: execute,
            _slot: slot,
        };
        Ok(Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, stream)))
    }

    /// The answer of `plan` (optimized from `written`) kept from an identical query, or, when
    /// it may be kept, the recorder that keeps it once computed. When another session is
    /// computing it now, waits for that (stopping stays possible), but no longer than
    /// [`WAIT_FOR_ANSWER`]: its client may be slow to read it.
    async fn reuse_answer(
        &self,
        written: &LogicalPlan,
        plan: &LogicalPlan,
        state: &SessionState,
        stop: &mut crate::write::Stop,
    ) -> Result<(Option<Arc<Answer>>, Option<Recorder>)> {
        let Some(candidate) = self.answers.candidate(written, plan, state) else { return Ok((None, None)) };
        let counted = &self.history.metrics().answers;
        let reused = match self.answers.lookup(candidate.clone()) {
            Lookup::Reused(answer) => Some(answer),
            Lookup::Compute(recorder) => {
                counted.with_label_values(&["computed"]).inc();
                return Ok((None, Some(recorder)));
            }
            Lookup::Wait(mut done) => {
                tokio::select! {
                    _ = tokio::time::timeout(WAIT_FOR_ANSWER, done.changed()) => {}
                    stopped = stop.as_mut() => return Err(Error::Stopped(stopped)),
                }
                self.answers.kept(&candidate)
            }
        };
        let outcome = if reused.is_some() { "reused" } else { "computed" };
        counted.with_label_values(&[outcome]).inc();
        Ok((reused, None))
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

/// The longest a query waits for an identical one's answer before computing its own.
const WAIT_FOR_ANSWER: Duration = Duration::from_secs(5);

/// A query's rows until their end, the stop, or the first error, counted for
/// `system.queries`; polled inside the statement's span, so what its operators log names it.
struct TrackedStream {
    rows: SendableRecordBatchStream,
    stop: crate::write::Stop,
    /// `None` once the query ended.
    tracked: Option<Tracked>,
    /// Keeps the rows for identical queries, when they may be reused.
    answer: Option<Recorder>,
    plan: Arc<dyn ExecutionPlan>,
    statement: tracing::Span,
    /// Ends when the stream is dropped.
    _execute: tracing::Span,
    /// Given back when the stream is dropped.
    _slot: Slot,
}

impl Drop for TrackedStream {
    /// Dropped before its end: the client cancelled or went away.
    fn drop(&mut self) {
        if let Some(tracked) = self.tracked.take() {
            let _entered = self.statement.enter();
            tracked.finish(Err(&crate::history::abandoned()), Some(self.plan.as_ref()));
        }
    }
}

impl futures::Stream for TrackedStream {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(tracked) = this.tracked.as_mut() else { return Poll::Ready(None) };
        let _entered = this.statement.enter();
        if let Poll::Ready(stopped) = this.stop.as_mut().poll(cx) {
            let error = Error::Stopped(stopped.clone());
            if let Some(tracked) = this.tracked.take() {
                tracked.finish(Err(&error), Some(this.plan.as_ref()));
            }
            return Poll::Ready(Some(Err(DataFusionError::External(Box::new(stopped)))));
        }
        match this.rows.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(batch))) => {
                tracked.returned(batch.num_rows(), batch.get_array_memory_size());
                if let Some(answer) = this.answer.as_mut() {
                    answer.record(&batch);
                }
                Poll::Ready(Some(Ok(batch)))
            }
            Poll::Ready(Some(Err(e))) => {
                let error = Error::DataFusion(e);
                if let Some(tracked) = this.tracked.take() {
                    tracked.finish(Err(&error), Some(this.plan.as_ref()));
                }
                let Error::DataFusion(e) = error else { unreachable!("made from a DataFusion error") };
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                if let Some(tracked) = this.tracked.take() {
                    tracked.finish(Ok(()), Some(this.plan.as_ref()));
                }
                if let Some(answer) = this.answer.take() {
                    answer.finish(&this.rows.schema());
                }
                Poll::Ready(None)
            }
        }
    }
}

/// Whether `plan` reads only the `system` database: it answers from memory, and never waits
/// for a slot.
fn reads_only_system(plan: &LogicalPlan) -> bool {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let (mut tables, mut system) = (0, 0);
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            tables += 1;
            system += usize::from(scan.table_name.schema() == Some("system"));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    tables > 0 && tables == system
}

/// `work`, unless `stop` resolves first.
async fn until_stopped<T>(stop: crate::write::Stop, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::select! {
        result = work => result,
        stopped = stop => Err(Error::Stopped(stopped)),
    }
}

/// `limit` as people write it: `30s`, `1.5s`, `500ms`.
fn humantime(limit: std::time::Duration) -> String {
    if limit.as_millis() < 1000 { format!("{}ms", limit.as_millis()) } else { format!("{}s", limit.as_secs_f64()) }
}
