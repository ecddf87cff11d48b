//! Batches the server refused, kept so that nothing accepted by the sink is lost.
//!
//! A 4xx answer means the request itself is wrong for this server — a point it cannot parse or
//! store (400, possibly a *partial* write: the other points of the batch were stored), a bad
//! token (401/403), a missing database (404), a body over its limit (413). Retrying would get
//! the same answer forever, so the batch goes to this file instead: one JSON object per batch
//! with the status, the server's message and the batch's line protocol, appended. Once the
//! cause is fixed the batch can be written again as it is (`jq -r .lines FILE | curl
//! --data-binary @- 'http://…/write?db=…&precision=ms'`): every point is an upsert, so the
//! points of a partial write that did land are simply rewritten with the same values.

use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The rejected-batch file, opened on first use (most runs never need it) and appended to.
pub struct RejectedFile {
    path: PathBuf,
    file: Option<BufWriter<File>>,
}

#[derive(Serialize)]
struct Record<'a> {
    time_ms: i64,
    url: &'a str,
    status: Option<u16>,
    message: &'a str,
    points: u32,
    lines: &'a str,
}

/// One refused batch.
pub struct Rejection<'a> {
    /// When, epoch ms.
    pub time_ms: i64,
    /// The write URL.
    pub url: &'a str,
    /// The HTTP status, or `None` when the batch was never answered (the run stopped first).
    pub status: Option<u16>,
    /// The server's message, or why the batch was not sent.
    pub message: &'a str,
    /// Points in the batch.
    pub points: u32,
    /// The batch, as line protocol.
    pub lines: &'a [u8],
}

impl RejectedFile {
    /// A file at `path`, not yet created.
    pub fn new(path: PathBuf) -> Self {
        RejectedFile { path, file: None }
    }

    /// Where rejected batches go.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one batch and flushes, so the record survives a crash right after.
    pub fn append(&mut self, rejection: &Rejection<'_>) -> std::io::Result<()> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let file = OpenOptions::new().create(true).append(true).open(&self.path)?;
            self.file = Some(BufWriter::new(file));
        }
        let writer = self.file.as_mut().expect("opened above");
        let record = Record {
            time_ms: rejection.time_ms,
            url: rejection.url,
            status: rejection.status,
            message: rejection.message,
            points: rejection.points,
            lines: &String::from_utf8_lossy(rejection.lines),
        };
        serde_json::to_writer(&mut *writer, &record)?;
        writer.write_all(b"\n")?;
        writer.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_batches_are_appended_with_status_message_and_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/rejected.ndjson");
        for round in 0..2 {
            let mut file = RejectedFile::new(path.clone());
            file.append(&Rejection {
                time_ms: round,
                url: "http://127.0.0.1:1/write",
                status: Some(400),
                message: "partial write: field type conflict",
                points: 2,
                lines: b"m a=1 1\nm a=2 2\n",
            })
            .unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let records: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(records.len(), 2, "appended, not truncated");
        assert_eq!(records[1]["status"], 400);
        assert_eq!(records[1]["message"], "partial write: field type conflict");
        assert_eq!(records[1]["lines"], "m a=1 1\nm a=2 2\n");
    }
}
