//! `POST /api/v1/metrics/query`: aggregate one metric's recent windows over a time range,
//! grouped by tags, answered from the live store.
//!
//! Per window start, the windows of the series in a group combine exactly for `count`, `sum`,
//! `min`, `max` and `avg` (`Σsum / Σcount`). Quantiles do not combine from per-series
//! quantiles, so for a group of several series `p95`/`p99` is the largest member quantile:
//! an upper bound of the group's quantile (no member has more than 5 % of its values above
//! its p95, so neither has the union above the largest), exact for single-series groups.
//! The response says which windows the live store covers (`live_from`), so a caller knows
//! when older data must come from a long-term store.

use super::error::ApiError;
use super::select::{Selector, TagFilter};
use super::time::{Timestamp, now_ms};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use tidemark_schemas::Aggregates;
use tidemark_schemas::output::window_label;
use tidemark_sinks::live::StoreView;

/// Most groups one answer may have: beyond this, the caller should filter or group less.
const MAX_GROUPS: usize = 10_000;
/// Most `group_by` tags.
const MAX_GROUP_BY: usize = 16;
/// The default time range: the last hour.
const DEFAULT_RANGE_MS: i64 = 3_600_000;

/// What to compute per window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// `Σsum / Σcount`.
    #[default]
    Avg,
    /// `Σsum`.
    Sum,
    /// `Σcount`.
    Count,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// 95th percentile (largest member p95 for multi-series groups).
    P95,
    /// 99th percentile (largest member p99 for multi-series groups).
    P99,
}

/// The request body.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// The metric.
    pub metric_name: String,
    /// Which window starts to include (default: the last hour).
    #[serde(default)]
    pub time_range: Option<TimeRange>,
    /// What to compute (default `avg`).
    #[serde(default)]
    pub aggregation: Aggregation,
    /// Tags to group by (default: one group of every selected series).
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Tag filters.
    #[serde(default)]
    pub filters: Vec<TagFilter>,
    /// Window size label such as `1m` (default: the base window).
    #[serde(default)]
    pub window: Option<String>,
}

/// `[start, end)`, each optional.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    /// First window start included (default `end` − 1 h).
    pub start: Option<Timestamp>,
    /// Window starts from here on are excluded (default now).
    pub end: Option<Timestamp>,
}

/// One point of a group's series.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    /// Window start, epoch ms.
    pub ts: i64,
    /// The aggregate.
    pub value: f64,
}

/// One group.
#[derive(Clone, Debug, Serialize)]
pub struct Group {
    /// The `group_by` tag values (missing tags are empty strings).
    pub group: BTreeMap<String, String>,
    /// Series combined into this group.
    pub series_count: usize,
    /// Points, oldest first.
    pub points: Vec<Point>,
}

/// The response body.
#[derive(Clone, Debug, Serialize)]
pub struct QueryResponse {
    /// The metric.
    pub metric_name: String,
    /// What was computed.
    pub aggregation: Aggregation,
    /// The window size label.
    pub window: String,
    /// The window size in ms.
    pub window_ms: u64,
    /// The range answered, epoch ms.
    pub time_range: RangeMs,
    /// Where the answer came from.
    pub source: &'static str,
    /// Oldest window start the live store holds for the selected series, if any.
    pub live_from: Option<i64>,
    /// The groups, sorted by their tag values.
    pub series: Vec<Group>,
}

/// A resolved range.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct RangeMs {
    /// Inclusive start.
    pub start: i64,
    /// Exclusive end.
    pub end: i64,
}

/// A validated query.
pub struct Plan {
    request: QueryRequest,
    selector: Selector,
    window_ms: u64,
    range: RangeMs,
}

impl Plan {
    /// Validates a request against the configured window sizes (`sizes_ms[0]` is the base).
    pub fn new(request: QueryRequest, sizes_ms: &[u64]) -> Result<Self, ApiError> {
        if request.metric_name.is_empty() {
            return Err(ApiError::bad_request("metric_name must not be empty"));
        }
        if request.group_by.len() > MAX_GROUP_BY {
            return Err(ApiError::bad_request(format!("group_by: at most {MAX_GROUP_BY} tags")));
        }
        let window_ms = window(request.window.as_deref(), sizes_ms)?;
        let (start, end) = match &request.time_range {
            Some(range) => (
                range.start.as_ref().map(|t| t.millis("time_range.start")).transpose()?,
                range.end.as_ref().map(|t| t.millis("time_range.end")).transpose()?,
            ),
            None => (None, None),
        };
        let end = end.unwrap_or_else(now_ms);
        let start = start.unwrap_or(end - DEFAULT_RANGE_MS);
        if start >= end {
            return Err(ApiError::bad_request("time_range.start must be before time_range.end"));
        }
        let selector = Selector::new(vec![request.metric_name.clone()], Vec::new(), &request.filters)?;
        Ok(Plan {
            request,
            selector,
            window_ms,
            range: RangeMs { start, end },
        })
    }

    /// Answers from a store view.
    pub fn run(self, view: &StoreView<'_>) -> Result<QueryResponse, ApiError> {
        let aggregation = self.request.aggregation;
        let group_by = &self.request.group_by;
        let mut groups: HashMap<Vec<String>, (usize, BTreeMap<i64, Acc>)> = HashMap::new();
        let mut live_from: Option<i64> = None;
        for series in self.selector.select(view) {
            let Some(ring) = series.ring(self.window_ms) else {
                continue;
            };
            if let Some(oldest) = ring.oldest_start() {
                live_from = Some(live_from.map_or(oldest, |l| l.min(oldest)));
            }
            let key: Vec<String> = group_by
                .iter()
                .map(|tag| series.tag(tag).unwrap_or_default().to_string())
                .collect();
            if !groups.contains_key(&key) && groups.len() >= MAX_GROUPS {
                return Err(ApiError::bad_request(format!(
                    "the query has more than {MAX_GROUPS} groups; add filters or group by fewer tags"
                )));
            }
            let (members, points) = groups.entry(key).or_default();
            *members += 1;
            for (start, aggregates) in ring.between(self.range.start, self.range.end) {
                points.entry(*start).or_default().add(aggregates, aggregation);
            }
        }
        let mut series: Vec<Group> = groups
            .into_iter()
            .map(|(values, (series_count, points))| Group {
                group: group_by.iter().cloned().zip(values).collect(),
                series_count,
                points: points
                    .into_iter()
                    .filter_map(|(ts, acc)| acc.value(aggregation).map(|value| Point { ts, value }))
                    .collect(),
            })
            .collect();
        series.sort_by(|a, b| a.group.cmp(&b.group));
        Ok(QueryResponse {
            metric_name: self.request.metric_name,
            aggregation,
            window: window_label(self.window_ms),
            window_ms: self.window_ms,
            time_range: self.range,
            source: "live",
            live_from,
            series,
        })
    }
}

/// The window size a label names, among the configured sizes (default: the base).
pub fn window(label: Option<&str>, sizes_ms: &[u64]) -> Result<u64, ApiError> {
    let Some(label) = label else {
        return Ok(sizes_ms[0]);
    };
    super::config::window_ms(label)
        .filter(|ms| sizes_ms.contains(ms))
        .ok_or_else(|| {
            let known: Vec<String> = sizes_ms.iter().map(|ms| window_label(*ms)).collect();
            ApiError::bad_request(format!(
                "window {label:?} is not computed; use one of {}",
                known.join(", ")
            ))
        })
}

/// The running combination of one window across a group's series.
#[derive(Default)]
struct Acc {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    quantile: Option<f64>,
    seen: bool,
}

impl Acc {
    fn add(&mut self, a: &Aggregates, aggregation: Aggregation) {
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

    fn value(&self, aggregation: Aggregation) -> Option<f64> {
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
    use tidemark_schemas::{OutputBatch, SeriesId, UpdateKind, WindowUpdate};
    use tidemark_sinks::live::{LiveStore, StoreLimits};

    fn row(key: &str, start: i64, values: &[f64]) -> WindowUpdate {
        let sum: f64 = values.iter().sum();
        WindowUpdate {
            series: key.into(),
            series_id: SeriesId::of_key(key),
            window_ms: 60_000,
            window_start: start,
            kind: UpdateKind::Final,
            aggregates: Aggregates {
                count: values.len() as u64,
                sum,
                min: values.iter().copied().fold(f64::INFINITY, f64::min),
                max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                avg: sum / values.len() as f64,
                p50: None,
                p95: Some(values[values.len() - 1]),
                p99: None,
                distinct: None,
            },
        }
    }

    fn store() -> LiveStore {
        let store = LiveStore::new(StoreLimits::default());
        store.apply(&OutputBatch {
            windows: vec![
                row("lat|region=us|svc=a", 0, &[1.0, 3.0]),
                row("lat|region=us|svc=b", 0, &[5.0]),
                row("lat|region=eu|svc=a", 0, &[10.0]),
                row("lat|region=us|svc=a", 60_000, &[2.0]),
                row("cpu|region=us", 0, &[99.0]),
            ],
            ..OutputBatch::default()
        });
        store
    }

    fn ask(body: &str) -> Result<QueryResponse, ApiError> {
        let request: QueryRequest = serde_json::from_str(body).unwrap();
        let store = store();
        Plan::new(request, &[60_000, 300_000])?.run(&store.read())
    }

    #[test]
    fn groups_combine_exactly_for_additive_aggregates() {
        let answer = ask(r#"{"metric_name":"lat","aggregation":"avg","group_by":["region"],
                "time_range":{"start":0,"end":120000}}"#)
        .unwrap();
        let groups: Vec<_> = answer
            .series
            .iter()
            .map(|g| {
                (
                    g.group["region"].clone(),
                    g.series_count,
                    g.points.iter().map(|p| (p.ts, p.value)).collect::<Vec<_>>(),
                )
            })
            .collect();
        assert_eq!(
            groups,
            [
                ("eu".to_string(), 1, vec![(0, 10.0)]),
                ("us".to_string(), 2, vec![(0, 3.0), (60_000, 2.0)])
            ]
        );
        assert_eq!(answer.live_from, Some(0));
    }

    #[test]
    fn filters_ranges_and_quantile_bounds() {
        let answer = ask(
            r#"{"metric_name":"lat","aggregation":"p95","filters":[{"tag":"region","value":"us"}],
                "time_range":{"start":"1970-01-01T00:00:00Z","end":60000}}"#,
        )
        .unwrap();
        assert_eq!(answer.series.len(), 1);
        assert_eq!(answer.series[0].points.len(), 1);
        assert_eq!(answer.series[0].points[0].value, 5.0, "the largest member p95");
    }

    #[test]
    fn bad_requests_say_why() {
        let bad = [
            (r#"{"metric_name":""}"#, "metric_name"),
            (r#"{"metric_name":"lat","window":"7m"}"#, "1m, 5m"),
            (r#"{"metric_name":"lat","time_range":{"start":5,"end":5}}"#, "before"),
            (
                r#"{"metric_name":"lat","time_range":{"start":"soon"}}"#,
                "time_range.start",
            ),
        ];
        for (body, needle) in bad {
            let err = ask(body).unwrap_err();
            assert_eq!(err.status, 400);
            assert!(err.message.contains(needle), "{body}: {}", err.message);
        }
    }
}
