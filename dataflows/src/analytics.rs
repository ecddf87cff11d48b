//! Anomaly scores and forecasts on closed base windows.
//!
//! Each series owned by a worker gets a [`Detector`] and a [`Forecaster`], fed the chosen
//! aggregate of every base window as it closes, in event-time order (the window operator closes
//! windows in order). Both are O(1) per point with bounded state, so analytics cost grows with
//! the number of series, not the number of events; `max_series` caps that per worker.

use crate::anomaly::{Detector, DetectorSettings};
use crate::forecast::{ForecastSettings, Forecaster};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use thiserror::Error;
use tidemark_connectors::IdBuildHasher;
use tidemark_schemas::{Aggregates, AnomalyScore, ForecastPoint, SeriesId};
use tracing::warn;

/// Which aggregate of a window is scored and forecast.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoredField {
    /// `count` for metrics that count events (every value 1), `avg` otherwise.
    Auto,
    /// Number of events.
    Count,
    /// Sum.
    Sum,
    /// Mean.
    Avg,
    /// Median.
    P50,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
    /// Maximum.
    Max,
    /// Distinct count.
    Distinct,
}

/// `[analytics]`: anomaly detection and forecasting.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsSettings {
    /// Run detection and forecasting (default true).
    pub enabled: bool,
    /// The aggregate to analyse (default `auto`).
    pub field: ScoredField,
    /// Per-metric overrides of `field`, e.g. `{ "api.request.latency_ms" = "p95" }`.
    pub fields: BTreeMap<String, ScoredField>,
    /// Detector tuning.
    pub detector: DetectorSettings,
    /// Forecaster tuning.
    pub forecast: ForecastSettings,
    /// Emit a forecast every this many windows per series (default 5).
    pub forecast_every: u32,
    /// Most series per worker with analytics state (default 10000: about 36 KB each, so
    /// a bounded 360 MB per worker; series beyond it are aggregated but not analysed).
    pub max_series: usize,
}

impl Default for AnalyticsSettings {
    fn default() -> Self {
        AnalyticsSettings {
            enabled: true,
            field: ScoredField::Auto,
            fields: BTreeMap::new(),
            detector: DetectorSettings::default(),
            forecast: ForecastSettings::default(),
            forecast_every: 5,
            max_series: 10_000,
        }
    }
}

/// An analytics mistake, naming the key and the fix.
#[derive(Debug, Error)]
#[error("analytics.{key}: {problem}")]
pub struct AnalyticsSettingsError {
    key: String,
    problem: String,
}

impl AnalyticsSettings {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), AnalyticsSettingsError> {
        self.detector.validate().map_err(|e| AnalyticsSettingsError {
            key: "detector".into(),
            problem: e.to_string(),
        })?;
        self.forecast.validate().map_err(|e| AnalyticsSettingsError {
            key: "forecast".into(),
            problem: e.to_string(),
        })?;
        if self.forecast_every == 0 {
            return Err(AnalyticsSettingsError {
                key: "forecast_every".into(),
                problem: "must be at least 1 (windows between forecasts)".into(),
            });
        }
        Ok(())
    }
}

struct SeriesAnalytics {
    detector: Detector,
    forecaster: Forecaster,
    windows: u32,
}

/// The analytics state of one worker's series.
pub struct Analytics {
    settings: AnalyticsSettings,
    series: HashMap<SeriesId, SeriesAnalytics, IdBuildHasher>,
    warned_full: bool,
}

impl Analytics {
    /// Analytics with `settings`.
    pub fn new(settings: AnalyticsSettings) -> Self {
        Analytics {
            settings,
            series: HashMap::default(),
            warned_full: false,
        }
    }

    fn value(&self, key: &str, counted: bool, a: &Aggregates) -> Option<(&'static str, f64)> {
        let metric = key.split('|').next().unwrap_or_default();
        let field = self.settings.fields.get(metric).copied().unwrap_or(self.settings.field);
        let chosen = match field {
            ScoredField::Auto if counted => ("count", Some(a.count as f64)),
            ScoredField::Auto | ScoredField::Avg => ("avg", Some(a.avg)),
            ScoredField::Count => ("count", Some(a.count as f64)),
            ScoredField::Sum => ("sum", Some(a.sum)),
            ScoredField::P50 => ("p50", a.p50),
            ScoredField::P95 => ("p95", a.p95),
            ScoredField::P99 => ("p99", a.p99),
            ScoredField::Max => ("max", Some(a.max)),
            ScoredField::Distinct => ("distinct", a.distinct.map(|d| d as f64)),
        };
        chosen.1.filter(|v| v.is_finite()).map(|v| (chosen.0, v))
    }

    /// Feeds one closed base window; appends its score and, every `forecast_every` windows (at
    /// an offset of its own per series), a forecast of the next `horizon` windows.
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &mut self,
        series: SeriesId,
        key: &Arc<str>,
        counted: bool,
        window_ms: u64,
        window_start: u64,
        aggregates: &Aggregates,
        scores: &mut Vec<AnomalyScore>,
        forecasts: &mut Vec<ForecastPoint>,
    ) {
        let Some((field, value)) = self.value(key, counted, aggregates) else {
            return;
        };
        if !self.series.contains_key(&series) && self.series.len() >= self.settings.max_series {
            if !self.warned_full {
                self.warned_full = true;
                warn!(
                    limit = self.settings.max_series,
                    "analytics.max_series reached on a worker: new series get no anomaly scores or forecasts"
                );
            }
            return;
        }
        let settings = &self.settings;
        let state = self.series.entry(series).or_insert_with(|| SeriesAnalytics {
            detector: Detector::new(&settings.detector),
            forecaster: Forecaster::new(&settings.forecast).staggered(series.0),
            windows: 0,
        });
        let ts = window_start as i64;
        let scored = state.detector.update(ts, value);
        scores.push(AnomalyScore {
            series: key.clone(),
            window_ms,
            window_start: ts,
            field,
            value,
            expected: scored.expected,
            score: scored.score,
        });
        state.forecaster.update(ts, value);
        state.windows += 1;
        // Each series forecasts at its own offset within the `forecast_every` windows, so a
        // window does not carry every series' forecast at once (series that start together
        // would otherwise burst `horizon` points each through every sink in the same window).
        let offset = (series.0 % u64::from(settings.forecast_every)) as u32;
        if (state.windows + offset).is_multiple_of(settings.forecast_every) {
            for (step, point) in state
                .forecaster
                .forecast(settings.forecast.horizon)
                .into_iter()
                .enumerate()
            {
                let horizon = step as u32 + 1;
                forecasts.push(ForecastPoint {
                    series: key.clone(),
                    field,
                    window_ms,
                    window_start: ts + i64::from(horizon) * window_ms as i64,
                    horizon,
                    mean: point.mean,
                    lower80: point.lower80,
                    upper80: point.upper80,
                    lower95: point.lower95,
                    upper95: point.upper95,
                });
            }
        }
    }
}
