//! tidemark's sinks.
//!
//! Workers hand batches of results ([`OutputBatch`]) to one sink thread over a bounded channel:
//! batching makes the crossing cheap, and the bound is the backpressure — when the sinks fall
//! behind, workers block on `send` instead of buffering without limit. The sink thread fans
//! each batch out to every configured [`Sink`].
//!
//! * [`files`]: CSV export, NDJSON stream, InfluxDB line-protocol files, dead letters;
//! * [`influxdb`]: results and self-metrics to an InfluxDB server over HTTP, batched, retried;
//! * [`kafka`]: window results, scores and forecasts to output topics, dead letters to a DLQ topic;
//! * [`line_protocol`]: the strict line-protocol encoder shared with the InfluxDB sink;
//! * [`live`]: the in-memory live state behind the HTTP API, the WebSocket stream and the live page;
//! * [`notify`]: alert delivery to Slack, webhooks and email through an on-disk outbox.

pub mod alerting;
mod backoff;
pub mod files;
pub mod influxdb;
pub mod kafka;
pub mod line_protocol;
pub mod live;
pub mod notify;
mod runner;

pub use runner::{SinkReport, SinkRunner, Stage, spawn_sinks};

use thiserror::Error;
use tidemark_schemas::OutputBatch;

/// A sink failed; the run stops, since results could otherwise be lost silently.
#[derive(Debug, Error)]
pub enum SinkError {
    /// Writing a file failed.
    #[error("{sink}: writing {path} failed: {error}")]
    File {
        /// The sink.
        sink: &'static str,
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The InfluxDB sink cannot go on: the server refused the configuration (not one batch),
    /// or the sink's own files or threads failed. Refused batches are in its rejected file.
    #[error("influxdb sink: {0}")]
    InfluxDb(String),
    /// Producing to Kafka failed for good (librdkafka retries transient errors itself).
    #[error("kafka sink: {what}: {error}")]
    Kafka {
        /// What was being done.
        what: &'static str,
        /// Why.
        error: String,
    },
    /// An alert could not be stored in the notification outbox.
    #[error("alert notifications: {0}")]
    Notify(String),
}

/// Somewhere results go.
pub trait Sink: Send {
    /// A short name for reports and logs.
    fn name(&self) -> &'static str;
    /// Writes one batch.
    fn write(&mut self, batch: &OutputBatch) -> Result<(), SinkError>;
    /// Makes everything written so far durable (files flushed, servers acknowledged). The
    /// sink thread calls it before acknowledging a batch's results to the sources.
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    /// Flushes and closes; called once, after the last batch.
    fn finish(&mut self) -> Result<(), SinkError>;
    /// Records written so far (rows, points or dead letters).
    fn written(&self) -> u64;
    /// Where the output went, for the end-of-run summary.
    fn describe(&self) -> String;
}
