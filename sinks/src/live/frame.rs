//! A columnar copy of one metric's newest windows of one size, for queries over many series.
//!
//! The per-series rings are the store's record, but a query over 10^4 series touching each
//! ring spends its time on cache misses (a few scattered allocations and a binary search per
//! series). A frame holds the same aggregates the other way round: one column per window
//! start, each an array per field indexed by the series' position in the metric, so a query
//! streams through contiguous memory.
//!
//! A frame keeps the metric's newest `keep` distinct window starts, `keep` being the rings'
//! retention for that size. Every series' ring then still holds each of its windows whose start
//! the frame holds (a ring drops a window only once it has `keep` newer ones, and no series has
//! `keep` windows newer than a start the frame kept), so for those starts the frame and the
//! rings agree exactly. Older windows may survive in the rings of series that went quiet; once
//! the frame has dropped or refused a start, [`complete`](Frame::complete) is false and a query
//! reaching further back reads those from the rings.

use std::collections::VecDeque;
use tidemark_schemas::Aggregates;

/// The aggregates of every series of a metric for one window start.
#[derive(Debug)]
pub struct Column {
    start: i64,
    present: Vec<bool>,
    count: Vec<u64>,
    sum: Vec<f64>,
    min: Vec<f64>,
    max: Vec<f64>,
    p95: Vec<Option<f64>>,
    p99: Vec<Option<f64>>,
}

impl Column {
    fn new(start: i64) -> Self {
        Column {
            start,
            present: Vec::new(),
            count: Vec::new(),
            sum: Vec::new(),
            min: Vec::new(),
            max: Vec::new(),
            p95: Vec::new(),
            p99: Vec::new(),
        }
    }

    fn set(&mut self, position: usize, a: &Aggregates) {
        if self.present.len() <= position {
            let len = position + 1;
            self.present.resize(len, false);
            self.count.resize(len, 0);
            self.sum.resize(len, 0.0);
            self.min.resize(len, 0.0);
            self.max.resize(len, 0.0);
            self.p95.resize(len, None);
            self.p99.resize(len, None);
        }
        self.present[position] = true;
        self.count[position] = a.count;
        self.sum[position] = a.sum;
        self.min[position] = a.min;
        self.max[position] = a.max;
        self.p95[position] = a.p95;
        self.p99[position] = a.p99;
    }

    /// The window start.
    pub fn start(&self) -> i64 {
        self.start
    }

    /// Whether the series at each position has this window (positions past the end do not).
    pub fn present(&self) -> &[bool] {
        &self.present
    }

    /// Event counts by position.
    pub fn count(&self) -> &[u64] {
        &self.count
    }

    /// Sums by position.
    pub fn sum(&self) -> &[f64] {
        &self.sum
    }

    /// Minima by position.
    pub fn min(&self) -> &[f64] {
        &self.min
    }

    /// Maxima by position.
    pub fn max(&self) -> &[f64] {
        &self.max
    }

    /// 95th percentiles by position.
    pub fn p95(&self) -> &[Option<f64>] {
        &self.p95
    }

    /// 99th percentiles by position.
    pub fn p99(&self) -> &[Option<f64>] {
        &self.p99
    }
}

/// A metric's newest windows of one size, by start, columnar.
#[derive(Debug)]
pub struct Frame {
    window_ms: u64,
    keep: usize,
    columns: VecDeque<Column>,
    complete: bool,
    /// Each series' oldest retained window start (its ring's), `NO_RING` without a ring.
    ring_oldest: Vec<i64>,
}

const NO_RING: i64 = i64::MIN;

impl Frame {
    pub(super) fn new(window_ms: u64, keep: usize) -> Self {
        Frame {
            window_ms,
            keep: keep.max(1),
            columns: VecDeque::new(),
            complete: true,
            ring_oldest: Vec::new(),
        }
    }

    /// Records the window the series at `position` now holds in its ring (whose oldest start
    /// is now `ring_oldest`).
    pub(super) fn upsert(&mut self, position: usize, start: i64, aggregates: &Aggregates, ring_oldest: i64) {
        if self.ring_oldest.len() <= position {
            self.ring_oldest.resize(position + 1, NO_RING);
        }
        self.ring_oldest[position] = ring_oldest;
        let at = match self.columns.back() {
            Some(last) if last.start < start => self.columns.len(),
            None => 0,
            Some(_) => self.columns.partition_point(|c| c.start < start),
        };
        if let Some(column) = self.columns.get_mut(at)
            && column.start == start
        {
            column.set(position, aggregates);
            return;
        }
        if at == 0 && self.columns.len() >= self.keep {
            self.complete = false;
            return;
        }
        let mut column = Column::new(start);
        column.set(position, aggregates);
        self.columns.insert(at, column);
        while self.columns.len() > self.keep {
            self.columns.pop_front();
            self.complete = false;
        }
    }

    /// The window size.
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// Columns whose start lies in `[start, end)`, oldest first.
    pub fn between(&self, start: i64, end: i64) -> impl Iterator<Item = &Column> {
        let from = self.columns.partition_point(|c| c.start < start);
        let to = self.columns.partition_point(|c| c.start < end);
        self.columns.range(from..to.max(from))
    }

    /// Start of the oldest column.
    pub fn oldest_start(&self) -> Option<i64> {
        self.columns.front().map(Column::start)
    }

    /// Whether the frame holds every window any ring of the metric holds (nothing was dropped
    /// or refused yet); otherwise rings may hold windows older than the oldest column.
    pub fn complete(&self) -> bool {
        self.complete
    }

    /// The oldest window start the ring of the series at `position` holds, if it has a ring
    /// of this size.
    pub fn ring_oldest(&self, position: usize) -> Option<i64> {
        self.ring_oldest.get(position).copied().filter(|s| *s != NO_RING)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aggregates(count: u64) -> Aggregates {
        Aggregates {
            count,
            sum: count as f64,
            min: 1.0,
            max: 1.0,
            avg: 1.0,
            p50: None,
            p95: Some(2.0),
            p99: None,
            distinct: None,
        }
    }

    #[test]
    fn keeps_the_newest_starts_and_notes_what_it_dropped() {
        let mut frame = Frame::new(60_000, 2);
        frame.upsert(1, 60_000, &aggregates(1), 60_000);
        frame.upsert(0, 0, &aggregates(2), 0);
        assert!(frame.complete());
        let starts: Vec<_> = frame.between(i64::MIN, i64::MAX).map(Column::start).collect();
        assert_eq!(starts, [0, 60_000]);
        let first = frame.between(0, 1).next().unwrap();
        assert_eq!(first.present(), [true]);
        let second = frame.between(60_000, 60_001).next().unwrap();
        assert_eq!((second.present(), second.count()), (&[false, true][..], &[0, 1][..]));
        frame.upsert(0, 120_000, &aggregates(3), 0);
        assert!(!frame.complete());
        assert_eq!(frame.oldest_start(), Some(60_000));
        assert_eq!(
            frame.ring_oldest(0),
            Some(0),
            "the ring may keep what the frame dropped"
        );
        assert_eq!(frame.ring_oldest(2), None);
        let mut refused = Frame::new(60_000, 1);
        refused.upsert(0, 60_000, &aggregates(1), 60_000);
        refused.upsert(1, 0, &aggregates(1), 0);
        assert!(!refused.complete());
        assert_eq!(refused.oldest_start(), Some(60_000));
    }
}
