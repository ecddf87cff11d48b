//! InfluxDB line-protocol files (precision ms), for `influx -import` or any line-protocol tool.

use super::{OutputFile, create, io_error};
use crate::line_protocol::encode_window;
use crate::{Sink, SinkError};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use tidemark_schemas::OutputBatch;
use tidemark_schemas::output::window_label;
use tracing::warn;

/// Appends one point per window update.
pub struct LineProtocolFile {
    file: OutputFile,
    labels: HashMap<u64, String>,
    buffer: Vec<u8>,
    points: u64,
    warned: bool,
}

impl LineProtocolFile {
    /// Creates (truncates) `path`.
    pub fn create(path: PathBuf) -> Result<Self, SinkError> {
        let writer = create("line_protocol", &path)?;
        Ok(LineProtocolFile {
            file: OutputFile { path, writer },
            labels: HashMap::new(),
            buffer: Vec::with_capacity(1 << 16),
            points: 0,
            warned: false,
        })
    }
}

impl Sink for LineProtocolFile {
    fn name(&self) -> &'static str {
        "line_protocol"
    }

    fn write(&mut self, batch: &OutputBatch) -> Result<(), SinkError> {
        if batch.windows.is_empty() {
            return Ok(());
        }
        self.buffer.clear();
        for row in &batch.windows {
            let label = self
                .labels
                .entry(row.window_ms)
                .or_insert_with(|| window_label(row.window_ms));
            let outcome = encode_window(row, label, &mut self.buffer);
            if (outcome.dropped_fields > 0 || outcome.dropped_tags > 0) && !self.warned {
                self.warned = true;
                warn!(series = %row.series, ?outcome, "left non-finite fields or unwritable tags out of a point (logged once)");
            }
        }
        self.points += batch.windows.len() as u64;
        let fail = io_error("line_protocol", &self.file.path);
        self.file.writer.write_all(&self.buffer).map_err(&fail)?;
        self.file.writer.flush().map_err(&fail)
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.file
            .writer
            .flush()
            .map_err(io_error("line_protocol", &self.file.path))
    }

    fn written(&self) -> u64 {
        self.points
    }

    fn describe(&self) -> String {
        format!(
            "InfluxDB line protocol ({} points, precision ms): {}",
            self.points,
            self.file.path.display()
        )
    }
}
