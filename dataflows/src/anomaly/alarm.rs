//! From calibrated surprise to score, with suppression of repeated alarms.
//!
//! Calibrated surprise is unbounded (multiples of the series' own high quantile); the score
//! maps it into [0, 1) with `s / (s + HALF)`, so a surprise of `HALF` scores 0.5. Any score at
//! or above `TRIGGER` is an *alarm* candidate. For `suppress_points` after an alarm the score
//! is capped just below `TRIGGER` unless the surprise exceeds the alarm's by `suppress_ratio`,
//! which raises a new alarm. Because the cap sits below every useful threshold, whichever
//! threshold an operator picks sees one alarm per episode, plus one more each time the
//! episode gets clearly worse.

/// Calibrated surprise that scores 0.5.
const HALF: f64 = 3.0;
/// Scores at or above this are alarms (tuned on NAB together with the other defaults).
const TRIGGER: f64 = 0.1;

/// Alarm state of one series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Alarm {
    suppress_points: u32,
    ratio: f64,
    since: u32,
    last_surprise: f64,
}

impl Alarm {
    /// No alarm raised yet.
    pub fn new(suppress_points: u32, ratio: f64) -> Self {
        Alarm {
            suppress_points,
            ratio,
            since: u32::MAX,
            last_surprise: 0.0,
        }
    }

    /// The score of one point's calibrated surprise, advancing the suppression clock.
    pub fn score(&mut self, surprise: f64) -> f64 {
        self.since = self.since.saturating_add(1);
        let score = surprise / (surprise + HALF);
        let suppressed = self.since <= self.suppress_points && surprise < self.last_surprise * self.ratio;
        if suppressed {
            score.min(TRIGGER * 0.99)
        } else {
            if score >= TRIGGER {
                self.since = 0;
                self.last_surprise = surprise;
            }
            score
        }
    }
}
