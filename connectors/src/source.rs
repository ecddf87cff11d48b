//! Where lines come from: a configured source, opened once per worker.

use crate::generator::{Generator, GeneratorSettings, Pace};
use crate::lines::{Line, LineReader};
use serde::Deserialize;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a read achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceStatus {
    /// Lines were handed out; more may follow at once.
    Progress,
    /// Nothing to hand out before this much time has passed.
    Idle(Duration),
    /// The source is exhausted.
    Done,
}

/// A source of NDJSON lines, one instance per worker.
pub trait LineSource: Send {
    /// Hands up to `budget` lines to `visit`, each with its position in the source.
    fn read(&mut self, budget: usize, visit: &mut dyn FnMut(u64, Line<'_>)) -> io::Result<SourceStatus>;
}

/// The `[source]` section of the configuration.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// An NDJSON file, split among workers.
    File {
        /// The file.
        path: PathBuf,
    },
    /// NDJSON on standard input, read by worker 0.
    Stdin,
    /// The built-in generator.
    Generator(GeneratorConfig),
}

/// The generator's configuration (`[source]` with `type = "generator"`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeneratorConfig {
    /// Seed; the same seed gives the same events.
    pub seed: u64,
    /// Events per second of event time.
    pub events_per_second: f64,
    /// Stop after this many events (default: never).
    pub total_events: Option<u64>,
    /// `realtime` (event time follows the wall clock) or `unlimited` (as fast as possible).
    pub pace: PaceConfig,
    /// Start of event time in epoch ms for `unlimited` (default 2024-11-22T00:00Z);
    /// `realtime` always starts now.
    pub start_ms: Option<i64>,
    /// Fraction of events delivered out of order (0.01-0.05).
    pub out_of_order_ratio: f64,
    /// Largest disorder, ms.
    pub max_disorder_ms: i64,
    /// Fraction of deliberately malformed lines, to exercise dead-lettering.
    pub malformed_ratio: f64,
}

/// Pacing, as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaceConfig {
    /// Event time follows the wall clock.
    Realtime,
    /// As fast as possible.
    Unlimited,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        let defaults = GeneratorSettings::default();
        GeneratorConfig {
            seed: defaults.seed,
            events_per_second: defaults.events_per_second,
            total_events: defaults.total_events,
            pace: PaceConfig::Realtime,
            start_ms: None,
            out_of_order_ratio: defaults.out_of_order_ratio,
            max_disorder_ms: defaults.max_disorder_ms,
            malformed_ratio: defaults.malformed_ratio,
        }
    }
}

impl GeneratorConfig {
    /// The generator settings this configuration stands for (`now_ms` starts realtime runs).
    pub fn settings(&self, now_ms: i64) -> GeneratorSettings {
        let defaults = GeneratorSettings::default();
        let (pace, start_ms) = match self.pace {
            PaceConfig::Realtime => (Pace::Realtime, now_ms),
            PaceConfig::Unlimited => (Pace::Unlimited, self.start_ms.unwrap_or(defaults.start_ms)),
        };
        GeneratorSettings {
            seed: self.seed,
            events_per_second: self.events_per_second,
            start_ms,
            total_events: self.total_events,
            out_of_order_ratio: self.out_of_order_ratio,
            max_disorder_ms: self.max_disorder_ms,
            malformed_ratio: self.malformed_ratio,
            pace,
        }
    }
}

impl SourceConfig {
    /// A short name for dead letters and logs: `file:PATH`, `stdin`, `generator`.
    pub fn name(&self) -> String {
        match self {
            SourceConfig::File { path } => format!("file:{}", path.display()),
            SourceConfig::Stdin => "stdin".into(),
            SourceConfig::Generator(_) => "generator".into(),
        }
    }

    /// Opens worker `index`'s share of the source; `now_ms` anchors realtime generation so
    /// every worker uses the same start.
    pub fn open(
        &self,
        index: usize,
        workers: usize,
        max_line_bytes: usize,
        now_ms: i64,
    ) -> io::Result<Box<dyn LineSource>> {
        Ok(match self {
            SourceConfig::File { path } => Box::new(LineReader::file_share(path, index, workers, max_line_bytes)?),
            SourceConfig::Stdin if index == 0 => Box::new(LineReader::stream(Box::new(io::stdin()), max_line_bytes)),
            SourceConfig::Stdin => Box::new(Exhausted),
            SourceConfig::Generator(config) => Box::new(GeneratorSource {
                generator: Generator::new(&config.settings(now_ms), index, workers),
                line: Vec::with_capacity(512),
                realtime: config.pace == PaceConfig::Realtime,
            }),
        })
    }
}

/// The current wall-clock time in epoch milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl LineSource for LineReader {
    fn read(&mut self, budget: usize, visit: &mut dyn FnMut(u64, Line<'_>)) -> io::Result<SourceStatus> {
        self.read_batch(budget, visit)?;
        Ok(if self.is_done() {
            SourceStatus::Done
        } else {
            SourceStatus::Progress
        })
    }
}

struct Exhausted;

impl LineSource for Exhausted {
    fn read(&mut self, _: usize, _: &mut dyn FnMut(u64, Line<'_>)) -> io::Result<SourceStatus> {
        Ok(SourceStatus::Done)
    }
}

struct GeneratorSource {
    generator: Generator,
    line: Vec<u8>,
    realtime: bool,
}

impl LineSource for GeneratorSource {
    fn read(&mut self, budget: usize, visit: &mut dyn FnMut(u64, Line<'_>)) -> io::Result<SourceStatus> {
        let now = now_ms();
        for _ in 0..budget {
            match self.generator.peek_arrival() {
                None => return Ok(SourceStatus::Done),
                Some(arrival) if self.realtime && arrival > now => {
                    return Ok(SourceStatus::Idle(Duration::from_millis(
                        (arrival - now).clamp(1, 100) as u64
                    )));
                }
                Some(_) => {}
            }
            self.line.clear();
            if let Some(arrival) = self.generator.next_line(&mut self.line) {
                visit(arrival as u64, Line::Complete(&self.line));
            }
        }
        Ok(SourceStatus::Progress)
    }
}
