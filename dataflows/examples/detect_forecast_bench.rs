//! Cost of anomaly detection and forecasting per point and memory per series.
//!
//! `cargo run --release -p tidemark-dataflows --example detect_forecast_bench [SERIES] [POINTS]`
//!
//! Feeds SERIES generated 1-minute series (a daily cycle, a slow random walk and noise) of
//! POINTS points each through a [`Detector`] and a [`Forecaster`] with default settings, the
//! way the dataflow feeds closed base windows, and prints nanoseconds per point (amortised
//! over the forecaster's refits) and bytes of state per series.

use std::hint::black_box;
use std::time::Instant;
use tidemark_dataflows::anomaly::{Detector, DetectorSettings};
use tidemark_dataflows::forecast::{ForecastSettings, Forecaster};

const MINUTE_MS: i64 = 60_000;

fn series(seed: u64, points: usize) -> Vec<(i64, f64)> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut uniform = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut level = 100.0;
    (0..points)
        .map(|i| {
            level += 0.05 * uniform();
            let daily = 20.0 * (std::f64::consts::TAU * (i % 1440) as f64 / 1440.0).sin();
            (i as i64 * MINUTE_MS, level + daily + 3.0 * uniform())
        })
        .collect()
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("SERIES and POINTS are numbers"));
    let series_count = args.next().unwrap_or(20);
    let points = args.next().unwrap_or(4 * 1440);
    let data: Vec<Vec<(i64, f64)>> = (0..series_count as u64).map(|s| series(s, points)).collect();
    let total = (series_count * points) as f64;

    let detector_settings = DetectorSettings::default();
    let started = Instant::now();
    let mut detectors: Vec<Detector> = Vec::with_capacity(series_count);
    for one in &data {
        let mut detector = Detector::new(&detector_settings);
        for &(ts, v) in one {
            black_box(detector.update(ts, v));
        }
        detectors.push(detector);
    }
    let detect_ns = started.elapsed().as_nanos() as f64 / total;

    let forecast_settings = ForecastSettings::default();
    let started = Instant::now();
    let mut forecasters: Vec<Forecaster> = Vec::with_capacity(series_count);
    for (seed, one) in (0u64..).zip(&data) {
        // As the dataflow does: each series' refits at its own offset.
        let mut forecaster = Forecaster::new(&forecast_settings).staggered(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        for &(ts, v) in one {
            forecaster.update(ts, v);
        }
        forecasters.push(forecaster);
    }
    let forecast_ns = started.elapsed().as_nanos() as f64 / total;

    let started = Instant::now();
    let horizon = forecast_settings.horizon;
    for forecaster in &forecasters {
        black_box(forecaster.forecast(horizon));
    }
    let forecast_call_us = started.elapsed().as_nanos() as f64 / series_count as f64 / 1000.0;

    let detector_bytes = detectors.iter().map(Detector::state_bytes).max().unwrap_or(0);
    let forecaster_bytes = forecasters.iter().map(Forecaster::state_bytes).max().unwrap_or(0);
    println!("series={series_count} points_per_series={points} (1-minute steps, daily cycle)");
    println!("detector:   {detect_ns:.0} ns/point, {detector_bytes} bytes/series");
    println!("forecaster: {forecast_ns:.0} ns/point amortised over refits, {forecaster_bytes} bytes/series");
    println!("forecast({horizon}): {forecast_call_us:.1} µs/call");
    println!("detector + forecaster: {:.0} ns/point", detect_ns + forecast_ns);
}
