//! The InfluxDB sink: window results, anomaly scores and forecasts as line protocol over HTTP.
//!
//! ```text
//! sink thread ──write()──▶ encode ──chunk──▶ batcher ──batch──▶ writers (max_in_flight) ──▶ server
//!                         (bounded: 2)      (size/time)   (bounded: max_in_flight)
//! ```
//!
//! * **Encoding** is the strict [`line_protocol`](crate::line_protocol) encoder shared with the
//!   line-protocol file; names are listed in `docs/output-schema.md`.
//! * **Batching**: at most `batch_points` lines per request, sent when full or when the oldest
//!   line has waited `flush_interval`; gzip-compressed; `max_in_flight` requests at once.
//! * **Retries**: 429, 5xx and connection errors are retried with exponential backoff and
//!   jitter, without limit; a 400 is never retried — the batch goes to the rejected file with
//!   the server's message (see `rejected.rs`); other 4xx stop the run (see `delivery.rs`).
//! * **Backpressure, bounded memory**: every queue is bounded, so while the server is down
//!   `write` blocks and the dataflow slows down instead of buffering without limit. At most
//!   `2 × max_in_flight + 3` batches exist at once (in flight, queued, being filled, chunks).
//! * **Nothing acknowledged is lost**: a point accepted by `write` is settled — acknowledged by
//!   the server or kept in the rejected file — before [`flush`](crate::Sink::flush) or
//!   [`finish`](crate::Sink::finish) return `Ok`; both wait (retrying) while the server is down.
//!   Dropping the sink without `finish` (the run failed elsewhere) gives each batch one more
//!   attempt and keeps the rest in the rejected file.
//! * **Idempotency**: a point's identity is its measurement, tag set and timestamp, and a
//!   window update, a correction or a rollup of the same window always has the same three
//!   (the window start is the timestamp; the kind of update is not a tag). InfluxDB keeps the
//!   last write of a point, so corrections replace the earlier values, and a replay, a retry of
//!   a batch whose answer was lost, or a rejected batch written again converge on the same
//!   contents instead of duplicating points.
//!
//! The HTTP client is `ureq` with default features off: blocking (the sink runs on its own
//! threads, so an async runtime would buy nothing), about a dozen small crates, no TLS unless
//! the `tls` feature asks for rustls. `reqwest`'s blocking client would bring tokio and hyper
//! for the same requests, and the `influxdb2` crate cannot reach 1.x and writes invalid line
//! protocol for NaN, empty tags and newlines. Bodies are compressed with `flate2` (pure-Rust
//! miniz backend).

mod batcher;
mod config;
mod delivery;
mod rejected;
mod shared;
mod stats;

pub use config::{ApiVersion, InfluxDbConfig, InfluxDbConfigError};

use crate::line_protocol::{EncodeOutcome, encode_forecast, encode_score, encode_window};
use crate::{Sink, SinkError};
use batcher::Input;
use crossbeam_channel::Sender;
use delivery::{Endpoint, Writer};
use rejected::RejectedFile;
use shared::Shared;
use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;
use tidemark_schemas::output::window_label;
use tidemark_schemas::{OutputBatch, UpdateKind};
use tracing::warn;

/// Writes results to an InfluxDB server. See the module documentation.
pub struct InfluxDbSink {
    url: String,
    shared: Arc<Shared>,
    input: Option<Sender<Input>>,
    stop: Option<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
    labels: HashMap<u64, String>,
    accepted: u64,
    warned: bool,
}

fn fatal(reason: impl Into<String>) -> SinkError {
    SinkError::InfluxDb(reason.into())
}

impl InfluxDbSink {
    /// Validates `config`, reads the token from the environment and starts the batcher and
    /// the writer threads. Nothing is sent until results arrive.
    pub fn start(config: &InfluxDbConfig) -> Result<Self, SinkError> {
        config.validate().map_err(|e| fatal(e.to_string()))?;
        let token = config.token().map_err(|e| fatal(e.to_string()))?;
        let endpoint = Arc::new(Endpoint::new(config, token));
        let shared = Arc::new(Shared::new(RejectedFile::new(config.rejected_path.clone())));
        let (input, inputs) = crossbeam_channel::bounded(2);
        let (batch_tx, batches) = crossbeam_channel::bounded(config.max_in_flight);
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let mut threads = Vec::new();
        for seed in 0..config.max_in_flight as u64 {
            let writer = Writer {
                endpoint: endpoint.clone(),
                shared: shared.clone(),
                initial_backoff: config.initial_backoff,
                max_backoff: config.max_backoff,
                seed: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            };
            let (batches, stopped) = (batches.clone(), stopped.clone());
            threads.push(spawn(&format!("tidemark-influx-{seed}"), move || {
                writer.run(batches, stopped)
            })?);
        }
        let settings = batcher::Settings {
            batch_points: config.batch_points,
            flush_interval: config.flush_interval,
            self_metrics: config
                .self_metrics
                .then(|| (config.self_metrics_interval, config.instance.clone())),
        };
        let batcher_shared = shared.clone();
        threads.push(spawn("tidemark-influx-batch", move || {
            batcher::run(inputs, batch_tx, batcher_shared, settings)
        })?);
        Ok(InfluxDbSink {
            url: endpoint.url().to_string(),
            shared,
            input: Some(input),
            stop: Some(stop),
            threads,
            labels: HashMap::new(),
            accepted: 0,
            warned: false,
        })
    }

    fn check(&self) -> Result<(), SinkError> {
        self.shared.failure().map_or(Ok(()), |reason| Err(fatal(reason)))
    }

    /// Stops the threads: closing the input lets the batcher send what is left and close the
    /// writers' queue; `abandon` also closes `stop`, so writers stop waiting for a down server.
    fn shut_down(&mut self, abandon: bool) {
        self.input = None;
        if abandon {
            self.stop = None;
        }
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                self.shared.fail("an InfluxDB sink thread panicked".into());
            }
        }
        self.stop = None;
    }
}

fn spawn(name: &str, job: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, SinkError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(job)
        .map_err(|e| fatal(format!("starting thread {name}: {e}")))
}

/// The `window` tag of a window size, formatted once per size.
fn label(labels: &mut HashMap<u64, String>, window_ms: u64) -> &str {
    labels.entry(window_ms).or_insert_with(|| window_label(window_ms))
}

/// Lines encoded from one batch, and the warning about lossy lines (logged once per run).
struct Encoded<'a> {
    written: u32,
    stats: &'a stats::SinkStats,
    warned: &'a mut bool,
}

impl Encoded<'_> {
    fn note(&mut self, outcome: EncodeOutcome, series: &str) {
        self.written += u32::from(!outcome.dropped_line);
        if outcome.is_lossy() {
            self.stats.encoder_losses.add(1);
            if !*self.warned {
                *self.warned = true;
                warn!(%series, ?outcome, "left non-finite fields or unwritable tags out of a point (logged once)");
            }
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Sink for InfluxDbSink {
    fn name(&self) -> &'static str {
        "influxdb"
    }

    fn write(&mut self, batch: &OutputBatch) -> Result<(), SinkError> {
        self.check()?;
        let InfluxDbSink {
            shared, labels, warned, ..
        } = self;
        let stats = &shared.stats;
        for letter in &batch.dead_letters {
            stats.dead_lettered(letter.reason, 1);
        }
        let points = batch.windows.len() + batch.scores.len() + batch.forecasts.len();
        if points == 0 {
            return Ok(());
        }
        let received = Instant::now();
        let now = now_ms();
        let mut lines = Vec::with_capacity(points * 192);
        let mut encoded = Encoded {
            written: 0,
            stats,
            warned,
        };
        for row in &batch.windows {
            stats.window_rows.add(1);
            match row.kind {
                UpdateKind::Final => {
                    stats.final_rows.add(1);
                    stats.window_closed(row.window_start + row.window_ms as i64, now);
                }
                UpdateKind::Correction => stats.corrections.add(1),
            }
            let outcome = encode_window(row, label(labels, row.window_ms), &mut lines);
            encoded.note(outcome, &row.series);
        }
        for score in &batch.scores {
            stats.scores.add(1);
            let outcome = encode_score(score, label(labels, score.window_ms), &mut lines);
            encoded.note(outcome, &score.series);
        }
        for point in &batch.forecasts {
            stats.forecasts.add(1);
            let outcome = encode_forecast(point, label(labels, point.window_ms), &mut lines);
            encoded.note(outcome, &point.series);
        }
        let written = encoded.written;
        if written == 0 {
            return Ok(());
        }
        self.accepted = self.shared.accept(u64::from(written));
        let input = self.input.as_ref().expect("write after finish");
        input
            .send(Input::Chunk {
                lines,
                points: written,
                received,
            })
            .map_err(|_| fatal("the InfluxDB batcher stopped"))
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.check()?;
        if let Some(input) = &self.input {
            input
                .send(Input::Flush)
                .map_err(|_| fatal("the InfluxDB batcher stopped"))?;
        }
        self.shared.wait_settled(self.accepted).map_err(fatal)
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.shut_down(false);
        self.check()
    }

    fn written(&self) -> u64 {
        self.shared.stats.points_written.total()
    }

    fn describe(&self) -> String {
        let stats = &self.shared.stats;
        let latency = stats.latency_quantiles().map_or_else(String::new, |(p50, p99)| {
            format!(", write latency p50 {p50:.1} ms p99 {p99:.1} ms")
        });
        let rejected = match stats.points_rejected.total() {
            0 => String::new(),
            n => format!(", {n} points refused (kept in {})", self.shared.rejected_path()),
        };
        format!(
            "InfluxDB ({} points written, self-metrics included, {} requests, {} retries{rejected}{latency}): {}",
            stats.points_written.total(),
            stats.requests.total(),
            stats.retries.total(),
            self.url
        )
    }
}

impl Drop for InfluxDbSink {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.shut_down(true);
        }
    }
}
