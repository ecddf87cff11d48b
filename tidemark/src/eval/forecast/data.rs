//! A forecasting set on disk: `<set>_train.csv` and `<set>_test.csv` (`series_id,t,value`,
//! rows of a series in order of `t`) and `<set>_meta.csv`
//! (`series_id,n_train,horizon,period,has_nonpositive`).

use anyhow::{Context, Result, anyhow, bail};
use std::collections::HashMap;
use std::fs;
use std::path::Path;

/// One series: its training values, the values to forecast and its period.
#[derive(Debug)]
pub struct Series {
    /// The series id (e.g. `M1`).
    pub id: String,
    /// Training values, oldest first.
    pub train: Vec<f64>,
    /// The `horizon` values after the training values.
    pub test: Vec<f64>,
    /// Seasonal period in steps (1: none).
    pub period: usize,
}

/// The names of the sets in `dir` (those with a `<set>_meta.csv`), sorted.
pub fn set_names(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            entry
                .file_name()
                .to_str()?
                .strip_suffix("_meta.csv")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    if names.is_empty() {
        bail!("no <set>_meta.csv files in {}", dir.display());
    }
    Ok(names)
}

/// The series of one set, in the order of its meta file.
pub fn load_set(dir: &Path, set: &str) -> Result<Vec<Series>> {
    let mut train = read_values(&dir.join(format!("{set}_train.csv")))?;
    let mut test = read_values(&dir.join(format!("{set}_test.csv")))?;
    let meta_path = dir.join(format!("{set}_meta.csv"));
    let meta = fs::read_to_string(&meta_path).with_context(|| format!("reading {}", meta_path.display()))?;
    let mut out = Vec::new();
    for (number, line) in meta.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
        let at = || format!("{}:{}", meta_path.display(), number + 1);
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [id, n_train, horizon, period, ..] = fields[..] else {
            bail!("{}: expected series_id,n_train,horizon,period,…", at());
        };
        let (n_train, horizon, period): (usize, usize, usize) = (
            n_train.parse().with_context(at)?,
            horizon.parse().with_context(at)?,
            period.parse().with_context(at)?,
        );
        let train = train
            .remove(id)
            .ok_or_else(|| anyhow!("{}: {id} has no training values", at()))?;
        let test = test
            .remove(id)
            .ok_or_else(|| anyhow!("{}: {id} has no test values", at()))?;
        if train.len() != n_train || test.len() != horizon {
            bail!(
                "{}: {id} has {} training and {} test values, the meta says {n_train} and {horizon}",
                at(),
                train.len(),
                test.len()
            );
        }
        out.push(Series {
            id: id.to_string(),
            train,
            test,
            period: period.max(1),
        });
    }
    Ok(out)
}

/// `series_id,t,value` rows grouped by series, ordered by `t`.
fn read_values(path: &Path) -> Result<HashMap<String, Vec<f64>>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut rows: HashMap<String, Vec<(u64, f64)>> = HashMap::new();
    for (number, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
        let at = || format!("{}:{}", path.display(), number + 1);
        let mut fields = line.split(',').map(str::trim);
        let (Some(id), Some(t), Some(value)) = (fields.next(), fields.next(), fields.next()) else {
            bail!("{}: expected series_id,t,value", at());
        };
        rows.entry(id.to_string())
            .or_default()
            .push((t.parse().with_context(at)?, value.parse().with_context(at)?));
    }
    Ok(rows
        .into_iter()
        .map(|(id, mut points)| {
            points.sort_by_key(|&(t, _)| t);
            (id, points.into_iter().map(|(_, v)| v).collect())
        })
        .collect())
}
