//! Additive damped-trend Holt–Winters in error-correction form, i.e. ETS(A,Ad,A):
//!
//! ```text
//! ŷ(t)  = ℓ + φ·b + s[t mod m]          e = y − ŷ
//! ℓ'    = ℓ + φ·b + α·e
//! b'    = φ·b + β·e
//! s'[t] = s[t] + γ·e
//! ```
//!
//! One update is a handful of multiply-adds, which is what makes per-point streaming cheap.
//! A model without trend is the same with `β = 0` and `b = 0`; without seasonality, `m = 0`.
//! The h-step variance is the class-1 ETS formula `σ²·(1 + Σ_{j<h} c_j²)` with
//! `c_j = α + β·(φ + … + φ^j) + γ·[j mod m = 0]` (Hyndman et al. 2008, ch. 6).

/// Smoothing parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    /// Level smoothing.
    pub alpha: f64,
    /// Trend smoothing (0: no trend).
    pub beta: f64,
    /// Seasonal smoothing.
    pub gamma: f64,
    /// Trend damping.
    pub phi: f64,
}

/// Level, trend and seasonal state.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    /// Level.
    pub level: f64,
    /// Trend per step.
    pub trend: f64,
    /// Seasonal offsets, indexed by position in the season (empty: no seasonality).
    pub seasonal: Vec<f64>,
    /// Position in the season of the next point.
    pub index: usize,
}

impl State {
    fn season(&self, ahead: usize) -> f64 {
        match self.seasonal.len() {
            0 => 0.0,
            m => self.seasonal[(self.index + ahead) % m],
        }
    }

    /// The one-step prediction.
    pub fn predict(&self, p: &Params) -> f64 {
        let season = self.seasonal.get(self.index).copied().unwrap_or(0.0);
        self.level + p.phi * self.trend + season
    }

    /// Folds in `y` and returns the one-step error it made.
    pub fn step(&mut self, p: &Params, y: f64) -> f64 {
        let error = y - self.predict(p);
        self.advance(p, error);
        error
    }

    /// Moves one step on with a given error (0 for a step with no observation).
    pub fn advance(&mut self, p: &Params, error: f64) {
        self.level += p.phi * self.trend + p.alpha * error;
        self.trend = p.phi * self.trend + p.beta * error;
        if let Some(season) = self.seasonal.get_mut(self.index) {
            *season += p.gamma * error;
            self.index += 1;
            if self.index == self.seasonal.len() {
                self.index = 0;
            }
        }
    }

    /// Point forecasts and h-step variance multipliers (of the one-step variance) for steps
    /// 1..=horizon.
    pub fn forecast(&self, p: &Params, horizon: usize) -> Vec<(f64, f64)> {
        let m = self.seasonal.len();
        let mut out = Vec::with_capacity(horizon);
        let mut damped_sum = 0.0;
        let mut damping = 1.0;
        let mut variance = 1.0;
        for h in 1..=horizon {
            damping *= p.phi;
            damped_sum += damping;
            out.push((self.level + damped_sum * self.trend + self.season(h - 1), variance));
            let seasonal_hit = m > 0 && h % m == 0;
            let c = p.alpha + p.beta * damped_sum + if seasonal_hit { p.gamma } else { 0.0 };
            variance += c * c;
        }
        out
    }
}
