//! `tidemark eval nab DIR --results OUT`: runs the detector over the NAB corpus, writes NAB's
//! result files (`OUT/<category>/<detector>_<file>.csv`: `timestamp,value,anomaly_score`, rows
//! in data order), reads them back and scores them with the standard profile ([`scorer`]).
//!
//! Reading the files back (rather than scoring in memory) means the printed score is the score
//! of exactly what was written, and `--score-only` scores any detector's NAB results the same way.

pub mod corpus;
pub mod scorer;
#[cfg(test)]
mod tests;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use corpus::DataFile;
use scorer::{Row, STANDARD, ThresholdScore};
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use tidemark_dataflows::anomaly::{Detector, DetectorSettings};

/// Arguments of `tidemark eval nab`.
#[derive(Args, Debug)]
pub struct NabArgs {
    /// The NAB corpus: `data/<category>/<file>.csv` and `labels/combined_windows.json`.
    pub dir: PathBuf,
    /// Where the result files go (`<category>/<detector>_<file>.csv`).
    #[arg(long)]
    pub results: PathBuf,
    /// Detector settings: a TOML file with the keys of `[anomaly]` at its top level.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Score the result files already in `--results` instead of running the detector.
    #[arg(long)]
    pub score_only: bool,
    /// The detector name in result file names.
    #[arg(long, default_value = "tidemark")]
    pub detector: String,
}

/// What scoring the corpus found.
#[derive(Clone, Debug, PartialEq)]
pub struct NabReport {
    /// The normalised standard-profile score (null detector 0, perfect 100).
    pub score: f64,
    /// The raw score and counts at the best threshold.
    pub best: ThresholdScore,
    /// The null detector's raw score.
    pub null: f64,
    /// The perfect detector's raw score.
    pub perfect: f64,
    /// Per category: raw score at the best threshold.
    pub categories: Vec<(String, f64)>,
}

/// Runs `tidemark eval nab`.
pub fn run(args: NabArgs) -> Result<()> {
    let settings = match &args.config {
        Some(path) => {
            let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => DetectorSettings::default(),
    };
    settings.validate()?;
    let files = corpus::load(&args.dir)?;
    if !args.score_only {
        for file in &files {
            write_results(&args.results, &args.detector, file, &settings)?;
        }
    }
    let report = score(&args.dir, &files, &args.results, &args.detector)?;
    for (category, raw) in &report.categories {
        println!("  {category:<24} raw {raw:>8.3}");
    }
    println!(
        "windows detected {}/{}, false positives {} (rows), raw score {:.3} (null {:.1}, perfect {:.1})",
        report.best.detected_windows,
        report.best.windows,
        report.best.false_positives,
        report.best.score,
        report.null,
        report.perfect
    );
    println!(
        "NAB standard score {:.2} at threshold {}",
        report.score, report.best.threshold
    );
    Ok(())
}

/// The anomaly scores of one file, the detector fed row by row.
pub fn detect(file: &DataFile, settings: &DetectorSettings) -> Vec<f64> {
    let mut detector = Detector::new(settings);
    file.times_ms
        .iter()
        .zip(&file.values)
        .map(|(&ts, &value)| detector.update(ts, value).score)
        .collect()
}

/// The result file of one data file.
pub fn result_path(results: &Path, detector: &str, file: &DataFile) -> PathBuf {
    results.join(&file.category).join(format!("{detector}_{}", file.name))
}

fn write_results(results: &Path, detector: &str, file: &DataFile, settings: &DetectorSettings) -> Result<()> {
    let path = result_path(results, detector, file);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let out = fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(out);
    writeln!(out, "timestamp,value,anomaly_score")?;
    for ((timestamp, value), score) in file
        .timestamps
        .iter()
        .zip(&file.value_texts)
        .zip(detect(file, settings))
    {
        writeln!(out, "{timestamp},{value},{score}")?;
    }
    out.flush().with_context(|| format!("writing {}", path.display()))
}

/// Reads every file's results back and scores the corpus.
pub fn score(dir: &Path, files: &[DataFile], results: &Path, detector: &str) -> Result<NabReport> {
    let mut rows = Vec::new();
    let mut spans = Vec::new();
    let mut first_window = 0;
    for file in files {
        let scores = read_scores(&result_path(results, detector, file), file.values.len())?;
        let start = rows.len();
        rows.extend(scorer::sweep(&scores, &file.windows, first_window, STANDARD));
        spans.push((file.category.clone(), start..rows.len()));
        first_window += file.windows.len();
    }
    let best = scorer::best_threshold(&rows, STANDARD);
    let null_rows: Vec<Row> = rows.iter().map(|r| Row { score: 0.5, ..*r }).collect();
    let null = scorer::best_threshold(&null_rows, STANDARD).score;
    let perfect = corpus::label_window_count(dir)? as f64 * STANDARD.tp;
    let mut categories: Vec<(String, f64)> = Vec::new();
    for (category, span) in spans {
        let raw = scorer::score_at(&rows[span], best.threshold, STANDARD);
        match categories.last_mut() {
            Some((last, total)) if *last == category => *total += raw,
            _ => categories.push((category, raw)),
        }
    }
    Ok(NabReport {
        score: scorer::normalise(best.score, null, perfect),
        best,
        null,
        perfect,
        categories,
    })
}

/// The `anomaly_score` column of a result file, which must have one row per data row.
fn read_scores(path: &Path, expected_rows: usize) -> Result<Vec<f64>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header = lines.next().ok_or_else(|| anyhow!("{} is empty", path.display()))?;
    let column = header
        .split(',')
        .position(|name| name.trim() == "anomaly_score")
        .ok_or_else(|| anyhow!("{} has no anomaly_score column", path.display()))?;
    let scores = lines
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let field = line.split(',').nth(column).unwrap_or("");
            field
                .trim()
                .parse::<f64>()
                .with_context(|| format!("{}: bad score {field:?}", path.display()))
        })
        .collect::<Result<Vec<f64>>>()?;
    if scores.len() != expected_rows {
        bail!(
            "{} has {} rows, the data file {}",
            path.display(),
            scores.len(),
            expected_rows
        );
    }
    Ok(scores)
}
