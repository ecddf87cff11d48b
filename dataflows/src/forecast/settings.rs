//! Forecaster settings, as configured under `[forecast]` (and per metric).

use serde::Deserialize;
use thiserror::Error;

/// Which seasonal period the model uses, in the series' own steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seasonality {
    /// Detect it at every refit among the hourly, daily and weekly periods that the series'
    /// step allows (a period needs whole steps and three cycles of history).
    #[default]
    Auto,
    /// No seasonality.
    None,
    /// One hour of steps (e.g. 60 for 1-minute windows).
    Hourly,
    /// One day of steps.
    Daily,
    /// One week of steps.
    Weekly,
    /// An explicit period in steps (e.g. 12 for monthly data), written `{ steps = 12 }`.
    Steps(u32),
}

/// How the per-series forecaster models and refits.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForecastSettings {
    /// The seasonal period (default `auto`).
    pub seasonality: Seasonality,
    /// Steps ahead to forecast (default 60).
    pub horizon: usize,
    /// Longest seasonal period the model keeps state for, in steps (default 1440): each
    /// step of the period costs 8 bytes per series, and three periods of history are kept.
    pub max_period: u32,
    /// Most points of history kept for refits (default 4096).
    pub max_history: usize,
    /// Points between refits (default 0: after an eighth of the fitted history in new points
    /// while it is under 256 points, then after twice as many new points as the last fit
    /// saw, which bounds the amortised cost per point; a fixed cadence costs a refit of up to
    /// `max_history` points every `refit_every` points).
    pub refit_every: u32,
}

impl Default for ForecastSettings {
    fn default() -> Self {
        ForecastSettings {
            seasonality: Seasonality::Auto,
            horizon: 60,
            max_period: 1440,
            max_history: 4096,
            refit_every: 0,
        }
    }
}

/// A forecast setting out of range, naming the key and the fix.
#[derive(Debug, Error, PartialEq)]
#[error("forecast.{key}: {problem}; {fix}")]
pub struct ForecastSettingsError {
    /// The key under `[forecast]`.
    pub key: &'static str,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: &'static str,
}

impl ForecastSettings {
    /// Checks every setting's range.
    pub fn validate(&self) -> Result<(), ForecastSettingsError> {
        let err = |key, problem: String, fix| Err(ForecastSettingsError { key, problem, fix });
        if !(1..=10_000).contains(&self.horizon) {
            return err(
                "horizon",
                format!("{} is outside 1..=10000", self.horizon),
                "forecast e.g. 60 steps ahead",
            );
        }
        if !(2..=100_000).contains(&self.max_period) {
            return err(
                "max_period",
                format!("{} is outside 2..=100000", self.max_period),
                "1440 allows daily seasonality of 1-minute windows",
            );
        }
        if let Seasonality::Steps(steps) = self.seasonality
            && !(2..=self.max_period).contains(&steps)
        {
            return err(
                "seasonality",
                format!("{{ steps = {steps} }} is outside 2..=max_period ({})", self.max_period),
                "use \"none\" for no seasonality, or raise max_period",
            );
        }
        if self.max_history < 16 || self.max_history > 1 << 20 {
            return err(
                "max_history",
                format!("{} is outside 16..=1048576", self.max_history),
                "keep at least three seasonal periods, e.g. 4096",
            );
        }
        Ok(())
    }
}
