//! `tidemark eval forecast DIR --out FILE`: runs the forecaster on every
//! `<set>_train/test/meta.csv` triple in DIR (e.g. the tourism competition), feeding each
//! training series point by point, forecasts `horizon` steps and prints sMAPE and MASE (M4
//! definitions) per set beside the seasonal-naive forecast scored by the same code. FILE gets
//! `set,series_id,h,forecast,lower95,upper95`.

pub mod data;
pub mod metrics;

use anyhow::{Context, Result};
use clap::Args;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tidemark_dataflows::forecast::{ForecastSettings, Forecaster, Seasonality};

/// Arguments of `tidemark eval forecast`.
#[derive(Args, Debug)]
pub struct ForecastArgs {
    /// Folder of `<set>_train.csv`, `<set>_test.csv` and `<set>_meta.csv` triples.
    pub dir: PathBuf,
    /// Where to write the forecasts (`set,series_id,h,forecast,lower95,upper95`).
    #[arg(long)]
    pub out: PathBuf,
    /// Forecaster settings: a TOML file with the keys of `[forecast]` at its top level (the
    /// seasonal period always comes from the meta file).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Accuracy on one set, averaged over its series.
#[derive(Clone, Debug, PartialEq)]
pub struct SetReport {
    /// The set name.
    pub set: String,
    /// Series in the set.
    pub series: usize,
    /// Mean sMAPE of the forecaster.
    pub smape: f64,
    /// Mean MASE of the forecaster (over series with a defined scale).
    pub mase: f64,
    /// Mean sMAPE of the seasonal-naive forecast.
    pub naive_smape: f64,
    /// Mean MASE of the seasonal-naive forecast.
    pub naive_mase: f64,
    /// Share of test values inside the 80 % interval.
    pub coverage80: f64,
    /// Share of test values inside the 95 % interval.
    pub coverage95: f64,
    /// Training points fed.
    pub points: usize,
    /// Time spent feeding and forecasting.
    pub elapsed: Duration,
}

/// Runs `tidemark eval forecast`.
pub fn run(args: ForecastArgs) -> Result<()> {
    let base = match &args.config {
        Some(path) => {
            let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => ForecastSettings::default(),
    };
    let file = fs::File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut out = BufWriter::new(file);
    writeln!(out, "set,series_id,h,forecast,lower95,upper95")?;
    println!(
        "{:<10} {:>6} {:>8} {:>7} | {:>11} {:>10} | {:>6} {:>6} | {:>8}",
        "set", "series", "sMAPE", "MASE", "naive sMAPE", "naive MASE", "cov80", "cov95", "ns/point"
    );
    for set in data::set_names(&args.dir)? {
        let report = evaluate_set(&args.dir, &set, &base, &mut out)?;
        println!(
            "{:<10} {:>6} {:>8.3} {:>7.3} | {:>11.3} {:>10.3} | {:>6.3} {:>6.3} | {:>8.0}",
            report.set,
            report.series,
            report.smape,
            report.mase,
            report.naive_smape,
            report.naive_mase,
            report.coverage80,
            report.coverage95,
            report.elapsed.as_nanos() as f64 / report.points.max(1) as f64
        );
    }
    out.flush().with_context(|| format!("writing {}", args.out.display()))
}

/// Forecasts every series of one set, writes the forecasts and scores them.
pub fn evaluate_set(dir: &Path, set: &str, base: &ForecastSettings, out: &mut impl Write) -> Result<SetReport> {
    let series = data::load_set(dir, set)?;
    let (mut smape, mut mase, mut naive_smape, mut naive_mase) = (0.0, 0.0, 0.0, 0.0);
    let (mut mase_count, mut inside80, mut inside95, mut values, mut points) = (0, 0, 0, 0, 0);
    let mut elapsed = Duration::ZERO;
    for s in &series {
        let settings = ForecastSettings {
            seasonality: if s.period >= 2 {
                Seasonality::Steps(s.period as u32)
            } else {
                Seasonality::None
            },
            horizon: s.test.len(),
            max_period: base.max_period.max(s.period as u32),
            ..base.clone()
        };
        settings.validate()?;
        let started = Instant::now();
        let mut forecaster = Forecaster::new(&settings);
        for (t, &value) in s.train.iter().enumerate() {
            forecaster.update(t as i64 + 1, value);
        }
        let forecasts = forecaster.forecast(s.test.len());
        elapsed += started.elapsed();
        points += s.train.len();
        let means: Vec<f64> = forecasts.iter().map(|f| f.mean).collect();
        let naive = metrics::seasonal_naive(&s.train, s.period, s.test.len());
        smape += metrics::smape(&s.test, &means);
        naive_smape += metrics::smape(&s.test, &naive);
        if let (Some(m), Some(n)) = (
            metrics::mase(&s.train, s.period, &s.test, &means),
            metrics::mase(&s.train, s.period, &s.test, &naive),
        ) {
            mase += m;
            naive_mase += n;
            mase_count += 1;
        }
        for (h, (f, &y)) in forecasts.iter().zip(&s.test).enumerate() {
            inside80 += usize::from((f.lower80..=f.upper80).contains(&y));
            inside95 += usize::from((f.lower95..=f.upper95).contains(&y));
            values += 1;
            writeln!(out, "{set},{},{},{},{},{}", s.id, h + 1, f.mean, f.lower95, f.upper95)?;
        }
    }
    let n = series.len().max(1) as f64;
    let m = f64::from(mase_count.max(1));
    Ok(SetReport {
        set: set.to_string(),
        series: series.len(),
        smape: smape / n,
        mase: mase / m,
        naive_smape: naive_smape / n,
        naive_mase: naive_mase / m,
        coverage80: inside80 as f64 / values.max(1) as f64,
        coverage95: inside95 as f64 / values.max(1) as f64,
        points,
        elapsed,
    })
}
