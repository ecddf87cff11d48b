//! Habituation to one-point spikes.
//!
//! Some series (tweet counts, request bursts, batch jobs at irregular times) are full of
//! one-point spikes that vanish at the next point: each is rare for the series' residuals, so
//! calibration alone keeps scoring them as anomalies, yet operators learn to ignore them. An
//! anomaly that lasts (a surge, a level shift, a new shape) still deviates at its second point.
//!
//! So each series tracks, over its *surprising* points (calibrated surprise at least 1), the
//! share that were isolated (less than `HELD` of their deviation survived to the next point)
//! and the typical size of those isolated spikes. A new surprise is divided by
//! `HABITUATION · share · typical size` when that exceeds 1: in a series whose surprises are
//! mostly spikes of size S, a spike counts in multiples of S. One point later, if the
//! deviation held, the point scores its full surprise scaled by the share that held, so a
//! lasting anomaly is reported one point later rather than not at all. A series whose
//! surprises last (most sensors) has a share near 0 and is scored as before.

/// Calibrated surprise from which a point counts as a surprise whose fate is learnt: the
/// series' own tracked quantile.
const SURPRISING: f64 = 1.0;
/// Share of a surprise's deviation (from the expectation before it) that must survive to the
/// next point for the surprise to count as lasting.
const HELD: f64 = 0.5;
/// Weight of the newest surprise in the share of isolated ones: about the last ten surprises.
const SHARE_WEIGHT: f64 = 0.1;
/// Weight of the newest isolated spike in their mean log size: about the last three.
const SIZE_WEIGHT: f64 = 0.3;
/// How strongly a spiky series discounts a new spike (tuned on NAB together with the two
/// weights above: over 1.25–1.75 and weights of 0.05–0.15 and 0.25–0.4 the score is
/// 74.6–77.1, median 75.7).
const HABITUATION: f64 = 1.5;

/// Spike habituation state of one series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spikes {
    share: f64,
    log_size: f64,
    /// `HABITUATION · share · exp(log_size)`, at least 1: recomputed only when a surprise is
    /// learnt, so ordinary points cost no `exp`.
    discount: f64,
    last: Option<Last>,
}

/// The previous point: its calibrated surprise, its deviation from what was expected, and that
/// expectation.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Last {
    surprise: f64,
    deviation: f64,
    expected: f64,
}

impl Spikes {
    /// No surprise seen yet.
    pub fn new() -> Self {
        Spikes {
            share: 0.0,
            log_size: 0.0,
            discount: 1.0,
            last: None,
        }
    }

    /// The calibrated surprise to score for a point with calibrated surprise `surprise`,
    /// `value` and expectation `expected`: its own surprise discounted by the series'
    /// habituation, or the previous point's surprise where that point's deviation held.
    /// Learns whether the previous point's surprise was an isolated spike. A non-finite
    /// surprise (before the scales exist) is returned unchanged and not remembered.
    pub fn weigh(&mut self, surprise: f64, value: f64, expected: f64) -> f64 {
        if !surprise.is_finite() {
            return surprise;
        }
        let mut lasting = 0.0;
        if let Some(last) = self.last {
            let held = if last.deviation == 0.0 {
                0.0
            } else {
                ((value - last.expected) / last.deviation).clamp(0.0, 1.0)
            };
            let isolated = held < HELD;
            if last.surprise >= SURPRISING {
                self.share += SHARE_WEIGHT * (f64::from(u8::from(isolated)) - self.share);
                if isolated {
                    self.log_size += SIZE_WEIGHT * (last.surprise.ln() - self.log_size);
                }
                self.discount = (HABITUATION * self.share * self.log_size.exp()).max(1.0);
            }
            if !isolated {
                lasting = last.surprise * held;
            }
        }
        self.last = Some(Last {
            surprise,
            deviation: value - expected,
            expected,
        });
        (surprise / self.discount).max(lasting)
    }
}
