//! Per-series forecasting: one [`Forecaster`] per series, fed the closed base windows in
//! order, forecasting the next `horizon` steps with 80 % and 95 % prediction intervals.
//!
//! The forecast combines four forecasts on the model's scale: additive Holt–Winters without
//! trend, additive damped-trend Holt–Winters ([`model`]), the Theta method's forecast (the
//! no-trend model plus a drift of half the history's least-squares slope, as in Hyndman &
//! Billah's reading of Theta as simple exponential smoothing with drift) and the seasonal-naive
//! forecast. Combining was measured on the tourism competition to beat choosing one model by
//! AIC (monthly MASE 1.417 against 1.469), because no single model is right for every series
//! and averaging protects against one model's occasional wild extrapolation; adding Theta with
//! the largest weight took monthly / quarterly / yearly MASE from 1.419 / 1.523 / 2.819 to
//! 1.397 / 1.471 / 2.728, and updating the models' states with outlier-clipped errors
//! ([`model`]) to 1.363 / 1.419 / 2.729 (see `docs/accuracy.md`).
//! The models are fitted to the logarithm of the series when it has only positive values (so
//! seasonality and trend act multiplicatively, as they do in traffic, sales and counts, and
//! the intervals stay positive) and to the raw values otherwise; intervals use the models'
//! averaged h-step variance.
//!
//! Every point updates the states in O(1). Parameters, transform and seasonal period
//! ([`season`]) are refitted on a bounded history ([`fit`]) at a bounded cadence: by default
//! after an eighth of the fitted history in new points while it is short, then after twice
//! as many new points as the last fit saw (so the amortised cost per point is constant), or
//! every `refit_every` points. A refit fits both Holt–Winters models side by side, evaluating
//! several parameter sets per pass over the history ([`fit`]), which halved the amortised cost
//! per point (about 1.05 to 0.5 µs in `detect_forecast_bench`) without changing any result;
//! a smaller evaluation budget and a convergence test on the likelihood's scale brought it to
//! about 0.36 µs.
//! `augurs` (AutoETS) was measured first: it refits the whole series per call (4.7 ms for a
//! 163-point series, i.e. hundreds of µs per point when refitted once per season) and pulls
//! in `nalgebra` and 44 other crates (77 s release build), far from the per-point budget.

mod fit;
mod model;
mod season;
mod settings;
#[cfg(test)]
mod tests;

pub use settings::{ForecastSettings, ForecastSettingsError, Seasonality};

use fit::Fitted;
use std::collections::VecDeque;

/// Standard normal quantile of 0.90 (the 80 % interval's upper end).
const Z80: f64 = 1.281_551_565_544_600_4;
/// Standard normal quantile of 0.975 (the 95 % interval's upper end).
const Z95: f64 = 1.959_963_984_540_054;
/// Weights of the combined forecasts (on the model's scale): no-trend Holt–Winters, damped
/// trend, Theta and seasonal naive. Chosen on the tourism sets (one set of weights for every
/// frequency); Theta dominates because its drift is a robust long-run trend, the damped trend
/// adds the recent one and seasonal naive guards against a badly fitted seasonal pattern.
const WEIGHTS: Weights = Weights {
    level: 0.1,
    damped: 0.2,
    theta: 0.6,
    naive: 0.1,
};
/// Theta's drift as a fraction of the history's least-squares slope (the classical 1/2: the
/// average of the theta-0 regression line and the theta-2 line with doubled curvature).
const THETA_DRIFT: f64 = 0.5;
/// With the default cadence, points between refits per point the last fit saw: 2 keeps the
/// amortised refit cost under 1 µs per point (two models, at most 160 evaluations each).
const REFIT_GROWTH: usize = 2;
/// Histories shorter than this are refitted often by default (see `Forecaster::due`).
const SHORT_HISTORY: usize = 256;
/// A short history is refitted after this fraction (1/n) of its length in new points.
const SHORT_REFIT_DIVISOR: usize = 8;
/// Points needed before the first fit.
const MIN_FIT_POINTS: usize = 5;

/// One forecast step: the point forecast and its prediction intervals.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Forecast {
    /// Point forecast (the median on the model's scale).
    pub mean: f64,
    /// 80 % interval, lower end.
    pub lower80: f64,
    /// 80 % interval, upper end.
    pub upper80: f64,
    /// 95 % interval, lower end.
    pub lower95: f64,
    /// 95 % interval, upper end.
    pub upper95: f64,
}

/// A per-series streaming forecaster.
#[derive(Clone, Debug)]
pub struct Forecaster {
    settings: ForecastSettings,
    history: VecDeque<f64>,
    last_ts: Option<i64>,
    step_ms: Option<i64>,
    model: Option<Model>,
    since_fit: usize,
    /// Spreads this series' refits apart from other series' (see [`Forecaster::staggered`]).
    stagger: Option<u64>,
}

/// Weights of the forecasts the forecaster combines.
struct Weights {
    level: f64,
    damped: f64,
    theta: f64,
    naive: f64,
}

/// The fitted model and what it was fitted to.
#[derive(Clone, Debug)]
struct Model {
    /// No-trend and damped-trend Holt–Winters.
    fits: [Fitted; 2],
    log: bool,
    fitted_len: usize,
    /// Theta's drift per step on the model's scale.
    drift: f64,
}

impl Forecaster {
    /// A forecaster with `settings` (which should have passed [`ForecastSettings::validate`]).
    pub fn new(settings: &ForecastSettings) -> Self {
        Forecaster {
            settings: settings.clone(),
            history: VecDeque::with_capacity(settings.max_history.min(1024)),
            last_ts: None,
            step_ms: None,
            model: None,
            since_fit: 0,
            stagger: None,
        }
    }

    /// Lengthens each default refit interval by a part of up to a half that depends on `seed`
    /// (e.g. the series id). Series that start together — every series at a restart — would
    /// otherwise refit in the same window, and a refit costs time linear in the history: ten
    /// thousand series refitting 4096 points at once stall their worker for seconds, where the
    /// staggered refits spread the same work over many windows.
    pub fn staggered(mut self, seed: u64) -> Self {
        self.stagger = Some(seed);
        self
    }

    /// Folds in the value of the next step (`ts_ms` must not go backwards; non-finite values
    /// are ignored). Steps skipped since the previous value advance the model without data.
    pub fn update(&mut self, ts_ms: i64, value: f64) {
        if !value.is_finite() {
            return;
        }
        let skipped = self.observe_time(ts_ms);
        if self.history.len() == self.settings.max_history {
            self.history.pop_front();
        }
        self.history.push_back(value);
        self.since_fit += 1;
        let mut refit = self.history.len() >= MIN_FIT_POINTS && self.due();
        if let Some(model) = &mut self.model {
            if model.log && value <= 0.0 {
                refit = true;
            } else {
                let y = if model.log { value.ln() } else { value };
                let weight = 1.0 / model.fitted_len.max(1) as f64;
                for fitted in &mut model.fits {
                    let params = fitted.params;
                    for _ in 0..skipped {
                        fitted.state.advance(&params, 0.0);
                    }
                    let error = fitted.state.step(&params, y);
                    fitted.variance += weight * (error * error - fitted.variance);
                }
            }
        }
        if refit {
            self.refit();
        }
    }

    /// Whether a refit is due: never fitted, or `refit_every` points since the last fit. By
    /// default a short history (cheap to fit, and the estimates still moving) is refitted
    /// after an eighth of its length in new points; a long one after `REFIT_GROWTH` times its
    /// length, so a refit's cost — linear in the history — is spread over proportionally many
    /// points and the amortised cost per point stays constant.
    fn due(&self) -> bool {
        match &self.model {
            None => true,
            Some(model) => {
                let interval = match self.settings.refit_every {
                    0 if model.fitted_len < SHORT_HISTORY => (model.fitted_len / SHORT_REFIT_DIVISOR).max(1),
                    0 => REFIT_GROWTH * model.fitted_len,
                    n => return self.since_fit >= n as usize,
                };
                let extra = self.stagger.map_or(0, |seed| {
                    seed.wrapping_add(model.fitted_len as u64) % (interval as u64 / 2 + 1)
                });
                self.since_fit >= interval + extra as usize
            }
        }
    }

    /// Records the time of a value and returns how many steps were skipped before it.
    fn observe_time(&mut self, ts_ms: i64) -> usize {
        let skipped = match (self.last_ts, self.step_ms) {
            (Some(last), Some(step)) if ts_ms > last => {
                let steps = ((ts_ms - last) as f64 / step as f64).round() as usize;
                steps.saturating_sub(1).min(self.settings.max_period as usize)
            }
            _ => 0,
        };
        if let Some(last) = self.last_ts
            && ts_ms > last
        {
            let gap = ts_ms - last;
            self.step_ms = Some(self.step_ms.map_or(gap, |s| s.min(gap)));
        }
        self.last_ts = Some(ts_ms);
        skipped
    }

    fn refit(&mut self) {
        self.since_fit = 0;
        // Rotating the ring buffer in place lets the fit read the history without a copy.
        let history = self.history.make_contiguous();
        let log = history.iter().all(|&v| v > 0.0);
        let logged: Vec<f64>;
        let data: &[f64] = if log {
            logged = history.iter().map(|v| v.ln()).collect();
            &logged
        } else {
            history
        };
        let period = season::period(
            self.settings.seasonality,
            self.step_ms,
            data,
            self.settings.max_period as usize,
        );
        let fits = fit::fit(data, period);
        self.model = Some(Model {
            fits,
            log,
            fitted_len: data.len(),
            drift: THETA_DRIFT * slope(data),
        });
    }

    /// Forecasts for steps 1..=horizon after the last value (empty before any value).
    pub fn forecast(&self, horizon: usize) -> Vec<Forecast> {
        let Some(model) = &self.model else {
            return self.naive(horizon);
        };
        let back = |x: f64| if model.log { x.exp() } else { x };
        let k = model.fits.len() as f64;
        let [level, damped] = &model.fits;
        let level_path = level.state.forecast(&level.params, horizon);
        let damped_path = damped.state.forecast(&damped.params, horizon);
        let m = level.state.seasonal.len().clamp(1, self.history.len());
        let n = self.history.len();
        let sigma2 = [level.variance.max(0.0), damped.variance.max(0.0)];
        let combined: Vec<(f64, f64)> = level_path
            .iter()
            .zip(&damped_path)
            .enumerate()
            .map(
                |(h, (&(level_mean, level_multiplier), &(damped_mean, damped_multiplier)))| {
                    let naive = self.history[n - m + h % m];
                    let naive = if model.log { naive.ln() } else { naive };
                    let theta = level_mean + model.drift * (h + 1) as f64;
                    let mean = WEIGHTS.level * level_mean
                        + WEIGHTS.damped * damped_mean
                        + WEIGHTS.theta * theta
                        + WEIGHTS.naive * naive;
                    let variance = (sigma2[0] * level_multiplier + sigma2[1] * damped_multiplier) / k;
                    (mean, variance)
                },
            )
            .collect();
        combined
            .into_iter()
            .map(|(mean, variance)| {
                let sd = variance.sqrt();
                Forecast {
                    mean: back(mean),
                    lower80: back(mean - Z80 * sd),
                    upper80: back(mean + Z80 * sd),
                    lower95: back(mean - Z95 * sd),
                    upper95: back(mean + Z95 * sd),
                }
            })
            .collect()
    }

    /// Before the first fit: the last value, with a random-walk spread from the mean step.
    fn naive(&self, horizon: usize) -> Vec<Forecast> {
        let Some(&last) = self.history.back() else {
            return Vec::new();
        };
        let steps = self.history.len().saturating_sub(1).max(1) as f64;
        let mean_step = self
            .history
            .iter()
            .zip(self.history.iter().skip(1))
            .map(|(a, b)| (b - a).abs())
            .sum::<f64>()
            / steps;
        let sigma = 1.25 * mean_step;
        (1..=horizon)
            .map(|h| {
                let sd = sigma * (h as f64).sqrt();
                Forecast {
                    mean: last,
                    lower80: last - Z80 * sd,
                    upper80: last + Z80 * sd,
                    lower95: last - Z95 * sd,
                    upper95: last + Z95 * sd,
                }
            })
            .collect()
    }

    /// Bytes of state one series costs (the struct, its history and the seasonal state).
    pub fn state_bytes(&self) -> usize {
        size_of::<Self>()
            + self.history.capacity() * size_of::<f64>()
            + self.model.as_ref().map_or(0, |m| {
                m.fits
                    .iter()
                    .map(|f| f.state.seasonal.capacity() * size_of::<f64>() + size_of::<Fitted>())
                    .sum()
            })
    }
}

/// The least-squares slope of `data` against its index (0 for fewer than two points).
fn slope(data: &[f64]) -> f64 {
    let n = data.len() as f64;
    let mid = (n - 1.0) / 2.0;
    let mean = data.iter().sum::<f64>() / n;
    let (covariance, variance) = data.iter().enumerate().fold((0.0, 0.0), |(c, v), (i, y)| {
        let x = i as f64 - mid;
        (c + x * (y - mean), v + x * x)
    });
    if variance > 0.0 { covariance / variance } else { 0.0 }
}
