//! `GET /api/v1/series`: which series the live store holds, with their tags, window sizes
//! and newest windows — what a client needs before it queries or subscribes.

use super::error::ApiError;
use super::params::SeriesParams;
use serde::Serialize;
use std::collections::BTreeMap;
use tidemark_schemas::output::window_label;
use tidemark_sinks::live::StoreView;

/// Default and largest page of series.
const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;

/// One series.
#[derive(Serialize)]
pub struct SeriesInfo {
    /// Canonical key.
    pub key: String,
    /// Metric name.
    pub metric: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Per window size held: start of the newest window.
    pub latest: BTreeMap<String, i64>,
    /// Anomaly scores held.
    pub anomalies: usize,
    /// Forecast points held.
    pub forecasts: usize,
}

/// The response body.
#[derive(Serialize)]
pub struct SeriesList {
    /// Matching series, metric by metric.
    pub series: Vec<SeriesInfo>,
    /// How many series matched in all.
    pub total: usize,
    /// Whether `series` was cut at the limit.
    pub truncated: bool,
    /// Every metric held (to build pickers), sorted.
    pub metrics: Vec<String>,
}

/// Lists the series selected by `params`.
pub fn list(view: &StoreView<'_>, params: &SeriesParams) -> Result<SeriesList, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!("limit: at most {MAX_LIMIT}")));
    }
    let mut series = Vec::new();
    let mut total = 0;
    for entry in params.selector.select(view) {
        if params.window_ms.is_some_and(|ms| entry.ring(ms).is_none()) {
            continue;
        }
        total += 1;
        if series.len() < limit {
            series.push(SeriesInfo {
                key: entry.key().to_string(),
                metric: entry.metric().to_string(),
                tags: entry.tags().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                latest: entry
                    .rings()
                    .iter()
                    .filter_map(|r| Some((window_label(r.window_ms()), r.newest_start()?)))
                    .collect(),
                anomalies: entry.anomalies().len(),
                forecasts: entry.forecasts().len(),
            });
        }
    }
    Ok(SeriesList {
        truncated: total > series.len(),
        series,
        total,
        metrics: view.metrics().into_iter().map(String::from).collect(),
    })
}
