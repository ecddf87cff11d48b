//! Avro binary encoding of the output records, in the Confluent wire format.
//!
//! The four output records have fixed schemas (`schemas/avro/*.avsc`), so each is written
//! field by field straight into the caller's buffer: no schema lookup, no intermediate
//! `Value` tree, no allocation per record. The unit tests decode every record kind back through
//! its schema with `apache-avro` and compare it with the JSON form, which is what keeps this
//! code and the `.avsc` files in step.

use std::collections::BTreeMap;
use tidemark_schemas::{AlertEvent, AlertState, AnomalyScore, ForecastPoint, Severity, UpdateKind, WindowUpdate};

/// The Confluent wire format's magic byte, followed by the 4-byte big-endian schema id.
const MAGIC: u8 = 0;

/// An output record with an Avro schema of its own.
pub trait AvroRecord {
    /// The schema file's name in `schemas/avro/` (without `.avsc`).
    const SCHEMA: &'static str;
    /// The record's full name in that schema, for the record-name subject strategies.
    const FULLNAME: &'static str;
    /// Appends the record's Avro binary encoding to `out`.
    fn write_avro(&self, out: &mut Vec<u8>);
}

/// Replaces `out` with `record` in the Confluent wire format under schema `id`.
pub fn encode_framed<R: AvroRecord>(record: &R, id: u32, out: &mut Vec<u8>) {
    out.clear();
    out.push(MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
    record.write_avro(out);
}

/// `long` and `int`: zig-zag, then variable-length base 128, low groups first.
fn long(out: &mut Vec<u8>, value: i64) {
    let mut n = ((value << 1) ^ (value >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A `u64` that the schema declares `long`; counts and sizes never reach 2⁶³.
fn unsigned(out: &mut Vec<u8>, value: u64) {
    long(out, i64::try_from(value).unwrap_or(i64::MAX));
}

fn double(out: &mut Vec<u8>, value: f64) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn string(out: &mut Vec<u8>, value: &str) {
    long(out, value.len() as i64);
    out.extend_from_slice(value.as_bytes());
}

/// A `["null", T]` union: branch 0 is null, branch 1 the value.
fn optional<T: Copy>(out: &mut Vec<u8>, value: Option<T>, write: impl Fn(&mut Vec<u8>, T)) {
    match value {
        None => long(out, 0),
        Some(value) => {
            long(out, 1);
            write(out, value);
        }
    }
}

/// A map of strings: one block with its count, then the empty block that ends it.
fn string_map(out: &mut Vec<u8>, map: &BTreeMap<String, String>) {
    if !map.is_empty() {
        long(out, map.len() as i64);
        for (key, value) in map {
            string(out, key);
            string(out, value);
        }
    }
    long(out, 0);
}

/// An array of strings, blocked like a map.
fn string_array(out: &mut Vec<u8>, items: &[String]) {
    if !items.is_empty() {
        long(out, items.len() as i64);
        for item in items {
            string(out, item);
        }
    }
    long(out, 0);
}

impl AvroRecord for WindowUpdate {
    const SCHEMA: &'static str = "window_update";
    const FULLNAME: &'static str = "io.tidemark.WindowUpdate";

    fn write_avro(&self, out: &mut Vec<u8>) {
        string(out, &self.series);
        unsigned(out, self.window_ms);
        long(out, self.window_start);
        long(
            out,
            match self.kind {
                UpdateKind::Final => 0,
                UpdateKind::Correction => 1,
            },
        );
        let a = &self.aggregates;
        unsigned(out, a.count);
        for value in [a.sum, a.min, a.max, a.avg] {
            double(out, value);
        }
        for quantile in [a.p50, a.p95, a.p99] {
            optional(out, quantile, double);
        }
        optional(out, a.distinct, unsigned);
    }
}

impl AvroRecord for AnomalyScore {
    const SCHEMA: &'static str = "anomaly_score";
    const FULLNAME: &'static str = "io.tidemark.AnomalyScore";

    fn write_avro(&self, out: &mut Vec<u8>) {
        string(out, &self.series);
        unsigned(out, self.window_ms);
        long(out, self.window_start);
        string(out, self.field);
        for value in [self.value, self.expected, self.score] {
            double(out, value);
        }
    }
}

impl AvroRecord for ForecastPoint {
    const SCHEMA: &'static str = "forecast_point";
    const FULLNAME: &'static str = "io.tidemark.ForecastPoint";

    fn write_avro(&self, out: &mut Vec<u8>) {
        string(out, &self.series);
        string(out, self.field);
        unsigned(out, self.window_ms);
        long(out, self.window_start);
        long(out, i64::from(self.horizon));
        for value in [self.mean, self.lower80, self.upper80, self.lower95, self.upper95] {
            double(out, value);
        }
    }
}

impl AvroRecord for AlertEvent {
    const SCHEMA: &'static str = "alert_event";
    const FULLNAME: &'static str = "io.tidemark.AlertEvent";

    fn write_avro(&self, out: &mut Vec<u8>) {
        string(out, &self.id);
        string(out, &self.fingerprint);
        string(out, &self.rule);
        long(
            out,
            match self.severity {
                Severity::Info => 0,
                Severity::Warning => 1,
                Severity::Critical => 2,
            },
        );
        long(
            out,
            match self.state {
                AlertState::Firing => 0,
                AlertState::Resolved => 1,
            },
        );
        string_map(out, &self.labels);
        string_array(out, &self.series);
        string(out, &self.summary);
        // NaN (no troubled series left, as on resolution) is null, as in the JSON form.
        optional(out, Some(self.value).filter(|v| v.is_finite()), double);
        optional(out, self.threshold, double);
        long(out, self.started_at_ms);
        optional(out, self.ended_at_ms, long);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::Schema;
    use apache_avro::reader::datum::GenericDatumReader;
    use std::sync::Arc;
    use tidemark_connectors::avro::bundled_schemas;
    use tidemark_schemas::Aggregates;
    use tidemark_schemas::series::SeriesId;

    /// Encodes `record`, decodes it with `apache-avro` through the bundled schema named by the
    /// record, and checks that the decoded record equals the record's JSON form, field for field.
    fn round_trip<R: AvroRecord + serde::Serialize>(record: &R) {
        let schema: Schema = bundled_schemas()
            .into_iter()
            .find(|(name, _)| *name == R::SCHEMA)
            .map(|(_, schema)| schema)
            .expect("a bundled schema per output record");
        assert_eq!(schema.name().map(|n| n.fullname(None)).as_deref(), Some(R::FULLNAME));
        let mut framed = vec![9; 3];
        encode_framed(record, 0x0102_0304, &mut framed);
        assert_eq!(framed[..5], [0, 1, 2, 3, 4]);
        let mut body = &framed[5..];
        let value = GenericDatumReader::builder(&schema)
            .build()
            .and_then(|reader| reader.read_value(&mut body))
            .unwrap_or_else(|e| panic!("{}: {e}", R::SCHEMA));
        assert!(body.is_empty(), "{}: {} bytes left over", R::SCHEMA, body.len());
        let decoded = serde_json::Value::try_from(value).unwrap();
        let json = serde_json::to_value(record).unwrap();
        assert_eq!(decoded, json, "{}", R::SCHEMA);
    }

    fn window(kind: UpdateKind, quantiles: Option<f64>, distinct: Option<u64>) -> WindowUpdate {
        WindowUpdate {
            series: Arc::from("api.request.latency_ms|region=eu|service=auth"),
            series_id: SeriesId(7),
            window_ms: 60_000,
            window_start: 1_732_233_600_000,
            kind,
            aggregates: Aggregates {
                count: 1_000_000_000_000,
                sum: 12.5,
                min: -3.25,
                max: 1e300,
                avg: 0.1,
                p50: quantiles,
                p95: quantiles.map(|q| q * 2.0),
                p99: quantiles.map(|q| q * 3.0),
                distinct,
            },
        }
    }

    fn alert(state: AlertState, labels: &[(&str, &str)], series: &[&str]) -> AlertEvent {
        let resolved = state == AlertState::Resolved;
        AlertEvent {
            id: "hot{host=h0}:firing:1732233660000".into(),
            fingerprint: "hot{host=h0}".into(),
            rule: "hot".into(),
            severity: if resolved { Severity::Info } else { Severity::Critical },
            state,
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            series: series.iter().map(|s| s.to_string()).collect(),
            summary: "max of m{host=h0} = 900 > 500 — ünïcode".into(),
            value: if resolved { f64::NAN } else { 900.0 },
            threshold: (!resolved).then_some(500.0),
            started_at_ms: -1,
            ended_at_ms: resolved.then_some(1_732_233_720_000),
        }
    }

    #[test]
    fn window_updates_decode_to_their_json_form() {
        round_trip(&window(UpdateKind::Final, Some(4.5), Some(3)));
        round_trip(&window(UpdateKind::Correction, None, None));
    }

    #[test]
    fn anomaly_scores_decode_to_their_json_form() {
        round_trip(&AnomalyScore {
            series: Arc::from("m|host=h1"),
            window_ms: 60_000,
            window_start: 1_732_233_600_000,
            field: "p95",
            value: 412.0,
            expected: 120.5,
            score: 0.97,
        });
    }

    #[test]
    fn forecast_points_decode_to_their_json_form() {
        round_trip(&ForecastPoint {
            series: Arc::from("m|host=h1"),
            field: "avg",
            window_ms: 3_600_000,
            window_start: 1_732_237_200_000,
            horizon: 24,
            mean: 10.0,
            lower80: 8.0,
            upper80: 12.0,
            lower95: 7.0,
            upper95: 13.5,
        });
    }

    #[test]
    fn alert_events_decode_to_their_json_form() {
        round_trip(&alert(
            AlertState::Firing,
            &[("host", "h0"), ("zone", "z1")],
            &["m|host=h0|zone=z1", "m|host=h0|zone=z2"],
        ));
        round_trip(&alert(AlertState::Resolved, &[], &[]));
    }

    #[test]
    fn longs_are_zig_zag_varints() {
        for (value, bytes) in [
            (0i64, vec![0u8]),
            (-1, vec![1]),
            (1, vec![2]),
            (-64, vec![0x7f]),
            (64, vec![0x80, 0x01]),
            (
                i64::MAX,
                vec![0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
            (
                i64::MIN,
                vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ] {
            let mut out = Vec::new();
            long(&mut out, value);
            assert_eq!(out, bytes, "{value}");
        }
    }
}
