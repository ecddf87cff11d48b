//! Detector settings, as configured under `[anomaly]` (and per metric).

use serde::Deserialize;
use thiserror::Error;

/// How the streaming detector weighs its signals and how it raises alarms.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorSettings {
    /// Points a series must have seen before it is scored (default 200): the statistics need
    /// this long to settle, and scoring earlier only produces false alarms. A seasonal series
    /// is only fully learnt after one day of points; until then new daily highs and lows can
    /// still alarm.
    pub warmup: u32,
    /// Memory of the short-term level, in points (default 2): short, so the expected value
    /// follows the series closely and a spike stands out against its immediate past.
    pub level_points: f64,
    /// Memory of the residual scale and of the long-term statistics, in points (default 400).
    pub scale_points: f64,
    /// Memory of the fast mean that exposes level shifts, in points (default 12).
    pub shift_points: f64,
    /// Slices of the day in the daily seasonal profile (default 96, i.e. 15 minutes; 0 turns
    /// seasonality off). The weekly profile, used instead where it fits clearly better, has
    /// seven times as many; together they cost 8 × 12 bytes per slice and series.
    pub season_buckets: usize,
    /// Points after an alarm during which only a clearly stronger anomaly alarms again
    /// (default 75).
    pub suppress_points: u32,
    /// How much stronger (as a ratio of surprise) an anomaly must be to alarm during the
    /// suppression period (default 2).
    pub suppress_ratio: f64,
    /// Quantile of the series' own surprise that calibration divides by (default 0.993).
    pub calibration_level: f64,
    /// Calibrated surprise per relative exceedance of the range seen so far, beyond the
    /// tolerance (default 400): a value 1.5 % of the range beyond anything seen before (with
    /// the default tolerance) is as surprising as 2 calibrated units, i.e. a score of 0.4.
    pub novelty_weight: f64,
    /// Calibrated surprise per relative exceedance of the range spanned by the second-highest
    /// and second-lowest values seen so far, beyond the tolerance (default 10): small, so that
    /// only a value far beyond everything but one earlier outlier counts (17.5 % of that range
    /// scores at the usual threshold), yet one early outlier no longer hides every later
    /// record for good.
    pub second_novelty_weight: f64,
    /// Calibrated surprise per relative exceedance of the range of the short mean (see
    /// `smooth_points`) seen so far, beyond the same tolerance (default 50): lower than
    /// `novelty_weight` because that range is narrower (spikes are averaged out), so the same
    /// event exceeds it by a larger fraction.
    pub smooth_novelty_weight: f64,
    /// Memory of the short mean whose new highs and lows are *sustained* novelty, in points
    /// (default 10): long enough that a single spike barely moves it, short enough that a
    /// burst of a few dozen points does.
    pub smooth_points: f64,
    /// Exceedance of the range seen so far, as a fraction of it, that is not novel yet
    /// (default 0.01): new highs by a hair are normal in a noisy series.
    pub novelty_tolerance: f64,
}

impl Default for DetectorSettings {
    fn default() -> Self {
        DetectorSettings {
            warmup: 200,
            level_points: 2.0,
            scale_points: 400.0,
            shift_points: 12.0,
            season_buckets: 96,
            suppress_points: 75,
            suppress_ratio: 2.0,
            calibration_level: 0.993,
            novelty_weight: 400.0,
            second_novelty_weight: 10.0,
            smooth_novelty_weight: 50.0,
            smooth_points: 10.0,
            novelty_tolerance: 0.01,
        }
    }
}

/// A detector setting out of range, naming the key and the fix.
#[derive(Debug, Error, PartialEq)]
#[error("anomaly.{key}: {problem}; {fix}")]
pub struct DetectorSettingsError {
    /// The key under `[anomaly]`.
    pub key: &'static str,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: &'static str,
}

impl DetectorSettings {
    /// Checks every setting's range.
    pub fn validate(&self) -> Result<(), DetectorSettingsError> {
        let memory = |key: &'static str, value: f64| {
            if value.is_finite() && (1.0..=1e6).contains(&value) {
                Ok(())
            } else {
                Err(DetectorSettingsError {
                    key,
                    problem: format!("{value} is outside 1..=1000000 points"),
                    fix: "give the memory in points, e.g. 10 for fast and 400 for slow statistics",
                })
            }
        };
        memory("level_points", self.level_points)?;
        memory("scale_points", self.scale_points)?;
        memory("shift_points", self.shift_points)?;
        memory("smooth_points", self.smooth_points)?;
        if self.shift_points >= self.scale_points {
            return Err(DetectorSettingsError {
                key: "shift_points",
                problem: format!(
                    "{} is not shorter than scale_points ({})",
                    self.shift_points, self.scale_points
                ),
                fix: "a level shift is a fast mean leaving the slow one: keep shift_points well below scale_points",
            });
        }
        if self.season_buckets > 1440 {
            return Err(DetectorSettingsError {
                key: "season_buckets",
                problem: format!("{} is more than one bucket per minute of the day", self.season_buckets),
                fix: "use 0 (no seasonality) up to 1440; 48 (half-hours) suits most metrics",
            });
        }
        if !(self.suppress_ratio.is_finite() && self.suppress_ratio >= 1.0) {
            return Err(DetectorSettingsError {
                key: "suppress_ratio",
                problem: format!("{} is below 1", self.suppress_ratio),
                fix: "use a ratio of at least 1, e.g. 1.5: a repeated alarm must be stronger than the last",
            });
        }
        if !(self.calibration_level > 0.5 && self.calibration_level < 1.0) {
            return Err(DetectorSettingsError {
                key: "calibration_level",
                problem: format!("{} is outside (0.5, 1)", self.calibration_level),
                fix: "use a high quantile such as 0.993: surprise is measured against the series' own tail",
            });
        }
        let weight = |key: &'static str, value: f64, fix: &'static str| {
            if value.is_finite() && value >= 0.0 {
                Ok(())
            } else {
                Err(DetectorSettingsError {
                    key,
                    problem: format!("{value} is not a non-negative number"),
                    fix,
                })
            }
        };
        weight(
            "novelty_weight",
            self.novelty_weight,
            "use 0 to ignore new highs and lows, or e.g. 400",
        )?;
        weight(
            "second_novelty_weight",
            self.second_novelty_weight,
            "use 0 to ignore values beyond all but one earlier extreme, or e.g. 10",
        )?;
        weight(
            "smooth_novelty_weight",
            self.smooth_novelty_weight,
            "use 0 to ignore new highs and lows of the short mean, or e.g. 50",
        )?;
        if !(0.0..=1.0).contains(&self.novelty_tolerance) {
            return Err(DetectorSettingsError {
                key: "novelty_tolerance",
                problem: format!("{} is outside 0..=1", self.novelty_tolerance),
                fix: "give a fraction of the seen range, e.g. 0.01",
            });
        }
        Ok(())
    }
}
