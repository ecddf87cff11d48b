//! The query's inner loop: one metric's windows combined into groups.
//!
//! It runs over every series of the metric (10^4 and more) under the store's read lock, so it
//! does no per-series allocation, string work or pointer chasing: filters and group keys are
//! integer lookups in the metric's interned tag columns (one pass, giving each series' group),
//! and the windows are read from the metric's columnar frame, one window start at a time,
//! through contiguous arrays of only the fields the aggregation needs. Windows older than the
//! frame (kept by quiet series' rings) merge into the groups' sorted points with a moving
//! cursor. Series are added in arrival order, as a plain scan of the rings would, so
//! floating-point sums add up in the same order and the answer is exactly the same.

use super::error::ApiError;
use super::query::{Aggregation, Group, Point};
use super::select::MetricFilter;
use std::collections::HashMap;
use tidemark_schemas::Aggregates;
use tidemark_sinks::live::index::{ABSENT, EMPTY};
use tidemark_sinks::live::{Column, MetricView, TagColumn};

/// Most groups one answer may have: beyond this, the caller should filter or group less.
pub const MAX_GROUPS: usize = 10_000;

/// Marks a group-by value id that has no group yet.
const NO_GROUP: u32 = u32::MAX;

/// The combined answer for one metric.
pub struct Combined {
    /// The groups, sorted by their tag values.
    pub groups: Vec<Group>,
    /// Oldest window start held for the selected series, if any.
    pub live_from: Option<i64>,
    /// From here on every selected series is complete in the live store (the newest of their
    /// oldest window starts), if any series is selected.
    pub complete_from: Option<i64>,
}

/// What the query asks of one metric.
pub struct Ask<'a> {
    /// The window size.
    pub window_ms: u64,
    /// Window starts in `[start, end)`.
    pub range: (i64, i64),
    /// Tags to group by.
    pub group_by: &'a [String],
    /// What to compute.
    pub aggregation: Aggregation,
}

struct Slot {
    ids: Box<[u32]>,
    members: usize,
    points: Vec<(i64, Acc)>,
}

/// Maps a series' group-by value ids to its group.
struct Grouper<'v> {
    columns: Vec<Option<&'v TagColumn>>,
    /// For a single group-by tag: group by value id.
    single: Vec<u32>,
    /// For several group-by tags.
    many: HashMap<Box<[u32]>, u32>,
    key: Vec<u32>,
}

impl<'v> Grouper<'v> {
    fn new(metric: &MetricView<'v>, group_by: &[String]) -> Self {
        let columns: Vec<_> = group_by.iter().map(|tag| metric.column(tag)).collect();
        let distinct = columns.first().copied().flatten().map_or(1, |c| c.values().len());
        Grouper {
            single: if columns.len() == 1 {
                vec![NO_GROUP; distinct]
            } else {
                Vec::new()
            },
            key: vec![EMPTY; columns.len()],
            columns,
            many: HashMap::new(),
        }
    }

    /// The group of the series at `position`, creating it (at most [`MAX_GROUPS`]).
    fn group(&mut self, position: usize, slots: &mut Vec<Slot>) -> Result<usize, ApiError> {
        for (id, column) in self.key.iter_mut().zip(&self.columns) {
            *id = match column.map_or(ABSENT, |c| c.id(position)) {
                ABSENT => EMPTY,
                id => id,
            };
        }
        let known = match self.key.len() {
            0 => (!slots.is_empty()).then_some(0),
            1 => Some(self.single[self.key[0] as usize]).filter(|g| *g != NO_GROUP),
            _ => self.many.get(&self.key[..]).copied(),
        };
        if let Some(group) = known {
            return Ok(group as usize);
        }
        if slots.len() >= MAX_GROUPS {
            return Err(ApiError::bad_request(format!(
                "the query has more than {MAX_GROUPS} groups; add filters or group by fewer tags"
            )));
        }
        let group = slots.len() as u32;
        match self.key.len() {
            0 => {}
            1 => self.single[self.key[0] as usize] = group,
            _ => {
                self.many.insert(self.key.as_slice().into(), group);
            }
        }
        slots.push(Slot {
            ids: self.key.as_slice().into(),
            members: 0,
            points: Vec::new(),
        });
        Ok(group as usize)
    }

    fn value(&self, tag: usize, id: u32) -> String {
        self.columns[tag].map_or_else(String::new, |c| c.values()[id as usize].to_string())
    }
}

/// Combines the windows of the metric's series that pass `filter`.
pub fn combine(metric: &MetricView<'_>, filter: &MetricFilter<'_>, ask: &Ask<'_>) -> Result<Combined, ApiError> {
    let Some(frame) = metric.frame(ask.window_ms) else {
        return Ok(Combined {
            groups: Vec::new(),
            live_from: None,
            complete_from: None,
        });
    };
    let mut grouper = Grouper::new(metric, ask.group_by);
    let mut slots: Vec<Slot> = Vec::new();
    let mut group_of = vec![NO_GROUP; metric.len()];
    let mut live_from: Option<i64> = None;
    let mut complete_from: Option<i64> = None;
    for (position, group_of) in group_of.iter_mut().enumerate() {
        let Some(oldest) = frame.ring_oldest(position) else {
            continue;
        };
        if !filter.passes(position, metric) {
            continue;
        }
        live_from = Some(live_from.map_or(oldest, |l| l.min(oldest)));
        complete_from = Some(complete_from.map_or(oldest, |c| c.max(oldest)));
        let group = grouper.group(position, &mut slots)?;
        slots[group].members += 1;
        *group_of = group as u32;
    }
    // Windows older than the frame's oldest column survive only in the rings of quiet series.
    let frame_from = frame.oldest_start().unwrap_or(ask.range.1);
    if !frame.complete() && ask.range.0 < frame_from {
        let older_end = ask.range.1.min(frame_from);
        for (position, group) in group_of.iter().enumerate().filter(|(_, g)| **g != NO_GROUP) {
            if let Some(ring) = metric.series(position).ring(ask.window_ms) {
                let points = &mut slots[*group as usize].points;
                merge(points, ring.between(ask.range.0, older_end), ask.aggregation);
            }
        }
    }
    let mut accs = vec![Acc::default(); slots.len()];
    for column in frame.between(ask.range.0, ask.range.1) {
        accs.fill(Acc::default());
        add_column(column, &group_of, &mut accs, ask.aggregation);
        for (slot, acc) in slots.iter_mut().zip(&accs).filter(|(_, acc)| acc.seen) {
            slot.points.push((column.start(), *acc));
        }
    }
    let mut groups: Vec<Group> = slots
        .into_iter()
        .map(|slot| Group {
            group: ask
                .group_by
                .iter()
                .cloned()
                .zip(slot.ids.iter().enumerate().map(|(tag, id)| grouper.value(tag, *id)))
                .collect(),
            series_count: slot.members,
            points: slot
                .points
                .into_iter()
                .filter_map(|(ts, acc)| acc.value(ask.aggregation).map(|value| Point { ts, value }))
                .collect(),
        })
        .collect();
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    Ok(Combined {
        groups,
        live_from,
        complete_from,
    })
}

/// Adds one column's windows into the accumulators of their series' groups, in position
/// order, reading only the fields `aggregation` needs.
fn add_column(column: &Column, group_of: &[u32], accs: &mut [Acc], aggregation: Aggregation) {
    let members = group_of
        .iter()
        .zip(column.present())
        .enumerate()
        .filter(|(_, (group, present))| **present && **group != NO_GROUP)
        .map(|(position, (group, _))| (position, *group as usize));
    match aggregation {
        Aggregation::Sum => {
            let sum = column.sum();
            for (p, g) in members {
                accs[g].seen = true;
                accs[g].sum += sum[p];
            }
        }
        Aggregation::Count => {
            let count = column.count();
            for (p, g) in members {
                accs[g].seen = true;
                accs[g].count += count[p];
            }
        }
        Aggregation::Avg => {
            let (count, sum) = (column.count(), column.sum());
            for (p, g) in members {
                accs[g].seen = true;
                accs[g].count += count[p];
                accs[g].sum += sum[p];
            }
        }
        Aggregation::Min => {
            let min = column.min();
            for (p, g) in members {
                let acc = &mut accs[g];
                acc.min = if acc.seen { acc.min.min(min[p]) } else { min[p] };
                acc.seen = true;
            }
        }
        Aggregation::Max => {
            let max = column.max();
            for (p, g) in members {
                let acc = &mut accs[g];
                acc.max = if acc.seen { acc.max.max(max[p]) } else { max[p] };
                acc.seen = true;
            }
        }
        Aggregation::P95 | Aggregation::P99 => {
            let quantile = if aggregation == Aggregation::P95 {
                column.p95()
            } else {
                column.p99()
            };
            for (p, g) in members {
                let acc = &mut accs[g];
                acc.seen = true;
                if let Some(q) = quantile[p] {
                    acc.quantile = Some(acc.quantile.map_or(q, |held| held.max(q)));
                }
            }
        }
    }
}

/// Adds one series' windows (sorted by start) into a group's points (sorted by start).
fn merge<'r>(
    points: &mut Vec<(i64, Acc)>,
    rows: impl Iterator<Item = &'r (i64, Aggregates)>,
    aggregation: Aggregation,
) {
    let mut at = None;
    for (start, aggregates) in rows {
        let mut i = *at.get_or_insert_with(|| points.partition_point(|(s, _)| s < start));
        while i < points.len() && points[i].0 < *start {
            i += 1;
        }
        if i == points.len() || points[i].0 != *start {
            points.insert(i, (*start, Acc::default()));
        }
        points[i].1.add(aggregates, aggregation);
        at = Some(i + 1);
    }
}

/// The running combination of one window across a group's series.
#[derive(Clone, Copy, Default)]
pub struct Acc {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    quantile: Option<f64>,
    seen: bool,
}

impl Acc {
    /// Adds one member's window.
    pub fn add(&mut self, a: &Aggregates, aggregation: Aggregation) {
        let (min, max) = if self.seen {
            (self.min.min(a.min), self.max.max(a.max))
        } else {
            (a.min, a.max)
        };
        self.seen = true;
        self.count += a.count;
        self.sum += a.sum;
        self.min = min;
        self.max = max;
        let member = match aggregation {
            Aggregation::P95 => a.p95,
            Aggregation::P99 => a.p99,
            _ => None,
        };
        if let Some(q) = member {
            self.quantile = Some(self.quantile.map_or(q, |held| held.max(q)));
        }
    }

    /// The aggregate, if the members give one.
    pub fn value(&self, aggregation: Aggregation) -> Option<f64> {
        match aggregation {
            Aggregation::Avg if self.count > 0 => Some(self.sum / self.count as f64),
            Aggregation::Avg => None,
            Aggregation::Sum => Some(self.sum),
            Aggregation::Count => Some(self.count as f64),
            Aggregation::Min => Some(self.min),
            Aggregation::Max => Some(self.max),
            Aggregation::P95 | Aggregation::P99 => self.quantile,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::select::{FilterOp, Selector, TagFilter};
    use std::collections::BTreeMap;
    use tidemark_schemas::{OutputBatch, SeriesId, UpdateKind, WindowUpdate};
    use tidemark_sinks::live::{LiveStore, StoreLimits, StoreView};

    /// xorshift64*: deterministic random data without a dependency.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Random series of `m` (some tags missing or empty) and one other metric, over two window
    /// sizes, with window starts that differ between series and arrive out of order.
    fn random_store(random: &mut Random) -> LiveStore {
        let store = LiveStore::new(StoreLimits {
            default_windows: 12,
            ..StoreLimits::default()
        });
        let mut rows = Vec::new();
        for s in 0..300 {
            let mut key = String::from(if s % 7 == 0 { "other" } else { "m" });
            if random.below(5) > 0 {
                key.push_str(&format!("|host=h{}", random.below(40)));
            }
            match random.below(4) {
                0 => {}
                1 => key.push_str("|zone="),
                _ => key.push_str(&format!("|zone=z{}", random.below(5))),
            }
            for _ in 0..random.below(20) {
                let window_ms = [60_000, 300_000][random.below(2) as usize];
                let start = random.below(30) as i64 * 60_000 + [0, 0, 0, 1_000][random.below(4) as usize];
                let values: Vec<f64> = (0..=random.below(4)).map(|_| random.below(1000) as f64 / 7.0).collect();
                let sum: f64 = values.iter().sum();
                let quantile = (random.below(3) > 0).then(|| values[random.below(values.len() as u64) as usize]);
                rows.push(WindowUpdate {
                    series: key.as_str().into(),
                    series_id: SeriesId::of_key(&key),
                    window_ms,
                    window_start: start,
                    kind: UpdateKind::Final,
                    aggregates: Aggregates {
                        count: values.len() as u64,
                        sum,
                        min: values.iter().copied().fold(f64::INFINITY, f64::min),
                        max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                        avg: sum / values.len() as f64,
                        p50: None,
                        p95: quantile,
                        p99: quantile.map(|q| q + 1.0),
                        distinct: None,
                    },
                });
            }
        }
        store.apply(&OutputBatch {
            windows: rows,
            ..OutputBatch::default()
        });
        store
    }

    /// The straightforward computation: every series of the metric, its tags parsed from its
    /// key, the selector's string matching, one map entry per group and window start.
    fn plain(view: &StoreView<'_>, selector: &Selector, ask: &Ask<'_>) -> (Vec<Group>, Option<i64>) {
        let mut groups: BTreeMap<Vec<String>, (usize, BTreeMap<i64, Acc>)> = BTreeMap::new();
        let mut live_from: Option<i64> = None;
        for series in view.of_metric("m").filter(|s| selector.matches_key(s.key())) {
            let Some(ring) = series.ring(ask.window_ms) else {
                continue;
            };
            if let Some(oldest) = ring.oldest_start() {
                live_from = Some(live_from.map_or(oldest, |l| l.min(oldest)));
            }
            let key = ask
                .group_by
                .iter()
                .map(|tag| series.tag(tag).unwrap_or_default().to_string())
                .collect();
            let (members, points) = groups.entry(key).or_default();
            *members += 1;
            for (start, aggregates) in ring.between(ask.range.0, ask.range.1) {
                points.entry(*start).or_default().add(aggregates, ask.aggregation);
            }
        }
        let mut out: Vec<Group> = groups
            .into_iter()
            .map(|(values, (series_count, points))| Group {
                group: ask.group_by.iter().cloned().zip(values).collect(),
                series_count,
                points: points
                    .into_iter()
                    .filter_map(|(ts, acc)| acc.value(ask.aggregation).map(|value| Point { ts, value }))
                    .collect(),
            })
            .collect();
        out.sort_by(|a, b| a.group.cmp(&b.group));
        (out, live_from)
    }

    /// A group's tag values, series count and points (values as bits, to compare exactly).
    type Flat = (BTreeMap<String, String>, usize, Vec<(i64, u64)>);

    fn flat(groups: &[Group]) -> Vec<Flat> {
        groups
            .iter()
            .map(|g| {
                let points = g.points.iter().map(|p| (p.ts, p.value.to_bits())).collect();
                (g.group.clone(), g.series_count, points)
            })
            .collect()
    }

    #[test]
    fn matches_a_straightforward_computation_on_random_data() {
        let mut random = Random(0x9e37_79b9_7f4a_7c15);
        let aggregations = [
            Aggregation::Avg,
            Aggregation::Sum,
            Aggregation::Count,
            Aggregation::Min,
            Aggregation::Max,
            Aggregation::P95,
            Aggregation::P99,
        ];
        let group_bys: [&[&str]; 5] = [&[], &["zone"], &["host"], &["zone", "host"], &["rack", "zone"]];
        let filters = [
            vec![],
            vec![("zone", FilterOp::Eq, "z1")],
            vec![("zone", FilterOp::Eq, "")],
            vec![("zone", FilterOp::Ne, "z2")],
            vec![("host", FilterOp::Regex, "h1.*"), ("zone", FilterOp::Ne, "")],
            vec![("rack", FilterOp::Ne, "r1")],
            vec![("rack", FilterOp::Eq, "r1")],
        ];
        let mut compared = 0;
        for _ in 0..6 {
            let store = random_store(&mut random);
            let view = store.read();
            let metric = view.metric("m").unwrap();
            for aggregation in aggregations {
                for group_by in group_bys {
                    for filter in &filters {
                        let filter: Vec<TagFilter> = filter
                            .iter()
                            .map(|(tag, op, value)| TagFilter {
                                tag: tag.to_string(),
                                op: *op,
                                value: value.to_string(),
                            })
                            .collect();
                        let selector = Selector::new(vec!["m".into()], Vec::new(), &filter).unwrap();
                        let group_by: Vec<String> = group_by.iter().map(|t| t.to_string()).collect();
                        let start = random.below(20) as i64 * 60_000 - 30_000;
                        let ask = Ask {
                            window_ms: [60_000, 300_000][random.below(2) as usize],
                            range: (start, start + random.below(20) as i64 * 60_000 + 1),
                            group_by: &group_by,
                            aggregation,
                        };
                        let fast = combine(&metric, &selector.for_metric(&metric), &ask).unwrap();
                        let (groups, live_from) = plain(&view, &selector, &ask);
                        assert_eq!(
                            flat(&fast.groups),
                            flat(&groups),
                            "{aggregation:?} {group_by:?} {filter:?}"
                        );
                        assert_eq!(fast.live_from, live_from);
                        compared += usize::from(!groups.is_empty());
                    }
                }
            }
        }
        assert!(compared > 1000, "most cases select something: {compared}");
    }

    #[test]
    fn too_many_groups_are_refused() {
        let store = LiveStore::new(StoreLimits {
            max_series: MAX_GROUPS + 1,
            ..StoreLimits::default()
        });
        let aggregates = Aggregates {
            count: 1,
            sum: 1.0,
            min: 1.0,
            max: 1.0,
            avg: 1.0,
            p50: None,
            p95: None,
            p99: None,
            distinct: None,
        };
        let windows = (0..=MAX_GROUPS)
            .map(|i| {
                let key = format!("m|host=h{i}");
                WindowUpdate {
                    series_id: SeriesId::of_key(&key),
                    series: key.into(),
                    window_ms: 60_000,
                    window_start: 0,
                    kind: UpdateKind::Final,
                    aggregates: aggregates.clone(),
                }
            })
            .collect();
        store.apply(&OutputBatch {
            windows,
            ..OutputBatch::default()
        });
        let view = store.read();
        let metric = view.metric("m").unwrap();
        let selector = Selector::new(vec!["m".into()], Vec::new(), &[]).unwrap();
        let group_by = vec!["host".to_string()];
        let ask = Ask {
            window_ms: 60_000,
            range: (0, 60_000),
            group_by: &group_by,
            aggregation: Aggregation::Sum,
        };
        let err = combine(&metric, &selector.for_metric(&metric), &ask).err().unwrap();
        assert!(err.message.contains("more than"), "{}", err.message);
    }
}
