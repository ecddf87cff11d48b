//! The records tidemark emits.
//!
//! A [`WindowUpdate`] is an upsert: the identity of a row is (series, window size, window start),
//! and a later update with the same identity replaces the earlier one. Rollups and late
//! corrections therefore converge in every sink, whatever order or how often they arrive.
//! A [`DeadLetter`] is an input that could not be used, with the reason and the original bytes.

use crate::series::SeriesId;
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

/// The aggregates of one series over one window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Aggregates {
    /// Number of events.
    pub count: u64,
    /// Sum of values.
    pub sum: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// `sum / count`.
    pub avg: f64,
    /// Median, when the metric tracks quantiles.
    pub p50: Option<f64>,
    /// 95th percentile, when the metric tracks quantiles.
    pub p95: Option<f64>,
    /// 99th percentile, when the metric tracks quantiles.
    pub p99: Option<f64>,
    /// Distinct count, when the metric tracks one.
    pub distinct: Option<u64>,
}

/// Why a row was (re-)emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateKind {
    /// The window closed: the watermark passed its end.
    Final,
    /// Late events arrived after the window closed; this row replaces the earlier one.
    Correction,
}

/// One upserted window result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WindowUpdate {
    /// Canonical series key, `metric|k1=v1|…`.
    pub series: Arc<str>,
    /// The series' stable id.
    #[serde(skip)]
    pub series_id: SeriesId,
    /// Window length in milliseconds.
    pub window_ms: u64,
    /// Window start, epoch milliseconds (windows are aligned to the epoch).
    pub window_start: i64,
    /// Why this row was emitted.
    pub kind: UpdateKind,
    /// The aggregates.
    #[serde(flatten)]
    pub aggregates: Aggregates,
}

/// Why an input was dead-lettered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterReason {
    /// The bytes are not valid UTF-8.
    InvalidUtf8,
    /// The line is not valid JSON (or not an object).
    InvalidJson,
    /// Nesting deeper than the decoder allows.
    TooDeep,
    /// The same member appears twice in one object.
    DuplicateKey,
    /// The line is longer than the configured limit.
    Oversized,
    /// `kind` names no known event kind.
    UnknownKind,
    /// An Avro message names a schema (id or fingerprint) that cannot be found.
    UnknownSchema,
    /// An Avro message does not decode with its schema.
    InvalidAvro,
    /// A required member is absent.
    MissingField,
    /// A member has the wrong JSON type.
    WrongType,
    /// A number is NaN, infinite or out of range.
    NonFinite,
    /// `ts` is not an integer epoch-ms timestamp in the accepted range.
    InvalidTimestamp,
    /// A metric name is empty or has characters outside `[A-Za-z0-9_.:-]`.
    InvalidMetric,
    /// A tag key or value is empty or has a forbidden character.
    InvalidTag,
    /// The event's window had closed and the late policy dead-letters.
    Late,
    /// The event's window closed longer ago than the correction horizon.
    TooLate,
    /// The event would open a new series beyond the configured series limits.
    CardinalityLimit,
}

impl DeadLetterReason {
    /// Every reason, for exhaustive reporting.
    pub const ALL: [DeadLetterReason; 17] = [
        DeadLetterReason::InvalidUtf8,
        DeadLetterReason::InvalidJson,
        DeadLetterReason::TooDeep,
        DeadLetterReason::DuplicateKey,
        DeadLetterReason::Oversized,
        DeadLetterReason::UnknownKind,
        DeadLetterReason::UnknownSchema,
        DeadLetterReason::InvalidAvro,
        DeadLetterReason::MissingField,
        DeadLetterReason::WrongType,
        DeadLetterReason::NonFinite,
        DeadLetterReason::InvalidTimestamp,
        DeadLetterReason::InvalidMetric,
        DeadLetterReason::InvalidTag,
        DeadLetterReason::Late,
        DeadLetterReason::TooLate,
        DeadLetterReason::CardinalityLimit,
    ];

    /// Snake-case name, as written in dead-letter records and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::InvalidUtf8 => "invalid_utf8",
            DeadLetterReason::InvalidJson => "invalid_json",
            DeadLetterReason::TooDeep => "too_deep",
            DeadLetterReason::DuplicateKey => "duplicate_key",
            DeadLetterReason::Oversized => "oversized",
            DeadLetterReason::UnknownKind => "unknown_kind",
            DeadLetterReason::UnknownSchema => "unknown_schema",
            DeadLetterReason::InvalidAvro => "invalid_avro",
            DeadLetterReason::MissingField => "missing_field",
            DeadLetterReason::WrongType => "wrong_type",
            DeadLetterReason::NonFinite => "non_finite",
            DeadLetterReason::InvalidTimestamp => "invalid_timestamp",
            DeadLetterReason::InvalidMetric => "invalid_metric",
            DeadLetterReason::InvalidTag => "invalid_tag",
            DeadLetterReason::Late => "late",
            DeadLetterReason::TooLate => "too_late",
            DeadLetterReason::CardinalityLimit => "cardinality_limit",
        }
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An input that could not be used.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    /// Why.
    pub reason: DeadLetterReason,
    /// Details for a human: which field, what was found.
    pub detail: String,
    /// Where it came from, e.g. `file:events.ndjson` or `generator`.
    pub source: Arc<str>,
    /// Position in the source: the byte offset where the line starts (files, stdin), the
    /// event time for events dead-lettered after decoding (late events).
    pub position: u64,
    /// The original bytes (cut to the dead-letter size limit for oversized inputs).
    pub original: Vec<u8>,
    /// Whether `original` was cut.
    pub truncated: bool,
    /// The Kafka partition the input came from.
    pub partition: Option<i32>,
    /// The Kafka message key of the input.
    pub key: Option<Vec<u8>>,
}

/// The anomaly score of one closed base window of one series.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AnomalyScore {
    /// Canonical series key.
    pub series: Arc<str>,
    /// Window length in milliseconds.
    pub window_ms: u64,
    /// Window start, epoch milliseconds.
    pub window_start: i64,
    /// The aggregate that was scored (e.g. `avg`, `p95`, `count`).
    pub field: &'static str,
    /// Its value.
    pub value: f64,
    /// What the detector expected.
    pub expected: f64,
    /// Anomaly score in [0, 1].
    pub score: f64,
}

/// One forecast point of one series: the mean and prediction intervals for a future window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ForecastPoint {
    /// Canonical series key.
    pub series: Arc<str>,
    /// The aggregate forecast (e.g. `avg`).
    pub field: &'static str,
    /// Window length in milliseconds.
    pub window_ms: u64,
    /// Start of the forecast window, epoch milliseconds.
    pub window_start: i64,
    /// Steps ahead of the last observed window (1 = next).
    pub horizon: u32,
    /// Point forecast.
    pub mean: f64,
    /// 80 % prediction interval, lower bound.
    pub lower80: f64,
    /// 80 % prediction interval, upper bound.
    pub upper80: f64,
    /// 95 % prediction interval, lower bound.
    pub lower95: f64,
    /// 95 % prediction interval, upper bound.
    pub upper95: f64,
}

/// A callback the sink thread runs once every batch sent before it has been written durably by
/// every sink: how the dataflow learns which results are safe, so sources can acknowledge the
/// input (commit Kafka offsets) that produced them.
pub struct Acknowledgement(Box<dyn FnOnce() + Send>);

impl Acknowledgement {
    /// Wraps the callback.
    pub fn new(callback: impl FnOnce() + Send + 'static) -> Self {
        Acknowledgement(Box::new(callback))
    }

    /// Runs the callback.
    pub fn acknowledge(self) {
        (self.0)()
    }
}

impl fmt::Debug for Acknowledgement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Acknowledgement")
    }
}

/// What one worker hands the sinks at a time: batched, so crossing to the sink thread costs
/// one channel operation per batch rather than per row.
#[derive(Debug, Default)]
pub struct OutputBatch {
    /// Window results (upserts).
    pub windows: Vec<WindowUpdate>,
    /// Dead letters.
    pub dead_letters: Vec<DeadLetter>,
    /// Anomaly scores of closed base windows.
    pub scores: Vec<AnomalyScore>,
    /// Forecasts (upserts by series, field and window start).
    pub forecasts: Vec<ForecastPoint>,
    /// Alerts that fired or resolved (added on the sink thread by the rule engine).
    pub alerts: Vec<crate::alert::AlertEvent>,
    /// Run after this batch and all before it are durable in every sink.
    pub acknowledgement: Option<Acknowledgement>,
}

impl OutputBatch {
    /// Whether there is nothing in it.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
            && self.dead_letters.is_empty()
            && self.scores.is_empty()
            && self.forecasts.is_empty()
            && self.alerts.is_empty()
    }
}

/// Human-readable window size, the `window` tag value: `1m`, `15m`, `1h`, `1d`, `30s`.
pub fn window_label(size_ms: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1000, "s")];
    UNITS
        .iter()
        .find(|(unit, _)| size_ms.is_multiple_of(*unit))
        .map_or_else(
            || format!("{size_ms}ms"),
            |(unit, suffix)| format!("{}{suffix}", size_ms / unit),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_labels() {
        let labels: Vec<_> = [60_000, 300_000, 3_600_000, 86_400_000, 30_000, 1_500]
            .map(window_label)
            .to_vec();
        assert_eq!(labels, ["1m", "5m", "1h", "1d", "30s", "1500ms"]);
    }
}
