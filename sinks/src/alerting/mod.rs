//! The alert rule engine.
//!
//! Rules are evaluated on the sink thread, on the results as they leave the dataflow: window
//! rows (static thresholds, rate of change, absence of data, value outside the forecast band)
//! and anomaly scores. Time is **event time** (window starts), so a replay or a test produces the
//! same alerts as the live run, and `for` / `keep_firing_for` mean windows, not wall-clock luck.
//!
//! An alert *instance* is a rule plus the values of its `group_by` tags (its fingerprint); all
//! series of a group share one instance, so a noisy fleet pages once. Each instance runs a small
//! state machine — inactive → pending (condition true, `for` not yet reached) → firing →
//! clearing (condition false, `keep_firing_for` not yet reached) → resolved — which is what
//! keeps a series hovering around its threshold from flapping. The engine emits an
//! [`AlertEvent`] on firing and on resolving; its id is derived from the fingerprint, the state
//! and the start time, so a replay re-derives the same ids and receivers can deduplicate.

mod config;
mod engine;
mod instance;
mod stage;

pub use config::{AlertRule, AlertsConfig, Condition, Field, Silence};
pub use engine::{ActiveAlerts, AlertEngine};
pub use stage::AlertStage;
