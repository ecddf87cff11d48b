//! `GET /api/v1/alerts` (active alerts and silences) and `POST /api/v1/alerts` (silence or
//! unsilence; admin keys only).

use super::auth::Caller;
use super::error::ApiError;
use super::time::{Timestamp, now_ms};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tidemark_sinks::live::{AlertBoard, AlertView, Silence, SilenceError, SilenceMatcher};
use warp::http::StatusCode;

/// Longest silence: a forgotten silence should not hide alerts for ever.
const MAX_SILENCE: Duration = Duration::from_secs(30 * 86_400);

/// `GET` response.
#[derive(Serialize)]
pub struct AlertList {
    /// Active alerts, most severe first.
    pub alerts: Vec<AlertView>,
    /// Silences in force.
    pub silences: Vec<Silence>,
}

/// `POST` body.
#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum AlertAction {
    /// Mute matching alerts until `until`, or for `duration`.
    Silence {
        /// One alert.
        alert_id: Option<String>,
        /// Every alert of a rule.
        rule: Option<String>,
        /// Every alert about a series.
        series: Option<String>,
        /// End of the silence.
        until: Option<Timestamp>,
        /// Length of the silence, e.g. `2h`.
        duration: Option<String>,
        /// Why.
        #[serde(default)]
        comment: String,
    },
    /// Remove a silence.
    Unsilence {
        /// Its id.
        silence_id: String,
    },
}

/// `POST` response.
#[derive(Serialize)]
pub struct ActionResult {
    /// The silence created, for `silence`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silence: Option<Silence>,
    /// The silence removed, for `unsilence`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<String>,
}

/// The alerts and silences now.
pub fn list(board: &AlertBoard) -> AlertList {
    let now = now_ms();
    AlertList {
        alerts: board.active(now),
        silences: board.silences(now),
    }
}

/// Applies a `POST`.
pub fn act(board: &AlertBoard, caller: &Caller, action: AlertAction) -> Result<(StatusCode, ActionResult), ApiError> {
    let now = now_ms();
    match action {
        AlertAction::Silence {
            alert_id,
            rule,
            series,
            until,
            duration,
            comment,
        } => {
            let until_ms = match (until, duration) {
                (Some(until), None) => until.millis("until")?,
                (None, Some(duration)) => {
                    let length = humantime::parse_duration(&duration).map_err(|e| {
                        ApiError::bad_request(format!("duration: {duration:?} is not a duration such as 2h: {e}"))
                    })?;
                    now.saturating_add(length.as_millis() as i64)
                }
                _ => return Err(ApiError::bad_request("give exactly one of until or duration")),
            };
            if until_ms > now.saturating_add(MAX_SILENCE.as_millis() as i64) {
                return Err(ApiError::bad_request("a silence may last at most 30 days"));
            }
            let matcher = SilenceMatcher { alert_id, rule, series };
            let silence = board
                .silence(matcher, until_ms, comment, &caller.name, now)
                .map_err(|e| match e {
                    SilenceError::TooMany => ApiError::unavailable(e.to_string()),
                    _ => ApiError::bad_request(e.to_string()),
                })?;
            Ok((
                StatusCode::CREATED,
                ActionResult {
                    silence: Some(silence),
                    removed: None,
                },
            ))
        }
        AlertAction::Unsilence { silence_id } => {
            if !board.unsilence(&silence_id) {
                return Err(ApiError::not_found(format!("no silence {silence_id:?}")));
            }
            Ok((
                StatusCode::OK,
                ActionResult {
                    silence: None,
                    removed: Some(silence_id),
                },
            ))
        }
    }
}
