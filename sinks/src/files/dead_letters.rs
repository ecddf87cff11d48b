//! The dead-letter file: one JSON object per rejected input, with its reason and the original.

use super::{OutputFile, create, io_error};
use crate::{Sink, SinkError};
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use tidemark_schemas::OutputBatch;

/// Appends one JSON object per dead letter.
pub struct DeadLetterFile {
    file: OutputFile,
    letters: u64,
}

#[derive(Serialize)]
struct Record<'a> {
    reason: &'a str,
    detail: &'a str,
    source: &'a str,
    position: u64,
    /// The original bytes as text (invalid UTF-8 replaced by U+FFFD) …
    original: std::borrow::Cow<'a, str>,
    /// … and as hex when they were not valid UTF-8, so nothing is lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    original_hex: Option<String>,
    truncated: bool,
}

impl DeadLetterFile {
    /// Creates (truncates) `path`.
    pub fn create(path: PathBuf) -> Result<Self, SinkError> {
        let writer = create("dead_letters", &path)?;
        Ok(DeadLetterFile {
            file: OutputFile { path, writer },
            letters: 0,
        })
    }
}

impl Sink for DeadLetterFile {
    fn name(&self) -> &'static str {
        "dead_letters"
    }

    fn write(&mut self, batch: &OutputBatch) -> Result<(), SinkError> {
        if batch.dead_letters.is_empty() {
            return Ok(());
        }
        let fail = io_error("dead_letters", &self.file.path);
        for letter in &batch.dead_letters {
            let valid = std::str::from_utf8(&letter.original).is_ok();
            let record = Record {
                reason: letter.reason.as_str(),
                detail: &letter.detail,
                source: &letter.source,
                position: letter.position,
                original: String::from_utf8_lossy(&letter.original),
                original_hex: (!valid).then(|| letter.original.iter().map(|b| format!("{b:02x}")).collect()),
                truncated: letter.truncated,
            };
            serde_json::to_writer(&mut self.file.writer, &record).map_err(|e| fail(e.into()))?;
            self.file.writer.write_all(b"\n").map_err(&fail)?;
        }
        self.letters += batch.dead_letters.len() as u64;
        self.file.writer.flush().map_err(&fail)
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.file
            .writer
            .flush()
            .map_err(io_error("dead_letters", &self.file.path))
    }

    fn written(&self) -> u64 {
        self.letters
    }

    fn describe(&self) -> String {
        format!(
            "dead letters ({} records, NDJSON): {}",
            self.letters,
            self.file.path.display()
        )
    }
}
