//! Pipeline counters, shared by all workers and read by the CLI (and later `/metrics`).
//!
//! Workers add their local counts once per batch, never per event, so the atomics cost nothing
//! measurable on the hot path.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use tidemark_connectors::cardinality::CardinalityGuard;
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
    /// The run's cardinality guard, for reporting the series it admitted.
    pub cardinality: OnceLock<Arc<CardinalityGuard>>,
    /// Progress of each partitioned input (Kafka partition), published by the worker that
    /// reads it about once a second.
    partitions: Mutex<BTreeMap<i32, PartitionProgress>>,
}

/// Where one input partition stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionProgress {
    /// Messages read (good and bad) by this process.
    pub events: u64,
    /// Of those, dead-lettered at the source.
    pub dead_letters: u64,
    /// Next offset to read.
    pub next_offset: Option<u64>,
    /// The partition's end offset, as last reported by the broker.
    pub end_offset: Option<u64>,
    /// The partition's own watermark: its newest event time minus the allowed lateness, ms.
    pub watermark_ms: Option<i64>,
}

impl PartitionProgress {
    /// Messages in the partition not read yet.
    pub fn lag(&self) -> Option<u64> {
        Some(self.end_offset?.saturating_sub(self.next_offset.unwrap_or(0)))
    }
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

    /// Publishes the progress of `partition` (a few times a second at most, per partition).
    pub fn publish_partition(&self, partition: i32, progress: PartitionProgress) {
        self.partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(partition, progress);
    }

    /// The progress of every partition read by this process.
    pub fn partitions(&self) -> Vec<(i32, PartitionProgress)> {
        let partitions = self.partitions.lock().unwrap_or_else(PoisonError::into_inner);
        partitions.iter().map(|(p, progress)| (*p, *progress)).collect()
    }

    /// Series admitted by the cardinality guard so far.
    pub fn series(&self) -> u64 {
        self.cardinality.get().map_or(0, |g| g.series.load(Relaxed))
    }

    /// Records a new largest event time.
    pub fn observe_event_time(&self, ts: i64) {
        self.max_event_ms.fetch_max(ts, Relaxed);
    }
}
