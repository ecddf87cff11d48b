//! Exponentially weighted location and scale: O(1) time, two floats of state.
//!
//! The scale is a mean absolute deviation rather than a variance because real metrics are
//! heavy-tailed: one spike squared would dominate a variance for hundreds of points, while its
//! absolute deviation is additionally clipped (winsorised) before it enters the average, so a
//! single anomaly cannot mask the next one.

/// Exponentially weighted mean and mean absolute deviation of a stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ewm {
    /// Weight of the newest value.
    alpha: f64,
    mean: f64,
    deviation: f64,
    seen: u32,
}

/// Deviations are clipped at this many current deviations before they update the scale.
const WINSOR: f64 = 4.0;

impl Ewm {
    /// A tracker giving the newest value weight `alpha` (0..1]; `1/alpha` is its memory in points.
    pub fn new(alpha: f64) -> Self {
        Ewm {
            alpha,
            mean: 0.0,
            deviation: 0.0,
            seen: 0,
        }
    }

    /// Folds in `x`. The first values use an equal-weight average (weight `1/n`) so the
    /// tracker is unbiased before `1/alpha` points have been seen.
    pub fn update(&mut self, x: f64) {
        self.seen = self.seen.saturating_add(1);
        let weight = self.alpha.max(1.0 / f64::from(self.seen));
        let deviation = (x - self.mean).abs();
        let clipped = if self.seen > 2 && self.deviation > 0.0 {
            deviation.min(WINSOR * self.deviation)
        } else {
            deviation
        };
        if self.seen > 1 {
            self.deviation += weight * (clipped - self.deviation);
        }
        self.mean += weight * (x - self.mean);
    }

    /// The current mean.
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// The current mean absolute deviation.
    pub fn deviation(&self) -> f64 {
        self.deviation
    }
}
