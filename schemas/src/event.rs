//! The event kinds tidemark reads and the fields each carries.
//!
//! Every input line is one JSON object. A `"kind"` member names its kind; a line without one is
//! a generic metric event (`{ts, metric, tags, value}`), which keeps the common metrics format
//! working unchanged. The field tables below are the contract that metric definitions are
//! validated against and that the decoder checks types with; `schemas/avro/` holds the same
//! shapes as Avro schemas.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The JSON type a field must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// A JSON string.
    Str,
    /// A JSON integer (no fraction, no exponent) that fits in `i64`.
    Int,
    /// Any finite JSON number.
    Num,
    /// A string, or `null` when absent.
    OptStr,
}

impl FieldType {
    /// Whether a metric's value can be read from a field of this type.
    pub fn is_numeric(self) -> bool {
        matches!(self, FieldType::Int | FieldType::Num)
    }
}

/// One field of a typed event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    /// The JSON member name.
    pub name: &'static str,
    /// Its type.
    pub ty: FieldType,
}

const fn field(name: &'static str, ty: FieldType) -> FieldSpec {
    FieldSpec { name, ty }
}

use FieldType::{Int, Num, OptStr, Str};

/// The kinds of event tidemark understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// `{ts, metric, tags: {string: string}, value}`: one observation of a named metric.
    Metric,
    /// A finished task or job run.
    TaskExecution,
    /// One served API request.
    ApiRequest,
    /// A periodic host sample.
    SystemSample,
    /// A user action in the product.
    UserActivity,
    /// A sale or transaction.
    Sale,
    /// A security or fraud signal.
    SecuritySignal,
}

impl EventKind {
    /// Every kind, in a fixed order.
    pub const ALL: [EventKind; 7] = [
        EventKind::Metric,
        EventKind::TaskExecution,
        EventKind::ApiRequest,
        EventKind::SystemSample,
        EventKind::UserActivity,
        EventKind::Sale,
        EventKind::SecuritySignal,
    ];

    /// The value of the `"kind"` member for this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Metric => "metric",
            EventKind::TaskExecution => "task_execution",
            EventKind::ApiRequest => "api_request",
            EventKind::SystemSample => "system_sample",
            EventKind::UserActivity => "user_activity",
            EventKind::Sale => "sale",
            EventKind::SecuritySignal => "security_signal",
        }
    }

    /// Parses the value of a `"kind"` member.
    pub fn parse(text: &str) -> Option<Self> {
        EventKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// The fields of a typed kind besides `ts` (the generic metric kind has its own layout).
    pub fn fields(self) -> &'static [FieldSpec] {
        const TASK: &[FieldSpec] = &[
            field("task_id", Str),
            field("task_type", Str),
            field("queue", Str),
            field("start_ts", Int),
            field("end_ts", Int),
            field("duration_ms", Num),
            field("status", Str),
            field("cpu_pct", Num),
            field("memory_mb", Num),
            field("error", OptStr),
        ];
        const API: &[FieldSpec] = &[
            field("service", Str),
            field("route", Str),
            field("method", Str),
            field("region", Str),
            field("status_code", Int),
            field("latency_ms", Num),
            field("bytes", Int),
        ];
        const SYSTEM: &[FieldSpec] = &[
            field("host", Str),
            field("region", Str),
            field("cpu_pct", Num),
            field("mem_pct", Num),
            field("disk_pct", Num),
            field("net_in_bytes", Int),
            field("net_out_bytes", Int),
        ];
        const USER: &[FieldSpec] = &[
            field("user_id", Str),
            field("org", Str),
            field("session_id", Str),
            field("event", Str),
            field("feature", OptStr),
            field("duration_ms", Num),
        ];
        const SALE: &[FieldSpec] = &[
            field("order_id", Str),
            field("seller", Str),
            field("product", Str),
            field("amount", Num),
            field("currency", Str),
            field("quantity", Int),
        ];
        const SECURITY: &[FieldSpec] = &[
            field("signal", Str),
            field("severity", Str),
            field("score", Num),
            field("source_ip", OptStr),
            field("user_id", OptStr),
        ];
        match self {
            EventKind::Metric => &[],
            EventKind::TaskExecution => TASK,
            EventKind::ApiRequest => API,
            EventKind::SystemSample => SYSTEM,
            EventKind::UserActivity => USER,
            EventKind::Sale => SALE,
            EventKind::SecuritySignal => SECURITY,
        }
    }

    /// The spec of the named field, if this kind has it.
    pub fn field(self, name: &str) -> Option<FieldSpec> {
        self.fields().iter().copied().find(|f| f.name == name)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("nope"), None);
    }

    #[test]
    fn field_names_are_unique_per_kind() {
        for kind in EventKind::ALL {
            let fields = kind.fields();
            for (i, a) in fields.iter().enumerate() {
                assert!(fields[i + 1..].iter().all(|b| b.name != a.name), "{kind}: {}", a.name);
                assert_ne!(a.name, "ts");
                assert_ne!(a.name, "kind");
            }
        }
    }
}
