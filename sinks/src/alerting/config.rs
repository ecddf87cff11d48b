//! `[alerts]`: rules and silences.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tidemark_schemas::Severity;

/// The `[alerts]` section.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// The rules.
    #[serde(default)]
    pub rules: Vec<AlertRule>,
    /// Silences: matching alerts still change state but send no notification.
    #[serde(default)]
    pub silences: Vec<Silence>,
}

/// Which aggregate a rule looks at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// Number of events.
    Count,
    /// Sum.
    Sum,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Mean.
    #[default]
    Avg,
    /// Median.
    P50,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
    /// Distinct count.
    Distinct,
}

impl Field {
    /// The name used in summaries and in the output schema.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Count => "count",
            Field::Sum => "sum",
            Field::Min => "min",
            Field::Max => "max",
            Field::Avg => "avg",
            Field::P50 => "p50",
            Field::P95 => "p95",
            Field::P99 => "p99",
            Field::Distinct => "distinct",
        }
    }
}

/// When a series is in trouble.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// The field is above the value.
    Above(f64),
    /// The field is below the value.
    Below(f64),
    /// The anomaly score of the window is above the value (0-1).
    AnomalyAbove(f64),
    /// The field is outside the forecast's prediction interval (80 or 95 %).
    OutsideForecast(u8),
    /// The field changed by more than this fraction from the previous window (0.5 = ±50 %).
    RateOfChangeAbove(f64),
    /// No window for the series for this long (event time), e.g. "5m".
    #[serde(with = "humantime_serde")]
    AbsentFor(Duration),
}

/// One alert rule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// Unique name.
    pub name: String,
    /// The metric it watches.
    pub metric: String,
    /// Tag equality filters on the series.
    #[serde(default)]
    pub filters: BTreeMap<String, String>,
    /// Window size it looks at (default 1m).
    #[serde(default = "one_minute", with = "humantime_serde")]
    pub window: Duration,
    /// The aggregate (default avg).
    #[serde(default)]
    pub field: Field,
    /// The condition.
    pub condition: Condition,
    /// How long the condition must hold before the alert fires (default 0: at once).
    #[serde(default, rename = "for", with = "humantime_serde")]
    pub for_duration: Duration,
    /// How long the condition must stay false before the alert resolves (default 0).
    #[serde(default, with = "humantime_serde")]
    pub keep_firing_for: Duration,
    /// Severity (routing of notifications).
    pub severity: Severity,
    /// Tags that split the rule into separate alerts (default: one alert for all series).
    #[serde(default)]
    pub group_by: Vec<String>,
}

fn one_minute() -> Duration {
    Duration::from_secs(60)
}

/// Mutes notifications of matching alerts until a time.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Silence {
    /// Rule name (default: any rule).
    #[serde(default)]
    pub rule: Option<String>,
    /// Group labels that must match exactly.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Until when (wall clock, epoch ms).
    pub until_ms: i64,
    /// Why, for the humans.
    #[serde(default)]
    pub comment: String,
}

impl Silence {
    /// Whether the silence mutes an alert of `rule` with `labels` at wall-clock `now_ms`.
    pub fn mutes(&self, rule: &str, labels: &BTreeMap<String, String>, now_ms: i64) -> bool {
        now_ms < self.until_ms
            && self.rule.as_deref().is_none_or(|r| r == rule)
            && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

impl AlertsConfig {
    /// Checks the rules; the message names the key and the fix.
    pub fn validate(&self) -> Result<(), String> {
        for (i, rule) in self.rules.iter().enumerate() {
            let at = |key: &str| format!("alerts.rules[{i}].{key}");
            if rule.name.is_empty() || self.rules[..i].iter().any(|r| r.name == rule.name) {
                return Err(format!(
                    "{}: \"{}\" is empty or not unique; give every rule its own name",
                    at("name"),
                    rule.name
                ));
            }
            if rule.window.as_millis() == 0 {
                return Err(format!(
                    "{}: must be a window size the pipeline computes, e.g. \"1m\"",
                    at("window")
                ));
            }
            match &rule.condition {
                Condition::AnomalyAbove(x) if !(0.0..1.0).contains(x) => {
                    return Err(format!(
                        "{}: anomaly_above = {x} is outside 0..1; scores are in [0, 1], e.g. 0.9",
                        at("condition")
                    ));
                }
                Condition::OutsideForecast(band) if *band != 80 && *band != 95 => {
                    return Err(format!(
                        "{}: outside_forecast = {band}; use 80 or 95 (the intervals forecasts carry)",
                        at("condition")
                    ));
                }
                Condition::RateOfChangeAbove(x) if *x <= 0.0 => {
                    return Err(format!(
                        "{}: rate_of_change_above = {x} must be positive, e.g. 0.5 for ±50 %",
                        at("condition")
                    ));
                }
                Condition::Above(x) | Condition::Below(x) if !x.is_finite() => {
                    return Err(format!("{}: the threshold must be a finite number", at("condition")));
                }
                _ => {}
            }
        }
        Ok(())
    }
}
