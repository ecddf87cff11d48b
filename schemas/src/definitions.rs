//! Metric definitions: which metrics each event kind yields.
//!
//! A definition names a metric, the event kind it comes from, the field that is its value (or
//! none: every matching event counts 1), the fields that become tags, an optional condition, and
//! the aggregations wanted. Users add KPIs by adding definitions to their config, no code. The
//! built-in [`MetricDefinitions::builtin`] set covers every typed kind; generic metric events
//! need no definition (they name their own metric).
//!
//! Validation happens once at start-up and every error names the offending key
//! (`metrics[3].value`) and how to fix it, because a pipeline that starts with a typo in a field
//! name would silently produce nothing for that metric.

use crate::event::{EventKind, FieldType};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use thiserror::Error;

/// An aggregate computed per series and window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Number of events.
    Count,
    /// Sum of values.
    Sum,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Mean value.
    Avg,
    /// Median (type-7).
    P50,
    /// 95th percentile (type-7).
    P95,
    /// 99th percentile (type-7).
    P99,
    /// Distinct count of the definition's `distinct` field (HyperLogLog).
    Distinct,
}

impl Aggregation {
    /// Everything but `distinct`: the default for definitions that do not say.
    pub const STANDARD: [Aggregation; 8] = [
        Aggregation::Count,
        Aggregation::Sum,
        Aggregation::Min,
        Aggregation::Max,
        Aggregation::Avg,
        Aggregation::P50,
        Aggregation::P95,
        Aggregation::P99,
    ];

    /// Whether this aggregation needs the window's value distribution.
    pub fn is_quantile(self) -> bool {
        matches!(self, Aggregation::P50 | Aggregation::P95 | Aggregation::P99)
    }
}

/// Only count events whose `field` satisfies the test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The field tested.
    pub field: String,
    /// The field (a string) must equal this.
    #[serde(default)]
    pub equals: Option<String>,
    /// The field (a string) must differ from this (or be null).
    #[serde(default)]
    pub not_equals: Option<String>,
    /// The field (a number) must be at least this.
    #[serde(default)]
    pub at_least: Option<f64>,
}

/// One metric derived from one event kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricDefinition {
    /// Metric name, `[A-Za-z0-9_.:-]+`.
    pub name: String,
    /// The event kind it is derived from.
    pub event: EventKind,
    /// The numeric field that is the value; absent means every matching event counts 1.
    #[serde(default)]
    pub value: Option<String>,
    /// Fields that become tags (string or integer fields; a null optional field is left out).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Only events satisfying this condition contribute.
    #[serde(default)]
    pub when: Option<Condition>,
    /// The aggregations wanted (default: all but `distinct`).
    #[serde(default = "standard_aggregations")]
    pub aggregations: Vec<Aggregation>,
    /// The field whose distinct values `distinct` counts.
    #[serde(default)]
    pub distinct: Option<String>,
}

fn standard_aggregations() -> Vec<Aggregation> {
    Aggregation::STANDARD.to_vec()
}

/// A configuration mistake in a metric definition, naming the key and the fix.
#[derive(Debug, Error, PartialEq)]
#[error("{key}: {problem}; {fix}")]
pub struct DefinitionError {
    /// The offending key, e.g. `metrics[2].value`.
    pub key: String,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

/// The validated set of metric definitions.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct MetricDefinitions {
    definitions: Vec<MetricDefinition>,
}

/// Whether `name` is a valid metric name (also used for generic events).
pub fn is_valid_metric_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

impl MetricDefinitions {
    /// Validates `definitions`; `key_prefix` (e.g. `metrics`) names them in errors.
    pub fn new(definitions: Vec<MetricDefinition>, key_prefix: &str) -> Result<Self, DefinitionError> {
        let mut names = BTreeSet::new();
        for (i, def) in definitions.iter().enumerate() {
            let at = |field: &str| format!("{key_prefix}[{i}].{field}");
            validate_definition(def, &at)?;
            if !names.insert(def.name.as_str()) {
                return Err(DefinitionError {
                    key: at("name"),
                    problem: format!("metric \"{}\" is defined twice", def.name),
                    fix: "give each definition its own name".into(),
                });
            }
        }
        Ok(MetricDefinitions { definitions })
    }

    /// The definitions, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &MetricDefinition> {
        self.definitions.iter()
    }

    /// The definitions for one event kind.
    pub fn for_kind(&self, kind: EventKind) -> impl Iterator<Item = &MetricDefinition> {
        self.definitions.iter().filter(move |d| d.event == kind)
    }

    /// The built-in definitions covering every typed event kind.
    pub fn builtin() -> Self {
        let defs = builtin_definitions();
        MetricDefinitions::new(defs, "builtin_metrics").expect("built-in metric definitions are valid")
    }
}

fn validate_definition(def: &MetricDefinition, at: &dyn Fn(&str) -> String) -> Result<(), DefinitionError> {
    let kind = def.event;
    let known = || kind.fields().iter().map(|f| f.name).collect::<Vec<_>>().join(", ");
    if !is_valid_metric_name(&def.name) {
        return Err(DefinitionError {
            key: at("name"),
            problem: format!("\"{}\" is not a valid metric name", def.name),
            fix: "use 1-200 characters from A-Z a-z 0-9 _ . : -".into(),
        });
    }
    if kind == EventKind::Metric {
        return Err(DefinitionError {
            key: at("event"),
            problem: "generic metric events name their own metric and need no definition".into(),
            fix: "use a typed kind: task_execution, api_request, system_sample, user_activity, sale, security_signal"
                .into(),
        });
    }
    if let Some(value) = &def.value {
        match kind.field(value) {
            Some(f) if f.ty.is_numeric() => {}
            Some(_) => {
                return Err(DefinitionError {
                    key: at("value"),
                    problem: format!("field \"{value}\" of {kind} is not numeric"),
                    fix: "name a numeric field, or leave `value` out to count events".into(),
                });
            }
            None => {
                return Err(DefinitionError {
                    key: at("value"),
                    problem: format!("{kind} has no field \"{value}\""),
                    fix: format!("use one of: {}", known()),
                });
            }
        }
    }
    for (t, tag) in def.tags.iter().enumerate() {
        match kind.field(tag) {
            Some(f) if f.ty != FieldType::Num => {}
            Some(_) => {
                return Err(DefinitionError {
                    key: at(&format!("tags[{t}]")),
                    problem: format!("field \"{tag}\" of {kind} is a float and would make a series per value"),
                    fix: "tag by string or integer fields only".into(),
                });
            }
            None => {
                return Err(DefinitionError {
                    key: at(&format!("tags[{t}]")),
                    problem: format!("{kind} has no field \"{tag}\""),
                    fix: format!("use one of: {}", known()),
                });
            }
        }
        if def.tags[..t].contains(tag) {
            return Err(DefinitionError {
                key: at(&format!("tags[{t}]")),
                problem: format!("tag \"{tag}\" is listed twice"),
                fix: "list each tag once".into(),
            });
        }
    }
    if let Some(cond) = &def.when {
        let Some(f) = kind.field(&cond.field) else {
            return Err(DefinitionError {
                key: at("when.field"),
                problem: format!("{kind} has no field \"{}\"", cond.field),
                fix: format!("use one of: {}", known()),
            });
        };
        let tests = [
            cond.equals.is_some(),
            cond.not_equals.is_some(),
            cond.at_least.is_some(),
        ];
        if tests.iter().filter(|t| **t).count() != 1 {
            return Err(DefinitionError {
                key: at("when"),
                problem: "a condition needs exactly one of equals, not_equals, at_least".into(),
                fix: "keep one test per definition".into(),
            });
        }
        if cond.at_least.is_some() != f.ty.is_numeric() {
            return Err(DefinitionError {
                key: at("when"),
                problem: format!("field \"{}\" does not fit this test", cond.field),
                fix: "use at_least with numeric fields, equals/not_equals with string fields".into(),
            });
        }
    }
    if def.aggregations.is_empty() {
        return Err(DefinitionError {
            key: at("aggregations"),
            problem: "no aggregations listed".into(),
            fix: "list some of: count, sum, min, max, avg, p50, p95, p99, distinct (or leave the key out for all but distinct)".into(),
        });
    }
    let wants_distinct = def.aggregations.contains(&Aggregation::Distinct);
    match (&def.distinct, wants_distinct) {
        (None, true) => Err(DefinitionError {
            key: at("distinct"),
            problem: "aggregation `distinct` needs the field to count distinct values of".into(),
            fix: format!("set distinct to one of: {}", known()),
        }),
        (Some(_), false) => Err(DefinitionError {
            key: at("aggregations"),
            problem: "`distinct` field is set but `distinct` is not among the aggregations".into(),
            fix: "add \"distinct\" to aggregations, or remove the distinct key".into(),
        }),
        (Some(field), true) if kind.field(field).is_none() => Err(DefinitionError {
            key: at("distinct"),
            problem: format!("{kind} has no field \"{field}\""),
            fix: format!("use one of: {}", known()),
        }),
        _ => Ok(()),
    }
}

fn def(
    name: &str,
    event: EventKind,
    value: Option<&str>,
    tags: &[&str],
    aggregations: &[Aggregation],
) -> MetricDefinition {
    MetricDefinition {
        name: name.into(),
        event,
        value: value.map(Into::into),
        tags: tags.iter().map(|t| (*t).into()).collect(),
        when: None,
        aggregations: aggregations.to_vec(),
        distinct: None,
    }
}

fn builtin_definitions() -> Vec<MetricDefinition> {
    use Aggregation::*;
    use EventKind::*;
    let all = &Aggregation::STANDARD[..];
    let counted = &[Count][..];
    let with_distinct = |mut d: MetricDefinition, field: &str| {
        d.aggregations.push(Distinct);
        d.distinct = Some(field.into());
        d
    };
    let when = |mut d: MetricDefinition, cond: Condition| {
        d.when = Some(cond);
        d
    };
    vec![
        def(
            "task.duration_ms",
            TaskExecution,
            Some("duration_ms"),
            &["task_type", "queue", "status"],
            all,
        ),
        def("task.cpu_pct", TaskExecution, Some("cpu_pct"), &["task_type"], all),
        def("task.memory_mb", TaskExecution, Some("memory_mb"), &["task_type"], all),
        when(
            def("task.failures", TaskExecution, None, &["task_type", "error"], counted),
            Condition {
                field: "status".into(),
                equals: None,
                not_equals: Some("success".into()),
                at_least: None,
            },
        ),
        def(
            "api.request.latency_ms",
            ApiRequest,
            Some("latency_ms"),
            &["service", "method", "region"],
            all,
        ),
        def(
            "api.request.bytes",
            ApiRequest,
            Some("bytes"),
            &["service", "region"],
            &[Count, Sum, Avg, P95],
        ),
        when(
            def(
                "api.request.errors",
                ApiRequest,
                None,
                &["service", "region", "status_code"],
                counted,
            ),
            Condition {
                field: "status_code".into(),
                equals: None,
                not_equals: None,
                at_least: Some(500.0),
            },
        ),
        def(
            "system.cpu_pct",
            SystemSample,
            Some("cpu_pct"),
            &["host", "region"],
            all,
        ),
        def(
            "system.mem_pct",
            SystemSample,
            Some("mem_pct"),
            &["host", "region"],
            all,
        ),
        def(
            "system.disk_pct",
            SystemSample,
            Some("disk_pct"),
            &["host", "region"],
            &[Count, Min, Max, Avg],
        ),
        def(
            "system.net_in_bytes",
            SystemSample,
            Some("net_in_bytes"),
            &["host", "region"],
            &[Count, Sum, Max, Avg],
        ),
        def(
            "system.net_out_bytes",
            SystemSample,
            Some("net_out_bytes"),
            &["host", "region"],
            &[Count, Sum, Max, Avg],
        ),
        with_distinct(
            def("user.events", UserActivity, None, &["org", "event"], counted),
            "user_id",
        ),
        with_distinct(def("user.active", UserActivity, None, &[], counted), "user_id"),
        with_distinct(
            def("user.sessions", UserActivity, None, &["org"], counted),
            "session_id",
        ),
        def("user.duration_ms", UserActivity, Some("duration_ms"), &["event"], all),
        when(
            def("user.feature_use", UserActivity, None, &["feature"], counted),
            Condition {
                field: "event".into(),
                equals: Some("feature_use".into()),
                not_equals: None,
                at_least: None,
            },
        ),
        def("sales.amount", Sale, Some("amount"), &["seller", "currency"], all),
        def("sales.quantity", Sale, Some("quantity"), &["product"], &[Count, Sum]),
        def(
            "sales.revenue",
            Sale,
            Some("amount"),
            &["currency"],
            &[Count, Sum, Avg, P50, P95],
        ),
        def(
            "security.score",
            SecuritySignal,
            Some("score"),
            &["signal", "severity"],
            all,
        ),
        with_distinct(
            def(
                "security.signals",
                SecuritySignal,
                None,
                &["signal", "severity"],
                counted,
            ),
            "source_ip",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MetricDefinitions, DefinitionError> {
        #[derive(Deserialize)]
        struct File {
            metrics: Vec<MetricDefinition>,
        }
        let file: File = toml::from_str(text).expect("valid TOML");
        MetricDefinitions::new(file.metrics, "metrics")
    }

    #[test]
    fn builtin_definitions_cover_every_typed_kind() {
        let defs = MetricDefinitions::builtin();
        for kind in EventKind::ALL.into_iter().filter(|k| *k != EventKind::Metric) {
            assert!(defs.for_kind(kind).count() > 0, "{kind} has no metric");
        }
    }

    #[test]
    fn a_user_kpi_parses_from_toml() {
        let defs = parse(
            r#"
            [[metrics]]
            name = "checkout.amount"
            event = "sale"
            value = "amount"
            tags = ["seller"]
            aggregations = ["sum", "p95"]
            "#,
        )
        .unwrap();
        let def = defs.iter().next().unwrap();
        assert_eq!(def.aggregations, vec![Aggregation::Sum, Aggregation::P95]);
    }

    #[test]
    fn a_misspelt_value_field_names_the_key_and_the_choices() {
        let err = parse(
            r#"
            [[metrics]]
            name = "x"
            event = "api_request"
            value = "latncy_ms"
            "#,
        )
        .unwrap_err();
        assert_eq!(err.key, "metrics[0].value");
        assert!(err.fix.contains("latency_ms"), "{err}");
    }

    #[test]
    fn non_numeric_values_float_tags_and_missing_distinct_are_rejected() {
        let cases = [
            ("value = \"service\"", "metrics[0].value"),
            ("tags = [\"latency_ms\"]", "metrics[0].tags[0]"),
            ("tags = [\"service\", \"service\"]", "metrics[0].tags[1]"),
            ("aggregations = [\"distinct\"]", "metrics[0].distinct"),
            ("distinct = \"service\"", "metrics[0].aggregations"),
            ("aggregations = []", "metrics[0].aggregations"),
            ("when = { field = \"service\", at_least = 3.0 }", "metrics[0].when"),
            ("when = { field = \"nope\", equals = \"a\" }", "metrics[0].when.field"),
        ];
        for (line, key) in cases {
            let text = format!("[[metrics]]\nname = \"x\"\nevent = \"api_request\"\n{line}\n");
            assert_eq!(parse(&text).unwrap_err().key, key, "{line}");
        }
    }

    #[test]
    fn duplicate_names_and_bad_names_are_rejected() {
        let text = "[[metrics]]\nname = \"a\"\nevent = \"sale\"\n[[metrics]]\nname = \"a\"\nevent = \"sale\"\n";
        assert_eq!(parse(text).unwrap_err().key, "metrics[1].name");
        let text = "[[metrics]]\nname = \"a|b\"\nevent = \"sale\"\n";
        assert_eq!(parse(text).unwrap_err().key, "metrics[0].name");
    }
}
