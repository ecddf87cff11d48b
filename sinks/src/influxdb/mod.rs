//! The InfluxDB sink: window results, anomaly scores and forecasts as line protocol over HTTP.
//!
//! ```text
//! sink thread ──write()──▶ encode ──chunk──▶ batcher ──batch──▶ writer per lane ──▶ server
//!            (lane = series) (bounded: 2)  (size/time)  (bounded: 1 per lane)  │  ▲
//!                                                               failing for    ▼  │ drain, oldest
//!                                                               spool_after   spool first
//!                                                                       (disk, bounded)
//! ```
//!
//! * **Encoding** is the strict [`line_protocol`](crate::line_protocol) encoder shared with the
//!   line-protocol file; names are listed in `docs/output-schema.md`.
//! * **Batching**: at most `batch_points` lines per request, sent when full or when the oldest
//!   line has waited `flush_interval`; gzip-compressed; `max_in_flight` lanes, each with one
//!   request at a time, so that the updates of one point arrive in order (`delivery.rs`).
//! * **Retries, then the spool**: 429, 5xx and connection errors are retried with exponential
//!   backoff and jitter for `spool_after`; then the batch is appended to the on-disk spool
//!   (`spool.rs`), synced, and settled, and the pipeline goes on. While the spool holds
//!   anything, new batches go to it too, and the drain (`drain.rs`) replays it oldest first
//!   when the server answers; an existing spool is replayed at start before anything new.
//!   A 400 is never retried — the batch goes to the rejected file with the server's message
//!   (see `rejected.rs`); other 4xx stop the run (see `delivery.rs`).
//! * **Backpressure, bounded memory**: every queue is bounded and so is the spool
//!   (`spool_max_bytes`): when it is full, `write` blocks and the dataflow stops reading
//!   instead of buffering without limit. At most `3 × max_in_flight + 3` batches are in memory
//!   at once (in flight, queued and being filled per lane, and the chunks).
//! * **Nothing acknowledged is lost**: a point accepted by `write` is settled — acknowledged by
//!   the server, synced to the spool, or kept in the rejected file — before
//!   [`flush`](crate::Sink::flush) or [`finish`](crate::Sink::finish) return `Ok`. At `finish`
//!   the drain empties the spool while the server answers; what it cannot write within
//!   `spool_after` stays on disk for the next start. Dropping the sink without `finish` (the
//!   run failed elsewhere) spools what fails, or, if the spool is full, keeps it in the
//!   rejected file.
//! * **Visible**: [`InfluxDbStatus`] gives `/readyz` and `/metrics` the delivery state
//!   (healthy, retrying, spooling, full) and the spool's counters.
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
mod drain;
mod frame;
mod rejected;
mod shared;
mod spool;
mod stats;
mod status;

pub use config::{ApiVersion, DEFAULT_SPOOL_DIR, InfluxDbConfig, InfluxDbConfigError};
pub use status::{DeliveryState, InfluxDbStatus, StatusSnapshot};

use crate::line_protocol::{EncodeOutcome, encode_forecast, encode_score, encode_window};
use crate::{Sink, SinkError};
use batcher::Input;
use crossbeam_channel::Sender;
use delivery::{Endpoint, Writer};
use drain::Drain;
use rejected::RejectedFile;
use shared::Shared;
use spool::Spool;
use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;
use tidemark_schemas::output::window_label;
use tidemark_schemas::{OutputBatch, SeriesId, UpdateKind};
use tracing::{info, warn};

/// Writes results to an InfluxDB server. See the module documentation.
pub struct InfluxDbSink {
    url: String,
    shared: Arc<Shared>,
    input: Option<Sender<Input>>,
    stop: Option<Sender<()>>,
    finishing: Option<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
    drain: Option<JoinHandle<()>>,
    labels: HashMap<u64, String>,
    lanes: usize,
    accepted: u64,
    warned: bool,
}

fn fatal(reason: impl Into<String>) -> SinkError {
    SinkError::InfluxDb(reason.into())
}

impl InfluxDbSink {
    /// Validates `config`, reads the token from the environment, opens the spool (an earlier
    /// run's batches in it are replayed first) and starts the batcher, the writer threads and
    /// the drain. Nothing new is sent until results arrive.
    pub fn start(config: &InfluxDbConfig) -> Result<Self, SinkError> {
        config.validate().map_err(|e| fatal(e.to_string()))?;
        let token = config.token().map_err(|e| fatal(e.to_string()))?;
        let spool_dir = config.spool_dir();
        let (spool, recovered) = Spool::open(&spool_dir, config.spool_max_bytes).map_err(|e| {
            fatal(format!(
                "sinks.influxdb.spool_dir: cannot open the spool in {}: {e}",
                spool_dir.display()
            ))
        })?;
        if recovered.records > 0 {
            info!(batches = recovered.records, spool = %spool_dir.display(),
                "replaying the batches an earlier run spooled before anything new");
        }
        let endpoint = Arc::new(Endpoint::new(config, token));
        let shared = Arc::new(Shared::new(RejectedFile::new(config.rejected_path.clone()), spool));
        let (input, inputs) = crossbeam_channel::bounded(2);
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let (finishing, finished) = crossbeam_channel::bounded::<()>(0);
        let mut threads = Vec::new();
        let mut lanes = Vec::new();
        for seed in 0..config.max_in_flight as u64 {
            let (lane, batches) = crossbeam_channel::bounded(1);
            lanes.push(lane);
            let writer = Writer {
                endpoint: endpoint.clone(),
                shared: shared.clone(),
                initial_backoff: config.initial_backoff,
                max_backoff: config.max_backoff,
                spool_after: config.spool_after,
                seed: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            };
            let stopped = stopped.clone();
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
            batcher::run(inputs, lanes, batcher_shared, settings)
        })?);
        let drain = Drain {
            endpoint: endpoint.clone(),
            shared: shared.clone(),
            initial_backoff: config.initial_backoff,
            max_backoff: config.max_backoff,
            give_up_after: config.spool_after,
        };
        let drain = spawn("tidemark-influx-drain", move || drain.run(stopped, finished))?;
        Ok(InfluxDbSink {
            url: endpoint.url().to_string(),
            shared,
            input: Some(input),
            stop: Some(stop),
            finishing: Some(finishing),
            threads,
            drain: Some(drain),
            labels: HashMap::new(),
            lanes: config.max_in_flight,
            accepted: 0,
            warned: false,
        })
    }

    /// A handle on the sink's delivery state and spool, for `/readyz` and `/metrics`.
    pub fn status(&self) -> InfluxDbStatus {
        InfluxDbStatus(self.shared.clone())
    }

    fn check(&self) -> Result<(), SinkError> {
        self.shared.failure().map_or(Ok(()), |reason| Err(fatal(reason)))
    }

    /// Stops the threads: closing the input lets the batcher send what is left and close the
    /// lanes; once the writers are done, closing `finishing` lets the drain end when the spool
    /// is empty (or the server keeps failing). `abandon` also closes `stop`, so writers stop
    /// waiting for a down server, a full spool stops blocking, and the drain ends at once.
    fn shut_down(&mut self, abandon: bool) {
        self.input = None;
        if abandon {
            self.stop = None;
            self.shared.spool.abandon();
        }
        let threads: Vec<JoinHandle<()>> = self.threads.drain(..).collect();
        for thread in threads {
            self.join(thread);
        }
        self.finishing = None;
        if let Some(drain) = self.drain.take() {
            self.join(drain);
        }
        self.stop = None;
    }

    fn join(&self, thread: JoinHandle<()>) {
        if thread.join().is_err() {
            self.shared.fail("an InfluxDB sink thread panicked".into());
        }
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

/// The lane of a series that comes without its id (scores, forecasts).
fn lane_of(series: &str, lanes: usize) -> usize {
    (SeriesId::of_key(series).0 % lanes as u64) as usize
}

/// Lines encoded from one batch, per lane, and the warning about lossy lines (logged once
/// per run).
struct Encoded<'a> {
    lines: Vec<Vec<u8>>,
    written: Vec<u32>,
    stats: &'a stats::SinkStats,
    warned: &'a mut bool,
}

impl Encoded<'_> {
    fn note(&mut self, lane: usize, outcome: EncodeOutcome, series: &str) {
        self.written[lane] += u32::from(!outcome.dropped_line);
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
        if batch.windows.is_empty() && batch.scores.is_empty() && batch.forecasts.is_empty() {
            return Ok(());
        }
        let received = Instant::now();
        let now = now_ms();
        let lanes = self.lanes;
        let mut encoded = Encoded {
            lines: vec![Vec::new(); lanes],
            written: vec![0; lanes],
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
            let lane = (row.series_id.0 % lanes as u64) as usize;
            let outcome = encode_window(row, label(labels, row.window_ms), &mut encoded.lines[lane]);
            encoded.note(lane, outcome, &row.series);
        }
        for score in &batch.scores {
            stats.scores.add(1);
            let lane = lane_of(&score.series, lanes);
            let outcome = encode_score(score, label(labels, score.window_ms), &mut encoded.lines[lane]);
            encoded.note(lane, outcome, &score.series);
        }
        for point in &batch.forecasts {
            stats.forecasts.add(1);
            let lane = lane_of(&point.series, lanes);
            let outcome = encode_forecast(point, label(labels, point.window_ms), &mut encoded.lines[lane]);
            encoded.note(lane, outcome, &point.series);
        }
        let Encoded { lines, written, .. } = encoded;
        let total: u32 = written.iter().sum();
        if total == 0 {
            return Ok(());
        }
        self.accepted = self.shared.accept(u64::from(total));
        let input = self.input.as_ref().expect("write after finish");
        for (lane, (lines, points)) in lines.into_iter().zip(written).enumerate() {
            if points == 0 {
                continue;
            }
            input
                .send(Input::Chunk {
                    lane,
                    lines,
                    points,
                    received,
                })
                .map_err(|_| fatal("the InfluxDB batcher stopped"))?;
        }
        Ok(())
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
        let spool = &self.shared.spool;
        let spooled = match (
            stats.batches_spooled.total(),
            stats.batches_replayed.total(),
            spool.records(),
        ) {
            (0, 0, _) => String::new(),
            (spooled, replayed, 0) => format!(", {spooled} batches spooled, {replayed} replayed"),
            (spooled, replayed, left) => format!(
                ", {spooled} batches spooled, {replayed} replayed, {left} left in {} for the next start",
                spool.dir().display()
            ),
        };
        format!(
            "InfluxDB ({} points written, self-metrics included, {} requests, {} retries{spooled}{rejected}{latency}): {}",
            stats.points_written.total(),
            stats.requests.total(),
            stats.retries.total(),
            self.url
        )
    }
}

impl Drop for InfluxDbSink {
    fn drop(&mut self) {
        if !self.threads.is_empty() || self.drain.is_some() {
            self.shut_down(true);
        }
    }
}
