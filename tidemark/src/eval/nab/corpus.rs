//! The NAB corpus on disk: `data/<category>/<file>.csv` (`timestamp,value`) and
//! `labels/combined_windows.json` (`"<category>/<file>.csv"` → `[[start, end], …]`).

use super::scorer::Window;
use crate::eval::timestamp::parse_ms;
use anyhow::{Context, Result, anyhow, bail};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// One data file with its labelled windows.
#[derive(Debug)]
pub struct DataFile {
    /// `<category>/<file>.csv`, as in the labels.
    pub key: String,
    /// The category folder.
    pub category: String,
    /// The file name, `.csv` included.
    pub name: String,
    /// Timestamps as written in the file (copied verbatim into the results).
    pub timestamps: Vec<String>,
    /// Timestamps in epoch milliseconds.
    pub times_ms: Vec<i64>,
    /// Values as written in the file.
    pub value_texts: Vec<String>,
    /// Values.
    pub values: Vec<f64>,
    /// Labelled windows as row ranges, in order.
    pub windows: Vec<Window>,
}

/// Every data file under `dir/data`, sorted by key, with its windows. A subset of the corpus
/// works as long as every file present has an entry in the labels.
pub fn load(dir: &Path) -> Result<Vec<DataFile>> {
    let labels_path = dir.join("labels").join("combined_windows.json");
    let labels_text = fs::read_to_string(&labels_path).with_context(|| format!("reading {}", labels_path.display()))?;
    let labels: BTreeMap<String, Vec<[String; 2]>> =
        serde_json::from_str(&labels_text).with_context(|| format!("parsing {}", labels_path.display()))?;
    let mut files = Vec::new();
    for path in csv_files(&dir.join("data"))? {
        let category = file_name(path.parent().unwrap_or(&path));
        let name = file_name(&path);
        let key = format!("{category}/{name}");
        let windows = labels
            .get(&key)
            .ok_or_else(|| anyhow!("{key} has no entry in {}", labels_path.display()))?;
        let mut file = read_data(&path, key, category, name)?;
        file.windows = windows
            .iter()
            .map(|[start, end]| window_rows(&file, start, end))
            .collect::<Result<_>>()?;
        files.push(file);
    }
    if files.is_empty() {
        bail!("no data files under {}", dir.join("data").display());
    }
    files.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(files)
}

/// Total labelled windows in the labels file, as NAB counts them for the perfect score.
pub fn label_window_count(dir: &Path) -> Result<usize> {
    let path = dir.join("labels").join("combined_windows.json");
    let labels: BTreeMap<String, Vec<[String; 2]>> = serde_json::from_str(&fs::read_to_string(&path)?)?;
    Ok(labels.values().map(Vec::len).sum())
}

fn csv_files(data: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let categories = fs::read_dir(data).with_context(|| format!("reading {}", data.display()))?;
    for category in categories {
        let category = category?.path();
        if !category.is_dir() {
            continue;
        }
        for file in fs::read_dir(&category)? {
            let file = file?.path();
            if file.extension().is_some_and(|e| e == "csv") {
                out.push(file);
            }
        }
    }
    Ok(out)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read_data(path: &Path, key: String, category: String, name: String) -> Result<DataFile> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut file = DataFile {
        key,
        category,
        name,
        timestamps: Vec::new(),
        times_ms: Vec::new(),
        value_texts: Vec::new(),
        values: Vec::new(),
        windows: Vec::new(),
    };
    for (number, line) in text.lines().enumerate().skip(1) {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), number + 1);
        let (timestamp, value) = line
            .split_once(',')
            .ok_or_else(|| anyhow!("{}: expected timestamp,value", at()))?;
        file.times_ms.push(parse_ms(timestamp).with_context(at)?);
        file.values.push(
            value
                .trim()
                .parse()
                .with_context(|| format!("{}: bad value {value:?}", at()))?,
        );
        file.timestamps.push(timestamp.to_string());
        file.value_texts.push(value.to_string());
    }
    Ok(file)
}

/// The rows of a window whose ends must match data timestamps exactly (as NAB requires).
fn window_rows(file: &DataFile, start: &str, end: &str) -> Result<Window> {
    let row = |text: &str| -> Result<usize> {
        let ms = parse_ms(text)?;
        file.times_ms
            .iter()
            .position(|&t| t == ms)
            .ok_or_else(|| anyhow!("{}: window end {text} matches no row", file.key))
    };
    Ok(Window {
        first: row(start)?,
        last: row(end)?,
    })
}
