//! Answers reused across identical queries. Dashboards send the same dozen queries again and
//! again, from many analysts at once. When every table a query reads is a cache (`CACHE
//! TABLE`), its rows depend only on the query and on the caches' current generations, so the
//! first answer is kept and given to the next identical query, from any session, until one of
//! those caches is loaded again (a new generation) or loses its files.
//!
//! "Identical" is DataFusion's own equality of optimized logical plans, after names are
//! resolved, views expanded, parameters bound and stable functions such as `now()` folded into
//! constants, together with the session's settings. A query that calls a function that is
//! not immutable (`random()`, `now()`), or reads anything but a cache, is always computed. Grants are checked on the
//! plan before it gets here, so nobody is given rows they may not read.
//!
//! While one session computes an answer, the others asking the same wait for it (a while: the
//! first one's client may be slow to read) instead of computing it again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use lakegate_catalog::{cache_generation, count_cache_hit};
use tokio::sync::watch;

/// What an entry costs beyond its rows: its key (a plan) and bookkeeping, roughly.
const ENTRY_BYTES: usize = 16 * 1024;

/// Answers kept by one process, within a budget of bytes; the least recently used go first.
#[derive(Debug)]
pub(crate) struct Answers {
    budget: usize,
    inner: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    entries: HashMap<Arc<Key>, Entry>,
    bytes: usize,
    /// Counts lookups, to order entries by last use.
    clock: u64,
}

impl Kept {
    /// The kept answer of `candidate`, marked as just used, its caches as hit.
    fn reuse(&mut self, candidate: &Candidate) -> Option<Arc<Answer>> {
        self.clock += 1;
        let now = self.clock;
        let Some(Entry::Ready { answer, used }) = self.entries.get_mut(&candidate.key) else { return None };
        *used = now;
        for cache in &candidate.caches {
            count_cache_hit(cache.as_ref());
        }
        Some(Arc::clone(answer))
    }
}

#[derive(Debug)]
enum Entry {
    Ready {
        answer: Arc<Answer>,
        used: u64,
    },
    /// Being computed; the sender is dropped when it ends, either way.
    Computing(watch::Receiver<()>),
}

/// What makes two queries' answers the same.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    plan: LogicalPlan,
    settings: String,
    generations: Vec<PathBuf>,
}

/// A query whose answer may be reused: its key, and the caches it reads.
#[derive(Clone)]
pub(crate) struct Candidate {
    key: Arc<Key>,
    caches: Vec<Arc<dyn TableProvider>>,
}

/// One query's rows, as one batch.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) batch: RecordBatch,
    bytes: usize,
}

pub(crate) enum Lookup {
    Reused(Arc<Answer>),
    /// Another session is computing it: wait for this to close, then look again.
    Wait(watch::Receiver<()>),
    /// Compute it, showing every batch to the recorder.
    Compute(Recorder),
}

impl Answers {
    /// `budget` bytes for all answers; 0 keeps none.
    pub(crate) fn new(budget: usize) -> Self {
        Self { budget, inner: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An answer bigger than this is not kept, so a few large ones cannot push out the many
    /// small answers dashboards need.
    fn largest(&self) -> usize {
        self.budget / 16
    }

    /// The key of `plan` (optimized from `written`) in `state`, when its answer may be reused.
    /// Not when `written` calls a function that is not immutable: a volatile one (`random()`)
    /// gives other rows each time, and a stable one (`now()`) is folded into a constant that
    /// makes every such query's key new.
    pub(crate) fn candidate(
        &self,
        written: &LogicalPlan,
        plan: &LogicalPlan,
        state: &SessionState,
    ) -> Option<Candidate> {
        if self.budget == 0
            || matches!(plan, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_))
            || calls_mutable(written)
        {
            return None;
        }
        let mut caches = Vec::new();
        let mut generations = Vec::new();
        let mut reusable = true;
        let _ = plan.apply_with_subqueries(|node| {
            match node {
                LogicalPlan::TableScan(scan) => {
                    let source = source_as_provider(&scan.source).ok();
                    match source.and_then(|p| Some((cache_generation(p.as_ref())?, p))) {
                        Some((generation, cache)) => {
                            generations.push(generation);
                            caches.push(cache);
                        }
                        None => reusable = false,
                    }
                }
                // Effects, and nodes whose results this module cannot vouch for.
                LogicalPlan::Dml(_)
                | LogicalPlan::Ddl(_)
                | LogicalPlan::Copy(_)
                | LogicalPlan::Statement(_)
                | LogicalPlan::Explain(_)
                | LogicalPlan::Analyze(_)
                | LogicalPlan::Extension(_) => reusable = false,
                _ => {}
            }
            Ok(if reusable { TreeNodeRecursion::Continue } else { TreeNodeRecursion::Stop })
        });
        if !reusable || caches.is_empty() {
            return None;
        }
        let mut settings = String::new();
        for entry in state.config_options().entries() {
            if let Some(value) = entry.value {
                settings.push_str(&entry.key);
                settings.push('=');
                settings.push_str(&value);
                settings.push('\n');
            }
        }
        Some(Candidate { key: Arc::new(Key { plan: plan.clone(), settings, generations }), caches })
    }

    /// The kept answer of `candidate`, or who computes it.
    pub(crate) fn lookup(self: &Arc<Self>, candidate: Candidate) -> Lookup {
        let mut kept = self.lock();
        if let Some(answer) = kept.reuse(&candidate) {
            return Lookup::Reused(answer);
        }
        if let Some(Entry::Computing(done)) = kept.entries.get(&candidate.key) {
            return Lookup::Wait(done.clone());
        }
        let (sender, done) = watch::channel(());
        kept.entries.insert(Arc::clone(&candidate.key), Entry::Computing(done));
        Lookup::Compute(Recorder {
            answers: Arc::clone(self),
            candidate,
            batches: Vec::new(),
            bytes: 0,
            too_big: false,
            complete: false,
            done: Some(sender),
        })
    }

    /// The answer of `candidate` if it is kept now; a session that waited for it and finds
    /// none computes it without keeping it, so one failing or too big computation does not
    /// make the others wait in turn.
    pub(crate) fn kept(&self, candidate: &Candidate) -> Option<Arc<Answer>> {
        self.lock().reuse(candidate)
    }

    /// Keeps `answer` under `key`, making room by dropping the least recently used answers.
    fn keep(&self, key: &Arc<Key>, answer: Answer) {
        let mut kept = self.lock();
        kept.bytes += answer.bytes;
        let used = kept.clock;
        kept.entries.insert(Arc::clone(key), Entry::Ready { answer: Arc::new(answer), used });
        while kept.bytes > self.budget {
            let oldest = kept
                .entries
                .iter()
                .filter_map(|(key, entry)| match entry {
                    Entry::Ready { used, answer } => Some((*used, answer.bytes, Arc::clone(key))),
                    Entry::Computing(_) => None,
                })
                .min_by_key(|(used, ..)| *used);
            let Some((_, bytes, key)) = oldest else { break };
            kept.entries.remove(&key);
            kept.bytes -= bytes;
        }
    }

    fn forget_computing(&self, key: &Arc<Key>) {
        let mut kept = self.lock();
        if let Some(Entry::Computing(_)) = kept.entries.get(key) {
            kept.entries.remove(key);
        }
    }
}

/// Collects a computed answer; keeps it if the query ends with every row, under the budget,
/// and every cache it read still at the generation it started with. Dropped otherwise, which
/// lets the sessions waiting for it compute it themselves.
pub(crate) struct Recorder {
    answers: Arc<Answers>,
    candidate: Candidate,
    batches: Vec<RecordBatch>,
    bytes: usize,
    too_big: bool,
    complete: bool,
    /// Dropped to wake the sessions waiting for this answer.
    done: Option<watch::Sender<()>>,
}

impl Recorder {
    pub(crate) fn record(&mut self, batch: &RecordBatch) {
        if self.too_big {
            return;
        }
        // What the rows take, not the buffers they may be a slice of.
        self.bytes += batch
            .columns()
            .iter()
            .map(|c| c.to_data().get_slice_memory_size().unwrap_or_else(|_| c.get_array_memory_size()))
            .sum::<usize>();
        if self.bytes > self.answers.largest() {
            // Not kept: whoever waits for it computes it now.
            self.too_big = true;
            self.batches = Vec::new();
            self.answers.forget_computing(&self.candidate.key);
            self.done = None;
        } else {
            self.batches.push(batch.clone());
        }
    }

    /// The query gave its last row.
    pub(crate) fn finish(mut self, schema: &SchemaRef) {
        if self.too_big {
            return;
        }
        let unchanged = self
            .candidate
            .caches
            .iter()
            .zip(&self.candidate.key.generations)
            .all(|(cache, generation)| cache_generation(cache.as_ref()).as_ref() == Some(generation));
        // One copy of the rows: sized exactly, and sharing no buffer with the cache's own.
        let compacted: Vec<RecordBatch> = self.batches.iter().filter_map(compact).collect();
        if unchanged
            && compacted.len() == self.batches.len()
            && let Ok(batch) = concat_batches(schema, &compacted)
        {
            let bytes = batch.get_array_memory_size() + ENTRY_BYTES;
            self.complete = true;
            self.answers.keep(&self.candidate.key, Answer { batch, bytes });
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // Still the one computing it (not given up as too big): nobody else is.
        if !self.complete && self.done.is_some() {
            self.answers.forget_computing(&self.candidate.key);
        }
    }
}

/// Whether `plan` calls a scalar function that is not immutable.
fn calls_mutable(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        found = node.expressions().iter().any(|e| {
            e.exists(|e| {
                Ok(matches!(e, Expr::ScalarFunction(f) if f.func.signature().volatility != Volatility::Immutable))
            })
            .unwrap_or(true)
        });
        Ok(if found { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    found
}

/// `batch` with its string and binary views' data copied out of the buffers they point into
/// (those of the cache's rows in memory), so a kept answer holds only its own bytes.
fn compact(batch: &RecordBatch) -> Option<RecordBatch> {
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|column| match column.data_type() {
            DataType::Utf8View => Arc::new(column.as_string_view().gc()) as ArrayRef,
            DataType::BinaryView => Arc::new(column.as_binary_view().gc()) as ArrayRef,
            _ => Arc::clone(column),
        })
        .collect();
    RecordBatch::try_new(batch.schema(), columns).ok()
}
