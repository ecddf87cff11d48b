//! tidemark's sinks.
//!
//! Workers hand batches of results ([`OutputBatch`]) to one sink thread over a bounded channel:
//! batching makes the crossing cheap, and the bound is the backpressure — when the sinks fall
//! behind, workers block on `send` instead of buffering without limit. The sink thread fans
//! each batch out to every configured [`Sink`].
//!
//! * [`files`]: CSV export, NDJSON stream, InfluxDB line-protocol files, dead letters;
//! * [`line_protocol`]: the strict line-protocol encoder shared with the InfluxDB sink.

pub mod files;
pub mod line_protocol;
mod runner;

pub use runner::{SinkReport, SinkRunner, spawn_sinks};

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
}

/// Somewhere results go.
pub trait Sink: Send {
    /// A short name for reports and logs.
    fn name(&self) -> &'static str;
    /// Writes one batch.
    fn write(&mut self, batch: &OutputBatch) -> Result<(), SinkError>;
    /// Flushes and closes; called once, after the last batch.
    fn finish(&mut self) -> Result<(), SinkError>;
    /// Records written so far (rows, points or dead letters).
    fn written(&self) -> u64;
    /// Where the output went, for the end-of-run summary.
    fn describe(&self) -> String;
}
