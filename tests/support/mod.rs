//! Shared pieces of the end-to-end tests: running the real binary, generating event files, and
//! an independent, obviously-correct batch implementation of the windowed aggregates (parse
//! with `serde_json`, group, sort, type-7 quantiles) to compare the pipeline against.

#![allow(dead_code)]

pub mod running;

use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Command, Output};

/// The `tidemark` binary under test.
pub fn tidemark() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tidemark"));
    command.env("TIDEMARK_LOG", "warn");
    // Tests run in parallel: never the default port, which a running demo may hold.
    command.env("TIDEMARK_HTTP_ADDR", "127.0.0.1:0");
    command
}

/// Polls `check` every 100 ms until it returns `Some`, failing the test after `timeout`.
pub fn wait_for<T>(what: &str, timeout: std::time::Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Runs a command and fails the test, with its output, unless it succeeded.
pub fn succeed(command: &mut Command) -> Output {
    let output = command.output().expect("spawning tidemark");
    assert!(
        output.status.success(),
        "{command:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A small deterministic PRNG (splitmix64), so test data is the same on every machine.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Generic metric events over `series` series at `rate` events per second of event time:
/// `disorder` of them up to 1999 ms late (within a 2 s lateness), `very_late` of them 1–20
/// minutes late (after their window closed). Returns NDJSON lines.
pub fn metric_events(n: usize, series: usize, disorder: f64, very_late: f64, seed: u64) -> Vec<String> {
    metric_events_spaced(n, series, disorder, very_late, seed, 10)
}

/// [`metric_events`] with arrivals 1..=`max_step_ms` ms apart (a longer span of event time).
pub fn metric_events_spaced(
    n: usize,
    series: usize,
    disorder: f64,
    very_late: f64,
    seed: u64,
    max_step_ms: u64,
) -> Vec<String> {
    let mut rng = Rng(seed);
    let start: i64 = 1_732_233_600_000;
    let mut arrival = start;
    (0..n)
        .map(|_| {
            arrival += rng.below(max_step_ms) as i64 + 1;
            let roll = rng.unit();
            let ts = if roll < very_late {
                arrival - 60_000 - rng.below(19 * 60_000) as i64
            } else if roll < very_late + disorder {
                arrival - rng.below(2000) as i64
            } else {
                arrival
            };
            let s = rng.below(series as u64);
            let value = match s % 3 {
                0 => (rng.unit() * 1000.0).round() / 1000.0 * 50.0,
                1 => rng.below(10_000) as f64,
                _ => ((rng.unit() - 0.5) * 2e4).round() / 10.0,
            };
            format!(
                r#"{{"ts":{ts},"metric":"m{}.value","tags":{{"zone":"z{}","host":"h{s}"}},"value":{value}}}"#,
                s % 4,
                s % 5
            )
        })
        .collect()
}

/// Writes lines as an NDJSON file.
pub fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).expect("writing events");
}

/// Type-7 quantile of sorted values, written out again here on purpose (no shared code).
pub fn type7(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Expected aggregates of one window.
#[derive(Clone, Debug, PartialEq)]
pub struct Expected {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// The series key of a generic metric event: metric, then tags sorted by key.
pub fn series_key(event: &Value) -> String {
    let mut key = event["metric"].as_str().expect("metric").to_string();
    if let Some(tags) = event["tags"].as_object() {
        let sorted: BTreeMap<&String, &Value> = tags.iter().collect();
        for (k, v) in sorted {
            key.push_str(&format!("|{k}={}", v.as_str().expect("string tag")));
        }
    }
    key
}

/// Batch aggregates of `(key, ts, value)` observations for every window size in `sizes_ms`,
/// keyed by (series, size, window start).
pub fn batch_windows(observations: &[(String, i64, f64)], sizes_ms: &[i64]) -> BTreeMap<(String, i64, i64), Expected> {
    let mut groups: HashMap<(String, i64, i64), Vec<f64>> = HashMap::new();
    for (key, ts, value) in observations {
        for &size in sizes_ms {
            groups
                .entry((key.clone(), size, ts - ts.rem_euclid(size)))
                .or_default()
                .push(*value);
        }
    }
    groups
        .into_iter()
        .map(|(k, mut values)| {
            values.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
            let expected = Expected {
                count: values.len() as u64,
                sum: values.iter().sum(),
                min: values[0],
                max: values[values.len() - 1],
                p50: type7(&values, 0.5),
                p95: type7(&values, 0.95),
                p99: type7(&values, 0.99),
            };
            (k, expected)
        })
        .collect()
}

/// Parses generic metric event lines into observations.
pub fn observations(lines: &[String]) -> Vec<(String, i64, f64)> {
    lines
        .iter()
        .map(|line| {
            let event: Value = serde_json::from_str(line).expect("test events are valid JSON");
            (
                series_key(&event),
                event["ts"].as_i64().expect("ts"),
                event["value"].as_f64().expect("value"),
            )
        })
        .collect()
}

/// The last update per (series, size, start) in a `windows.ndjson` stream.
pub fn final_updates(path: &Path) -> BTreeMap<(String, i64, i64), Value> {
    let text = std::fs::read_to_string(path).expect("reading windows.ndjson");
    let mut last = BTreeMap::new();
    for line in text.lines() {
        let row: Value = serde_json::from_str(line).expect("windows.ndjson is NDJSON");
        let key = (
            row["series"].as_str().expect("series").to_string(),
            row["window_ms"].as_i64().expect("window_ms"),
            row["window_start"].as_i64().expect("window_start"),
        );
        last.insert(key, row);
    }
    last
}

/// Rows of a CSV export, keyed by (series, window start), as the raw text fields.
pub fn read_csv(path: &Path) -> BTreeMap<(String, i64), Vec<String>> {
    let text = std::fs::read_to_string(path).expect("reading the CSV export");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("series,window_start,count,sum,min,max,avg,p95,p99"));
    lines
        .map(|line| {
            let fields: Vec<String> = line.split(',').map(String::from).collect();
            assert_eq!(fields.len(), 9, "{line}");
            ((fields[0].clone(), fields[1].parse().expect("window_start")), fields)
        })
        .collect()
}

/// Whether `got` is within `rel` of `want` (plus a tiny absolute slack for values near 0).
pub fn close(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() <= 1e-9 + rel * want.abs()
}

/// Dead-letter records of a dead-letter file.
pub fn dead_letters(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("reading dead letters")
        .lines()
        .map(|line| serde_json::from_str(line).expect("dead letters are NDJSON"))
        .collect()
}

pub mod kafka;
