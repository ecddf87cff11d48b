//! Choosing the seasonal period: configured, or detected from the history's autocorrelation
//! among the clock periods (hourly, daily, weekly) that the series' step allows.

use super::settings::Seasonality;

const HOUR_MS: i64 = 3_600_000;

/// Autocorrelation a candidate period needs to be taken as seasonal.
const MIN_AUTOCORRELATION: f64 = 0.3;

/// The period in steps (0: none) for `seasonality`, a series stepping every `step_ms`, with
/// `history` (oldest first) and periods up to `max_period`.
pub fn period(seasonality: Seasonality, step_ms: Option<i64>, history: &[f64], max_period: usize) -> usize {
    let clock = |hours: i64| -> usize {
        match step_ms {
            Some(step) if step > 0 && (hours * HOUR_MS) % step == 0 => ((hours * HOUR_MS) / step) as usize,
            _ => 0,
        }
    };
    let usable = |p: usize| p >= 2 && p <= max_period && history.len() >= 3 * p;
    match seasonality {
        Seasonality::None => 0,
        Seasonality::Steps(steps) => steps as usize,
        Seasonality::Hourly => clock(1),
        Seasonality::Daily => clock(24),
        Seasonality::Weekly => clock(168),
        Seasonality::Auto => [clock(1), clock(24), clock(168)]
            .into_iter()
            .filter(|&p| usable(p))
            .map(|p| (p, autocorrelation(history, p)))
            .filter(|&(_, r)| r >= MIN_AUTOCORRELATION)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(0, |(p, _)| p),
    }
}

/// Autocorrelation of the first differences at `lag` (differencing removes trend, which would
/// otherwise make every lag look seasonal).
pub fn autocorrelation(history: &[f64], lag: usize) -> f64 {
    let count = history.len().saturating_sub(1);
    if count <= lag {
        return 0.0;
    }
    let diffs = || history.windows(2).map(|w| w[1] - w[0]);
    let mean = diffs().sum::<f64>() / count as f64;
    let variance: f64 = diffs().map(|d| (d - mean) * (d - mean)).sum();
    if variance == 0.0 {
        return 0.0;
    }
    let covariance: f64 = diffs()
        .zip(diffs().skip(lag))
        .map(|(a, b)| (a - mean) * (b - mean))
        .sum();
    covariance / variance
}
