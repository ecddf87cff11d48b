//! `GET /api/v1/export?format=csv|ndjson`: the live store's windows, streamed.
//!
//! The response is produced chunk by chunk as the client reads it: the selected series are
//! listed once, then each chunk takes the read lock for a few hundred series only, so a large
//! export neither buffers the whole answer nor holds the lock against the sink.

use super::error::ApiError;
use super::params::SeriesParams;
use bytes::Bytes;
use serde::Serialize;
use std::convert::Infallible;
use std::fmt::Write;
use std::sync::Arc;
use tidemark_schemas::Aggregates;
use tidemark_schemas::output::window_label;
use tidemark_sinks::live::Live;

/// Series formatted per chunk.
const SERIES_PER_CHUNK: usize = 256;

/// The export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated, with a header line.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

impl Format {
    /// Parses the `format` parameter.
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            Some("csv") => Ok(Format::Csv),
            Some("ndjson") => Ok(Format::Ndjson),
            Some(other) => Err(ApiError::bad_request(format!("format: {other:?} is not csv or ndjson"))),
            None => Err(ApiError::bad_request("format is required: csv or ndjson")),
        }
    }

    /// The response's content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
        }
    }
}

const CSV_HEADER: &str = "series,window,window_start,count,sum,min,max,avg,p50,p95,p99,distinct\n";

#[derive(Serialize)]
struct Row<'a> {
    series: &'a str,
    window: String,
    window_ms: u64,
    window_start: i64,
    #[serde(flatten)]
    aggregates: &'a Aggregates,
}

/// Produces the export's chunks lazily.
pub struct Export {
    live: Arc<Live>,
    keys: Vec<Arc<str>>,
    next: usize,
    params: SeriesParams,
    format: Format,
    header: bool,
}

impl Export {
    /// Lists the selected series now; formats them as the body is read.
    pub fn new(live: Arc<Live>, params: SeriesParams, format: Format) -> Self {
        let keys = {
            let view = live.store().read();
            params.selector.select(&view).map(|s| s.key().clone()).collect()
        };
        Export {
            live,
            keys,
            next: 0,
            params,
            format,
            header: format == Format::Csv,
        }
    }

    fn chunk(&mut self, keys: &[Arc<str>]) -> String {
        let mut out = String::new();
        if std::mem::take(&mut self.header) {
            out.push_str(CSV_HEADER);
        }
        let view = self.live.store().read();
        let (start, end) = (
            self.params.start.unwrap_or(i64::MIN),
            self.params.end.unwrap_or(i64::MAX),
        );
        for key in keys {
            let Some(series) = view.by_key(key) else { continue };
            let rings = series
                .rings()
                .iter()
                .filter(|r| self.params.window_ms.is_none_or(|ms| ms == r.window_ms()));
            for ring in rings {
                let label = window_label(ring.window_ms());
                for (window_start, aggregates) in ring.between(start, end) {
                    match self.format {
                        Format::Csv => csv_row(&mut out, key, &label, *window_start, aggregates),
                        Format::Ndjson => {
                            let row = Row {
                                series: key,
                                window: label.clone(),
                                window_ms: ring.window_ms(),
                                window_start: *window_start,
                                aggregates,
                            };
                            out.push_str(&serde_json::to_string(&row).expect("rows serialize"));
                            out.push('\n');
                        }
                    }
                }
            }
        }
        out
    }
}

impl Iterator for Export {
    type Item = Result<Bytes, Infallible>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.keys.len() && !self.header {
            return None;
        }
        let end = (self.next + SERIES_PER_CHUNK).min(self.keys.len());
        let keys = self.keys[self.next..end].to_vec();
        self.next = end;
        Some(Ok(Bytes::from(self.chunk(&keys))))
    }
}

fn csv_row(out: &mut String, key: &str, window: &str, start: i64, a: &Aggregates) {
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    csv_field(out, key);
    let _ = writeln!(
        out,
        ",{window},{start},{},{},{},{},{},{},{},{},{}",
        a.count,
        a.sum,
        a.min,
        a.max,
        a.avg,
        opt(a.p50),
        opt(a.p95),
        opt(a.p99),
        a.distinct.map(|d| d.to_string()).unwrap_or_default()
    );
}

fn csv_field(out: &mut String, value: &str) {
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        let mut out = String::new();
        csv_field(&mut out, "m|k=a,b");
        csv_field(&mut out, "|plain");
        assert_eq!(out, "\"m|k=a,b\"|plain");
    }

    #[test]
    fn formats_parse() {
        assert_eq!(Format::parse(Some("csv")).unwrap(), Format::Csv);
        assert_eq!(Format::parse(Some("xml")).unwrap_err().status, 400);
        assert_eq!(Format::parse(None).unwrap_err().status, 400);
    }
}
