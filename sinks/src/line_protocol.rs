//! A strict InfluxDB line-protocol encoder for everything tidemark writes.
//!
//! Naming (documented in `docs/output-schema.md`):
//!
//! * window results: the measurement is the metric name; the tags are the series' tags plus
//!   `window` (`1m`, `5m`, `15m`, `1h`, `1d`); the fields are `count` and `distinct` as integers
//!   (`i` suffix, never `u`), `sum`, `min`, `max`, `avg`, `p50`, `p95`, `p99` as floats;
//! * anomaly scores: measurement `anomaly_score`, tags `metric`, the series' tags, `window` and
//!   `field` (the aggregate scored), fields `score`, `value`, `expected`;
//! * forecasts: measurement `forecast`, tags as for scores, fields `mean`, `lower80`, `upper80`,
//!   `lower95`, `upper95` and the integer `horizon` — a field, not a tag, so a newer forecast for
//!   the same future window replaces the older one instead of adding a series per horizon.
//!
//! The timestamp is the window start in **milliseconds** (write with `precision=ms`). A window
//! update, score or forecast always rewrites the same point (same measurement, tag set and
//! timestamp), so corrections and replays overwrite instead of duplicating.
//!
//! The encoder never emits a line the server would split or reject: names are escaped per the
//! spec; tag values are guaranteed non-empty and free of control characters and backslashes by the
//! decoder and checked again here (a tag that is not is left out); tag keys the server refuses
//! (`time`, `_field`, `_measurement`) or that tidemark adds itself (`window`, and
//! `metric`/`field` on scores and forecasts) are left out; non-finite floats are left out of the
//! line (a window whose sum overflowed still reports its count), and a line left without any
//! field, or whose measurement cannot be written (empty, a control character or backslash, a
//! leading `#` that would make it a comment), is not written at all — [`EncodeOutcome`] says what was
//! dropped.

use tidemark_schemas::series::split_key;
use tidemark_schemas::{AnomalyScore, ForecastPoint, WindowUpdate};

/// What encoding one row did besides writing it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncodeOutcome {
    /// Float fields left out because they were NaN or infinite.
    pub dropped_fields: u32,
    /// Tags left out because their key or value could not be written.
    pub dropped_tags: u32,
    /// Whether the whole line was left out because none of its fields could be written.
    pub dropped_line: bool,
}

impl EncodeOutcome {
    /// Whether anything was left out.
    pub fn is_lossy(&self) -> bool {
        self.dropped_fields > 0 || self.dropped_tags > 0 || self.dropped_line
    }
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

/// Whether a tag key or value survives the round trip through a server's parser. Line breaks
/// cannot be escaped at all, other control characters are refused by servers (InfluxDB checks
/// that names are printable) and parsers, and backslashes cannot be written unambiguously: the
/// value `a\,b` is written `a\\,b`, where a parser takes `\\` as the escape and splits the tag
/// at the comma, and parsers disagree on what `\\` stands for. Tags with any of them are left
/// out (the decoder refuses them in event tags already). Found by fuzzing
/// (`fuzz/fuzz_targets/line_protocol.rs`).
fn writable_tag(text: &str) -> bool {
    !text.is_empty() && !text.chars().any(|c| c == '\\' || c.is_control())
}

/// Whether a measurement can be written: as a tag, and not starting with `#` (a comment line).
fn writable_measurement(text: &str) -> bool {
    writable_tag(text) && !text.starts_with('#')
}

/// Tag keys InfluxDB rejects or gives another meaning (1.x refuses `time`; 2.x and 3.x reserve
/// `_field` and `_measurement`).
fn reserved_by_server(key: &str) -> bool {
    matches!(key, "time" | "_field" | "_measurement")
}

/// One line being written: measurement, then tags, then fields, then the timestamp. A line
/// whose fields were all dropped, or whose measurement cannot be written, is taken back out of
/// the buffer by [`Line::end`].
pub struct Line<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
    fields: u32,
    outcome: EncodeOutcome,
    measurement_ok: bool,
}

impl<'a> Line<'a> {
    /// Starts a line for `measurement` at the end of `out`.
    pub fn new(out: &'a mut Vec<u8>, measurement: &str) -> Self {
        let start = out.len();
        escaped(out, measurement, false);
        Line {
            out,
            start,
            fields: 0,
            outcome: EncodeOutcome::default(),
            measurement_ok: writable_measurement(measurement),
        }
    }

    /// Adds a tag; tags must come before any field.
    pub fn tag(&mut self, key: &str, value: &str) -> &mut Self {
        debug_assert_eq!(self.fields, 0, "tags go before fields");
        if writable_tag(key) && writable_tag(value) && !reserved_by_server(key) {
            self.out.push(b',');
            escaped(self.out, key, true);
            self.out.push(b'=');
            escaped(self.out, value, true);
        } else {
            self.outcome.dropped_tags += 1;
        }
        self
    }

    /// Adds the tags of a canonical series key except those named in `reserved` (the tags
    /// the caller writes itself), and returns the metric name.
    pub fn series_tags<'k>(&mut self, series: &'k str, reserved: &[&str]) -> &'k str {
        let (metric, tags) = split_key(series);
        for (key, value) in tags {
            if reserved.contains(&key) {
                self.outcome.dropped_tags += 1;
            } else {
                self.tag(key, value);
            }
        }
        metric
    }

    fn field_name(&mut self, name: &str) {
        self.out.push(if self.fields == 0 { b' ' } else { b',' });
        escaped(self.out, name, true);
        self.out.push(b'=');
        self.fields += 1;
    }

    /// Adds a float field; NaN and infinities are left out.
    pub fn float(&mut self, name: &str, value: f64) -> &mut Self {
        if value.is_finite() {
            self.field_name(name);
            self.out
                .extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
        } else {
            self.outcome.dropped_fields += 1;
        }
        self
    }

    /// Adds an integer field (`i` suffix: a signed 64-bit integer on every InfluxDB version,
    /// where the `u` suffix is refused by 1.x).
    pub fn int(&mut self, name: &str, value: i64) -> &mut Self {
        self.field_name(name);
        self.out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self.out.push(b'i');
        self
    }

    /// Adds an unsigned count as an integer field, saturating at `i64::MAX`.
    pub fn count(&mut self, name: &str, value: u64) -> &mut Self {
        self.int(name, value.min(i64::MAX as u64) as i64)
    }

    /// Ends the line with its timestamp in milliseconds, or takes it back out when it has
    /// no field (a line without fields is a syntax error on every server) or its measurement
    /// cannot be written.
    pub fn end(self, timestamp_ms: i64) -> EncodeOutcome {
        let mut outcome = self.outcome;
        if self.fields == 0 || !self.measurement_ok {
            self.out.truncate(self.start);
            outcome.dropped_line = true;
        } else {
            self.out.push(b' ');
            self.out
                .extend_from_slice(itoa::Buffer::new().format(timestamp_ms).as_bytes());
            self.out.push(b'\n');
        }
        outcome
    }
}

/// Writes one window row as a line (with its trailing newline) to `out`.
pub fn encode_window(row: &WindowUpdate, window_label: &str, out: &mut Vec<u8>) -> EncodeOutcome {
    let (metric, _) = split_key(&row.series);
    let mut line = Line::new(out, metric);
    line.series_tags(&row.series, &["window"]);
    line.tag("window", window_label);
    let a = &row.aggregates;
    line.count("count", a.count)
        .float("sum", a.sum)
        .float("min", a.min)
        .float("max", a.max)
        .float("avg", a.avg);
    for (name, value) in [("p50", a.p50), ("p95", a.p95), ("p99", a.p99)] {
        if let Some(v) = value {
            line.float(name, v);
        }
    }
    if let Some(distinct) = a.distinct {
        line.count("distinct", distinct);
    }
    line.end(row.window_start)
}

/// Tags tidemark writes itself on scores and forecasts; a series tag of the same name is left out.
const DERIVED_TAGS: [&str; 3] = ["metric", "window", "field"];

/// The measurement of anomaly scores.
pub const ANOMALY_MEASUREMENT: &str = "anomaly_score";
/// The measurement of forecasts.
pub const FORECAST_MEASUREMENT: &str = "forecast";

fn derived_line<'a>(
    out: &'a mut Vec<u8>,
    measurement: &str,
    series: &str,
    window_label: &str,
    field: &str,
) -> Line<'a> {
    let mut line = Line::new(out, measurement);
    let metric = line.series_tags(series, &DERIVED_TAGS);
    line.tag("metric", metric)
        .tag("window", window_label)
        .tag("field", field);
    line
}

/// Writes one anomaly score as a line to `out`.
pub fn encode_score(score: &AnomalyScore, window_label: &str, out: &mut Vec<u8>) -> EncodeOutcome {
    let mut line = derived_line(out, ANOMALY_MEASUREMENT, &score.series, window_label, score.field);
    line.float("score", score.score)
        .float("value", score.value)
        .float("expected", score.expected);
    line.end(score.window_start)
}

/// Writes one forecast point, with its 80 % and 95 % bands, as a line to `out`.
pub fn encode_forecast(point: &ForecastPoint, window_label: &str, out: &mut Vec<u8>) -> EncodeOutcome {
    let mut line = derived_line(out, FORECAST_MEASUREMENT, &point.series, window_label, point.field);
    line.float("mean", point.mean)
        .float("lower80", point.lower80)
        .float("upper80", point.upper80)
        .float("lower95", point.lower95)
        .float("upper95", point.upper95)
        .int("horizon", i64::from(point.horizon));
    line.end(point.window_start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tidemark_schemas::{Aggregates, AnomalyScore, ForecastPoint, SeriesId, UpdateKind};

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

    #[test]
    fn tag_keys_the_server_refuses_are_left_out() {
        let (line, outcome) = encode(&row("m|_field=x|host=a|time=3|window=5m", 6.0, None));
        assert!(line.starts_with("m,host=a,window=1m count=3i"), "{line}");
        assert_eq!(outcome.dropped_tags, 3);
    }

    /// Fuzzing regressions (`fuzz/fuzz_targets/line_protocol.rs`): a measurement that cannot be
    /// written drops the line rather than emitting one the server refuses (empty, a comment) or
    /// splits (a line break); a tag with a backslash is left out, since `a\,b` would be written
    /// `a\\,b` and split at the comma.
    #[test]
    fn unwritable_measurements_drop_the_line_and_backslashed_tags_are_left_out() {
        for metric in ["", "#m", "a\nb", "a\rb", "m\\", "api.latre\0"] {
            let mut out = Vec::new();
            let outcome = encode_window(&row(metric, 6.0, None), "1m", &mut out);
            assert!(
                outcome.dropped_line && out.is_empty(),
                "{metric:?}: {}",
                String::from_utf8_lossy(&out)
            );
        }
        let (line, outcome) = encode(&row("m|a=x\\,y|b=ok|c=\\|d=\t", 6.0, None));
        assert!(line.starts_with("m,b=ok,window=1m count=3i"), "{line}");
        assert_eq!(outcome.dropped_tags, 3);
    }

    fn score(series: &str, value: f64) -> AnomalyScore {
        AnomalyScore {
            series: Arc::from(series),
            window_ms: 60_000,
            window_start: 1_732_233_600_000,
            field: "avg",
            value,
            expected: 10.0,
            score: 0.97,
        }
    }

    #[test]
    fn a_score_names_its_metric_window_and_field() {
        let mut out = Vec::new();
        let outcome = encode_score(&score("api.latency|metric=x|service=auth", 42.5), "1m", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "anomaly_score,service=auth,metric=api.latency,window=1m,field=avg score=0.97,value=42.5,expected=10.0 1732233600000\n"
        );
        assert_eq!(outcome.dropped_tags, 1, "the series' own `metric` tag is left out");
    }

    #[test]
    fn a_line_without_any_finite_field_is_not_written() {
        let mut out = b"before\n".to_vec();
        let mut nan = score("m", f64::NAN);
        nan.expected = f64::INFINITY;
        nan.score = f64::NAN;
        let outcome = encode_score(&nan, "1m", &mut out);
        assert_eq!(out, b"before\n");
        assert!(outcome.dropped_line && outcome.is_lossy());
    }

    #[test]
    fn a_forecast_carries_both_bands_and_its_horizon() {
        let point = ForecastPoint {
            series: Arc::from("sales.revenue|currency=eur"),
            field: "sum",
            window_ms: 3_600_000,
            window_start: 1_732_237_200_000,
            horizon: 2,
            mean: 100.0,
            lower80: 90.0,
            upper80: 110.0,
            lower95: 80.0,
            upper95: 120.0,
        };
        let mut out = Vec::new();
        encode_forecast(&point, "1h", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "forecast,currency=eur,metric=sales.revenue,window=1h,field=sum mean=100.0,lower80=90.0,upper80=110.0,lower95=80.0,upper95=120.0,horizon=2i 1732237200000\n"
        );
    }
}
