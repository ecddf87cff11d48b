//! The NDJSON stream: every window update (final rows, rollups, corrections) as it happens.

use super::{OutputFile, create, io_error};
use crate::{Sink, SinkError};
use std::io::Write;
use std::path::PathBuf;
use tidemark_schemas::OutputBatch;

/// Appends one JSON object per window update.
pub struct NdjsonStream {
    file: OutputFile,
    rows: u64,
}

impl NdjsonStream {
    /// Creates (truncates) `path`.
    pub fn create(path: PathBuf) -> Result<Self, SinkError> {
        let writer = create("ndjson", &path)?;
        Ok(NdjsonStream {
            file: super::OutputFile { path, writer },
            rows: 0,
        })
    }
}

impl Sink for NdjsonStream {
    fn name(&self) -> &'static str {
        "ndjson"
    }

    fn write(&mut self, batch: &OutputBatch) -> Result<(), SinkError> {
        if batch.windows.is_empty() {
            return Ok(());
        }
        let fail = io_error("ndjson", &self.file.path);
        for row in &batch.windows {
            serde_json::to_writer(&mut self.file.writer, row).map_err(|e| fail(e.into()))?;
            self.file.writer.write_all(b"\n").map_err(&fail)?;
        }
        self.rows += batch.windows.len() as u64;
        self.file.writer.flush().map_err(&fail)
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.file.writer.flush().map_err(io_error("ndjson", &self.file.path))
    }

    fn written(&self) -> u64 {
        self.rows
    }

    fn describe(&self) -> String {
        format!(
            "window updates ({} rows, NDJSON): {}",
            self.rows,
            self.file.path.display()
        )
    }
}
