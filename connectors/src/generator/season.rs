//! Calendar effects: diurnal/weekly rate profiles and short traffic bursts.
//!
//! Every profile is a function of the *UTC* hour-of-week of event time only,
//! so all shards (and all workers) agree on it without talking to each other.
//! Profiles are stored as 168 hourly knots normalised to a weekly mean of 1,
//! which keeps `events_per_second` meaning "average rate" whatever the shape,
//! and are linearly interpolated between knots so rates never jump at the top
//! of the hour (a step would show up as a fake change point in analytics).

use super::kinds::{Kind, POISSON_KINDS};
use super::random::{hash2, unit_of};

pub(crate) const SECOND_MS: i64 = 1_000;
pub(crate) const HOUR_MS: i64 = 3_600_000;
pub(crate) const DAY_MS: i64 = 24 * HOUR_MS;
const WEEK_HOURS: usize = 168;

/// UTC hour-of-week, Monday 00:00 = 0. 1970-01-01 was a Thursday (index 3).
pub(crate) fn hour_of_week(ts: i64) -> usize {
    let days = ts.div_euclid(DAY_MS);
    let dow = (days + 3).rem_euclid(7) as usize;
    let hour = (ts.rem_euclid(DAY_MS) / HOUR_MS) as usize;
    dow * 24 + hour
}

/// Interactive traffic (API calls, user sessions): a Europe+Americas audience
/// that is quiet around 04 UTC and busiest mid-afternoon UTC.
const BUSINESS: [f64; 24] = [
    0.70, 0.55, 0.45, 0.38, 0.34, 0.35, 0.42, 0.55, 0.72, 0.88, 1.00, 1.10, //
    1.20, 1.32, 1.42, 1.48, 1.50, 1.45, 1.35, 1.22, 1.10, 0.98, 0.88, 0.78,
];
/// Consumer purchases peak in the (European/US) evening.
const SHOPPING: [f64; 24] = [
    0.80, 0.62, 0.48, 0.40, 0.36, 0.38, 0.45, 0.55, 0.68, 0.80, 0.90, 0.98, //
    1.05, 1.10, 1.15, 1.22, 1.30, 1.40, 1.52, 1.62, 1.60, 1.45, 1.25, 1.00,
];
/// Batch jobs are scheduled into the night, when interactive load is low.
const BATCH: [f64; 24] = [
    1.60, 1.80, 1.90, 1.80, 1.50, 1.20, 0.90, 0.80, 0.70, 0.70, 0.70, 0.75, //
    0.80, 0.80, 0.80, 0.80, 0.80, 0.80, 0.85, 0.90, 1.00, 1.10, 1.25, 1.40,
];
/// Attack traffic is somewhat heavier while defenders sleep.
const SECURITY: [f64; 24] = [
    1.20, 1.25, 1.25, 1.20, 1.10, 1.00, 0.95, 0.90, 0.90, 0.90, 0.90, 0.90, //
    0.90, 0.90, 0.90, 0.90, 0.92, 0.95, 0.98, 1.00, 1.05, 1.10, 1.15, 1.18,
];
/// Infrastructure metrics are scraped on a fixed schedule.
const FLAT: [f64; 24] = [1.0; 24];

/// (diurnal shape, Saturday/Sunday multiplier) per Poisson kind.
fn shape(kind: Kind) -> (&'static [f64; 24], f64) {
    match kind {
        Kind::Metric => (&FLAT, 1.0),
        Kind::TaskExecution => (&BATCH, 1.15),
        Kind::ApiRequest => (&BUSINESS, 0.55),
        Kind::UserActivity => (&BUSINESS, 0.50),
        Kind::Sale => (&SHOPPING, 1.20),
        Kind::SecuritySignal => (&SECURITY, 1.0),
    }
}

/// Kinds whose rate is multiplied during a burst (interactive traffic and
/// flash sales; scraped metrics and batch jobs do not burst).
pub(crate) fn bursts_apply_to(kind: Kind) -> bool {
    matches!(kind, Kind::ApiRequest | Kind::UserActivity | Kind::Sale)
}

/// Hourly knots per kind, mean 1 over a week; index 168 repeats index 0 so
/// interpolation never needs a modulo.
#[derive(Clone, Debug)]
pub(crate) struct Seasonality {
    knots: [[f64; WEEK_HOURS + 1]; POISSON_KINDS.len()],
}

impl Seasonality {
    pub(crate) fn new() -> Self {
        let mut knots = [[0.0; WEEK_HOURS + 1]; POISSON_KINDS.len()];
        for kind in POISSON_KINDS {
            let (day, weekend) = shape(kind);
            let row = &mut knots[kind as usize];
            for (h, knot) in row.iter_mut().take(WEEK_HOURS).enumerate() {
                let dow = h / 24;
                *knot = day[h % 24] * if dow >= 5 { weekend } else { 1.0 };
            }
            let mean = row[..WEEK_HOURS].iter().sum::<f64>() / WEEK_HOURS as f64;
            for knot in row.iter_mut() {
                *knot /= mean;
            }
            row[WEEK_HOURS] = row[0];
        }
        Self { knots }
    }

    /// The two knots bracketing the hour that starts at `hour_start_ms`.
    pub(crate) fn knots(&self, kind: Kind, hour_start_ms: i64) -> (f64, f64) {
        let h = hour_of_week(hour_start_ms);
        let row = &self.knots[kind as usize];
        (row[h], row[h + 1])
    }

    /// Interpolated rate factor of `kind` at `ts`.
    pub(crate) fn factor(&self, kind: Kind, ts: i64) -> f64 {
        let hour_start = ts - ts.rem_euclid(HOUR_MS);
        let (a, b) = self.knots(kind, hour_start);
        a + (b - a) * ((ts - hour_start) as f64 / HOUR_MS as f64)
    }

    /// How busy interactive systems are at `ts` (weekly mean 1). Drives the
    /// *values* of latencies, CPU, queue depths, so they move with traffic.
    pub(crate) fn load(&self, ts: i64) -> f64 {
        self.factor(Kind::ApiRequest, ts)
    }

    /// Same for batch infrastructure (worker and batch hosts).
    pub(crate) fn batch_load(&self, ts: i64) -> f64 {
        self.factor(Kind::TaskExecution, ts)
    }
}

/// A short period of elevated interactive traffic, at most one per UTC hour
/// and always contained in it, so the arrival process can bound its rate per
/// hour (see `shard.rs`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Burst {
    pub(crate) start_ms: i64,
    pub(crate) end_ms: i64,
    pub(crate) multiplier: f64,
}

/// Probability that a given hour contains a burst.
const BURST_PROBABILITY: f64 = 0.2;
const BURST_SALT: u64 = 0xB0B5_7000;

/// The burst (if any) in the UTC hour starting at `hour_start_ms`: a pure
/// function of the seed, so every shard sees the same bursts.
pub(crate) fn burst_in_hour(seed: u64, hour_start_ms: i64) -> Option<Burst> {
    let hour = hour_start_ms.div_euclid(HOUR_MS) as u64;
    let h = hash2(seed ^ BURST_SALT, hour);
    if unit_of(h) >= BURST_PROBABILITY {
        return None;
    }
    let r1 = unit_of(hash2(h, 1));
    let r2 = unit_of(hash2(h, 2));
    let r3 = unit_of(hash2(h, 3));
    let duration = 30 * SECOND_MS + (r1 * 210.0 * SECOND_MS as f64) as i64;
    let start = hour_start_ms + (r2 * (HOUR_MS - duration) as f64) as i64;
    Some(Burst {
        start_ms: start,
        end_ms: start + duration,
        multiplier: 2.0 + 1.5 * r3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_of_week_knows_the_calendar() {
        // 2024-11-22 00:00 UTC was a Friday.
        assert_eq!(hour_of_week(1_732_233_600_000), 4 * 24);
        // 1970-01-05 00:00 UTC was a Monday.
        assert_eq!(hour_of_week(4 * DAY_MS), 0);
        assert_eq!(hour_of_week(4 * DAY_MS - 1), 167);
        assert_eq!(hour_of_week(-1), 3 * 24 - 1);
    }

    #[test]
    fn profiles_average_to_one_and_peak_in_the_afternoon() {
        let s = Seasonality::new();
        let monday = 4 * DAY_MS;
        for kind in POISSON_KINDS {
            let mean = (0..WEEK_HOURS as i64)
                .map(|h| s.factor(kind, monday + h * HOUR_MS))
                .sum::<f64>()
                / WEEK_HOURS as f64;
            assert!((mean - 1.0).abs() < 1e-9, "{kind:?} {mean}");
        }
        let peak = s.factor(Kind::ApiRequest, monday + 16 * HOUR_MS);
        let trough = s.factor(Kind::ApiRequest, monday + 4 * HOUR_MS);
        assert!(peak > 4.0 * trough);
        let saturday = monday + 5 * DAY_MS + 16 * HOUR_MS;
        assert!(s.factor(Kind::ApiRequest, saturday) < 0.6 * peak);
        // Interpolation is continuous across the hour boundary.
        let just_before = s.factor(Kind::ApiRequest, monday + 17 * HOUR_MS - 1);
        let at = s.factor(Kind::ApiRequest, monday + 17 * HOUR_MS);
        assert!((just_before - at).abs() < 1e-6);
    }

    #[test]
    fn bursts_are_deterministic_contained_and_occasional() {
        let mut seen = 0;
        for hour in 0..1000 {
            let start = 1_732_233_600_000 + hour * HOUR_MS;
            let b = burst_in_hour(42, start);
            assert_eq!(b, burst_in_hour(42, start));
            if let Some(b) = b {
                seen += 1;
                assert!(b.start_ms >= start && b.end_ms <= start + HOUR_MS);
                assert!(b.multiplier >= 2.0 && b.multiplier <= 3.5);
            }
        }
        assert!((150..250).contains(&seen), "{seen}");
    }
}
