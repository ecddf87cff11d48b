//! Alert events: what the rule engine decides and the notifiers deliver.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
/// How urgent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}
/// Firing or resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Firing,
    Resolved,
}
/// One notification-worthy change of an alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Unique per (alert instance, state change); receivers deduplicate on it.
    pub id: String,
    /// Identity of the alert instance: rule + group labels (same for its firing and resolved events).
    pub fingerprint: String,
    pub rule: String,
    pub severity: Severity,
    pub state: AlertState,
    /// Group labels (the rule's group_by tags), e.g. {"service": "auth"}.
    pub labels: BTreeMap<String, String>,
    /// Series that triggered it.
    pub series: Vec<String>,
    /// Human summary, e.g. "p95 of api.request.latency_ms{service=auth} = 412.0 > 250.0 for 2m".
    pub summary: String,
    pub value: f64,
    pub threshold: Option<f64>,
    /// Event time (epoch ms) when the condition started / the alert resolved.
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
}
