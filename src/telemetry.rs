//! Logs and traces: the `tracing` subscriber (plain text or JSON lines on standard error), and,
//! with `[telemetry] otlp_endpoint`, spans exported as OpenTelemetry traces over OTLP/gRPC.
//!
//! Every statement runs in a `statement` span carrying its query id, so each log line written
//! while it runs names it, and its trace has `parse`, `plan`, `execute`, `scan` and `commit`
//! spans as children. A client's W3C `traceparent` header makes the statement a child of the
//! client's own trace.

use opentelemetry::trace::TracerProvider as _;
use serde::Deserialize;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The target of lakegate's statement spans. Always enabled, whatever the log level, so the
/// query id reaches every log line and every trace.
pub const SPANS: &str = "lakegate::span";

/// `[telemetry]`: where traces go.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// An OTLP/gRPC receiver, e.g. `http://127.0.0.1:4317` (an OpenTelemetry Collector, Jaeger,
    /// Tempo); without it no traces are exported.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` of exported spans (default `lakegate`).
    pub service_name: Option<String>,
    /// Keep every ended statement in `system.query_log` (Parquet files under the data dir,
    /// partitioned by `day`), not only the last 1000 of this process in `system.queries`.
    pub query_log: bool,
    /// How many days `system.query_log` keeps (default 30).
    pub query_log_days: Option<u32>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per line, with the fields of the spans it happened in (the query id).
    Json,
}

/// Keeps the trace exporter until the process ends; dropping it sends the spans still queued.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: traces not all exported: {e}");
        }
    }
}

/// Installs the process's subscriber: `filter` for log lines, in `format`, and spans exported
/// to `config.otlp_endpoint` when set. Must run inside the Tokio runtime (the exporter's gRPC
/// channel needs it).
///
/// # Errors
/// The endpoint is not a valid URI.
pub fn init(filter: EnvFilter, format: LogFormat, config: &TelemetryConfig) -> crate::Result<Telemetry> {
    // Statement spans are always on, so their query id is on every line logged inside them.
    let filter =
        filter.add_directive(format!("{SPANS}=info").parse().map_err(|e| crate::Error::Internal(format!("{e}")))?);
    // Colours only on a terminal: logs written to files and CI stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let mut telemetry = Telemetry::default();
    let traces = match &config.otlp_endpoint {
        None => None,
        Some(endpoint) => {
            use opentelemetry_otlp::WithExportConfig;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .map_err(|e| crate::Error::Config(format!("[telemetry] otlp_endpoint = '{endpoint}': {e}")))?;
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name(config.service_name.clone().unwrap_or_else(|| "lakegate".into()))
                .build();
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource)
                .build();
            let tracer = provider.tracer("lakegate");
            telemetry.provider = Some(provider);
            // Only lakegate's own spans: DataFusion's and the drivers' are not the user's business.
            let own = tracing_subscriber::filter::Targets::new().with_target("lakegate", tracing::Level::INFO);
            Some(tracing_opentelemetry::layer().with_tracer(tracer).with_filter(own))
        }
    };
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces)
        .try_init()
        .map_err(|e| crate::Error::Internal(format!("logging set up twice: {e}")))?;
    Ok(telemetry)
}

/// A new `statement` span for query `id`; with `traceparent` (a W3C trace context header), a
/// child of the client's trace.
pub fn statement_span(id: &str, user: &str, client: &str, traceparent: Option<&str>) -> Span {
    let span = tracing::info_span!(
        target: SPANS,
        "statement",
        query_id = %id,
        user = %user,
        client = %client,
        state = tracing::field::Empty,
        rows = tracing::field::Empty,
        bytes = tracing::field::Empty,
    );
    if let Some(header) = traceparent {
        use opentelemetry::propagation::TextMapPropagator;
        let carrier = std::collections::HashMap::from([("traceparent".to_owned(), header.to_owned())]);
        let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&carrier);
        // Only a valid header is a parent; a malformed one is ignored, as the W3C spec says.
        if opentelemetry::trace::TraceContextExt::span(&parent).span_context().is_valid() {
            let _ = span.set_parent(parent);
        }
    }
    span
}

/// The OpenTelemetry trace id of `span`, when traces are exported; empty otherwise.
pub fn trace_id(span: &Span) -> String {
    use opentelemetry::trace::TraceContextExt;
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() { span_context.trace_id().to_string() } else { String::new() }
}
