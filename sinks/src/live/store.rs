//! The live store: the recent windows of every series, in memory, for queries and snapshots.
//!
//! Bounded twice: each series keeps a configured number of windows per window size (the
//! newest ones; corrections update in place), and the store holds at most `max_series`
//! series — new series beyond the cap are counted and ignored rather than growing memory
//! without limit. The sink applies a whole batch under one write lock; readers (queries,
//! discovery, exports, snapshots) take the read lock briefly.

use super::frame::Frame;
use super::index::{MetricIndex, TagColumn};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use tidemark_schemas::series::split_key;
use tidemark_schemas::{Aggregates, AnomalyScore, ForecastPoint, OutputBatch, SeriesId, WindowUpdate};

/// How much the store keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreLimits {
    /// Most series held; further series are ignored (and counted).
    pub max_series: usize,
    /// Windows kept per series for specific sizes: `(window_ms, windows)`.
    pub retention: Vec<(u64, usize)>,
    /// Windows kept per series for sizes not listed in `retention`.
    pub default_windows: usize,
    /// Anomaly scores kept per series.
    pub anomalies: usize,
    /// Forecast points kept per series.
    pub forecasts: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_series: 50_000,
            retention: Vec::new(),
            default_windows: 120,
            anomalies: 120,
            forecasts: 64,
        }
    }
}

impl StoreLimits {
    fn windows_for(&self, window_ms: u64) -> usize {
        self.retention
            .iter()
            .find(|(size, _)| *size == window_ms)
            .map_or(self.default_windows, |(_, n)| *n)
            .max(1)
    }
}

/// The retained windows of one size, oldest first.
#[derive(Debug)]
pub struct WindowRing {
    window_ms: u64,
    keep: usize,
    rows: VecDeque<(i64, Aggregates)>,
}

impl WindowRing {
    /// The window size in milliseconds.
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// Windows whose start lies in `[start, end)`, oldest first.
    pub fn between(&self, start: i64, end: i64) -> impl Iterator<Item = &(i64, Aggregates)> {
        let from = self.rows.partition_point(|(s, _)| *s < start);
        let to = self.rows.partition_point(|(s, _)| *s < end);
        self.rows.range(from..to.max(from))
    }

    /// The newest `n` windows, oldest first.
    pub fn latest(&self, n: usize) -> impl Iterator<Item = &(i64, Aggregates)> {
        self.rows.range(self.rows.len().saturating_sub(n)..)
    }

    /// Start of the newest window.
    pub fn newest_start(&self) -> Option<i64> {
        self.rows.back().map(|(s, _)| *s)
    }

    /// Start of the oldest window.
    pub fn oldest_start(&self) -> Option<i64> {
        self.rows.front().map(|(s, _)| *s)
    }

    fn upsert(&mut self, start: i64, aggregates: &Aggregates) {
        match self.rows.back() {
            Some((last, _)) if *last < start => self.rows.push_back((start, aggregates.clone())),
            None => self.rows.push_back((start, aggregates.clone())),
            Some(_) => {
                let at = self.rows.partition_point(|(s, _)| *s < start);
                if let Some((s, existing)) = self.rows.get_mut(at)
                    && *s == start
                {
                    *existing = aggregates.clone();
                } else if at > 0 || self.rows.len() < self.keep {
                    self.rows.insert(at, (start, aggregates.clone()));
                }
            }
        }
        while self.rows.len() > self.keep {
            self.rows.pop_front();
        }
    }
}

/// Everything the store holds about one series.
#[derive(Debug)]
pub struct SeriesEntry {
    key: Arc<str>,
    /// Index of its metric in the store, and its position among the metric's series.
    metric: u32,
    position: u32,
    windows: Vec<WindowRing>,
    anomalies: VecDeque<AnomalyScore>,
    forecasts: Vec<ForecastPoint>,
}

impl SeriesEntry {
    /// The canonical series key.
    pub fn key(&self) -> &Arc<str> {
        &self.key
    }

    /// The metric name.
    pub fn metric(&self) -> &str {
        split_key(&self.key).0
    }

    /// The tags, sorted by key.
    pub fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        split_key(&self.key).1
    }

    /// The value of one tag.
    pub fn tag(&self, name: &str) -> Option<&str> {
        self.tags().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// The retained windows of every size seen, smallest size first.
    pub fn rings(&self) -> &[WindowRing] {
        &self.windows
    }

    /// The retained windows of one size.
    pub fn ring(&self, window_ms: u64) -> Option<&WindowRing> {
        self.windows.iter().find(|r| r.window_ms == window_ms)
    }

    /// Recent anomaly scores, oldest first.
    pub fn anomalies(&self) -> &VecDeque<AnomalyScore> {
        &self.anomalies
    }

    /// Current forecast points, by window start.
    pub fn forecasts(&self) -> &[ForecastPoint] {
        &self.forecasts
    }

    fn ring_mut(&mut self, window_ms: u64, limits: &StoreLimits) -> &mut WindowRing {
        let at = match self.windows.binary_search_by_key(&window_ms, |r| r.window_ms) {
            Ok(at) => at,
            Err(at) => {
                let ring = WindowRing {
                    window_ms,
                    keep: limits.windows_for(window_ms),
                    rows: VecDeque::new(),
                };
                self.windows.insert(at, ring);
                at
            }
        };
        &mut self.windows[at]
    }

    fn add_anomaly(&mut self, score: &AnomalyScore, keep: usize) {
        self.anomalies.push_back(score.clone());
        while self.anomalies.len() > keep.max(1) {
            self.anomalies.pop_front();
        }
    }

    fn upsert_forecast(&mut self, point: &ForecastPoint, keep: usize) {
        let same = |f: &ForecastPoint| {
            f.field == point.field && f.window_ms == point.window_ms && f.window_start == point.window_start
        };
        match self.forecasts.iter_mut().find(|f| same(f)) {
            Some(existing) => *existing = point.clone(),
            None => {
                let at = self.forecasts.partition_point(|f| f.window_start <= point.window_start);
                self.forecasts.insert(at, point.clone());
            }
        }
        if self.forecasts.len() > keep.max(1) {
            let excess = self.forecasts.len() - keep.max(1);
            self.forecasts.drain(..excess);
        }
    }
}

/// Series live in a slab (`entries`, in arrival order, never removed) so the metric index can
/// refer to them by slot instead of hashing ids again on every query.
#[derive(Debug, Default)]
struct State {
    entries: Vec<SeriesEntry>,
    slots: HashMap<SeriesId, u32>,
    metric_ids: HashMap<Box<str>, u32>,
    metrics: Vec<MetricIndex>,
}

impl State {
    /// The slot of a series, added if new and under the cap.
    fn slot(&mut self, id: SeriesId, key: &Arc<str>, max_series: usize) -> Option<usize> {
        if let Some(slot) = self.slots.get(&id) {
            return Some(*slot as usize);
        }
        if self.entries.len() >= max_series {
            return None;
        }
        let slot = self.entries.len();
        let (metric, tags) = split_key(key);
        let metric = match self.metric_ids.get(metric) {
            Some(index) => *index,
            None => {
                let index = self.metrics.len() as u32;
                self.metrics.push(MetricIndex::default());
                self.metric_ids.insert(metric.into(), index);
                index
            }
        };
        let position = self.metrics[metric as usize].add(slot as u32, tags);
        self.slots.insert(id, slot as u32);
        self.entries.push(SeriesEntry {
            key: key.clone(),
            metric,
            position,
            windows: Vec::new(),
            anomalies: VecDeque::new(),
            forecasts: Vec::new(),
        });
        Some(slot)
    }

    fn entry(&mut self, id: SeriesId, key: &Arc<str>, max_series: usize) -> Option<&mut SeriesEntry> {
        let slot = self.slot(id, key, max_series)?;
        self.entries.get_mut(slot)
    }

    /// Upserts a window into the series' ring and its metric's frame.
    fn upsert(&mut self, slot: usize, row: &WindowUpdate, limits: &StoreLimits) {
        let entry = &mut self.entries[slot];
        let ring = entry.ring_mut(row.window_ms, limits);
        ring.upsert(row.window_start, &row.aggregates);
        let oldest = ring.oldest_start().unwrap_or(row.window_start);
        let keep = ring.keep;
        self.metrics[entry.metric as usize]
            .frame_mut(row.window_ms, keep)
            .upsert(entry.position as usize, row.window_start, &row.aggregates, oldest);
    }
}

/// The recent windows of every series.
#[derive(Debug)]
pub struct LiveStore {
    state: RwLock<State>,
    limits: StoreLimits,
}

/// A consistent read view of the store (holds the read lock: keep it short).
pub struct StoreView<'s> {
    state: RwLockReadGuard<'s, State>,
}

impl<'s> StoreView<'s> {
    /// Number of series held.
    pub fn len(&self) -> usize {
        self.state.entries.len()
    }

    /// Whether no series is held.
    pub fn is_empty(&self) -> bool {
        self.state.entries.is_empty()
    }

    /// One series by id.
    pub fn get(&self, id: SeriesId) -> Option<&SeriesEntry> {
        self.state
            .slots
            .get(&id)
            .map(|slot| &self.state.entries[*slot as usize])
    }

    /// One series by key.
    pub fn by_key(&self, key: &str) -> Option<&SeriesEntry> {
        self.get(SeriesId::of_key(key))
    }

    /// One metric's series, interned tags and window frames.
    pub fn metric(&self, metric: &str) -> Option<MetricView<'_>> {
        self.state.metric_ids.get(metric).map(|index| MetricView {
            index: &self.state.metrics[*index as usize],
            entries: &self.state.entries,
        })
    }

    /// Every series of one metric, in arrival order.
    pub fn of_metric(&self, metric: &str) -> impl Iterator<Item = &SeriesEntry> {
        self.metric(metric).into_iter().flat_map(|m| m.iter())
    }

    /// Every series, metric by metric (metrics sorted by name).
    pub fn all(&self) -> impl Iterator<Item = &SeriesEntry> {
        self.metrics().into_iter().flat_map(|m| self.of_metric(m))
    }

    /// The metric names, sorted.
    pub fn metrics(&self) -> Vec<&str> {
        let mut metrics: Vec<&str> = self.state.metric_ids.keys().map(|m| &**m).collect();
        metrics.sort_unstable();
        metrics
    }
}

/// One metric's series, by position (arrival order), with its tag columns.
#[derive(Clone, Copy)]
pub struct MetricView<'v> {
    index: &'v MetricIndex,
    entries: &'v [SeriesEntry],
}

impl<'v> MetricView<'v> {
    /// Number of series of the metric.
    pub fn len(&self) -> usize {
        self.index.slots().len()
    }

    /// Whether the metric has no series (never true for a metric the store lists).
    pub fn is_empty(&self) -> bool {
        self.index.slots().is_empty()
    }

    /// The series at `position`.
    pub fn series(&self, position: usize) -> &'v SeriesEntry {
        &self.entries[self.index.slots()[position] as usize]
    }

    /// The series in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = &'v SeriesEntry> + use<'v> {
        let entries = self.entries;
        self.index.slots().iter().map(move |slot| &entries[*slot as usize])
    }

    /// The column of one tag key, if any series of the metric has it.
    pub fn column(&self, tag: &str) -> Option<&'v TagColumn> {
        self.index.column(tag)
    }

    /// The columnar windows of one size, if any series of the metric has that size.
    pub fn frame(&self, window_ms: u64) -> Option<&'v Frame> {
        self.index.frame(window_ms)
    }
}

/// What one batch did to the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Rows for series that did not fit under the series cap.
    pub rejected: u64,
    /// Series held after the batch.
    pub series: usize,
}

impl LiveStore {
    /// An empty store.
    pub fn new(limits: StoreLimits) -> Self {
        LiveStore {
            state: RwLock::new(State::default()),
            limits,
        }
    }

    /// The limits it keeps to.
    pub fn limits(&self) -> &StoreLimits {
        &self.limits
    }

    /// A read view.
    pub fn read(&self) -> StoreView<'_> {
        StoreView {
            state: self.state.read().unwrap_or_else(PoisonError::into_inner),
        }
    }

    /// Applies a batch under one write lock.
    pub fn apply(&self, batch: &OutputBatch) -> Applied {
        let limits = &self.limits;
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let mut rejected = 0;
        for row in &batch.windows {
            match state.slot(row.series_id, &row.series, limits.max_series) {
                Some(slot) => state.upsert(slot, row, limits),
                None => rejected += 1,
            }
        }
        for score in &batch.scores {
            match state.entry(SeriesId::of_key(&score.series), &score.series, limits.max_series) {
                Some(entry) => entry.add_anomaly(score, limits.anomalies),
                None => rejected += 1,
            }
        }
        for point in &batch.forecasts {
            match state.entry(SeriesId::of_key(&point.series), &point.series, limits.max_series) {
                Some(entry) => entry.upsert_forecast(point, limits.forecasts),
                None => rejected += 1,
            }
        }
        Applied {
            rejected,
            series: state.entries.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_schemas::UpdateKind;

    fn aggregates(count: u64) -> Aggregates {
        Aggregates {
            count,
            sum: count as f64,
            min: 1.0,
            max: 1.0,
            avg: 1.0,
            p50: None,
            p95: None,
            p99: None,
            distinct: None,
        }
    }

    fn row(key: &str, start: i64, count: u64) -> WindowUpdate {
        WindowUpdate {
            series: key.into(),
            series_id: SeriesId::of_key(key),
            window_ms: 60_000,
            window_start: start,
            kind: UpdateKind::Final,
            aggregates: aggregates(count),
        }
    }

    fn batch(rows: Vec<WindowUpdate>) -> OutputBatch {
        OutputBatch {
            windows: rows,
            ..OutputBatch::default()
        }
    }

    #[test]
    fn keeps_the_newest_windows_and_applies_corrections_in_place() {
        let store = LiveStore::new(StoreLimits {
            retention: vec![(60_000, 3)],
            ..StoreLimits::default()
        });
        let rows = (0..5).map(|i| row("cpu|host=a", i * 60_000, 1)).collect();
        store.apply(&batch(rows));
        store.apply(&batch(vec![row("cpu|host=a", 3 * 60_000, 7)]));
        store.apply(&batch(vec![row("cpu|host=a", 0, 9)]));
        let view = store.read();
        let ring = view.by_key("cpu|host=a").unwrap().ring(60_000).unwrap();
        let kept: Vec<_> = ring.latest(10).map(|(s, a)| (*s / 60_000, a.count)).collect();
        assert_eq!(kept, [(2, 1), (3, 7), (4, 1)], "too-old windows are not re-added");
        let between: Vec<_> = ring.between(180_000, 240_000).map(|(s, _)| *s).collect();
        assert_eq!(between, [180_000]);
    }

    #[test]
    fn out_of_order_windows_are_inserted_in_order() {
        let store = LiveStore::new(StoreLimits::default());
        store.apply(&batch(vec![row("m", 120_000, 1), row("m", 0, 1), row("m", 60_000, 1)]));
        let view = store.read();
        let starts: Vec<_> = view
            .by_key("m")
            .unwrap()
            .ring(60_000)
            .unwrap()
            .latest(5)
            .map(|r| r.0)
            .collect();
        assert_eq!(starts, [0, 60_000, 120_000]);
    }

    #[test]
    fn series_beyond_the_cap_are_rejected() {
        let store = LiveStore::new(StoreLimits {
            max_series: 2,
            ..StoreLimits::default()
        });
        let applied = store.apply(&batch(vec![
            row("a", 0, 1),
            row("b|x=1", 0, 1),
            row("c", 0, 1),
            row("a", 60_000, 1),
        ]));
        assert_eq!(applied, Applied { rejected: 1, series: 2 });
        let view = store.read();
        assert_eq!(view.metrics(), ["a", "b"]);
        assert_eq!(view.by_key("b|x=1").unwrap().tag("x"), Some("1"));
        assert_eq!(view.all().count(), 2);
    }

    #[test]
    fn forecasts_are_upserts_and_bounded() {
        let store = LiveStore::new(StoreLimits {
            forecasts: 2,
            ..StoreLimits::default()
        });
        let point = |start: i64, mean: f64| ForecastPoint {
            series: "m".into(),
            field: "avg",
            window_ms: 60_000,
            window_start: start,
            horizon: 1,
            mean,
            lower80: mean - 1.0,
            upper80: mean + 1.0,
            lower95: mean - 2.0,
            upper95: mean + 2.0,
        };
        let forecasts = vec![
            point(60_000, 1.0),
            point(120_000, 2.0),
            point(60_000, 3.0),
            point(180_000, 4.0),
        ];
        store.apply(&OutputBatch {
            forecasts,
            ..OutputBatch::default()
        });
        let view = store.read();
        let kept: Vec<_> = view
            .by_key("m")
            .unwrap()
            .forecasts()
            .iter()
            .map(|f| (f.window_start, f.mean))
            .collect();
        assert_eq!(kept, [(120_000, 2.0), (180_000, 4.0)]);
    }
}
