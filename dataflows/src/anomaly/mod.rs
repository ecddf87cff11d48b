//! Streaming anomaly detection: one [`Detector`] per series, fed the closed base windows in
//! order, scoring every point in [0, 1] in O(1) time with fixed-size state.
//!
//! The detector combines several signals, each normalised by the series' own robust scale so
//! that one threshold works across series:
//!
//! * **point surprise**: the residual after a short-term level and a seasonal profile
//!   ([`season`]), daily or, where it fits clearly better, weekly ([`choice`]), in units of the
//!   residuals' robust scale ([`ewm`]);
//! * **level shift**: a fast mean of the deseasonalised series leaving the slow one, in units
//!   of the slow deviation;
//! * **novelty**: a value outside every value seen so far, relative to the seen range; more
//!   weakly, a value far outside the range spanned by the *second* highest and lowest values,
//!   so that one early outlier cannot blind the signal for good; and a *sustained* novelty: a
//!   short mean of the values outside every such mean seen so far. A single new high may be
//!   noise; a run of them that takes the mean to a new high (a burst, a slow climb, a new regime
//!   whose noise now reaches past it) is what the raw range misses once an outlier has widened
//!   it.
//!
//! Point and level-shift surprise, calibrated, first pass through [`spike`]: a series full of
//! one-point spikes that vanish at the next point learns to discount them, while an anomaly
//! that lasts still scores at its second point.
//!
//! Then [`alarm`] turns the combined surprise into a score with suppression: after an alarm,
//! a series only alarms again within `suppress_points` when the anomaly is clearly stronger.
//! Anomalies arrive as episodes, not points; re-alarming on every point of one episode is
//! what makes detectors noisy (and what NAB's cost of false positives punishes).

mod alarm;
mod calibrate;
mod choice;
mod ewm;
mod season;
mod settings;
mod spike;
#[cfg(test)]
mod tests;

pub use settings::{DetectorSettings, DetectorSettingsError};

use alarm::Alarm;
use calibrate::Calibrator;
use choice::Profiles;
use ewm::Ewm;
use spike::Spikes;

/// The score of one point and what the detector expected there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scored {
    /// Anomaly score in [0, 1].
    pub score: f64,
    /// The value the detector expected (short-term level plus seasonal offset).
    pub expected: f64,
}

/// Relative floor of every scale, so that noise-free series do not divide by zero and a
/// change of a millionth of the series' magnitude is not an anomaly.
const RELATIVE_FLOOR: f64 = 1e-3;

/// A per-series streaming anomaly detector.
#[derive(Clone, Debug)]
pub struct Detector {
    warmup: u32,
    seen: u32,
    level_alpha: f64,
    level: f64,
    residual: Ewm,
    slow: Ewm,
    fast: Ewm,
    min: f64,
    max: f64,
    second_min: f64,
    second_max: f64,
    smooth_alpha: f64,
    smooth: f64,
    smooth_min: f64,
    smooth_max: f64,
    profiles: Option<Profiles>,
    calibrator: Calibrator,
    spikes: Spikes,
    novelty_weight: f64,
    second_novelty_weight: f64,
    smooth_novelty_weight: f64,
    novelty_tolerance: f64,
    alarm: Alarm,
}

impl Detector {
    /// A detector with `settings` (which should have passed [`DetectorSettings::validate`]).
    pub fn new(settings: &DetectorSettings) -> Self {
        let scale_alpha = 1.0 / settings.scale_points;
        Detector {
            warmup: settings.warmup,
            seen: 0,
            level_alpha: 1.0 / settings.level_points,
            level: 0.0,
            residual: Ewm::new(scale_alpha),
            slow: Ewm::new(scale_alpha),
            fast: Ewm::new(1.0 / settings.shift_points),
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            second_min: f64::INFINITY,
            second_max: f64::NEG_INFINITY,
            smooth_alpha: 1.0 / settings.smooth_points,
            smooth: 0.0,
            smooth_min: f64::INFINITY,
            smooth_max: f64::NEG_INFINITY,
            profiles: (settings.season_buckets > 0).then(|| Profiles::new(settings.season_buckets, scale_alpha * 4.0)),
            calibrator: Calibrator::new(settings.calibration_level),
            spikes: Spikes::new(),
            novelty_weight: settings.novelty_weight,
            second_novelty_weight: settings.second_novelty_weight,
            smooth_novelty_weight: settings.smooth_novelty_weight,
            novelty_tolerance: settings.novelty_tolerance,
            alarm: Alarm::new(settings.suppress_points, settings.suppress_ratio),
        }
    }

    /// Scores the next point (`ts_ms` must not go backwards) and learns from it. A non-finite
    /// value scores 0 and is not learnt, so one bad aggregate cannot poison the state.
    pub fn update(&mut self, ts_ms: i64, value: f64) -> Scored {
        let buckets = self.profiles.as_ref().map_or((0, 0), |p| p.buckets(ts_ms));
        let (season, bucket_scale) = self.profiles.as_ref().map_or((0.0, 0.0), |p| p.season(buckets));
        let expected = if self.seen == 0 { value } else { self.level + season };
        if !value.is_finite() {
            return Scored { score: 0.0, expected };
        }
        let residual = value - expected;
        let floor = RELATIVE_FLOOR * (self.max - self.min).max(self.slow.mean().abs()).max(f64::MIN_POSITIVE);

        let scale = self.residual.deviation().max(bucket_scale).max(floor);
        let point = (residual - self.residual.mean()).abs() / scale;
        self.fast.update(value - season);
        let shift = (self.fast.mean() - self.slow.mean()).abs() / self.slow.deviation().max(floor);
        let novelty = (self.novelty(value, self.min, self.max, floor) * self.novelty_weight)
            .max(self.novelty(value, self.second_min, self.second_max, floor) * self.second_novelty_weight);
        let smooth = if self.seen == 0 {
            value
        } else {
            self.smooth + self.smooth_alpha * (value - self.smooth)
        };
        let smooth_novelty = self.novelty(smooth, self.smooth_min, self.smooth_max, floor) * self.smooth_novelty_weight;
        let surprise = point.max(shift);
        let calibrated = self
            .spikes
            .weigh(self.calibrator.ratio(surprise), value, expected)
            .max(novelty)
            .max(smooth_novelty);
        self.calibrator.learn(surprise);

        let score = if self.seen >= self.warmup {
            self.alarm.score(calibrated)
        } else {
            0.0
        };

        self.smooth = smooth;
        self.learn(buckets, value, residual);
        Scored { score, expected }
    }

    /// How far `x` lies outside `[min, max]`, as a fraction of that range beyond the tolerance
    /// (0 inside it, and while nothing has been seen).
    fn novelty(&self, x: f64, min: f64, max: f64, floor: f64) -> f64 {
        if min > max {
            return 0.0;
        }
        let range = (max - min).max(floor);
        ((x - max).max(min - x) / range - self.novelty_tolerance).max(0.0)
    }

    fn learn(&mut self, buckets: (usize, usize), value: f64, residual: f64) {
        self.seen = self.seen.saturating_add(1);
        if self.seen == 1 {
            self.level = value;
        }
        let (level, first) = (self.level, self.seen == 1);
        let season = self.profiles.as_mut().map_or(0.0, |p| {
            p.learn(buckets, value - level, residual, first);
            p.season(buckets).0
        });
        self.level += self.level_alpha * (value - season - self.level);
        self.residual.update(residual);
        self.slow.update(value - season);
        if value > self.max {
            self.second_max = self.max;
            self.max = value;
        } else if value > self.second_max {
            self.second_max = value;
        }
        if value < self.min {
            self.second_min = self.min;
            self.min = value;
        } else if value < self.second_min {
            self.second_min = value;
        }
        self.smooth_min = self.smooth_min.min(self.smooth);
        self.smooth_max = self.smooth_max.max(self.smooth);
    }

    /// Bytes of state one series costs (the struct plus its seasonal profiles).
    pub fn state_bytes(&self) -> usize {
        size_of::<Self>() + self.profiles.as_ref().map_or(0, Profiles::heap_bytes)
    }
}
