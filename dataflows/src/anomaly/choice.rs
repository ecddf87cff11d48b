//! Per-series choice between the daily and the weekly seasonal profile.
//!
//! Most seasonal metrics follow the day, but some (taxi rides, office traffic) follow the week,
//! and their weekends and holidays look anomalous against a daily profile. Replacing the daily
//! profile with a weekly one loses on the many series that are short or purely daily, because
//! a slice of the week is visited once a week and learns seven times slower (NAB 55.76 against
//! 71.13). So both profiles learn, each series tracks the typical residual after each of them,
//! and the weekly profile is used only where it is trusted and its residuals are clearly
//! smaller; a purely daily series keeps its faster-learning daily profile.

use super::season::{DAY_MS, Profile, WEEK_MS};

/// How many times larger the daily residuals must be than the weekly ones before the weekly
/// profile is used: while both fit about equally, the daily one, learnt from seven times more
/// visits, is the safer expectation (tuned on NAB: 1.4–1.5 score best).
const MARGIN: f64 = 1.4;

/// The daily and the weekly profile (the weekly one at the same slice length, so seven times
/// the buckets) and the exponentially weighted mean absolute residual after each.
#[derive(Clone, Debug)]
pub struct Profiles {
    daily: Profile,
    weekly: Profile,
    /// Weight of the newest residual in the mean residuals.
    alpha: f64,
    daily_error: f64,
    weekly_error: f64,
    last: (usize, usize),
}

impl Profiles {
    /// Profiles of `daily_buckets` slices per day whose buckets and mean residuals all learn
    /// with weight `weight`.
    pub fn new(daily_buckets: usize, weight: f64) -> Self {
        Profiles {
            daily: Profile::new(DAY_MS, daily_buckets, weight, 2),
            weekly: Profile::new(WEEK_MS, 7 * daily_buckets, weight, 2),
            alpha: weight,
            daily_error: 0.0,
            weekly_error: 0.0,
            last: (usize::MAX, usize::MAX),
        }
    }

    /// The daily and the weekly bucket of a timestamp.
    pub fn buckets(&self, ts_ms: i64) -> (usize, usize) {
        (self.daily.bucket(ts_ms), self.weekly.bucket(ts_ms))
    }

    /// Whether the weekly profile has lately fitted clearly better than the daily one.
    pub fn weekly_fits_better(&self) -> bool {
        self.weekly_error * MARGIN < self.daily_error
    }

    /// The seasonal offset and bucket scale of the chosen profile.
    pub fn season(&self, (day, week): (usize, usize)) -> (f64, f64) {
        if self.weekly.trusted(week) && self.weekly_fits_better() {
            (self.weekly.offset(week), self.weekly.scale(week))
        } else {
            (self.daily.offset(day), self.daily.scale(day))
        }
    }

    /// Measures both profiles on `deviation` (the value minus the level) before they learn it
    /// (except on the series' first point, whose deviation is 0 by definition), then teaches
    /// both. Where the weekly slice is not trusted yet its residual counts as the daily one,
    /// so an unlearnt week never wins.
    pub fn learn(&mut self, (day, week): (usize, usize), deviation: f64, residual: f64, first: bool) {
        if !first {
            let daily = (deviation - self.daily.offset(day)).abs();
            let weekly = if self.weekly.trusted(week) {
                (deviation - self.weekly.offset(week)).abs()
            } else {
                daily
            };
            self.daily_error += self.alpha * (daily - self.daily_error);
            self.weekly_error += self.alpha * (weekly - self.weekly_error);
        }
        self.daily.learn(day, deviation, residual, day != self.last.0);
        self.weekly.learn(week, deviation, residual, week != self.last.1);
        self.last = (day, week);
    }

    /// Bytes of heap state.
    pub fn heap_bytes(&self) -> usize {
        self.daily.heap_bytes() + self.weekly.heap_bytes()
    }
}
