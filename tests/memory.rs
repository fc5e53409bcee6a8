//! `[execution] memory_limit_mb` under load: a real `lakegate serve` with a 64 MiB limit sorts,
//! groups and rewrites (INSERT OVERWRITE) a table about ten times that size. Each statement
//! either spills and returns every row, or fails with DataFusion's "Resources exhausted" error;
//! meanwhile a thread samples the server's resident set, which must stay under a stated bound.
//!
//! The bound is `baseline + RSS_BOUND_FACTOR * limit`. The baseline is the server's own RSS once
//! it has started and scanned the table once (code, catalog, runtime threads: ~60-70 MiB in a
//! debug build). The factor covers what the pool does not track, measured on a 2-core machine:
//! the Parquet reader's fetched column chunks and decoded pages, the sort's row encodings and
//! spill-merge read buffers, the Flight encoder's buffers, and the allocator keeping freed pages.
//! Measured peak above the baseline: ~130-210 MiB for the sort and the overwrite when this test
//! runs alone, up to 281 MiB (the overwrite) with the rest of the suite running beside it; the
//! factor leaves room for that (see README, "Reliability and security tests").

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use futures::TryStreamExt;
use tonic::transport::Channel;

use crate::common::Lakegate;
use crate::flight::Server;

/// The server's pool: `[execution] memory_limit_mb`.
const LIMIT_MB: u64 = 64;
/// Rows of the source table: ~90 bytes each as Arrow arrays (two Int64, a 10-byte date string,
/// a ~56-byte payload string, offsets), so ~690 MiB in memory, 10.8x the limit; 34 MB as Parquet.
const ROWS: u64 = 8_000_000;
/// The peak RSS may exceed the baseline by this many times the limit (see the module comment).
const RSS_BOUND_FACTOR: u64 = 6;

/// A resident-set sampler over one process: VmRSS polled every 5 ms in a thread, and the size
/// of the spill directory, until dropped.
struct Sampler {
    stop: Arc<AtomicBool>,
    peak_rss_kb: Arc<AtomicU64>,
    peak_spill_bytes: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

impl Sampler {
    fn start(pid: u32, spill_dir: PathBuf) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak_rss_kb = Arc::new(AtomicU64::new(0));
        let peak_spill_bytes = Arc::new(AtomicU64::new(0));
        let (s, r, b) = (Arc::clone(&stop), Arc::clone(&peak_rss_kb), Arc::clone(&peak_spill_bytes));
        let thread = std::thread::spawn(move || {
            let mut tick = 0u64;
            while !s.load(Ordering::Relaxed) {
                r.fetch_max(rss_kb(pid), Ordering::Relaxed);
                if tick.is_multiple_of(10) {
                    b.fetch_max(dir_bytes(&spill_dir), Ordering::Relaxed);
                }
                tick += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Self { stop, peak_rss_kb, peak_spill_bytes, thread: Some(thread) }
    }

    /// (peak RSS in KiB, peak bytes in the spill directory) since the last reset.
    fn take(&self) -> (u64, u64) {
        (self.peak_rss_kb.swap(0, Ordering::Relaxed), self.peak_spill_bytes.swap(0, Ordering::Relaxed))
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How a statement under the limit ended: every row back, or a memory error.
#[derive(Debug)]
enum Outcome<T> {
    Completed(T),
    OutOfMemory(String),
}

#[track_caller]
fn outcome<T>(what: &str, result: Result<T, String>) -> Outcome<T> {
    match result {
        Ok(value) => Outcome::Completed(value),
        Err(e) if e.contains("Resources exhausted") => {
            assert!(e.contains("memory"), "{what}: the error names memory: {e}");
            Outcome::OutOfMemory(e)
        }
        Err(e) => panic!("{what} failed with an error that is not about memory: {e}"),
    }
}

/// The longest one statement may take here (each takes under 30 s alone): a statement that
/// stops making progress fails the test instead of holding the suite.
const STATEMENT_DEADLINE: Duration = Duration::from_secs(300);

/// Runs `sql`, streaming its result, and folds each batch into `fold`.
async fn stream<T>(
    client: &mut FlightSqlServiceClient<Channel>,
    sql: &str,
    mut state: T,
    mut fold: impl FnMut(&mut T, &datafusion::arrow::array::RecordBatch),
) -> Result<T, String> {
    let run = async {
        let info = client.execute(sql.into(), None).await.map_err(|e| e.to_string())?;
        let ticket = info.endpoint[0].ticket.clone().ok_or("no ticket")?;
        let mut batches = client.do_get(ticket).await.map_err(|e| e.to_string())?;
        while let Some(batch) = batches.try_next().await.map_err(|e| e.to_string())? {
            fold(&mut state, &batch);
        }
        Ok::<_, String>(())
    };
    match tokio::time::timeout(STATEMENT_DEADLINE, run).await {
        Ok(result) => result.map(|()| state),
        Err(_) => Err(format!("no result after {STATEMENT_DEADLINE:?}: the statement stopped making progress")),
    }
}

async fn count(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> i64 {
    stream(client, sql, 0, |n, b| *n += b.column(0).as_primitive::<Int64Type>().value(0)).await.expect(sql)
}

/// One measured statement: its outcome, duration, peak RSS and spill-directory peak.
fn report<T: std::fmt::Debug>(name: &str, result: &Outcome<T>, started: Instant, sampler: &Sampler) -> u64 {
    let (rss_kb, spill) = sampler.take();
    println!(
        "{name}: {result:?} in {:.1} s; peak RSS {} MiB; spill files peaked at {} MiB",
        started.elapsed().as_secs_f64(),
        rss_kb / 1024,
        spill >> 20
    );
    rss_kb
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sort_a_group_by_and_an_overwrite_ten_times_the_memory_limit_spill_or_fail_cleanly() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let spill_dir = scratch.path().join("spill");
    std::fs::create_dir_all(&spill_dir).expect("spill dir");
    let source = scratch.path().join("events");
    let target = scratch.path().join("events_by_day");
    // DataFusion spills under the process's temp dir.
    let lakegate = Lakegate::new()
        .with_env("LAKEGATE_MEMORY_LIMIT_MB", &LIMIT_MB.to_string())
        .with_env("TMPDIR", &spill_dir.display().to_string());
    let started = Instant::now();
    lakegate
        .sql(&format!(
            "COPY (SELECT value AS id, (value * 7919) % 1000003 AS user_id, \
                     concat('2024-01-', lpad(CAST(value % 10 + 1 AS VARCHAR), 2, '0')) AS dt, \
                     concat('payload-', CAST(value AS VARCHAR), '-', repeat('x', 40)) AS payload \
                   FROM generate_series(1, {ROWS})) TO '{}/' STORED AS PARQUET",
            source.display()
        ))
        .success();
    lakegate
        .sql(&format!(
            "CREATE EXTERNAL TABLE events STORED AS PARQUET LOCATION '{}/'; \
             CREATE TABLE events_by_day (id BIGINT, user_id BIGINT, payload STRING, dt STRING) \
               USING PARQUET PARTITIONED BY (dt) LOCATION '{}'",
            source.display(),
            target.display()
        ))
        .success();
    println!(
        "{ROWS} rows generated in {:.1} s ({} MiB of Parquet)",
        started.elapsed().as_secs_f64(),
        dir_bytes(&source) >> 20
    );

    let server = Server::start_with(lakegate, &["--listen", "127.0.0.1:0"]).expect("the server starts");
    let mut client = server.signed_in().await;
    assert_eq!(count(&mut client, "SELECT count(*) FROM events").await, ROWS as i64);
    let baseline_kb = rss_kb(server.pid());
    let bound_kb = baseline_kb + RSS_BOUND_FACTOR * LIMIT_MB * 1024;
    println!("limit {LIMIT_MB} MiB; baseline RSS {} MiB; bound {} MiB", baseline_kb / 1024, bound_kb / 1024);
    let sampler = Sampler::start(server.pid(), spill_dir.clone());
    let mut peaks = Vec::new();

    // 1. A sort of every row and column, streamed back through Flight SQL.
    let t = Instant::now();
    let sorted = stream(
        &mut client,
        "SELECT id, user_id, payload, dt FROM events ORDER BY user_id, payload",
        (0u64, i64::MIN, true),
        |(rows, last, ordered), batch| {
            for &user in batch.column(1).as_primitive::<Int64Type>().values() {
                *ordered &= user >= *last;
                *last = user;
            }
            *rows += batch.num_rows() as u64;
        },
    )
    .await;
    let sorted = outcome("ORDER BY", sorted);
    peaks.push(("ORDER BY", report("ORDER BY over every row", &sorted, t, &sampler)));
    if let Outcome::Completed((rows, _, ordered)) = sorted {
        assert_eq!(rows, ROWS, "the sort returned every row");
        assert!(ordered, "rows come back ordered by user_id");
    }

    // 2. A GROUP BY with a million groups.
    let t = Instant::now();
    let grouped = stream(
        &mut client,
        "SELECT user_id, count(*) AS n, max(payload) AS p FROM events GROUP BY user_id",
        (0u64, 0i64),
        |(groups, rows), batch| {
            *groups += batch.num_rows() as u64;
            *rows += datafusion::arrow::compute::sum(batch.column(1).as_primitive::<Int64Type>()).unwrap_or(0);
        },
    )
    .await;
    let grouped = outcome("GROUP BY", grouped);
    peaks.push(("GROUP BY", report("GROUP BY user_id (1M groups)", &grouped, t, &sampler)));
    if let Outcome::Completed((groups, rows)) = grouped {
        assert_eq!(rows, ROWS as i64, "the groups count every row");
        assert!(groups > 900_000, "about a million groups: {groups}");
    }

    // 3. An INSERT OVERWRITE: lakegate's own layout (hash by dt, sort by dt, user_id) and writers.
    let t = Instant::now();
    let overwrite = stream(
        &mut client,
        "INSERT OVERWRITE TABLE events_by_day PARTITION (dt) SELECT id, user_id, payload, dt FROM events \
         DISTRIBUTE BY dt SORT BY user_id",
        (),
        |_, _| {},
    )
    .await;
    let overwrite = outcome("INSERT OVERWRITE", overwrite);
    peaks.push((
        "INSERT OVERWRITE",
        report("INSERT OVERWRITE ... DISTRIBUTE BY dt SORT BY user_id", &overwrite, t, &sampler),
    ));
    let written = count(&mut client, "SELECT count(*) FROM events_by_day").await;
    match &overwrite {
        Outcome::Completed(()) => {
            assert_eq!(written, ROWS as i64, "the overwrite wrote every row");
            assert_eq!(count(&mut client, "SELECT count(DISTINCT dt) FROM events_by_day").await, 10);
        }
        Outcome::OutOfMemory(e) => {
            assert!(e.contains("exhausted"), "the client gets ResourceExhausted: {e}");
            assert_eq!(written, 0, "a failed overwrite publishes nothing");
        }
    }
    drop(sampler);

    // The server carries on, and its spill files are gone.
    assert_eq!(count(&mut client, "SELECT count(*) FROM events WHERE id <= 10").await, 10);
    wait_until_empty(&spill_dir);
    println!("whole test {:.1} s", started.elapsed().as_secs_f64());
    for (name, peak_kb) in peaks {
        assert!(
            peak_kb <= bound_kb,
            "{name}: peak RSS {} MiB is over the bound {} MiB (baseline {} MiB + {RSS_BOUND_FACTOR} x {LIMIT_MB} MiB)",
            peak_kb / 1024,
            bound_kb / 1024,
            baseline_kb / 1024
        );
    }
}

/// Spill files are deleted as their query's streams drop.
fn wait_until_empty(dir: &Path) {
    crate::common::wait_for("the spill files to be removed", Duration::from_secs(10), || dir_bytes(dir) == 0);
}
