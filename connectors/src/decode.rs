//! Turning one NDJSON line into observations.
//!
//! A generic metric event yields one observation; a typed event yields one per metric definition
//! of its kind whose condition holds. Every way a line can be unusable maps to a
//! [`DeadLetterReason`] and a human detail; the decoder never panics on input.

use crate::cardinality::{CardinalityGuard, Refusal};
use crate::json::{Member, ObjectScan, Span, Value, parse_f64, parse_i64, unescape_into};
use crate::observation::{Observation, ObservationSink, SeriesInfo, Tracking};
use crate::privacy::{Pii, PiiAction};
use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use tidemark_schemas::definitions::{Condition, is_valid_metric_name};
use tidemark_schemas::{Aggregation, DeadLetterReason, EventKind, MetricDefinitions, SeriesId, SeriesKeyBuilder};

/// Why a line was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// The dead-letter reason.
    pub reason: DeadLetterReason,
    /// What was wrong, for a human.
    pub detail: String,
}

impl DecodeError {
    fn new(reason: DeadLetterReason, detail: impl Into<String>) -> Self {
        DecodeError {
            reason,
            detail: detail.into(),
        }
    }
}

/// The accepted range of event times. Timestamps outside it are almost always unit mistakes
/// (seconds or microseconds instead of milliseconds) and would open windows decades away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimestampRange {
    /// Earliest accepted event time, epoch ms (default 2000-01-01).
    pub min_ms: i64,
    /// Latest accepted event time, epoch ms (default 2100-01-01).
    pub max_ms: i64,
}

impl Default for TimestampRange {
    fn default() -> Self {
        TimestampRange {
            min_ms: 946_684_800_000,
            max_ms: 4_102_444_800_000,
        }
    }
}

/// Longest accepted tag key or value, in bytes.
pub const MAX_TAG_BYTES: usize = 256;

/// Whether a tag key or value can be written to every sink unchanged: non-empty, bounded, and
/// free of the characters that delimit series keys (`|`, `=`), CSV (`,`, `"`) and escapes.
pub fn is_valid_tag_text(text: &str) -> bool {
    !text.is_empty() && text.len() <= MAX_TAG_BYTES && text.bytes().all(|b| TAG_BYTE_OK[b as usize])
}

/// Which bytes may appear in tag text: a table, because this runs for every tag of every event.
static TAG_BYTE_OK: [bool; 256] = {
    let mut ok = [true; 256];
    let mut b = 0;
    while b < 0x20 {
        ok[b] = false;
        b += 1;
    }
    ok[0x7f] = false;
    ok[b'|' as usize] = false;
    ok[b'=' as usize] = false;
    ok[b',' as usize] = false;
    ok[b'"' as usize] = false;
    ok[b'\\' as usize] = false;
    ok
};

struct CompiledDefinition {
    metric: String,
    value: Option<String>,
    /// Tag field names, sorted byte-wise, so keys come out canonical without sorting per line.
    tags: Vec<String>,
    /// Which of `tags` hold personal data (see [`Decoder::with_privacy`]).
    personal: Vec<bool>,
    when: Option<Condition>,
    distinct: Option<String>,
    tracking: Tracking,
}

/// An identity hasher for ids that are already hashes.
#[derive(Default)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A `BuildHasher` for maps keyed by [`SeriesId`].
pub type IdBuildHasher = BuildHasherDefault<IdHasher>;

/// A text fragment of the current line: a span of it, or a range of the unescape arena.
#[derive(Clone, Copy)]
enum Text {
    Line(Span),
    Arena(u32, u32),
}

/// Decodes lines into observations; one per worker, reused for every line.
pub struct Decoder {
    plans: Vec<(EventKind, Vec<CompiledDefinition>)>,
    generic_tracking: Tracking,
    timestamps: TimestampRange,
    scan: ObjectScan,
    keys: SeriesKeyBuilder,
    seen: HashSet<SeriesId, IdBuildHasher>,
    tags: Vec<(Text, Text)>,
    arena: String,
    pii: Option<Pii>,
    pseudonym: String,
    guard: Option<Arc<CardinalityGuard>>,
}

impl Decoder {
    /// A decoder for `definitions`, accepting timestamps in `timestamps`.
    pub fn new(definitions: &MetricDefinitions, timestamps: TimestampRange) -> Self {
        let plans = EventKind::ALL
            .into_iter()
            .filter(|k| *k != EventKind::Metric)
            .map(|kind| {
                let defs = definitions
                    .for_kind(kind)
                    .map(|d| {
                        let mut tags = d.tags.clone();
                        tags.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
                        CompiledDefinition {
                            metric: d.name.clone(),
                            value: d.value.clone(),
                            personal: vec![false; tags.len()],
                            tags,
                            when: d.when.clone(),
                            distinct: d.distinct.clone(),
                            tracking: Tracking {
                                quantiles: d.aggregations.iter().any(|a| a.is_quantile()),
                                distinct: d.aggregations.contains(&Aggregation::Distinct),
                                counted: d.value.is_none(),
                            },
                        }
                    })
                    .collect();
                (kind, defs)
            })
            .collect();
        Decoder {
            plans,
            generic_tracking: Tracking {
                quantiles: true,
                distinct: false,
                counted: false,
            },
            timestamps,
            scan: ObjectScan::default(),
            keys: SeriesKeyBuilder::default(),
            seen: HashSet::default(),
            tags: Vec::new(),
            arena: String::new(),
            pii: None,
            pseudonym: String::new(),
            guard: None,
        }
    }

    /// Hashes or drops the personal fields `pii` names wherever they become tags.
    pub fn with_privacy(mut self, pii: Option<Pii>) -> Self {
        if let Some(pii) = &pii {
            for (_, plan) in &mut self.plans {
                for def in plan {
                    def.personal = def.tags.iter().map(|t| pii.covers(t)).collect();
                }
            }
        }
        self.pii = pii;
        self
    }

    /// Refuses lines that would open series beyond the guard's limits.
    pub fn with_guard(mut self, guard: Arc<CardinalityGuard>) -> Self {
        self.guard = Some(guard);
        self
    }

    /// Decodes one line (without its newline), reporting new series and observations to `out`.
    pub fn decode(&mut self, line: &[u8], out: &mut impl ObservationSink) -> Result<(), DecodeError> {
        let line = std::str::from_utf8(line).map_err(|e| {
            DecodeError::new(
                DeadLetterReason::InvalidUtf8,
                format!("invalid UTF-8 at byte {}", e.valid_up_to()),
            )
        })?;
        self.scan
            .scan(line)
            .map_err(|e| DecodeError::new(e.reason, format!("{} at byte {}", e.detail, e.offset)))?;
        self.arena.clear();
        let kind = match self.scan.get(line, "kind") {
            None => EventKind::Metric,
            Some(value) => {
                let text = self.string(line, value, "kind")?;
                let text = self.text(line, text);
                EventKind::parse(text).ok_or_else(|| {
                    DecodeError::new(
                        DeadLetterReason::UnknownKind,
                        format!("unknown kind \"{}\"", truncate(text)),
                    )
                })?
            }
        };
        let ts = self.timestamp(line)?;
        if kind == EventKind::Metric {
            self.decode_metric(line, ts, out)
        } else {
            self.decode_typed(line, kind, ts, out)
        }
    }

    fn timestamp(&self, line: &str) -> Result<i64, DecodeError> {
        let ts = match self.scan.get(line, "ts") {
            None => return Err(DecodeError::new(DeadLetterReason::MissingField, "missing field \"ts\"")),
            Some(Value::Num { span, integer: true }) => parse_i64(span.of(line)),
            Some(Value::Num { .. }) => None,
            Some(_) => {
                return Err(DecodeError::new(
                    DeadLetterReason::WrongType,
                    "\"ts\" must be an integer (epoch milliseconds)",
                ));
            }
        };
        match ts {
            Some(ts) if (self.timestamps.min_ms..self.timestamps.max_ms).contains(&ts) => Ok(ts),
            _ => Err(DecodeError::new(
                DeadLetterReason::InvalidTimestamp,
                format!(
                    "\"ts\" {} is not an integer epoch-ms time in [{}, {})",
                    truncate(self.scan.get(line, "ts").map_or("", |v| raw_text(line, v))),
                    self.timestamps.min_ms,
                    self.timestamps.max_ms
                ),
            )),
        }
    }

    fn decode_metric(&mut self, line: &str, ts: i64, out: &mut impl ObservationSink) -> Result<(), DecodeError> {
        let mut metric = None;
        let mut value = None;
        let mut tags = None;
        for member in &self.scan.members {
            match member.key.of(line) {
                "metric" => metric = Some(member.value),
                "value" => value = Some(member.value),
                "tags" => tags = Some(member.value),
                _ => {}
            }
        }
        let metric =
            metric.ok_or_else(|| DecodeError::new(DeadLetterReason::MissingField, "missing field \"metric\""))?;
        let metric = self.string(line, metric, "metric")?;
        let value = value.ok_or_else(|| DecodeError::new(DeadLetterReason::MissingField, "missing field \"value\""))?;
        let value = number(line, value, "value")?;
        self.tags.clear();
        match tags {
            None | Some(Value::Null) => {}
            Some(Value::Object { first, len }) => {
                for i in first..first + len {
                    let member: Member = self.scan.nested[i as usize];
                    let key = if member.key_escaped {
                        self.unescape(line, member.key)?
                    } else {
                        Text::Line(member.key)
                    };
                    let value = self.string(line, member.value, "tags")?;
                    match &self.pii {
                        Some(pii) if pii.covers(resolve(line, &self.arena, key)) => match pii.action() {
                            PiiAction::Drop => {}
                            PiiAction::Hash => {
                                self.pseudonym.clear();
                                pii.pseudonym_into(resolve(line, &self.arena, value).as_bytes(), &mut self.pseudonym);
                                let start = self.arena.len() as u32;
                                self.arena.push_str(&self.pseudonym);
                                self.tags.push((key, Text::Arena(start, self.arena.len() as u32)));
                            }
                        },
                        _ => self.tags.push((key, value)),
                    }
                }
            }
            Some(_) => {
                return Err(DecodeError::new(
                    DeadLetterReason::WrongType,
                    "\"tags\" must be an object of strings",
                ));
            }
        }
        let mut tags = std::mem::take(&mut self.tags);
        let arena = &self.arena;
        let resolve = |t: Text| resolve(line, arena, t);
        let metric_text = resolve(metric);
        if !is_valid_metric_name(metric_text) {
            return Err(DecodeError::new(
                DeadLetterReason::InvalidMetric,
                format!(
                    "metric name \"{}\" is empty or has characters outside [A-Za-z0-9_.:-]",
                    truncate(metric_text)
                ),
            ));
        }
        tags.sort_unstable_by(|a, b| resolve(a.0).as_bytes().cmp(resolve(b.0).as_bytes()));
        let mut checked = Ok(());
        for pair in tags.windows(2) {
            if resolve(pair[0].0) == resolve(pair[1].0) {
                checked = Err(DecodeError::new(
                    DeadLetterReason::DuplicateKey,
                    "a tag key appears twice",
                ));
            }
        }
        self.keys.begin(metric_text);
        for &(k, v) in &tags {
            let (k, v) = (resolve(k), resolve(v));
            if !is_valid_tag_text(k) || !is_valid_tag_text(v) {
                checked = Err(invalid_tag(k, v));
                break;
            }
            self.keys.tag(k, v);
        }
        self.tags = tags;
        checked?;
        let tracking = self.generic_tracking;
        let series = self.announce(tracking, out)?;
        out.observation(Observation {
            series,
            ts,
            value,
            distinct_hash: 0,
            tracking,
        });
        Ok(())
    }

    fn decode_typed(
        &mut self,
        line: &str,
        kind: EventKind,
        ts: i64,
        out: &mut impl ObservationSink,
    ) -> Result<(), DecodeError> {
        let plan_index = self
            .plans
            .iter()
            .position(|(k, _)| *k == kind)
            .expect("every typed kind has a plan");
        let plan = std::mem::take(&mut self.plans[plan_index].1);
        let result = self.apply_plan(line, kind, ts, &plan, out);
        self.plans[plan_index].1 = plan;
        result
    }

    fn apply_plan(
        &mut self,
        line: &str,
        kind: EventKind,
        ts: i64,
        plan: &[CompiledDefinition],
        out: &mut impl ObservationSink,
    ) -> Result<(), DecodeError> {
        // Check every used field first, so a bad line yields nothing rather than half its metrics.
        for def in plan {
            self.field_checks(line, kind, def)?;
        }
        for def in plan {
            if let Some(cond) = &def.when
                && !self.holds(line, cond)?
            {
                continue;
            }
            let value = match &def.value {
                Some(field) => number(line, self.required(line, field)?, field)?,
                None => 1.0,
            };
            let distinct = match &def.distinct {
                Some(field) => {
                    // Present unless optional (field_checks): absent counts as null, as for tags.
                    let value = self.scan.get(line, field).unwrap_or(Value::Null);
                    let text = self.tag_text(line, value, field)?;
                    text.map(|t| xxhash_rust::xxh3::xxh3_64(self.text(line, t).as_bytes()))
                }
                None => None,
            };
            self.keys.begin(&def.metric);
            for (tag, &personal) in def.tags.iter().zip(&def.personal) {
                let value = self.scan.get(line, tag).unwrap_or(Value::Null);
                if let Some(text) = self.tag_text(line, value, tag)? {
                    let text = resolve(line, &self.arena, text);
                    match &self.pii {
                        Some(pii) if personal => {
                            if pii.action() == PiiAction::Hash {
                                self.pseudonym.clear();
                                pii.pseudonym_into(text.as_bytes(), &mut self.pseudonym);
                                self.keys.tag(tag, &self.pseudonym);
                            }
                        }
                        _ if !is_valid_tag_text(text) => return Err(invalid_tag(tag, text)),
                        _ => self.keys.tag(tag, text),
                    }
                }
            }
            let tracking = def.tracking;
            let series = self.announce(tracking, out)?;
            out.observation(Observation {
                series,
                ts,
                value,
                distinct_hash: distinct.unwrap_or(0),
                tracking,
            });
        }
        Ok(())
    }

    /// Every check [`apply_plan`](Self::apply_plan) makes for `def` before it emits anything:
    /// value type, tag presence, type and text, distinct field, and the condition's field. A
    /// check left to the emission loop would fail after earlier definitions had emitted, and
    /// the line would be dead-lettered *and* counted in part (found by fuzzing).
    fn field_checks(&mut self, line: &str, kind: EventKind, def: &CompiledDefinition) -> Result<(), DecodeError> {
        if let Some(field) = &def.value {
            number(line, self.required(line, field)?, field)?;
        }
        // Tags (checked as tag text unless personal: those are hashed or dropped), then the
        // distinct field, whose text is never written.
        let checked_as_tag = def
            .personal
            .iter()
            .map(|personal| !personal)
            .chain(def.distinct.as_ref().map(|_| false));
        for (tag, checked_as_tag) in def.tags.iter().chain(&def.distinct).zip(checked_as_tag) {
            let optional = kind
                .field(tag)
                .is_some_and(|f| f.ty == tidemark_schemas::FieldType::OptStr);
            match self.scan.get(line, tag) {
                None if optional => {}
                None => return Err(missing(tag)),
                Some(value) => {
                    if let Some(text) = self.tag_text(line, value, tag)?
                        && checked_as_tag
                    {
                        let text = resolve(line, &self.arena, text);
                        if !is_valid_tag_text(text) {
                            return Err(invalid_tag(tag, text));
                        }
                    }
                }
            }
        }
        if let Some(cond) = &def.when {
            self.holds(line, cond)?;
        }
        Ok(())
    }

    fn holds(&mut self, line: &str, cond: &Condition) -> Result<bool, DecodeError> {
        let value = self.scan.get(line, &cond.field).unwrap_or(Value::Null);
        if let Some(threshold) = cond.at_least {
            return Ok(number(line, value, &cond.field)? >= threshold);
        }
        let text = match value {
            Value::Null => None,
            other => Some(self.string(line, other, &cond.field)?),
        };
        let text = text.map(|t| self.text(line, t));
        Ok(match (&cond.equals, &cond.not_equals) {
            (Some(want), _) => text == Some(want.as_str()),
            (_, Some(avoid)) => text != Some(avoid.as_str()),
            _ => true,
        })
    }

    fn required(&self, line: &str, field: &str) -> Result<Value, DecodeError> {
        self.scan.get(line, field).ok_or_else(|| missing(field))
    }

    /// A tag's text: strings as they are, integers as written, null as no tag.
    fn tag_text(&mut self, line: &str, value: Value, field: &str) -> Result<Option<Text>, DecodeError> {
        match value {
            Value::Null => Ok(None),
            Value::Num { span, integer: true } => Ok(Some(Text::Line(span))),
            other => self.string(line, other, field).map(Some),
        }
    }

    fn string(&mut self, line: &str, value: Value, field: &str) -> Result<Text, DecodeError> {
        match value {
            Value::Str { span, escaped: false } => Ok(Text::Line(span)),
            Value::Str { span, escaped: true } => self.unescape(line, span),
            _ => Err(DecodeError::new(
                DeadLetterReason::WrongType,
                format!("\"{}\" must be a string", truncate(field)),
            )),
        }
    }

    fn unescape(&mut self, line: &str, span: Span) -> Result<Text, DecodeError> {
        let start = self.arena.len() as u32;
        if !unescape_into(span.of(line), &mut self.arena) {
            return Err(DecodeError::new(
                DeadLetterReason::InvalidJson,
                "lone UTF-16 surrogate in a string",
            ));
        }
        Ok(Text::Arena(start, self.arena.len() as u32))
    }

    fn text<'a>(&'a self, line: &'a str, text: Text) -> &'a str {
        resolve(line, &self.arena, text)
    }

    /// The id of the key in the builder, reporting the series the first time this decoder sees it.
    ///
    /// A series new to this decoder must first be admitted by the cardinality guard; a refusal
    /// rejects the whole line (the caller drops what the line emitted before).
    fn announce(&mut self, tracking: Tracking, out: &mut impl ObservationSink) -> Result<SeriesId, DecodeError> {
        let (series, key) = self.keys.finish();
        if self.seen.contains(&series) {
            return Ok(series);
        }
        if let Some(guard) = &self.guard {
            let metric = key.split('|').next().unwrap_or_default();
            let metric_hash = xxhash_rust::xxh3::xxh3_64(metric.as_bytes());
            if let Err(refusal) = guard.admit(series, metric_hash) {
                return Err(refusal_error(refusal, metric));
            }
        }
        self.seen.insert(series);
        out.series(SeriesInfo {
            series,
            key: key.to_owned(),
            tracking,
        });
        Ok(series)
    }
}

fn refusal_error(refusal: Refusal, metric: &str) -> DecodeError {
    let detail = match refusal {
        Refusal::MetricFull(max) => format!(
            "metric \"{}\" already has {max} series (limits.max_series_per_metric); a tag probably holds ids \
             or timestamps: remove it from the metric's tags, or raise the limit",
            truncate(metric)
        ),
        Refusal::ProcessFull(max) => {
            format!(
                "the process already has {max} series (limits.max_series); raise the limit or remove high-cardinality tags"
            )
        }
    };
    DecodeError::new(DeadLetterReason::CardinalityLimit, detail)
}

fn resolve<'a>(line: &'a str, arena: &'a str, text: Text) -> &'a str {
    match text {
        Text::Line(span) => span.of(line),
        Text::Arena(a, b) => &arena[a as usize..b as usize],
    }
}

fn number(line: &str, value: Value, field: &str) -> Result<f64, DecodeError> {
    match value {
        Value::Num { span, .. } => parse_f64(span.of(line)).ok_or_else(|| {
            DecodeError::new(
                DeadLetterReason::NonFinite,
                format!(
                    "\"{}\" = {} is out of the range of a double",
                    truncate(field),
                    truncate(span.of(line))
                ),
            )
        }),
        _ => Err(DecodeError::new(
            DeadLetterReason::WrongType,
            format!("\"{}\" must be a number", truncate(field)),
        )),
    }
}

fn raw_text(line: &str, value: Value) -> &str {
    match value {
        Value::Str { span, .. } | Value::Num { span, .. } => span.of(line),
        Value::Bool(true) => "true",
        Value::Bool(false) => "false",
        Value::Null => "null",
        Value::Object { .. } | Value::Skipped => "(a container)",
    }
}

fn missing(field: &str) -> DecodeError {
    DecodeError::new(
        DeadLetterReason::MissingField,
        format!("missing field \"{}\"", truncate(field)),
    )
}

fn invalid_tag(key: &str, value: &str) -> DecodeError {
    DecodeError::new(
        DeadLetterReason::InvalidTag,
        format!(
            "tag {}={} is empty, longer than {MAX_TAG_BYTES} bytes, or contains | = , \" \\ or a control character",
            truncate(key),
            truncate(value)
        ),
    )
}

/// At most 64 bytes of `text` (on a char boundary), so details stay short whatever the input.
fn truncate(text: &str) -> &str {
    if text.len() <= 64 {
        return text;
    }
    let mut end = 64;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect {
        series: Vec<SeriesInfo>,
        observations: Vec<Observation>,
    }

    impl ObservationSink for Collect {
        fn series(&mut self, info: SeriesInfo) {
            self.series.push(info);
        }
        fn observation(&mut self, observation: Observation) {
            self.observations.push(observation);
        }
    }

    fn decoder() -> Decoder {
        Decoder::new(&MetricDefinitions::builtin(), TimestampRange::default())
    }

    fn decode(line: &str) -> Result<Collect, DecodeError> {
        let mut out = Collect::default();
        decoder().decode(line.as_bytes(), &mut out).map(|_| out)
    }

    fn reason(line: &str) -> DeadLetterReason {
        decode(line).map(|_| ()).expect_err(line).reason
    }

    fn private_decoder(action: PiiAction) -> (Decoder, Pii) {
        let fields = vec!["user_id".to_string(), "email".to_string()];
        let pii = Pii::new(b"a test key of 16+ bytes", fields, action);
        let definitions = MetricDefinitions::new(
            vec![tidemark_schemas::MetricDefinition {
                name: "user.by_id".into(),
                event: EventKind::UserActivity,
                value: None,
                tags: vec!["user_id".into(), "event".into()],
                when: None,
                aggregations: vec![Aggregation::Count],
                distinct: None,
            }],
            "metrics",
        )
        .unwrap();
        let decoder = Decoder::new(&definitions, TimestampRange::default()).with_privacy(Some(pii.clone()));
        (decoder, pii)
    }

    #[test]
    fn personal_tags_become_keyed_pseudonyms() {
        let (mut decoder, pii) = private_decoder(PiiAction::Hash);
        let mut out = Collect::default();
        let generic = r#"{"ts":1732233600000,"metric":"logins","tags":{"email":"a,b@x.io","region":"eu"},"value":1}"#;
        decoder.decode(generic.as_bytes(), &mut out).unwrap();
        let typed = r#"{"kind":"user_activity","ts":1732233600000,"user_id":"u-42","org":"o","event":"login","session_id":"s","duration_ms":5}"#;
        decoder.decode(typed.as_bytes(), &mut out).unwrap();
        let expect = |value: &str| {
            let mut p = String::new();
            pii.pseudonym_into(value.as_bytes(), &mut p);
            p
        };
        let keys: Vec<&str> = out.series.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                format!("logins|email={}|region=eu", expect("a,b@x.io")),
                format!("user.by_id|event=login|user_id={}", expect("u-42"))
            ]
        );
    }

    #[test]
    fn dropped_personal_tags_merge_series() {
        let (mut decoder, _) = private_decoder(PiiAction::Drop);
        let mut out = Collect::default();
        for user in ["u-1", "u-2"] {
            let line = format!(
                r#"{{"kind":"user_activity","ts":1732233600000,"user_id":"{user}","org":"o","event":"login","session_id":"s","duration_ms":5}}"#
            );
            decoder.decode(line.as_bytes(), &mut out).unwrap();
        }
        assert_eq!(out.series.len(), 1);
        assert_eq!(out.series[0].key, "user.by_id|event=login");
        assert_eq!(out.observations.len(), 2);
    }

    #[test]
    fn the_guard_refuses_new_series_beyond_the_limit_and_keeps_old_ones() {
        use crate::cardinality::SeriesLimits;
        let guard = Arc::new(CardinalityGuard::new(SeriesLimits {
            max_series_per_metric: 2,
            max_series: 10,
        }));
        let mut a = decoder().with_guard(guard.clone());
        let mut b = decoder().with_guard(guard.clone());
        let line = |host: u32| format!(r#"{{"ts":1732233600000,"metric":"m","tags":{{"host":"h{host}"}},"value":1}}"#);
        let mut out = Collect::default();
        a.decode(line(1).as_bytes(), &mut out).unwrap();
        b.decode(line(2).as_bytes(), &mut out).unwrap();
        let refused = a.decode(line(3).as_bytes(), &mut out).unwrap_err();
        assert_eq!(refused.reason, DeadLetterReason::CardinalityLimit);
        assert!(
            refused.detail.contains("limits.max_series_per_metric"),
            "{}",
            refused.detail
        );
        a.decode(line(2).as_bytes(), &mut out)
            .expect("a series admitted by another worker");
        b.decode(line(1).as_bytes(), &mut out).expect("an admitted series");
        let other = r#"{"ts":1732233600000,"metric":"n","value":1}"#;
        a.decode(other.as_bytes(), &mut out)
            .expect("other metrics are not affected");
        assert_eq!(out.observations.len(), 5);
        assert_eq!(guard.series.load(std::sync::atomic::Ordering::Relaxed), 3);
    }

    #[test]
    fn generic_metric_event() {
        let out = decode(
            r#"{"ts": 1732233600004, "metric": "api.request.duration_ms", "tags": {"service": "auth", "region": "us", "method": "GET"}, "value": 7.604}"#,
        )
        .unwrap();
        assert_eq!(out.series.len(), 1);
        assert_eq!(
            out.series[0].key,
            "api.request.duration_ms|method=GET|region=us|service=auth"
        );
        assert_eq!(
            out.observations,
            vec![Observation {
                series: out.series[0].series,
                ts: 1_732_233_600_004,
                value: 7.604,
                distinct_hash: 0,
                tracking: Tracking {
                    quantiles: true,
                    distinct: false,
                    counted: false
                }
            }]
        );
    }

    /// Fuzzing regression (`fuzz/fuzz_targets/json_decode.rs`, seed `bad-wrong-type-status-code`):
    /// a dead-lettered line must not also yield observations. A string `status_code` fails only
    /// the condition of `api.request.errors`, an invalid `error` tag only the tags of
    /// `task.failures`; both were found after the definitions before them had emitted.
    #[test]
    fn a_dead_lettered_line_yields_no_observation() {
        let cases = [
            (
                r#"{"kind":"api_request","ts":1732233600001,"service":"catalog","route":"/v1/categories","method":"GET","region":"eu","status_code":"400","latency_ms":4.039,"bytes":411}"#,
                DeadLetterReason::WrongType,
            ),
            (
                r#"{"kind":"task_execution","ts":1732233600000,"task_id":"t1","task_type":"etl","queue":"q","start_ts":1732233590000,"end_ts":1732233600000,"duration_ms":10000,"status":"failed","cpu_pct":3.5,"memory_mb":128,"error":"a|b"}"#,
                DeadLetterReason::InvalidTag,
            ),
        ];
        for (line, want) in cases {
            let mut out = Collect::default();
            let err = decoder().decode(line.as_bytes(), &mut out).expect_err(line);
            assert_eq!(err.reason, want, "{line}: {}", err.detail);
            assert!(
                out.observations.is_empty(),
                "{line}: dead-lettered ({}) and also counted in {} observation(s)",
                err.detail,
                out.observations.len()
            );
        }
    }

    /// Fuzzing regression: an absent optional field used for a distinct count (`source_ip` of
    /// `security_signal`) is null, as it is for tags, not a missing field found after the other
    /// definitions had emitted.
    #[test]
    fn an_absent_optional_distinct_field_is_null() {
        let absent = r##"{"kind":"security_signal","ts":1732233600033,"signal":"card_testing","severity":"medium","score":0.58,"#source_ip":"10.206.202.119","user_id":"u-000050"}"##;
        let null = absent.replace("\"#source_ip\":\"10.206.202.119\"", "\"source_ip\":null");
        let absent = decode(absent).expect("an absent optional field is accepted");
        let null = decode(&null).expect("a null optional field is accepted");
        assert!(!absent.observations.is_empty());
        assert_eq!(absent.observations, null.observations);
    }

    #[test]
    fn series_are_announced_once_per_decoder() {
        let mut d = decoder();
        let mut out = Collect::default();
        for _ in 0..3 {
            d.decode(br#"{"ts":1732233600000,"metric":"m","value":1}"#, &mut out)
                .unwrap();
        }
        assert_eq!(out.series.len(), 1);
        assert_eq!(out.observations.len(), 3);
    }

    #[test]
    fn escaped_tags_are_unescaped() {
        let out = decode(r#"{"ts":1732233600000,"metric":"m","tags":{"h\u006fst":"caf\u00e9"},"value":1}"#).unwrap();
        assert_eq!(out.series[0].key, "m|host=café");
    }

    #[test]
    fn typed_api_request_yields_its_metrics() {
        let line = r#"{"kind":"api_request","ts":1732233600000,"service":"auth","route":"/v1/login","method":"POST","region":"eu","status_code":503,"latency_ms":12.5,"bytes":5120}"#;
        let out = decode(line).unwrap();
        let keys: Vec<_> = out.series.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "api.request.latency_ms|method=POST|region=eu|service=auth",
                "api.request.bytes|region=eu|service=auth",
                "api.request.errors|region=eu|service=auth|status_code=503",
            ]
        );
        let values: Vec<_> = out.observations.iter().map(|o| o.value).collect();
        assert_eq!(values, vec![12.5, 5120.0, 1.0]);
    }

    #[test]
    fn conditions_filter_and_null_tags_are_left_out() {
        let ok = r#"{"kind":"task_execution","ts":1732233600000,"task_id":"t1","task_type":"etl","queue":"q","start_ts":1732233590000,"end_ts":1732233600000,"duration_ms":10000,"status":"success","cpu_pct":3.5,"memory_mb":128,"error":null}"#;
        let out = decode(ok).unwrap();
        assert!(out.series.iter().all(|s| !s.key.starts_with("task.failures")));
        let failed = ok
            .replace("\"success\"", "\"failed\"")
            .replace("null", "\"oom_killed\"");
        let out = decode(&failed).unwrap();
        assert!(
            out.series
                .iter()
                .any(|s| s.key == "task.failures|error=oom_killed|task_type=etl")
        );
    }

    #[test]
    fn distinct_items_are_hashed() {
        let line = r#"{"kind":"user_activity","ts":1732233600000,"user_id":"u-1","org":"acme","session_id":"s1","event":"login","feature":null,"duration_ms":5}"#;
        let out = decode(line).unwrap();
        let active = out.series.iter().position(|s| s.key == "user.active").unwrap();
        let obs = out
            .observations
            .iter()
            .find(|o| o.series == out.series[active].series)
            .unwrap();
        assert_eq!(obs.distinct_hash, xxhash_rust::xxh3::xxh3_64(b"u-1"));
        assert!(obs.tracking.distinct);
        assert!(out.series[active].tracking.distinct);
    }

    #[test]
    fn malformed_lines_are_rejected_with_their_reason() {
        use DeadLetterReason::*;
        let cases = [
            (&b"{\"ts\":1732233600000,\"metric\":\"m\",\"value\":1"[..], InvalidJson),
            (b"{\"ts\":1732233600000,\"metric\":\"\xff\",\"value\":1}", InvalidUtf8),
            (br#"{"metric":"m","value":1}"#, MissingField),
            (br#"{"ts":1732233600000,"value":1}"#, MissingField),
            (br#"{"ts":1732233600000,"metric":"m"}"#, MissingField),
            (br#"{"ts":"yesterday","metric":"m","value":1}"#, WrongType),
            (br#"{"ts":1732233600000,"metric":"m","value":"7"}"#, WrongType),
            (br#"{"ts":1732233600000,"metric":"m","value":NaN}"#, NonFinite),
            (br#"{"ts":1732233600000,"metric":"m","value":1e400}"#, NonFinite),
            (br#"{"ts":1732233600,"metric":"m","value":1}"#, InvalidTimestamp),
            (br#"{"ts":99999999999999999999,"metric":"m","value":1}"#, InvalidTimestamp),
            (br#"{"ts":1732233600000.5,"metric":"m","value":1}"#, InvalidTimestamp),
            (br#"{"ts":1732233600000,"metric":"a b","value":1}"#, InvalidMetric),
            (br#"{"ts":1732233600000,"metric":"m","tags":{"k":""},"value":1}"#, InvalidTag),
            (br#"{"ts":1732233600000,"metric":"m","tags":{"k":"a|b"},"value":1}"#, InvalidTag),
            (br#"{"ts":1732233600000,"metric":"m","tags":{"k":1},"value":1}"#, WrongType),
            (br#"{"ts":1732233600000,"metric":"m","tags":[1],"value":1}"#, WrongType),
            (br#"{"ts":1732233600000,"metric":"m","value":1,"value":2}"#, DuplicateKey),
            (br#"{"kind":"mystery","ts":1732233600000}"#, UnknownKind),
            (br#"{"kind":"sale","ts":1732233600000,"order_id":"o","seller":"s","product":"p","currency":"usd","quantity":1}"#, MissingField),
        ];
        for (line, want) in cases {
            let mut out = Collect::default();
            let err = decoder()
                .decode(line, &mut out)
                .expect_err(&String::from_utf8_lossy(line));
            assert_eq!(err.reason, want, "{}: {}", String::from_utf8_lossy(line), err.detail);
            assert!(out.observations.is_empty());
        }
        assert_eq!(
            reason(r#"{"ts":1732233600000,"metric":"m","tags":{"b":"1","b":"2"},"value":1}"#),
            DuplicateKey
        );
    }
}
