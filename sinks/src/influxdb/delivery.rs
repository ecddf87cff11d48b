//! Sending batches: the HTTP endpoint, and the writer threads that retry until the server
//! takes a batch, refuses it for good, or has failed for `spool_after` — then the batch goes
//! to the on-disk spool.
//!
//! Answers are classified once, here: 2xx is written; 429, 5xx and connection errors or
//! timeouts are transient (retried with backoff for `spool_after`, then spooled: the batch was
//! acknowledged to the pipeline, so it must not be dropped, and the pipeline need not wait
//! for the server while the spool has room); 400 is a batch the server cannot take (kept in
//! the rejected file with the server's message, never retried, the run goes on); any other
//! 4xx or a redirect is a configuration problem (bad token, missing database) — the batch is
//! kept likewise and the sink stops the run with the fix, since every later batch would meet
//! the same answer.
//!
//! **Order.** A point's later value must reach the server after its earlier one, or the
//! upsert keeps the stale value. Each writer owns one *lane* — the points of a fixed share of
//! the series (see `batcher.rs`) — and delivers its batches one at a time, so a lane's batches
//! arrive in order. The spool keeps that order: while it holds anything, every writer appends
//! to it instead of writing directly, and the drain replays it oldest first, deleting a
//! record only after the server took it. A lane therefore writes directly again only once
//! all its spooled batches are in the server.

use super::config::InfluxDbConfig;
use super::frame::Record;
use super::rejected::Rejection;
use super::shared::Shared;
use super::spool::AppendError;
use super::stats::ErrorClass;
use crate::backoff::Backoff;
use crossbeam_channel::{Receiver, TryRecvError};
use flate2::Compression;
use flate2::write::GzEncoder;
use std::borrow::Cow;
use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// Points on their way to the server.
pub struct Batch {
    /// Line protocol, one point per line.
    pub lines: Vec<u8>,
    /// Lines in `lines`.
    pub points: u32,
    /// Of those, pipeline results (the rest are self-metrics), which `flush` waits for.
    pub data_points: u32,
    /// When the points entered the sink, and how many at that moment, for the latency.
    pub arrivals: Vec<(Instant, u32)>,
}

/// What the server made of one request.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// Stored.
    Written,
    /// Worth retrying.
    Transient {
        /// What failed.
        class: ErrorClass,
        /// The error or the server's message.
        reason: String,
        /// The server's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// Never worth retrying.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
}

/// The write endpoint of one server.
pub struct Endpoint {
    agent: ureq::Agent,
    url: String,
    query: Vec<(&'static str, String)>,
    authorization: Option<String>,
    gzip: bool,
}

impl Endpoint {
    /// The endpoint `config` names, with the token already read from the environment.
    pub fn new(config: &InfluxDbConfig, token: Option<String>) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .max_idle_connections_per_host(config.max_in_flight.max(2))
            .user_agent(concat!("tidemark/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Endpoint {
            agent,
            url: config.write_url(),
            query: config.write_query(),
            authorization: token.map(|t| format!("Token {t}")),
            gzip: config.gzip,
        }
    }

    /// The write URL, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The request body for `lines`: gzip level 1, which shrinks line protocol about tenfold
    /// at a few hundred MB/s — the cheapest way to halve a batch's time on the wire.
    pub fn body<'a>(&self, lines: &'a [u8]) -> Cow<'a, [u8]> {
        if !self.gzip {
            return Cow::Borrowed(lines);
        }
        let mut encoder = GzEncoder::new(Vec::with_capacity(lines.len() / 8), Compression::fast());
        encoder.write_all(lines).expect("writing to memory");
        Cow::Owned(encoder.finish().expect("writing to memory"))
    }

    /// Whether [`body`](Self::body) compresses.
    pub fn gzip(&self) -> bool {
        self.gzip
    }

    /// Sends one request; `gzip` says whether `body` is compressed.
    pub fn post(&self, body: &[u8], gzip: bool) -> Answer {
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "text/plain; charset=utf-8");
        for (key, value) in &self.query {
            request = request.query(key, value);
        }
        if gzip {
            request = request.header("Content-Encoding", "gzip");
        }
        if let Some(authorization) = &self.authorization {
            request = request.header("Authorization", authorization);
        }
        let mut response = match request.send(body) {
            Ok(response) => response,
            Err(e) => {
                let class = match e {
                    ureq::Error::Timeout(_) => ErrorClass::Timeout,
                    _ => ErrorClass::Connection,
                };
                return Answer::Transient {
                    class,
                    reason: e.to_string(),
                    retry_after: None,
                };
            }
        };
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Answer::Written;
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.trim().parse().ok())
            .map(Duration::from_secs);
        let text = response
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .unwrap_or_default();
        let message = server_message(&text);
        if status == 429 || (500..600).contains(&status) {
            Answer::Transient {
                class: if status == 429 {
                    ErrorClass::Throttled
                } else {
                    ErrorClass::Server
                },
                reason: format!("HTTP {status}: {message}"),
                retry_after,
            }
        } else {
            Answer::Refused { status, message }
        }
    }
}

/// The message of an error body: `error` (1.x) or `message` (2.x, 3.x) of a JSON object,
/// else the text itself, cut to 1 KiB.
fn server_message(text: &str) -> String {
    let json: Option<serde_json::Value> = serde_json::from_str(text).ok();
    let message = json
        .as_ref()
        .and_then(|v| {
            v.get("error")
                .or_else(|| v.get("message"))?
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_else(|| text.trim().to_string());
    match message.char_indices().nth(1024) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message,
    }
}

/// How to fix a refusal that is about the configuration rather than one batch.
pub fn fix_for(status: u16) -> &'static str {
    match status {
        401 | 403 => "check the token in the variable named by sinks.influxdb.token_env and its write permission",
        404 => "create the database (InfluxQL: CREATE DATABASE …) or bucket, or fix sinks.influxdb.url/database/bucket",
        413 => "lower sinks.influxdb.batch_points, or raise the server's max-body-size",
        300..=399 => "set sinks.influxdb.url to the address the server redirects to",
        _ => "check the sinks.influxdb settings against the server",
    }
}

/// Wall-clock epoch ms.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One writer thread's job: deliver every batch of its lane, in order, until the lane closes.
/// When `stop` closes (the sink was dropped without `finish`), a failing batch goes to the
/// spool at once, or to the rejected file when the spool is full.
pub struct Writer {
    /// The server.
    pub endpoint: std::sync::Arc<Endpoint>,
    /// Shared state.
    pub shared: std::sync::Arc<Shared>,
    /// First retry delay.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// How long a batch is retried before it is spooled.
    pub spool_after: Duration,
    /// Seed of this writer's jitter.
    pub seed: u64,
}

impl Writer {
    /// Delivers batches until `batches` closes.
    pub fn run(self, batches: Receiver<Batch>, stop: Receiver<()>) {
        for batch in batches {
            self.deliver(&batch, &stop);
        }
    }

    fn deliver(&self, batch: &Batch, stop: &Receiver<()>) {
        let (stats, spool) = (&self.shared.stats, &self.shared.spool);
        let body = self.endpoint.body(&batch.lines);
        if !spool.is_empty() {
            self.spool(batch, body);
            return;
        }
        let started = Instant::now();
        let mut backoff = Backoff::new(self.initial_backoff, self.max_backoff, 0.5, self.seed ^ now_ms() as u64);
        let mut attempt = 0u32;
        let mut retrying = false;
        loop {
            if let Some(reason) = self.shared.failure() {
                self.refuse(
                    batch,
                    None,
                    &format!("not sent: the sink stopped after an earlier error: {reason}"),
                );
                break;
            }
            attempt += 1;
            stats.requests.add(1);
            match self.endpoint.post(&body, self.endpoint.gzip()) {
                Answer::Written => {
                    let now = Instant::now();
                    for (arrived, points) in &batch.arrivals {
                        stats.acknowledged(now.duration_since(*arrived), u64::from(*points));
                    }
                    stats.points_written.add(u64::from(batch.points));
                    self.shared.settle(u64::from(batch.data_points));
                    debug!(points = batch.points, attempt, "batch written");
                    break;
                }
                Answer::Refused { status, message } => {
                    stats.failed(ErrorClass::Refused);
                    let fatal = status != 400;
                    self.refuse(batch, Some(status), &message);
                    if fatal {
                        self.shared.fail(format!(
                            "{} answered HTTP {status}: {message}; {} (the batch is kept in {})",
                            self.endpoint.url(),
                            fix_for(status),
                            self.shared.rejected_path()
                        ));
                    } else {
                        warn!(status, %message, points = batch.points, file = %self.shared.rejected_path(),
                            "the server refused a batch; kept it in the rejected file");
                    }
                    break;
                }
                Answer::Transient {
                    class,
                    reason,
                    retry_after,
                } => {
                    stats.failed(class);
                    let stopping = matches!(stop.try_recv(), Err(TryRecvError::Disconnected));
                    if stopping || started.elapsed() >= self.spool_after || !spool.is_empty() {
                        warn!(attempt, %reason, points = batch.points, spool = %spool.dir().display(),
                            "writing to InfluxDB keeps failing; spooling the batch to disk (replayed in order when the server answers)");
                        self.spool(batch, body);
                        break;
                    }
                    if !retrying {
                        retrying = true;
                        stats.retrying.fetch_add(1, Relaxed);
                    }
                    stats.retries.add(1);
                    let delay = backoff.delay(retry_after);
                    warn!(attempt, delay_ms = delay.as_millis() as u64, %reason, points = batch.points,
                        "writing to InfluxDB failed; retrying");
                    // An interruptible sleep: `stop` closing ends it early.
                    let _ = stop.recv_timeout(delay);
                }
            }
        }
        if retrying {
            stats.retrying.fetch_sub(1, Relaxed);
        }
    }

    /// Appends the batch to the spool; once synced, it counts as settled.
    fn spool(&self, batch: &Batch, body: Cow<'_, [u8]>) {
        let stats = &self.shared.stats;
        let record = Record {
            body: body.into_owned(),
            points: batch.points,
            gzip: self.endpoint.gzip(),
        };
        match self.shared.spool.append(&record) {
            Ok(()) => {
                stats.batches_spooled.add(1);
                stats.points_spooled.add(u64::from(batch.points));
                self.shared.settle(u64::from(batch.data_points));
            }
            Err(AppendError::Full) => self.refuse(
                batch,
                None,
                "not sent: the run stopped while the server failed and the spool was full",
            ),
            Err(AppendError::Io(e)) => {
                let dir = self.shared.spool.dir().display().to_string();
                self.refuse(batch, None, &format!("not spooled: {e}"));
                self.shared.fail(format!(
                    "writing to the spool in {dir} failed: {e}; free disk space or set sinks.influxdb.spool_dir \
                     to a writable directory (the batch is kept in {})",
                    self.shared.rejected_path()
                ));
            }
        }
    }

    fn refuse(&self, batch: &Batch, status: Option<u16>, message: &str) {
        let stats = &self.shared.stats;
        self.shared.reject(&Rejection {
            time_ms: now_ms(),
            url: self.endpoint.url(),
            status,
            message,
            points: batch.points,
            lines: &batch.lines,
        });
        stats.batches_rejected.add(1);
        stats.points_rejected.add(u64::from(batch.points));
        self.shared.settle(u64::from(batch.data_points));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_messages_are_taken_from_either_json_shape_or_the_text() {
        assert_eq!(
            server_message(r#"{"error":"partial write: field type conflict"}"#),
            "partial write: field type conflict"
        );
        assert_eq!(
            server_message(r#"{"code":"invalid","message":"no bucket"}"#),
            "no bucket"
        );
        assert_eq!(server_message(" gateway timeout \n"), "gateway timeout");
        assert_eq!(server_message(&"x".repeat(5000)).chars().count(), 1025);
    }

    #[test]
    fn gzip_bodies_decompress_to_the_lines() {
        let config = InfluxDbConfig::default();
        let endpoint = Endpoint::new(&config, None);
        let lines = b"m a=1i 1\n".repeat(100);
        let body = endpoint.body(&lines);
        let mut decoded = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut decoded).unwrap();
        assert_eq!(decoded, lines);
        assert!(body.len() < lines.len() / 4);
    }
}
