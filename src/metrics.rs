//! The process's Prometheus metrics: what the admin endpoint's `/metrics` shows.
//!
//! One registry per [`crate::Lakegate`], not a global one, so two in one process (tests) count
//! apart. Names follow Prometheus's conventions: a `lakegate_` prefix, base units
//! (`_seconds`, `_bytes`), `_total` on counters.

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Every metric lakegate keeps.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Statements started, by kind (`query`, `write`, `command`, `statement`) and user.
    pub started: IntCounterVec,
    /// Statements that ended, by kind, user and outcome (`finished`, `failed`, `cancelled`).
    pub ended: IntCounterVec,
    /// How long statements took, start to end, by kind.
    pub duration: HistogramVec,
    pub rows_returned: IntCounterVec,
    pub bytes_returned: IntCounterVec,
    /// Rows and bytes read from each kind of source (`parquet`, `postgres`, `cassandra`...).
    pub source_rows: IntCounterVec,
    pub source_bytes: IntCounterVec,
    /// Failed statements whose error came from a source, by source kind.
    pub source_errors: IntCounterVec,
    /// Statements running now, and waiting for a slot.
    pub active: IntGauge,
    pub queued: IntGauge,
    /// Open Flight SQL sessions (signed-in users' tokens).
    pub flight_sessions: IntGauge,
    /// Memory the execution pool lends now, and its limit (0: none).
    pub memory_reserved: IntGauge,
    pub memory_limit: IntGauge,
    pub spills: IntCounter,
    pub spilled_bytes: IntCounter,
    /// Plans a Flight DoGet found already made by its GetFlightInfo, or had to make again.
    pub plan_cache: IntCounterVec,
    /// Queries over caches whose answer was reused from an identical query, or computed.
    pub answers: IntCounterVec,
    /// Writes published, by outcome (`published`, `failed`), and how long publishing took.
    pub commits: IntCounterVec,
    pub commit_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Latency buckets from 1 ms to 10 min: dashboards' small queries and nightly batches both.
const SECONDS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric name");
            registry.register(Box::new(metric.clone())).expect("a metric registered once");
            metric
        };
        let gauge = |name: &str, help: &str| {
            let metric = IntGauge::new(name, help).expect("a valid metric name");
            registry.register(Box::new(metric.clone())).expect("a metric registered once");
            metric
        };
        let single = |name: &str, help: &str| {
            let metric = IntCounter::new(name, help).expect("a valid metric name");
            registry.register(Box::new(metric.clone())).expect("a metric registered once");
            metric
        };
        let duration = HistogramVec::new(
            HistogramOpts::new("lakegate_query_duration_seconds", "Time from a statement's start to its end")
                .buckets(SECONDS.to_vec()),
            &["kind"],
        )
        .expect("a valid metric name");
        registry.register(Box::new(duration.clone())).expect("a metric registered once");
        let commit_duration = Histogram::with_opts(
            HistogramOpts::new(
                "lakegate_commit_duration_seconds",
                "Time to move a write's files into place and publish it",
            )
            .buckets(SECONDS.to_vec()),
        )
        .expect("a valid metric name");
        registry.register(Box::new(commit_duration.clone())).expect("a metric registered once");
        Self {
            started: counter("lakegate_queries_started_total", "Statements started", &["kind", "user"]),
            ended: counter(
                "lakegate_queries_ended_total",
                "Statements ended, by outcome",
                &["kind", "user", "outcome"],
            ),
            duration,
            rows_returned: counter("lakegate_rows_returned_total", "Rows returned to clients", &["user"]),
            bytes_returned: counter(
                "lakegate_bytes_returned_total",
                "Bytes of Arrow data returned to clients",
                &["user"],
            ),
            source_rows: counter("lakegate_source_rows_read_total", "Rows read from sources", &["source"]),
            source_bytes: counter("lakegate_source_bytes_read_total", "Bytes read from sources", &["source"]),
            source_errors: counter(
                "lakegate_source_errors_total",
                "Statements that failed on a source's error",
                &["source"],
            ),
            active: gauge("lakegate_active_queries", "Statements running now"),
            queued: gauge("lakegate_queued_queries", "Statements waiting for a slot"),
            flight_sessions: gauge("lakegate_flight_sessions", "Open Flight SQL sessions"),
            memory_reserved: gauge("lakegate_memory_pool_reserved_bytes", "Memory the query pool lends now"),
            memory_limit: gauge("lakegate_memory_pool_limit_bytes", "The query pool's limit (0: unlimited)"),
            spills: single("lakegate_spills_total", "Times an operator spilled to disk"),
            spilled_bytes: single("lakegate_spilled_bytes_total", "Bytes spilled to disk"),
            plan_cache: counter(
                "lakegate_plan_cache_requests_total",
                "Flight DoGets whose plan was cached (hit) or made again (miss)",
                &["result"],
            ),
            answers: counter(
                "lakegate_answers_total",
                "Queries reading only caches, whose answer was reused from an identical query or computed",
                &["result"],
            ),
            commits: counter("lakegate_commits_total", "Writes published or failed", &["outcome"]),
            commit_duration,
            registry,
        }
    }

    /// The metrics in Prometheus's text format.
    pub fn render(&self) -> String {
        use prometheus::Encoder;
        let mut text = Vec::new();
        // Encoding a gathered registry into a Vec cannot fail.
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut text);
        String::from_utf8_lossy(&text).into_owned()
    }
}
