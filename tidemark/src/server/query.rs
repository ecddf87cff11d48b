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
use super::groups::{Ask, Combined, combine};
use super::history::{merge, older_groups};
use super::select::{FilterOp, Selector, TagFilter};
use super::time::{Timestamp, now_ms};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tidemark_schemas::output::window_label;
use tidemark_sinks::live::{History, StoreView};

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
    /// Where the answer came from: `live`, `influxdb`, or `mixed` (see `parts`).
    pub source: &'static str,
    /// Oldest window start the live store holds for the selected series, if any.
    pub live_from: Option<i64>,
    /// Which window starts came from where, oldest first.
    pub parts: Vec<Part>,
    /// The groups, sorted by their tag values.
    pub series: Vec<Group>,
}

/// Window starts in `[start, end)` answered by one source.
#[derive(Clone, Debug, Serialize)]
pub struct Part {
    /// `live` or `influxdb`.
    pub source: &'static str,
    /// Inclusive start.
    pub start: i64,
    /// Exclusive end.
    pub end: i64,
    /// Why this part has no points (InfluxDB did not answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The older part of an answer, from InfluxDB.
pub struct Older {
    /// Window starts it covers.
    pub range: (i64, i64),
    /// Its groups, or why InfluxDB could not give them.
    pub groups: Result<Vec<Group>, String>,
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

    fn ask(&self, range: (i64, i64)) -> Ask<'_> {
        Ask {
            window_ms: self.window_ms,
            range,
            group_by: &self.request.group_by,
            aggregation: self.request.aggregation,
        }
    }

    /// The live part, from a store view (held briefly: no I/O here).
    pub fn live(&self, view: &StoreView<'_>) -> Result<Combined, ApiError> {
        let ask = self.ask((self.range.start, self.range.end));
        match view.metric(&self.request.metric_name) {
            Some(metric) => combine(&metric, &self.selector.for_metric(&metric), &ask),
            None => Ok(Combined {
                groups: Vec::new(),
                live_from: None,
                complete_from: None,
            }),
        }
    }

    /// The window starts the live part cannot answer completely: from the range's start to
    /// where every selected series is complete in the live store (all of it when none is).
    pub fn older_range(&self, live: &Combined) -> Option<(i64, i64)> {
        let cutoff = live.complete_from.unwrap_or(self.range.end).min(self.range.end);
        (cutoff > self.range.start).then_some((self.range.start, cutoff))
    }

    /// Reads the older part from InfluxDB (blocking: run it off the async threads).
    pub fn read_older(&self, history: &History, range: (i64, i64)) -> Result<Older, ApiError> {
        let equal: Vec<(&str, &str)> = self
            .request
            .filters
            .iter()
            .filter(|f| f.op == FilterOp::Eq)
            .map(|f| (f.tag.as_str(), f.value.as_str()))
            .collect();
        let groups = older_groups(
            history,
            &self.request.metric_name,
            &self.selector,
            &equal,
            &self.ask(range),
        );
        Ok(Older {
            range,
            groups: match groups {
                Ok(groups) => Ok(groups?),
                Err(e) => Err(e.to_string()),
            },
        })
    }

    /// The answer: the live part, joined with the older part when there is one.
    pub fn answer(self, live: Combined, older: Option<Older>) -> QueryResponse {
        let (start, end) = (self.range.start, self.range.end);
        let (source, parts, series) = match older {
            None => ("live", vec![part("live", start, end, None)], live.groups),
            Some(older) => {
                let cutoff = older.range.1;
                let (groups, error) = match older.groups {
                    Ok(groups) => (groups, None),
                    Err(error) => (Vec::new(), Some(error)),
                };
                let mut parts = vec![part("influxdb", start, cutoff, error)];
                if cutoff < end {
                    parts.push(part("live", cutoff, end, None));
                }
                let source = if cutoff < end { "mixed" } else { "influxdb" };
                (source, parts, merge(groups, live.groups, cutoff))
            }
        };
        QueryResponse {
            metric_name: self.request.metric_name,
            aggregation: self.request.aggregation,
            window: window_label(self.window_ms),
            window_ms: self.window_ms,
            time_range: self.range,
            source,
            live_from: live.live_from,
            parts,
            series,
        }
    }
}

fn part(source: &'static str, start: i64, end: i64, error: Option<String>) -> Part {
    Part {
        source,
        start,
        end,
        error,
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

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_schemas::{Aggregates, OutputBatch, SeriesId, UpdateKind, WindowUpdate};
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
        let plan = Plan::new(request, &[60_000, 300_000])?;
        let live = plan.live(&store.read())?;
        Ok(plan.answer(live, None))
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
