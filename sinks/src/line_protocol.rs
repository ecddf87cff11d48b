//! A strict InfluxDB line-protocol encoder for window results.
//!
//! Naming (documented in `docs/output-schema.md`): the measurement is the metric name; the tags
//! are the series' tags plus `window` (`1m`, `5m`, `15m`, `1h`, `1d`); the fields are `count`
//! and `distinct` as integers (`i` suffix, never `u`), `sum`, `min`, `max`, `avg`, `p50`,
//! `p95`, `p99` as floats; the timestamp is the window start in **milliseconds** (write with
//! `precision=ms`). A window update always rewrites the same point (same measurement, tag set
//! and timestamp), so corrections and replays overwrite instead of duplicating.
//!
//! The encoder never emits a line the server would split or reject: names are escaped per the
//! spec, tag values are guaranteed non-empty and free of newlines and backslashes by the
//! decoder (and checked again here), and non-finite floats are left out of the line (a window
//! whose sum overflowed still reports its count) — [`EncodeOutcome`] says what was dropped.

use tidemark_schemas::WindowUpdate;
use tidemark_schemas::series::split_key;

/// What encoding one row did besides writing it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncodeOutcome {
    /// Float fields left out because they were NaN or infinite.
    pub dropped_fields: u32,
    /// Tags left out because their key or value could not be written.
    pub dropped_tags: u32,
}

/// Appends `text` escaping the characters the line-protocol grammar gives meaning to in this
/// position: `,` and space always, `=` in tag keys, tag values and field keys.
fn escaped(out: &mut Vec<u8>, text: &str, escape_equals: bool) {
    for &b in text.as_bytes() {
        if b == b',' || b == b' ' || (escape_equals && b == b'=') {
            out.push(b'\\');
        }
        out.push(b);
    }
}

fn writable_tag(text: &str) -> bool {
    !text.is_empty() && !text.ends_with('\\') && !text.bytes().any(|b| b == b'\n' || b == b'\r')
}

/// Writes one row as a line (with its trailing newline) to `out`.
pub fn encode_window(row: &WindowUpdate, window_label: &str, out: &mut Vec<u8>) -> EncodeOutcome {
    let mut outcome = EncodeOutcome::default();
    let (metric, tags) = split_key(&row.series);
    escaped(out, metric, false);
    for (key, value) in tags {
        if writable_tag(key) && writable_tag(value) && key != "window" {
            out.push(b',');
            escaped(out, key, true);
            out.push(b'=');
            escaped(out, value, true);
        } else {
            outcome.dropped_tags += 1;
        }
    }
    out.extend_from_slice(b",window=");
    out.extend_from_slice(window_label.as_bytes());
    let a = &row.aggregates;
    out.extend_from_slice(b" count=");
    out.extend_from_slice(
        itoa::Buffer::new()
            .format(a.count.min(i64::MAX as u64) as i64)
            .as_bytes(),
    );
    out.push(b'i');
    let floats = [
        ("sum", Some(a.sum)),
        ("min", Some(a.min)),
        ("max", Some(a.max)),
        ("avg", Some(a.avg)),
        ("p50", a.p50),
        ("p95", a.p95),
        ("p99", a.p99),
    ];
    let mut ryu = ryu::Buffer::new();
    for (name, value) in floats {
        match value {
            Some(v) if v.is_finite() => {
                out.push(b',');
                out.extend_from_slice(name.as_bytes());
                out.push(b'=');
                out.extend_from_slice(ryu.format_finite(v).as_bytes());
            }
            Some(_) => outcome.dropped_fields += 1,
            None => {}
        }
    }
    if let Some(distinct) = a.distinct {
        out.extend_from_slice(b",distinct=");
        out.extend_from_slice(
            itoa::Buffer::new()
                .format(distinct.min(i64::MAX as u64) as i64)
                .as_bytes(),
        );
        out.push(b'i');
    }
    out.push(b' ');
    out.extend_from_slice(itoa::Buffer::new().format(row.window_start).as_bytes());
    out.push(b'\n');
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tidemark_schemas::{Aggregates, SeriesId, UpdateKind};

    fn row(series: &str, sum: f64, p95: Option<f64>) -> WindowUpdate {
        WindowUpdate {
            series: Arc::from(series),
            series_id: SeriesId::of_key(series),
            window_ms: 60_000,
            window_start: 1_732_233_600_000,
            kind: UpdateKind::Final,
            aggregates: Aggregates {
                count: 3,
                sum,
                min: 1.0,
                max: 3.5,
                avg: sum / 3.0,
                p50: p95.map(|_| 2.0),
                p95,
                p99: p95,
                distinct: Some(2),
            },
        }
    }

    fn encode(row: &WindowUpdate) -> (String, EncodeOutcome) {
        let mut out = Vec::new();
        let outcome = encode_window(row, "1m", &mut out);
        (String::from_utf8(out).unwrap(), outcome)
    }

    #[test]
    fn a_row_becomes_one_point_at_the_window_start() {
        let (line, outcome) = encode(&row("api.latency|region=us|service=auth", 6.0, Some(3.4)));
        assert_eq!(
            line,
            "api.latency,region=us,service=auth,window=1m count=3i,sum=6.0,min=1.0,max=3.5,avg=2.0,p50=2.0,p95=3.4,p99=3.4,distinct=2i 1732233600000\n"
        );
        assert_eq!(outcome, EncodeOutcome::default());
    }

    #[test]
    fn spaces_commas_and_equals_are_escaped() {
        let (line, _) = encode(&row("m x|route=/a b|k=v w", 6.0, None));
        assert!(
            line.starts_with("m\\ x,route=/a\\ b,k=v\\ w,window=1m count=3i"),
            "{line}"
        );
    }

    #[test]
    fn non_finite_fields_are_left_out() {
        let (line, outcome) = encode(&row("m", f64::INFINITY, None));
        assert_eq!(line, "m,window=1m count=3i,min=1.0,max=3.5,distinct=2i 1732233600000\n");
        assert_eq!(outcome.dropped_fields, 2);
    }
}
