//! Choosing series: by metric, by exact key, and by tag filters (equality or regex).
//!
//! Shared by the query, discovery and export endpoints and by WebSocket subscriptions, so a
//! filter means the same everywhere. Regexes are anchored (they must match the whole tag
//! value, as in Prometheus) and size-limited, so a hostile pattern cannot exhaust memory.

use super::error::ApiError;
use regex::{Regex, RegexBuilder};
use serde::Deserialize;
use std::collections::HashSet;
use tidemark_sinks::live::index::ABSENT;
use tidemark_sinks::live::{MetricView, SeriesEntry, StoreView, TagColumn};

/// Most filters in one request.
const MAX_FILTERS: usize = 32;
/// Compiled size limit of one regex.
const REGEX_SIZE_LIMIT: usize = 1 << 16;

/// How a filter compares a tag value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterOp {
    /// Equal to `value`.
    Eq,
    /// Different from `value` (or the tag absent).
    Ne,
    /// Matches the regex `value` as a whole.
    Regex,
}

/// A tag filter as clients send it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagFilter {
    /// The tag key.
    pub tag: String,
    /// The comparison (default `eq`).
    #[serde(default = "eq")]
    pub op: FilterOp,
    /// The value or pattern.
    pub value: String,
}

fn eq() -> FilterOp {
    FilterOp::Eq
}

#[derive(Clone, Debug)]
enum Matcher {
    Eq(String),
    Ne(String),
    Regex(Regex),
}

/// A compiled set of conditions on series.
#[derive(Clone, Debug, Default)]
pub struct Selector {
    metrics: Vec<String>,
    keys: HashSet<String>,
    tags: Vec<(String, Matcher)>,
}

impl Selector {
    /// Series of any of `metrics` (all metrics when empty), or with one of `keys` (any key
    /// when empty), whose tags pass every filter.
    pub fn new(metrics: Vec<String>, keys: Vec<String>, filters: &[TagFilter]) -> Result<Self, ApiError> {
        if filters.len() > MAX_FILTERS {
            return Err(ApiError::bad_request(format!(
                "at most {MAX_FILTERS} filters are allowed"
            )));
        }
        let tags = filters
            .iter()
            .map(|f| {
                if f.tag.is_empty() {
                    return Err(ApiError::bad_request("a filter's tag must not be empty"));
                }
                let matcher = match f.op {
                    FilterOp::Eq => Matcher::Eq(f.value.clone()),
                    FilterOp::Ne => Matcher::Ne(f.value.clone()),
                    FilterOp::Regex => Matcher::Regex(
                        RegexBuilder::new(&format!("^(?:{})$", f.value))
                            .size_limit(REGEX_SIZE_LIMIT)
                            .build()
                            .map_err(|e| ApiError::bad_request(format!("filter on {:?}: invalid regex: {e}", f.tag)))?,
                    ),
                };
                Ok((f.tag.clone(), matcher))
            })
            .collect::<Result<_, _>>()?;
        Ok(Selector {
            metrics,
            keys: keys.into_iter().collect(),
            tags,
        })
    }

    /// Whether a series (by canonical key) is selected.
    pub fn matches_key(&self, key: &str) -> bool {
        let metric = tidemark_schemas::series::split_key(key).0;
        (self.metrics.is_empty() || self.metrics.iter().any(|m| m == metric)) && self.matches_within_metric(key)
    }

    /// The metrics named (empty: every metric).
    pub fn metrics(&self) -> &[String] {
        &self.metrics
    }

    /// Whether a series whose metric the caller already found selected passes the key and tag
    /// conditions (without parsing the key when there are none).
    pub fn matches_within_metric(&self, key: &str) -> bool {
        if !self.keys.is_empty() && !self.keys.contains(key) {
            return false;
        }
        if self.tags.is_empty() {
            return true;
        }
        let tags: Vec<(&str, &str)> = tidemark_schemas::series::split_key(key).1.collect();
        self.tags
            .iter()
            .all(|(name, matcher)| matcher.accepts(tags.iter().find(|(k, _)| k == name).map(|(_, v)| *v)))
    }

    /// The tag filters and keys resolved against one metric (its metric condition is the
    /// caller's: it chose the metric).
    pub fn for_metric<'v>(&'v self, metric: &MetricView<'v>) -> MetricFilter<'v> {
        let resolved = self
            .tags
            .iter()
            .map(|(name, matcher)| {
                let column = metric.column(name);
                Resolved {
                    column,
                    passes: column.map_or_else(Vec::new, |c| {
                        c.values().iter().map(|v| matcher.accepts(Some(v))).collect()
                    }),
                    absent: matcher.accepts(None),
                }
            })
            .collect();
        MetricFilter {
            resolved,
            keys: &self.keys,
        }
    }

    /// The selected series of a store view: through the metric index when metrics are named.
    pub fn select<'v>(&'v self, view: &'v StoreView<'_>) -> Box<dyn Iterator<Item = &'v SeriesEntry> + 'v> {
        if self.metrics.is_empty() {
            Box::new(view.all().filter(|s| self.matches_key(s.key())))
        } else {
            Box::new(
                self.metrics
                    .iter()
                    .flat_map(|m| view.of_metric(m))
                    .filter(|s| self.matches_key(s.key())),
            )
        }
    }
}

impl Matcher {
    fn accepts(&self, value: Option<&str>) -> bool {
        match self {
            Matcher::Eq(want) => value == Some(want.as_str()),
            Matcher::Ne(unwanted) => value != Some(unwanted.as_str()),
            Matcher::Regex(re) => value.is_some_and(|v| re.is_match(v)),
        }
    }
}

/// One filter resolved against a metric's column: whether each value id passes.
struct Resolved<'v> {
    column: Option<&'v TagColumn>,
    passes: Vec<bool>,
    absent: bool,
}

/// A selector's conditions resolved against one metric: each tag filter is evaluated once per
/// distinct value of its tag (a regex too), so checking a series is a few integer lookups.
pub struct MetricFilter<'v> {
    resolved: Vec<Resolved<'v>>,
    keys: &'v HashSet<String>,
}

impl MetricFilter<'_> {
    /// Whether the series at `position` of `metric` is selected (its entry is only read when
    /// the selector names series keys).
    pub fn passes(&self, position: usize, metric: &MetricView<'_>) -> bool {
        self.resolved
            .iter()
            .all(|r| match r.column.map_or(ABSENT, |c| c.id(position)) {
                ABSENT => r.absent,
                id => r.passes[id as usize],
            })
            && (self.keys.is_empty() || self.keys.contains(&**metric.series(position).key()))
    }
}

/// Parses `tag.KEY=VALUE` (equality), `tag_ne.KEY=VALUE` and `tag_regex.KEY=PATTERN` query
/// parameters; returns `None` for other names.
pub fn query_filter(name: &str, value: &str) -> Option<TagFilter> {
    let (op, tag) = if let Some(tag) = name.strip_prefix("tag.") {
        (FilterOp::Eq, tag)
    } else if let Some(tag) = name.strip_prefix("tag_ne.") {
        (FilterOp::Ne, tag)
    } else if let Some(tag) = name.strip_prefix("tag_regex.") {
        (FilterOp::Regex, tag)
    } else {
        return None;
    };
    Some(TagFilter {
        tag: tag.to_string(),
        op,
        value: value.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(tag: &str, op: FilterOp, value: &str) -> TagFilter {
        TagFilter {
            tag: tag.into(),
            op,
            value: value.into(),
        }
    }

    #[test]
    fn metrics_keys_and_tag_filters() {
        let selector = Selector::new(
            vec!["api.latency".into()],
            vec![],
            &[
                filter("region", FilterOp::Regex, "us|eu"),
                filter("service", FilterOp::Ne, "auth"),
            ],
        )
        .unwrap();
        assert!(selector.matches_key("api.latency|region=eu|service=cart"));
        assert!(
            !selector.matches_key("api.latency|region=eu-west|service=cart"),
            "regexes are anchored"
        );
        assert!(!selector.matches_key("api.latency|region=us|service=auth"));
        assert!(!selector.matches_key("cpu|region=us"));
        let by_key = Selector::new(vec![], vec!["cpu|host=a".into()], &[]).unwrap();
        assert!(by_key.matches_key("cpu|host=a"));
        assert!(!by_key.matches_key("cpu|host=b"));
    }

    #[test]
    fn bad_regexes_are_bad_requests() {
        let err = Selector::new(vec![], vec![], &[filter("x", FilterOp::Regex, "(")]).unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.contains("invalid regex"), "{}", err.message);
    }

    #[test]
    fn query_parameters_become_filters() {
        assert_eq!(query_filter("tag_regex.host", "a.*").unwrap().op, FilterOp::Regex);
        assert!(query_filter("limit", "3").is_none());
    }
}
