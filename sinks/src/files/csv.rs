//! The CSV export: one row per series and base window, final values only.
//!
//! Rows are upserts, so the export keeps the latest row per (series, window start) and writes
//! them, sorted by series then window start, when the run ends. The header and format follow
//! the peer benchmark (`series,window_start,count,sum,min,max,avg,p95,p99`), so the file can
//! be compared with the DuckDB oracle directly.

use super::{create, io_error};
use crate::{Sink, SinkError};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use tidemark_schemas::{Aggregates, OutputBatch};

/// Writes base-window results as a sorted CSV at the end of the run.
pub struct CsvExport {
    path: PathBuf,
    window_ms: u64,
    rows: BTreeMap<(Arc<str>, i64), Aggregates>,
}

impl CsvExport {
    /// Exports windows of `window_ms` to `path`.
    pub fn new(path: PathBuf, window_ms: u64) -> Self {
        CsvExport {
            path,
            window_ms,
            rows: BTreeMap::new(),
        }
    }
}

impl Sink for CsvExport {
    fn name(&self) -> &'static str {
        "csv"
    }

    fn write(&mut self, batch: &OutputBatch) -> Result<(), SinkError> {
        for row in batch.windows.iter().filter(|r| r.window_ms == self.window_ms) {
            self.rows
                .insert((row.series.clone(), row.window_start), row.aggregates.clone());
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        let mut writer = create("csv", &self.path)?;
        let fail = io_error("csv", &self.path);
        let mut line = String::with_capacity(256);
        writer
            .write_all(b"series,window_start,count,sum,min,max,avg,p95,p99\n")
            .map_err(&fail)?;
        let mut ryu = ryu::Buffer::new();
        for ((series, start), a) in &self.rows {
            line.clear();
            line.push_str(series);
            line.push(',');
            line.push_str(itoa::Buffer::new().format(*start));
            line.push(',');
            line.push_str(itoa::Buffer::new().format(a.count));
            for value in [Some(a.sum), Some(a.min), Some(a.max), Some(a.avg), a.p95, a.p99] {
                line.push(',');
                if let Some(v) = value.filter(|v| v.is_finite()) {
                    line.push_str(ryu.format_finite(v));
                }
            }
            line.push('\n');
            writer.write_all(line.as_bytes()).map_err(&fail)?;
        }
        writer.flush().map_err(&fail)
    }

    fn written(&self) -> u64 {
        self.rows.len() as u64
    }

    fn describe(&self) -> String {
        format!("csv export ({} rows): {}", self.rows.len(), self.path.display())
    }
}
