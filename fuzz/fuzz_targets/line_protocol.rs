//! The line-protocol encoder (`tidemark_sinks::line_protocol::encode_window`) on arbitrary
//! window rows, read back with an independent parser (InfluxDB IOx's
//! `influxdb-line-protocol`).
//!
//! The rows are arbitrary except for what the row type itself guarantees: the series key is
//! canonical (`metric|k1=v1|…`, built with `SeriesKeyBuilder`), so the metric and tags hold no
//! `|`, tag keys hold no `=`, and tag keys are unique. Everything else — control characters,
//! backslashes, spaces, commas, empty text, reserved tag keys, NaN and infinities, extreme
//! counts and timestamps — is the encoder's to handle, as its documentation promises: "the
//! encoder never emits a line the server would split or reject".
//!
//! Checked: the output is empty or exactly one line ending in `\n` with no other `\n` or `\r`;
//! it parses; and measurement, tags (in order), fields (type and bit-exact value) and timestamp
//! equal the row, minus exactly what the returned `EncodeOutcome` says was left out.
#![no_main]

use arbitrary::Arbitrary;
use influxdb_line_protocol::{FieldValue, parse_lines};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use tidemark_schemas::{Aggregates, SeriesId, SeriesKeyBuilder, UpdateKind, WindowUpdate};
use tidemark_sinks::line_protocol::encode_window;

#[derive(Arbitrary, Debug)]
struct Input {
    metric: String,
    tags: Vec<(String, String)>,
    window_label: String,
    window_ms: u64,
    window_start: i64,
    correction: bool,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    avg: f64,
    p50: Option<f64>,
    p95: Option<f64>,
    p99: Option<f64>,
    distinct: Option<u64>,
}

/// What the encoder documents it writes as a tag: non-empty, without control characters and
/// backslashes (which no escape makes unambiguous).
fn writable(text: &str) -> bool {
    !text.is_empty() && !text.chars().any(|c| c == '\\' || c.is_control())
}

fn reserved_by_server(key: &str) -> bool {
    matches!(key, "time" | "_field" | "_measurement")
}

#[derive(Debug, PartialEq)]
enum Field {
    Int(i64),
    /// Bits, so that -0.0 ≠ 0.0 and every value compares exactly.
    Float(u64),
}

fuzz_target!(|input: Input| {
    let metric = input.metric.replace('|', "");
    let mut tags: Vec<(String, String)> = Vec::new();
    for (key, value) in input.tags {
        let key = key.replace(['|', '='], "");
        if !tags.iter().any(|(k, _)| *k == key) {
            tags.push((key, value.replace('|', "")));
        }
    }
    let mut pairs: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut builder = SeriesKeyBuilder::default();
    let (_, key) = builder.build(&metric, &mut pairs);
    let row = WindowUpdate {
        series: Arc::from(key),
        series_id: SeriesId::of_key(key),
        window_ms: input.window_ms,
        window_start: input.window_start,
        kind: if input.correction {
            UpdateKind::Correction
        } else {
            UpdateKind::Final
        },
        aggregates: Aggregates {
            count: input.count,
            sum: input.sum,
            min: input.min,
            max: input.max,
            avg: input.avg,
            p50: input.p50,
            p95: input.p95,
            p99: input.p99,
            distinct: input.distinct,
        },
    };
    let mut out = Vec::new();
    let outcome = encode_window(&row, &input.window_label, &mut out);

    // What should be on the line, per the encoder's rules.
    let mut want_tags: Vec<(&str, &str)> = Vec::new();
    let mut dropped_tags = 0;
    for (k, v) in &pairs {
        if *k != "window" && writable(k) && writable(v) && !reserved_by_server(k) {
            want_tags.push((k, v));
        } else {
            dropped_tags += 1;
        }
    }
    if writable(&input.window_label) {
        want_tags.push(("window", &input.window_label));
    } else {
        dropped_tags += 1;
    }
    let mut want_fields: Vec<(&str, Field)> = vec![("count", Field::Int(input.count.min(i64::MAX as u64) as i64))];
    let mut dropped_fields = 0;
    let floats = [
        ("sum", Some(input.sum)),
        ("min", Some(input.min)),
        ("max", Some(input.max)),
        ("avg", Some(input.avg)),
        ("p50", input.p50),
        ("p95", input.p95),
        ("p99", input.p99),
    ];
    for (name, value) in floats {
        match value {
            Some(v) if v.is_finite() => want_fields.push((name, Field::Float(v.to_bits()))),
            Some(_) => dropped_fields += 1,
            None => {}
        }
    }
    if let Some(d) = input.distinct {
        want_fields.push(("distinct", Field::Int(d.min(i64::MAX as u64) as i64)));
    }
    assert_eq!(outcome.dropped_tags, dropped_tags, "dropped tags miscounted");
    assert_eq!(outcome.dropped_fields, dropped_fields, "dropped fields miscounted");

    // A measurement that cannot be written drops the line (the count field is always there).
    let measurement_ok = writable(&metric) && !metric.starts_with('#');
    assert_eq!(
        outcome.dropped_line, !measurement_ok,
        "dropped_line for measurement {metric:?}"
    );
    if outcome.dropped_line {
        assert!(out.is_empty(), "a dropped line left bytes behind");
        return;
    }
    let text = std::str::from_utf8(&out).expect("the encoder writes UTF-8");
    let body = text.strip_suffix('\n').expect("a line ends in \\n");
    assert!(!body.contains(['\n', '\r']), "raw line break inside the line: {text:?}");

    let parsed: Vec<_> = parse_lines(text).collect();
    assert_eq!(parsed.len(), 1, "{text:?} parsed as {} lines", parsed.len());
    let line = match &parsed[0] {
        Ok(line) => line,
        Err(e) => panic!("{text:?} does not parse: {e}"),
    };
    assert_eq!(line.series.measurement.as_str(), metric, "measurement of {text:?}");
    let got_tags: Vec<(&str, &str)> = line
        .series
        .tag_set
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(got_tags, want_tags, "tags of {text:?}");
    let got_fields: Vec<(&str, Field)> = line
        .field_set
        .iter()
        .map(|(k, v)| {
            let value = match v {
                FieldValue::I64(i) => Field::Int(*i),
                FieldValue::F64(f) => Field::Float(f.to_bits()),
                other => panic!("unexpected field type {other:?} in {text:?}"),
            };
            (k.as_str(), value)
        })
        .collect();
    assert_eq!(got_fields, want_fields, "fields of {text:?}");
    assert_eq!(line.timestamp, Some(input.window_start), "timestamp of {text:?}");
});
