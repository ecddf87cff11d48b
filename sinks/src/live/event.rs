//! What the live stream tells subscribers: window upserts, anomaly scores, forecasts and
//! alert changes, in one tagged shape so a client handles a single list of events.

use super::alerts::Alert;
use serde::Serialize;
use tidemark_schemas::{AlertState, AnomalyScore, ForecastPoint, WindowUpdate};

/// One event of the live stream.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    /// A window result (an upsert by series, window size and start).
    Window(WindowUpdate),
    /// The anomaly score of a closed base window.
    Anomaly(AnomalyScore),
    /// A forecast point (an upsert by series, field, window size and start).
    Forecast(ForecastPoint),
    /// An alert started firing or resolved.
    Alert(AlertChange),
}

impl LiveEvent {
    /// The series the event is about (an alert's first series).
    pub fn series(&self) -> Option<&str> {
        match self {
            LiveEvent::Window(w) => Some(&w.series),
            LiveEvent::Anomaly(a) => Some(&a.series),
            LiveEvent::Forecast(f) => Some(&f.series),
            LiveEvent::Alert(change) => change.alert.series.first().map(String::as_str),
        }
    }
}

/// An alert's transition.
#[derive(Clone, Debug, Serialize)]
pub struct AlertChange {
    /// `firing` or `resolved`.
    pub state: AlertState,
    /// The alert.
    pub alert: Alert,
}
