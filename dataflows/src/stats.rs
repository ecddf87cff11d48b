//! Pipeline counters, shared by all workers and read by the CLI (and later `/metrics`).
//!
//! Workers add their local counts once per batch, never per event, so the atomics cost nothing
//! measurable on the hot path.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use tidemark_schemas::DeadLetterReason;

/// Counters of one running pipeline.
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Input lines read (good and bad).
    pub lines: AtomicU64,
    /// Input bytes read, newlines included.
    pub bytes: AtomicU64,
    /// Observations decoded (a typed event can yield several).
    pub observations: AtomicU64,
    /// Window rows emitted when windows closed.
    pub final_rows: AtomicU64,
    /// Window rows re-emitted as corrections.
    pub corrected_rows: AtomicU64,
    /// Late observations folded into closed windows.
    pub late_corrections: AtomicU64,
    /// Wall clock (epoch ms) when the first and the latest batch of lines was read: the span a
    /// streaming benchmark measures, without start-up and idle tail.
    pub first_read_ms: AtomicI64,
    /// See `first_read_ms`.
    pub last_read_ms: AtomicI64,
    /// Largest event time seen, epoch ms.
    pub max_event_ms: AtomicI64,
    dead_letters: [AtomicU64; DeadLetterReason::ALL.len()],
}

impl PipelineStats {
    /// Adds `n` dead letters of `reason`.
    pub fn add_dead_letters(&self, reason: DeadLetterReason, n: u64) {
        self.dead_letters[reason as usize].fetch_add(n, Relaxed);
    }

    /// Dead letters of one reason so far.
    pub fn dead_letters(&self, reason: DeadLetterReason) -> u64 {
        self.dead_letters[reason as usize].load(Relaxed)
    }

    /// Dead letters of every reason so far.
    pub fn total_dead_letters(&self) -> u64 {
        self.dead_letters.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Records that a batch of lines was read now.
    pub fn mark_read(&self, now_ms: i64) {
        let _ = self.first_read_ms.compare_exchange(0, now_ms, Relaxed, Relaxed);
        self.last_read_ms.fetch_max(now_ms, Relaxed);
    }

    /// Seconds between the first and the latest batch read.
    pub fn read_seconds(&self) -> f64 {
        let (first, last) = (self.first_read_ms.load(Relaxed), self.last_read_ms.load(Relaxed));
        (last - first).max(0) as f64 / 1000.0
    }

    /// Records a new largest event time.
    pub fn observe_event_time(&self, ts: i64) {
        self.max_event_ms.fetch_max(ts, Relaxed);
    }
}
