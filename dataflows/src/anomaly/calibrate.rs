//! Per-series calibration of surprise: how unusual is this surprise *for this series*?
//!
//! Robust z-scores are not comparable across series: a bursty count metric produces residuals
//! of ten scales every day, a sensor never does. The calibrator tracks a high quantile of the
//! series' own surprise (a stochastic-approximation quantile of its logarithm: O(1), one
//! float) and expresses each new surprise as a multiple of it, so one threshold means "rare
//! for this series" everywhere.

/// Log-domain step of the quantile estimate: small, so that an anomalous episode moves the
/// quantile little, yet a series' tail is learnt within a few hundred points.
const STEP: f64 = 0.01;

/// Calibration state of one series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Calibrator {
    log_quantile: f64,
    level: f64,
}

impl Calibrator {
    /// Tracks the `level` quantile (e.g. 0.993) of surprise.
    pub fn new(level: f64) -> Self {
        Calibrator {
            log_quantile: 0.0,
            level,
        }
    }

    /// The surprise as a multiple of the tracked quantile, before learning from it.
    pub fn ratio(&self, surprise: f64) -> f64 {
        surprise / self.log_quantile.exp()
    }

    /// Folds in one surprise: the estimate rises by `STEP·level` when exceeded and falls by
    /// `STEP·(1 − level)` otherwise, which balances exactly at the `level` quantile.
    pub fn learn(&mut self, surprise: f64) {
        if surprise.max(1e-6).ln() > self.log_quantile {
            self.log_quantile += STEP * self.level;
        } else {
            self.log_quantile -= STEP * (1.0 - self.level);
        }
    }
}
