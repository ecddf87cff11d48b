use super::*;

/// Deterministic Gaussian noise (xorshift64* and Box–Muller), so the tests need no crate.
struct Noise(u64);

impl Noise {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn gaussian(&mut self) -> f64 {
        (-2.0 * self.uniform().ln()).sqrt() * (std::f64::consts::TAU * self.uniform()).cos()
    }
}

const HOUR_MS: i64 = 3_600_000;

/// An hourly series from the model family itself: a random-walk level, a fixed daily
/// pattern and white noise, all positive.
fn hourly(noise: &mut Noise, points: usize) -> Vec<f64> {
    let mut level = 100.0;
    (0..points)
        .map(|t| {
            level += 0.5 * noise.gaussian();
            let daily = 15.0 * (std::f64::consts::TAU * (t % 24) as f64 / 24.0).sin();
            level + daily + 2.0 * noise.gaussian()
        })
        .collect()
}

fn fed(settings: &ForecastSettings, values: &[f64]) -> Forecaster {
    let mut forecaster = Forecaster::new(settings);
    for (t, &v) in values.iter().enumerate() {
        forecaster.update(t as i64 * HOUR_MS, v);
    }
    forecaster
}

#[test]
fn intervals_have_roughly_nominal_coverage() {
    let settings = ForecastSettings {
        seasonality: Seasonality::Daily,
        ..ForecastSettings::default()
    };
    let mut noise = Noise(17);
    let (horizon, runs) = (24, 60);
    let (mut inside80, mut inside95) = (0, 0);
    for _ in 0..runs {
        let values = hourly(&mut noise, 240 + horizon);
        let forecasts = fed(&settings, &values[..240]).forecast(horizon);
        for (f, &y) in forecasts.iter().zip(&values[240..]) {
            inside80 += usize::from((f.lower80..=f.upper80).contains(&y));
            inside95 += usize::from((f.lower95..=f.upper95).contains(&y));
        }
    }
    let total = (runs * horizon) as f64;
    let (c80, c95) = (inside80 as f64 / total, inside95 as f64 / total);
    assert!((0.70..=0.92).contains(&c80), "80 % interval covered {c80}");
    assert!((0.88..=0.99).contains(&c95), "95 % interval covered {c95}");
}

#[test]
fn a_seasonal_series_is_forecast_closely() {
    let mut noise = Noise(3);
    let values: Vec<f64> = (0..24 * 14)
        .map(|t| 50.0 + 10.0 * (std::f64::consts::TAU * (t % 24) as f64 / 24.0).cos() + 0.5 * noise.gaussian())
        .collect();
    let forecaster = fed(&ForecastSettings::default(), &values[..24 * 12]);
    let forecasts = forecaster.forecast(48);
    let mean_error = forecasts
        .iter()
        .zip(&values[24 * 12..])
        .map(|(f, y)| (f.mean - y).abs())
        .sum::<f64>()
        / 48.0;
    assert!(mean_error < 1.0, "mean absolute error {mean_error}");
    for f in &forecasts {
        assert!(f.lower95 <= f.lower80 && f.lower80 <= f.mean && f.mean <= f.upper80 && f.upper80 <= f.upper95);
    }
}

#[test]
fn a_single_outlier_barely_moves_the_forecast() {
    let mut noise = Noise(11);
    let mut values: Vec<f64> = (0..24 * 12)
        .map(|t| 50.0 + 10.0 * (std::f64::consts::TAU * (t % 24) as f64 / 24.0).cos() + 0.5 * noise.gaussian())
        .collect();
    let clean = fed(&ForecastSettings::default(), &values).forecast(24);
    // More than a season back, so that the seasonal-naive part of the forecast does not see it.
    let n = values.len();
    values[n - 30] *= 5.0;
    let spiked = fed(&ForecastSettings::default(), &values).forecast(24);
    for (a, b) in clean.iter().zip(&spiked) {
        assert!((a.mean - b.mean).abs() < 1.0, "{} against {}", b.mean, a.mean);
    }
}

#[test]
fn a_shift_after_a_constant_stretch_is_followed() {
    let mut noise = Noise(13);
    let mut values: Vec<f64> = (0..200).map(|_| 100.0 + noise.gaussian()).collect();
    values.extend(std::iter::repeat_n(100.0, 2000));
    values.extend(std::iter::repeat_n(150.0, 100));
    // Most of the way there: with the error scale free to shrink over the constant stretch,
    // every error after the shift would be clipped to almost nothing and the forecast would
    // stay near 100.
    let forecast = fed(&ForecastSettings::default(), &values).forecast(1)[0];
    assert!((forecast.mean - 150.0).abs() < 10.0, "{forecast:?}");
}

#[test]
fn daily_seasonality_is_detected_from_the_clock() {
    let mut noise = Noise(5);
    let values = hourly(&mut noise, 24 * 10);
    let logged: Vec<f64> = values.iter().map(|v| v.ln()).collect();
    assert_eq!(season::period(Seasonality::Auto, Some(HOUR_MS), &logged, 1440), 24);
    assert_eq!(season::period(Seasonality::Weekly, Some(HOUR_MS), &logged, 1440), 168);
    let white: Vec<f64> = (0..500).map(|_| noise.gaussian()).collect();
    assert_eq!(season::period(Seasonality::Auto, Some(HOUR_MS), &white, 1440), 0);
}

#[test]
fn state_is_bounded_by_the_history_limit() {
    let settings = ForecastSettings {
        max_history: 256,
        ..ForecastSettings::default()
    };
    let mut noise = Noise(9);
    let mut forecaster = Forecaster::new(&settings);
    let values = hourly(&mut noise, 3000);
    let mut sizes = Vec::new();
    for (t, &v) in values.iter().enumerate() {
        forecaster.update(t as i64 * HOUR_MS, v);
        if t == 1000 || t == 2999 {
            sizes.push(forecaster.state_bytes());
        }
    }
    assert_eq!(sizes[0], sizes[1]);
    assert!(forecaster.history.len() <= 256);
}

#[test]
fn zeros_switch_the_model_off_the_log_scale() {
    let mut values: Vec<f64> = (0..100).map(|t| 10.0 + (t % 4) as f64).collect();
    values.push(0.0);
    let forecaster = fed(&ForecastSettings::default(), &values);
    let forecasts = forecaster.forecast(4);
    assert!(forecasts.iter().all(|f| f.mean.is_finite() && f.lower95 < f.upper95));
    assert!(forecaster.model.as_ref().is_some_and(|m| !m.log));
}

#[test]
fn before_any_fit_the_forecast_is_the_last_value() {
    let mut forecaster = Forecaster::new(&ForecastSettings::default());
    assert!(forecaster.forecast(3).is_empty());
    forecaster.update(0, 4.0);
    forecaster.update(60_000, 6.0);
    let forecasts = forecaster.forecast(2);
    assert_eq!(forecasts[0].mean, 6.0);
    assert!(forecasts[1].upper95 - forecasts[1].lower95 > forecasts[0].upper95 - forecasts[0].lower95);
}

#[test]
fn settings_errors_name_the_key_and_the_fix() {
    assert_eq!(ForecastSettings::default().validate(), Ok(()));
    let bad = ForecastSettings {
        seasonality: Seasonality::Steps(5000),
        ..ForecastSettings::default()
    };
    let error = bad.validate().unwrap_err();
    assert_eq!(error.key, "seasonality");
    assert!(error.to_string().starts_with("forecast.seasonality: "), "{error}");
    let bad = ForecastSettings {
        horizon: 0,
        ..ForecastSettings::default()
    };
    assert_eq!(bad.validate().unwrap_err().key, "horizon");
}
