//! The Flight SQL service: statements, prepared statements, catalog metadata, cancellation.
//!
//! Over 600 lines because it is one `FlightSqlService` impl (one method per Flight SQL
//! command), which Rust cannot split across files; what its methods share lives beside it
//! (`stream.rs`, `status.rs`, `metadata.rs`).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, XdbcTypeInfoData};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionCancelQueryRequest, ActionCancelQueryResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any, CommandGetCatalogs,
    CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandGetXdbcTypeInfo, CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus, FlightDescriptor, FlightEndpoint,
    FlightInfo, HandshakeRequest, HandshakeResponse, Ticket,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use datafusion::logical_expr::LogicalPlan;
use futures::{Stream, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::auth::{Auth, Caller};
use super::metadata::{primary_keys_schema, sql_info, type_info};
use super::status::status;
use super::stream::{DoGetStream, QueryStream, RunningTicket, affected_rows, collect, encode, one_batch, rows};
use super::wire::{self, Handle};
use crate::Lakegate;
use crate::session::{self, Planned};

/// How long bound parameters of a prepared statement are kept for clients that do not use
/// the handle returned by the bind.
const BOUND_PARAMETERS_TTL: Duration = Duration::from_secs(3600);

pub(crate) struct FlightSqlServer {
    lakegate: Arc<Lakegate>,
    auth: Arc<Auth>,
    sql_info: SqlInfoData,
    type_info: XdbcTypeInfoData,
    /// Query id → its cancel flag, while it runs (or once cancelled before it ran).
    running: Arc<Mutex<HashMap<String, Arc<AtomicBool>>>>,
    /// Prepared statement id → its bound parameters ([`wire::encode_parameters`]), and when
    /// they were bound.
    bound: Mutex<HashMap<String, (String, Instant)>>,
    /// Plans made for a FlightInfo or a prepared statement, so the DoGet that usually follows
    /// at once does not plan again. Only a shortcut: tickets carry their SQL and are re-planned
    /// when the plan is not here (another server, or too late).
    plans: Mutex<HashMap<String, CachedPlan>>,
}

struct CachedPlan {
    plan: LogicalPlan,
    /// How long making it took.
    planning: Duration,
    user: String,
    at: Instant,
}

/// How long a cached plan is reused, and how many are kept.
const PLAN_CACHE_TTL: Duration = Duration::from_secs(60);
const PLAN_CACHE_SIZE: usize = 1024;

impl FlightSqlServer {
    pub(crate) fn new(lakegate: Arc<Lakegate>, auth: Arc<Auth>) -> crate::Result<Self> {
        Ok(Self {
            lakegate,
            auth,
            sql_info: sql_info()?,
            type_info: type_info()?,
            running: Arc::default(),
            bound: Mutex::default(),
            plans: Mutex::default(),
        })
    }

    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let caller = self.auth.caller(request.metadata(), request.remote_addr(), |p| self.lakegate.session_as(p));
        self.lakegate.metrics().flight_sessions.set(self.auth.sessions() as i64);
        caller
    }

    /// Plans `sql`: a query gets a ticket to stream it from; anything else runs now and its
    /// rows travel in the ticket.
    async fn flight_info(
        &self,
        caller: &Caller,
        incoming: &Incoming,
        sql: String,
        params: Option<String>,
        planned: Option<Planned>,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, Status> {
        let mut origin = incoming.origin(new_id());
        let span = incoming.span(&origin.id, &caller.user);
        let values = params.as_deref().map(wire::decode_parameters).transpose()?;
        let planned = match planned {
            Some(planned) => planned,
            None => {
                let planning = caller.session.plan_from(&mut origin, &sql, values.as_ref());
                planning.instrument(span.clone()).await.map_err(status)?
            }
        };
        let (schema, handle) = match planned {
            Planned::Query(plan) => {
                let schema = wire::wire_schema(plan.schema().as_arrow());
                self.keep_plan(&origin.id, caller, plan, origin.planning);
                (schema, Handle::Query { id: origin.id, sql, params })
            }
            effects => {
                let result = caller.session.run_as(origin, &sql, effects).instrument(span).await;
                let (schema, batches) = collect(result.map_err(status)?).await?;
                let ipc = wire::batches_to_hex(&schema, &batches).map_err(|e| status(e.into()))?;
                (schema, Handle::Rows { ipc })
            }
        };
        let ticket = TicketStatementQuery { statement_handle: handle.encode().into() };
        let info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec())))
            .with_descriptor(descriptor)
            .with_total_records(-1);
        Ok(info)
    }

    fn keep_plan(&self, id: &str, caller: &Caller, plan: LogicalPlan, planning: Duration) {
        let mut plans = self.lock_plans();
        plans.retain(|_, p| p.at.elapsed() < PLAN_CACHE_TTL);
        if plans.len() < PLAN_CACHE_SIZE {
            plans.insert(id.to_owned(), CachedPlan { plan, planning, user: caller.user.clone(), at: Instant::now() });
        }
    }

    /// The cached plan `id` for `caller` and how long making it took; `take` removes it (a
    /// ticket's plan is used once).
    fn cached_plan(&self, id: &str, caller: &Caller, take: bool) -> Option<(LogicalPlan, Duration)> {
        let mut plans = self.lock_plans();
        let usable = plans.get(id).is_some_and(|p| p.user == caller.user && p.at.elapsed() < PLAN_CACHE_TTL);
        match (usable, take) {
            (false, _) => None,
            (true, true) => plans.remove(id).map(|p| (p.plan, p.planning)),
            (true, false) => plans.get(id).map(|p| (p.plan.clone(), p.planning)),
        }
    }

    fn lock_plans(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedPlan>> {
        self.plans.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A metadata command's FlightInfo: the command itself is the ticket.
    fn metadata_info(
        &self,
        command: impl ProstMessageExt,
        schema: &Schema,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(command.as_any().encode_to_vec())))
            .with_descriptor(descriptor);
        Ok(Response::new(info))
    }

    /// Streams what a ticket stands for.
    async fn stream(
        &self,
        caller: Caller,
        incoming: &Incoming,
        handle: Handle,
    ) -> Result<Response<DoGetStream>, Status> {
        let (id, sql, params) = match handle {
            Handle::Rows { ipc } => {
                let (schema, batches) = wire::batches_from_hex(&ipc)?;
                return Ok(rows(schema, batches));
            }
            Handle::Query { id, sql, params } => (id, sql, params),
        };
        let cancelled = {
            let mut running = self.lock_running();
            Arc::clone(running.entry(id.clone()).or_default())
        };
        if cancelled.load(Ordering::Relaxed) {
            return Err(Status::cancelled("the query was cancelled"));
        }
        let mut origin = incoming.origin(id.clone());
        let span = incoming.span(&id, &caller.user);
        let metrics = self.lakegate.metrics();
        let planned = match self.cached_plan(&id, &caller, true) {
            Some((plan, planning)) => {
                metrics.plan_cache.with_label_values(&["hit"]).inc();
                origin.planning = planning;
                Planned::Query(plan)
            }
            None => {
                metrics.plan_cache.with_label_values(&["miss"]).inc();
                let values = params.as_deref().map(wire::decode_parameters).transpose()?;
                let planning = caller.session.plan_from(&mut origin, &sql, values.as_ref());
                planning.instrument(span.clone()).await.map_err(status)?
            }
        };
        let plan = match planned {
            Planned::Query(plan) => plan,
            // The catalog changed since the ticket was made: run it as it is now.
            effects => {
                let ran = caller.session.run_as(origin, &sql, effects).instrument(span).await;
                let (schema, batches) = collect(ran.map_err(status)?).await?;
                return Ok(rows(schema, batches));
            }
        };
        // The schema announced in the FlightInfo: the logical plan's, whose nullability clients
        // compare with what they receive.
        let schema = wire::wire_schema(plan.schema().as_arrow());
        let stream = caller.session.run_query_as(origin, &sql, plan).instrument(span).await.map_err(status)?;
        let ticket = RunningTicket { id, running: Arc::clone(&self.running) };
        let batches = QueryStream { inner: Some(stream), schema: Arc::clone(&schema), cancelled, _ticket: ticket };
        Ok(Response::new(encode(schema, batches)))
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<AtomicBool>>> {
        self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_bound(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        self.bound.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Marks the queries of `tickets` cancelled; running ones stop at their next batch.
    fn cancel(&self, tickets: impl IntoIterator<Item = Vec<u8>>) -> bool {
        let mut any = false;
        let mut running = self.lock_running();
        for ticket in tickets {
            let Ok(any_message) = Any::decode(ticket.as_slice()) else { continue };
            let Ok(Some(ticket)) = any_message.unpack::<TicketStatementQuery>() else { continue };
            if let Ok(Handle::Query { id, .. }) = Handle::decode(&ticket.statement_handle) {
                running.entry(id).or_default().store(true, Ordering::Relaxed);
                any = true;
            }
        }
        any
    }

    /// The SQL of a prepared statement handle and its parameters: those the handle carries,
    /// else those bound by a DoPut to the statement.
    fn prepared_sql(&self, handle: &[u8]) -> Result<(String, Option<String>), Status> {
        let Handle::Query { id, sql, params } = Handle::decode(handle)? else {
            return Err(Status::invalid_argument("not a prepared statement handle"));
        };
        let params = params.or_else(|| self.lock_bound().get(&id).map(|(params, _)| params.clone()));
        Ok((sql, params))
    }
}

/// What a request says of where it comes from: the client program and its trace.
struct Incoming {
    client: String,
    traceparent: Option<String>,
}

impl Incoming {
    fn of<T>(request: &Request<T>) -> Self {
        let header = |name: &str| request.metadata().get(name).and_then(|v| v.to_str().ok());
        Self {
            client: client_name(header("user-agent").unwrap_or_default()),
            traceparent: header("traceparent").map(str::to_owned),
        }
    }

    fn origin(&self, id: String) -> session::Origin {
        session::Origin { id, client: self.client.clone(), planning: Duration::ZERO }
    }

    fn span(&self, id: &str, user: &str) -> tracing::Span {
        crate::telemetry::statement_span(id, user, &self.client, self.traceparent.as_deref())
    }
}

/// The client program, from its gRPC user agent: ADBC's driver is Go, the JDBC driver Java,
/// pyarrow (and flightsql-dbapi, which Superset loads) gRPC's C core.
fn client_name(agent: &str) -> String {
    let name = if agent.contains("ADBC") || agent.starts_with("grpc-go") {
        "ADBC"
    } else if agent.starts_with("grpc-java") {
        "JDBC"
    } else if agent.starts_with("grpc-c") || agent.contains("grpc-python") {
        "Python"
    } else if agent.starts_with("lakegate-repl") {
        "repl"
    } else if let Some(first) = agent.split([' ', '/']).find(|w| !w.is_empty()) {
        // Anything else by its first word, bounded: the header is the client's to choose.
        return first.chars().filter(|c| c.is_ascii_graphic()).take(32).collect();
    } else {
        "unknown"
    };
    name.to_owned()
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Reads the parameter batches of a DoPut.
async fn parameter_batches(request: Request<PeekableFlightDataStream>) -> Result<Vec<RecordBatch>, Status> {
    let stream = request.into_inner().map_err(FlightError::from);
    arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(stream)
        .try_collect()
        .await
        .map_err(|e| Status::invalid_argument(format!("cannot read the bound parameters: {e}")))
}

#[tonic::async_trait]
impl FlightSqlService for FlightSqlServer {
    type FlightService = FlightSqlServer;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>, Status> {
        let (caller, token) = self.auth.sign_in(request.metadata(), |p| self.lakegate.session_as(p))?;
        tracing::info!(user = %caller.user, "signed in");
        let reply = HandshakeResponse { protocol_version: 0, payload: token.clone().into() };
        let mut response: Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>> =
            Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
        let bearer = MetadataValue::try_from(format!("Bearer {token}")).map_err(|e| Status::internal(e.to_string()))?;
        response.metadata_mut().insert("authorization", bearer);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.caller(&request)?;
        let incoming = Incoming::of(&request);
        Ok(Response::new(self.flight_info(&caller, &incoming, query.query, None, None, request.into_inner()).await?))
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.caller(&request)?;
        let (sql, params) = self.prepared_sql(&query.prepared_statement_handle)?;
        // An unbound statement's plan was made when it was prepared.
        let planned = match Handle::decode(&query.prepared_statement_handle)? {
            Handle::Query { id, .. } if params.is_none() => {
                self.cached_plan(&id, &caller, false).map(|(plan, _)| Planned::Query(plan))
            }
            _ => None,
        };
        let incoming = Incoming::of(&request);
        Ok(Response::new(self.flight_info(&caller, &incoming, sql, params, planned, request.into_inner()).await?))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let caller = self.caller(&request)?;
        self.stream(caller, &Incoming::of(&request), Handle::decode(&ticket.statement_handle)?).await
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let caller = self.caller(&request)?;
        let (sql, params) = self.prepared_sql(&query.prepared_statement_handle)?;
        self.stream(caller, &Incoming::of(&request), Handle::Query { id: new_id(), sql, params }).await
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let caller = self.caller(&request)?;
        let incoming = Incoming::of(&request);
        let origin = incoming.origin(new_id());
        let result = caller.session.execute_as(origin, incoming.traceparent.as_deref(), &command.query, None).await;
        affected_rows(result.map_err(status)?).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let caller = self.caller(&request)?;
        let sql = session::number_placeholders(&query.query).map_err(status)?;
        // Statements with effects have an empty result schema: JDBC then runs them as updates.
        let id = new_id();
        let planning = Instant::now();
        let (dataset, parameters) = match caller.session.plan(&sql).await.map_err(status)? {
            Planned::Query(plan) => {
                let types = plan.get_parameter_types().map_err(|e| status(e.into()))?;
                let schemas = (wire::wire_schema(plan.schema().as_arrow()), wire::parameter_schema(&types));
                if types.is_empty() {
                    self.keep_plan(&id, &caller, plan, planning.elapsed());
                }
                schemas
            }
            _ => {
                // An INSERT's placeholders take the types of the table's columns.
                let types = caller.session.parameter_types(&sql).await.unwrap_or_default();
                (Arc::new(Schema::empty()), wire::parameter_schema(&types))
            }
        };
        let handle = Handle::Query { id, sql, params: None };
        let ipc = |schema: &Schema| -> Result<bytes::Bytes, Status> {
            let message: arrow_flight::IpcMessage = arrow_flight::SchemaAsIpc::new(schema, &Default::default())
                .try_into()
                .map_err(|e: datafusion::arrow::error::ArrowError| Status::internal(e.to_string()))?;
            Ok(message.0)
        };
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.encode().into(),
            dataset_schema: ipc(&dataset)?,
            parameter_schema: ipc(&parameters)?,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        self.caller(&request)?;
        let Handle::Query { id, sql, .. } = Handle::decode(&query.prepared_statement_handle)? else {
            return Err(Status::invalid_argument("not a prepared statement handle"));
        };
        let batches = parameter_batches(request).await?;
        let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
            return Ok(DoPutPreparedStatementResult {
                prepared_statement_handle: Some(query.prepared_statement_handle),
            });
        };
        let params = wire::encode_parameters(batch, 0).map_err(status)?;
        let mut kept = self.lock_bound();
        kept.retain(|_, (_, at)| at.elapsed() < BOUND_PARAMETERS_TTL);
        kept.insert(id.clone(), (params.clone(), Instant::now()));
        let handle = Handle::Query { id, sql, params: Some(params) };
        Ok(DoPutPreparedStatementResult { prepared_statement_handle: Some(handle.encode().into()) })
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let caller = self.caller(&request)?;
        let incoming = Incoming::of(&request);
        let (sql, params) = self.prepared_sql(&query.prepared_statement_handle)?;
        let batches = parameter_batches(request).await?;
        let rows: Vec<(&RecordBatch, usize)> =
            batches.iter().flat_map(|b| (0..b.num_rows()).map(move |r| (b, r))).collect();
        // One execution per parameter row; the values go into the plan, never into the SQL.
        let runs = if rows.is_empty() {
            vec![params.as_deref().map(wire::decode_parameters).transpose()?]
        } else {
            rows.into_iter()
                .map(|(b, r)| wire::parameter_values(b, r).map(Some))
                .collect::<crate::Result<Vec<_>>>()
                .map_err(status)?
        };
        let mut affected = 0;
        for values in runs {
            let origin = incoming.origin(new_id());
            let traceparent = incoming.traceparent.as_deref();
            let result = caller.session.execute_as(origin, traceparent, &sql, values.as_ref()).await;
            affected += affected_rows(result.map_err(status)?).await?;
        }
        Ok(affected)
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        self.caller(&request)?;
        if let Ok(Handle::Query { id, .. }) = Handle::decode(&query.prepared_statement_handle) {
            self.lock_bound().remove(&id);
            self.lock_plans().remove(&id);
        }
        Ok(())
    }

    async fn do_action_cancel_query(
        &self,
        query: ActionCancelQueryRequest,
        request: Request<Action>,
    ) -> Result<ActionCancelQueryResult, Status> {
        self.caller(&request)?;
        let info = FlightInfo::decode(query.info).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let cancelled = self.cancel(info.endpoint.into_iter().filter_map(|e| e.ticket.map(|t| t.ticket.to_vec())));
        // The deprecated CancelQuery's result enum is not exported; Flight's CancelStatus has the
        // same numbers.
        let result = if cancelled { CancelStatus::Cancelled } else { CancelStatus::NotCancellable };
        Ok(ActionCancelQueryResult { result: result as i32 })
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        self.caller(&request)?;
        let action = request.into_inner();
        let body = match action.r#type.as_str() {
            "CancelFlightInfo" => {
                let cancel = CancelFlightInfoRequest::decode(action.body)
                    .map_err(|e| Status::invalid_argument(e.to_string()))?;
                let tickets = cancel
                    .info
                    .into_iter()
                    .flat_map(|i| i.endpoint)
                    .filter_map(|e| e.ticket.map(|t| t.ticket.to_vec()));
                let status = if self.cancel(tickets) { CancelStatus::Cancelled } else { CancelStatus::NotCancellable };
                CancelFlightInfoResult::new(status).encode_to_vec()
            }
            // Sessions live as long as their token; closing one needs nothing here.
            // CloseSessionResult { status: CLOSED }, encoded (arrow-flight has no type for it).
            "CloseSession" => vec![0x08, 0x01],
            other => return Err(Status::unimplemented(format!("action '{other}' is not supported by lakegate"))),
        };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(arrow_flight::Result { body: body.into() })]))))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request)?;
        let schema = query.into_builder().schema();
        self.metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let caller = self.caller(&request)?;
        let mut builder = query.into_builder();
        builder.append(session::CATALOG);
        for catalog in caller.session.other_catalogs() {
            builder.append(catalog);
        }
        one_batch(builder.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request)?;
        let schema = query.clone().into_builder().schema();
        self.metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let caller = self.caller(&request)?;
        let mut builder = query.into_builder();
        for database in caller.session.readable_databases() {
            builder.append(session::CATALOG, database);
        }
        for catalog in caller.session.other_catalogs() {
            for database in caller.session.readable_databases_of(&catalog) {
                builder.append(&catalog, database);
            }
        }
        one_batch(builder.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request)?;
        let schema = query.clone().into_builder().schema();
        self.metadata_info(query, &schema, request.into_inner())
    }

    /// The tables the caller's session sees (stored ones, `system`'s, its temporary views) in
    /// the databases it may read. A table whose stored entry is broken is left out (and
    /// logged), never the whole listing.
    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let caller = self.caller(&request)?;
        let with_schemas = query.include_schema;
        let wanted_catalog = query.catalog.clone();
        let mut builder = query.into_builder();
        for database in caller.session.readable_databases() {
            for (name, schema) in caller.session.tables(&database).await {
                let schema = match schema {
                    Ok(schema) => schema,
                    Err(e) => {
                        tracing::warn!(%database, table = %name, error = %e, "table left out of GetTables");
                        continue;
                    }
                };
                builder
                    .append(session::CATALOG, &database, &name, "TABLE", &wire::wire_schema(&schema))
                    .map_err(|e| Status::internal(e.to_string()))?;
            }
        }
        // A metastore table's schema costs a call to the metastore: only when asked for.
        let others = caller.session.other_catalogs();
        for catalog in others.into_iter().filter(|c| wanted_catalog.as_ref().is_none_or(|w| w == c)) {
            for database in caller.session.readable_databases_of(&catalog) {
                for (name, schema) in caller.session.tables_of(&catalog, &database, with_schemas).await {
                    let Ok(schema) = schema.inspect_err(|e| {
                        tracing::warn!(%catalog, %database, table = %name, error = %e, "table left out of GetTables");
                    }) else {
                        continue;
                    };
                    builder
                        .append(&catalog, &database, &name, "TABLE", &wire::wire_schema(&schema))
                        .map_err(|e| Status::internal(e.to_string()))?;
                }
            }
        }
        one_batch(builder.build())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request)?;
        let schema = query.into_builder().schema();
        self.metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request)?;
        let mut builder = query.into_builder();
        builder.append("TABLE");
        one_batch(builder.build())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request)?;
        let schema = query.clone().into_builder(&self.sql_info).schema();
        self.metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request)?;
        one_batch(query.into_builder(&self.sql_info).build())
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request)?;
        let schema = query.into_builder(&self.type_info).schema();
        self.metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request)?;
        one_batch(query.into_builder(&self.type_info).build())
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request)?;
        self.metadata_info(query, &primary_keys_schema(), request.into_inner())
    }

    /// No source lakegate reads declares keys it enforces: the answer is empty.
    async fn do_get_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request)?;
        one_batch(Ok::<_, Status>(RecordBatch::new_empty(Arc::new(primary_keys_schema()))))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
