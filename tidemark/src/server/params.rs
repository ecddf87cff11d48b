//! Query-string parameters shared by discovery and export: which series, which window size,
//! which time range. Unknown parameters are rejected, so a typo is an error rather than a
//! silently ignored filter.

use super::error::ApiError;
use super::query::window;
use super::select::{Selector, TagFilter, query_filter};
use super::time;

/// A parsed series selection.
pub struct SeriesParams {
    /// The selected series.
    pub selector: Selector,
    /// A window size, if one was named.
    pub window_ms: Option<u64>,
    /// Inclusive start, epoch ms.
    pub start: Option<i64>,
    /// Exclusive end, epoch ms.
    pub end: Option<i64>,
    /// Most items to return.
    pub limit: Option<usize>,
    /// Parameters specific to the endpoint, e.g. `format`.
    pub extra: Vec<(String, String)>,
}

impl SeriesParams {
    /// Parses `pairs`; names in `extra` are handed back for the endpoint to read.
    pub fn parse(pairs: Vec<(String, String)>, sizes_ms: &[u64], extra: &[&str]) -> Result<Self, ApiError> {
        let mut metrics = Vec::new();
        let mut keys = Vec::new();
        let mut filters: Vec<TagFilter> = Vec::new();
        let mut params = SeriesParams {
            selector: Selector::default(),
            window_ms: None,
            start: None,
            end: None,
            limit: None,
            extra: Vec::new(),
        };
        for (name, value) in pairs {
            match name.as_str() {
                "metric" => metrics.push(value),
                "series" => keys.push(value),
                "window" => params.window_ms = Some(window(Some(&value), sizes_ms)?),
                "start" => params.start = Some(time::parse(&value, "start")?),
                "end" => params.end = Some(time::parse(&value, "end")?),
                "limit" => {
                    params.limit =
                        Some(value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                            ApiError::bad_request(format!("limit: {value:?} is not a positive integer"))
                        })?)
                }
                other if extra.contains(&other) => params.extra.push((name, value)),
                _ => match query_filter(&name, &value) {
                    Some(filter) => filters.push(filter),
                    None => {
                        return Err(ApiError::bad_request(format!(
                            "unknown parameter {name:?}; use metric, series, window, start, end, limit, \
                             tag.KEY, tag_ne.KEY, tag_regex.KEY{}",
                            extra.iter().map(|e| format!(", {e}")).collect::<String>()
                        )));
                    }
                },
            }
        }
        if let (Some(start), Some(end)) = (params.start, params.end)
            && start >= end
        {
            return Err(ApiError::bad_request("start must be before end"));
        }
        params.selector = Selector::new(metrics, keys, &filters)?;
        Ok(params)
    }

    /// The value of an endpoint-specific parameter.
    pub fn extra(&self, name: &str) -> Option<&str> {
        self.extra.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}
