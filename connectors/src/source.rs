//! Where lines come from: a configured source, opened once per worker.

use crate::generator::{Generator, GeneratorSettings, Pace};
use crate::kafka::{KafkaSource, KafkaSourceConfig};
use crate::lines::{Line, LineReader};
use crate::stdin::ThreadedReader;
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

/// Where a line came from within one source instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin<'a> {
    /// Which partition ("slot") of this instance: always 0 for files, stdin and the generator.
    pub slot: usize,
    /// Byte offset (files, stdin), arrival time (generator) or offset (Kafka).
    pub position: u64,
    /// The message key (Kafka), kept for dead letters.
    pub key: Option<&'a [u8]>,
}

impl Origin<'_> {
    /// An origin in a single-slot source.
    pub fn at(position: u64) -> Self {
        Origin {
            slot: 0,
            position,
            key: None,
        }
    }
}

/// A source of NDJSON lines, one instance per worker.
///
/// Multi-partition sources (Kafka) report several slots: the watermark is the minimum over the
/// slots that are not idle, so a lagging partition holds event time back while a silent one
/// does not stall everything. Sources that can acknowledge progress (Kafka offsets) get
/// [`commit`](LineSource::commit) calls once results covering their lines are durable.
pub trait LineSource: Send {
    /// Hands up to `budget` lines to `visit`, each with its origin.
    fn read(&mut self, budget: usize, visit: &mut dyn FnMut(Origin<'_>, Line<'_>)) -> io::Result<SourceStatus>;

    /// How many slots this instance reads.
    fn slots(&self) -> usize {
        1
    }

    /// Whether `slot` has been silent for the idle timeout and must not hold back the watermark.
    fn is_idle(&self, _slot: usize) -> bool {
        false
    }

    /// Whether this source acknowledges positions; if so the operator tracks them per slot.
    fn commits(&self) -> bool {
        false
    }

    /// Every line of `slot` before position `next[slot]` is reflected durably in every sink
    /// (`None`: nothing new for that slot), and every window that ends, plus the correction
    /// horizon, at or before timely time `settled` is final. `last` is the final call.
    fn commit(&mut self, _next: &[Option<u64>], _settled: u64, _last: bool) -> io::Result<()> {
        Ok(())
    }

    /// The `settled` time of the last commit before this run (0 if none): input of a window
    /// settled before it was final in an earlier run and must not reopen the window now.
    fn settled_before(&self, _slot: usize) -> u64 {
        0
    }

    /// Names the partition of a slot in dead letters (Kafka partition number).
    fn partition(&self, _slot: usize) -> Option<i32> {
        None
    }

    /// The position one past the newest input known to exist in a slot (a Kafka partition's
    /// end offset), for reporting lag; `None` where unknown.
    fn end_position(&self, _slot: usize) -> Option<u64> {
        None
    }

    /// The position a slot started reading from in this run (a Kafka partition's committed
    /// or reset offset), so lag is known before anything is read; `None` where unknown.
    fn start_position(&self, _slot: usize) -> Option<u64> {
        None
    }
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
    /// A Kafka topic, its partitions spread over all workers.
    Kafka(KafkaSourceConfig),
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
            SourceConfig::Kafka(kafka) => format!("kafka:{}", kafka.topic),
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
            SourceConfig::Stdin if index == 0 => Box::new(LineReader::stream(
                Box::new(ThreadedReader::spawn(Box::new(io::stdin()))?),
                max_line_bytes,
            )),
            SourceConfig::Stdin => Box::new(Exhausted),
            SourceConfig::Generator(config) => Box::new(GeneratorSource {
                generator: Generator::new(&config.settings(now_ms), index, workers),
                line: Vec::with_capacity(512),
                realtime: config.pace == PaceConfig::Realtime,
            }),
            SourceConfig::Kafka(config) => Box::new(KafkaSource::open(config, index, workers, max_line_bytes)?),
        })
    }
}

/// The current wall-clock time in epoch milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How soon a quiet stream (stdin with nothing new) is read again: short against window sizes
/// and the stop signal, long enough that waiting costs nothing.
const QUIET_STREAM_POLL: Duration = Duration::from_millis(10);

impl LineSource for LineReader {
    fn read(&mut self, budget: usize, visit: &mut dyn FnMut(Origin<'_>, Line<'_>)) -> io::Result<SourceStatus> {
        let handed = self.read_batch(budget, &mut |position, line| visit(Origin::at(position), line))?;
        Ok(if self.is_done() {
            SourceStatus::Done
        } else if handed == 0 && self.is_waiting() {
            SourceStatus::Idle(QUIET_STREAM_POLL)
        } else {
            SourceStatus::Progress
        })
    }
}

struct Exhausted;

impl LineSource for Exhausted {
    fn read(&mut self, _: usize, _: &mut dyn FnMut(Origin<'_>, Line<'_>)) -> io::Result<SourceStatus> {
        Ok(SourceStatus::Done)
    }
}

struct GeneratorSource {
    generator: Generator,
    line: Vec<u8>,
    realtime: bool,
}

impl LineSource for GeneratorSource {
    fn read(&mut self, budget: usize, visit: &mut dyn FnMut(Origin<'_>, Line<'_>)) -> io::Result<SourceStatus> {
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
                visit(Origin::at(arrival as u64), Line::Complete(&self.line));
            }
        }
        Ok(SourceStatus::Progress)
    }
}
