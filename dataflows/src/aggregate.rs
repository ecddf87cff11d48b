//! The window operator: per series, event-time tumbling windows of every size.
//!
//! Raw events never enter an arrangement. Each worker owns a disjoint set of series (the
//! exchange is by series id) and folds observations into per-window [`Partial`]s held in plain
//! hash maps, one capability per open window start. When the frontier passes a window's end the
//! window closes: its row is emitted, its partial is merged into the enclosing window of the
//! next size (so 5m/15m/1h/1d are built from closed partials, never from events), and a compact
//! copy is handed to the corrections dataflow. Closed windows are then dropped, so memory is
//! bounded by the open windows.
//!
//! An observation whose base window has already closed is late. Under `late_policy = correct`
//! (and within the correction horizon) it becomes a one-event delta for every closed window that
//! contains it, and is folded directly into the smallest enclosing window still open; under
//! `dead_letter` it is dead-lettered.

use crate::analytics::{Analytics, AnalyticsSettings};
use crate::corrections::{CorrectionUpdate, Origin, WindowKey};
use crate::partial::{Partial, QuantilePolicy};
use crate::stats::PipelineStats;
use crate::windows::{LatePolicy, window_start};
use crossbeam_channel::Sender;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use tidemark_connectors::{IdBuildHasher, Observation, SeriesInfo};
use tidemark_schemas::{
    AnomalyScore, DeadLetter, DeadLetterReason, ForecastPoint, OutputBatch, SeriesId, UpdateKind, WindowUpdate,
};
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;
use timely::progress::frontier::MutableAntichain;
use tracing::{error, warn};

/// Series keys known to this worker, shared with the corrections output on the same worker.
#[derive(Default)]
pub struct SeriesNames {
    names: HashMap<SeriesId, Arc<str>, IdBuildHasher>,
    collision_reported: bool,
}

impl SeriesNames {
    /// Records a key; reports (once) a different key with the same id.
    pub fn learn(&mut self, info: SeriesInfo) {
        let known = self
            .names
            .entry(info.series)
            .or_insert_with(|| Arc::from(info.key.as_str()));
        if **known != *info.key && !self.collision_reported {
            self.collision_reported = true;
            error!(id = %info.series, first = %known, second = %info.key,
                   "two series keys hash to the same id; their windows are merged under the first key");
        }
    }

    /// The key of `series` (its hex id if the catalog never named it, which would be a bug).
    pub fn key(&self, series: SeriesId) -> Arc<str> {
        self.names
            .get(&series)
            .cloned()
            .unwrap_or_else(|| Arc::from(format!("unknown-series-{series}")))
    }
}

/// What the window operator needs.
pub struct AggregateContext {
    /// Window sizes in ms, base first; each a multiple of the previous.
    pub sizes_ms: Vec<u64>,
    /// What to do with late events.
    pub late_policy: LatePolicy,
    /// How long after closing a window accepts corrections, ms.
    pub horizon_ms: u64,
    /// Exact-versus-sketch quantiles.
    pub quantiles: QuantilePolicy,
    /// Where rows and late dead letters go.
    pub output: Sender<OutputBatch>,
    /// Counters.
    pub stats: Arc<PipelineStats>,
    /// Series keys on this worker.
    pub names: Rc<RefCell<SeriesNames>>,
    /// Source name for late dead letters.
    pub source_name: Arc<str>,
    /// Anomaly scores and forecasts on closed base windows, when enabled.
    pub analytics: Option<AnalyticsSettings>,
}

/// Closed partials with this many values or fewer stay exact in the corrections dataflow.
const KEEP_EXACT_FOR_CORRECTIONS: usize = 64;

struct OpenWindow {
    capability: Capability<u64>,
    series: HashMap<SeriesId, Partial, IdBuildHasher>,
}

struct Level {
    size: u64,
    open: BTreeMap<u64, OpenWindow>,
}

struct WindowState {
    ctx: AggregateContext,
    levels: Vec<Level>,
    /// Every window ending at or before this has closed.
    closed_through: u64,
    rows: Vec<WindowUpdate>,
    dead_letters: Vec<DeadLetter>,
    late_warned: bool,
    analytics: Option<Analytics>,
    scores: Vec<AnomalyScore>,
    forecasts: Vec<ForecastPoint>,
}

impl WindowState {
    fn add(&mut self, level: usize, start: u64, capability: &dyn Fn() -> Capability<u64>, obs: &Observation) {
        let window = self.levels[level].open.entry(start).or_insert_with(|| OpenWindow {
            capability: capability(),
            series: HashMap::default(),
        });
        window
            .series
            .entry(obs.series)
            .or_insert_with(|| Partial::new(obs.tracking))
            .insert(
                obs.value,
                obs.tracking.distinct.then_some(obs.distinct_hash),
                &self.ctx.quantiles,
            );
    }

    fn late(
        &mut self,
        time: u64,
        capability: &dyn Fn() -> Capability<u64>,
        obs: &Observation,
        corrections: &mut Vec<CorrectionUpdate>,
    ) {
        let ts = obs.ts as u64;
        let base_end = window_start(ts, self.levels[0].size) + self.levels[0].size;
        let reason = match self.ctx.late_policy {
            LatePolicy::DeadLetter => Some(DeadLetterReason::Late),
            LatePolicy::Correct if time >= base_end + self.ctx.horizon_ms => Some(DeadLetterReason::TooLate),
            LatePolicy::Correct => None,
        };
        if let Some(reason) = reason {
            self.dead_letter(reason, obs);
            return;
        }
        self.ctx.stats.late_corrections.fetch_add(1, Relaxed);
        for level in 0..self.levels.len() {
            let size = self.levels[level].size;
            let start = window_start(ts, size);
            if start + size > self.closed_through {
                self.add(level, start, capability, obs);
                return;
            }
            let mut delta = Partial::new(obs.tracking);
            delta.insert(
                obs.value,
                obs.tracking.distinct.then_some(obs.distinct_hash),
                &self.ctx.quantiles,
            );
            let key = WindowKey {
                series: obs.series,
                size_ms: size,
                start,
            };
            corrections.push(((key, (delta, Origin::Late)), time, 1));
        }
    }

    fn dead_letter(&mut self, reason: DeadLetterReason, obs: &Observation) {
        self.ctx.stats.add_dead_letters(reason, 1);
        if !self.late_warned {
            self.late_warned = true;
            warn!(reason = %reason, watermark = self.closed_through,
                  "dead-lettering an event whose window has closed (logged once; all are counted and written)");
        }
        let series = self.ctx.names.borrow().key(obs.series);
        let detail = format!(
            "window closed: event time {} is before the watermark {} (late_policy = {:?}, correction_horizon = {} ms)",
            obs.ts, self.closed_through, self.ctx.late_policy, self.ctx.horizon_ms
        );
        let original = format!("{{\"series\":\"{series}\",\"ts\":{},\"value\":{}}}", obs.ts, obs.value).into_bytes();
        self.dead_letters.push(DeadLetter {
            reason,
            detail,
            source: self.ctx.source_name.clone(),
            position: obs.ts as u64,
            original,
            truncated: false,
            partition: None,
            key: None,
        });
    }

    /// Closes every window ending at or before `frontier`, smallest sizes first so each closed
    /// window is merged into its parent before the parent can close.
    fn close_through(&mut self, frontier: u64, corrections: &mut impl FnMut(&Capability<u64>, CorrectionUpdate)) {
        if frontier <= self.closed_through {
            return;
        }
        let keep_corrections = self.ctx.late_policy == LatePolicy::Correct;
        for level in 0..self.levels.len() {
            let size = self.levels[level].size;
            while let Some(entry) = self.levels[level].open.first_entry() {
                let start = *entry.key();
                if start + size > frontier {
                    break;
                }
                let window = entry.remove();
                let names = self.ctx.names.borrow();
                for (series, mut partial) in window.series {
                    let key = names.key(series);
                    let aggregates = partial.aggregates();
                    if let (0, Some(analytics)) = (level, self.analytics.as_mut()) {
                        let counted = partial.is_counted();
                        analytics.observe(
                            series,
                            &key,
                            counted,
                            size,
                            start,
                            &aggregates,
                            &mut self.scores,
                            &mut self.forecasts,
                        );
                    }
                    self.rows.push(WindowUpdate {
                        series: key,
                        series_id: series,
                        window_ms: size,
                        window_start: start as i64,
                        kind: UpdateKind::Final,
                        aggregates,
                    });
                    if keep_corrections {
                        let key = WindowKey {
                            series,
                            size_ms: size,
                            start,
                        };
                        let compact = partial.compacted(KEEP_EXACT_FOR_CORRECTIONS, &self.ctx.quantiles);
                        corrections(
                            &window.capability,
                            ((key, (compact, Origin::Closed)), *window.capability.time(), 1),
                        );
                    }
                    if let Some(parent) = self.levels.get_mut(level + 1) {
                        let parent_start = window_start(start, parent.size);
                        let parent_window = parent.open.entry(parent_start).or_insert_with(|| OpenWindow {
                            capability: window.capability.clone(),
                            series: HashMap::default(),
                        });
                        if parent_window.capability.time() > window.capability.time() {
                            parent_window.capability = window.capability.clone();
                        }
                        match parent_window.series.get_mut(&series) {
                            Some(existing) => existing.merge(&partial, &self.ctx.quantiles),
                            None => {
                                parent_window.series.insert(series, partial);
                            }
                        }
                    }
                }
            }
        }
        self.closed_through = frontier;
    }

    fn flush(&mut self) {
        if self.rows.is_empty() && self.dead_letters.is_empty() && self.scores.is_empty() {
            return;
        }
        self.ctx.stats.final_rows.fetch_add(self.rows.len() as u64, Relaxed);
        let batch = OutputBatch {
            windows: std::mem::take(&mut self.rows),
            dead_letters: std::mem::take(&mut self.dead_letters),
            scores: std::mem::take(&mut self.scores),
            forecasts: std::mem::take(&mut self.forecasts),
            ..OutputBatch::default()
        };
        if self.ctx.output.send(batch).is_err() {
            error!("the sinks have stopped; window results cannot be written");
        }
    }
}

fn frontier_time(frontier: &MutableAntichain<u64>) -> u64 {
    frontier.frontier().iter().copied().min().unwrap_or(u64::MAX)
}

/// Builds the window operator over the source's observation and catalog streams; returns the
/// stream of updates for the corrections dataflow.
pub fn aggregate<'s>(
    observations: Stream<'s, u64, Vec<Observation>>,
    catalog: Stream<'s, u64, Vec<SeriesInfo>>,
    ctx: AggregateContext,
) -> Stream<'s, u64, Vec<CorrectionUpdate>> {
    let by_series = Exchange::new(|obs: &Observation| obs.series.0);
    let catalog_by_series = Exchange::new(|info: &SeriesInfo| info.series.0);
    observations.binary_frontier(
        catalog,
        by_series,
        catalog_by_series,
        "Windows",
        move |_capability, _info| {
            let levels = ctx
                .sizes_ms
                .iter()
                .map(|&size| Level {
                    size,
                    open: BTreeMap::new(),
                })
                .collect();
            let analytics = ctx.analytics.clone().map(Analytics::new);
            let mut state = WindowState {
                ctx,
                levels,
                closed_through: 0,
                rows: Vec::new(),
                dead_letters: Vec::new(),
                late_warned: false,
                analytics,
                scores: Vec::new(),
                forecasts: Vec::new(),
            };
            let mut late_updates: Vec<CorrectionUpdate> = Vec::new();

            move |(observations, obs_frontier), (catalog, catalog_frontier), output| {
                catalog.for_each(|_cap, infos| {
                    let mut names = state.ctx.names.borrow_mut();
                    for info in infos.drain(..) {
                        names.learn(info);
                    }
                });
                observations.for_each_stamp(|cap, batches| {
                    let time = *cap.least().expect("a totally ordered stamp has a least time");
                    let retain = || cap.retain_least(0).expect("the stamp is not empty");
                    let base = state.levels[0].size;
                    for batch in batches {
                        for obs in batch.drain(..) {
                            let start = window_start(obs.ts as u64, base);
                            if start + base > state.closed_through {
                                state.add(0, start, &retain, &obs);
                            } else {
                                state.late(time, &retain, &obs, &mut late_updates);
                            }
                        }
                    }
                    if !late_updates.is_empty() {
                        let cap = retain();
                        output.session(&cap).give_container(&mut late_updates);
                    }
                });
                let frontier = frontier_time(obs_frontier).min(frontier_time(catalog_frontier));
                let mut pending: Vec<(Capability<u64>, Vec<CorrectionUpdate>)> = Vec::new();
                state.close_through(frontier, &mut |cap, update| match pending.last_mut() {
                    Some((last, updates)) if last.time() == cap.time() => updates.push(update),
                    _ => pending.push((cap.clone(), vec![update])),
                });
                for (cap, mut updates) in pending {
                    output.session(&cap).give_container(&mut updates);
                }
                state.flush();
            }
        },
    )
}
