//! The alert board: active alerts and silences, as the API and the live page see them.
//!
//! The alert engine (rules, `for` durations, delivery) is not part of this module: its
//! [`AlertEvent`]s reach the live sink with the other results, which
//! [`apply`](AlertBoard::apply)s them here and publishes them on the live stream. Without an
//! engine the board is simply empty. Silences set through the API are kept here, so the API
//! can set and list them, and the alert engine's stage asks [`mutes`](AlertBoard::mutes)
//! before delivering a notification (one silence set for the listing and the deliveries).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{PoisonError, RwLock};
use thiserror::Error;
use tidemark_schemas::{AlertEvent, AlertState, Severity};

/// Most silences kept at once: silences come from operators, not from data.
pub const MAX_SILENCES: usize = 1000;

/// An active alert: one alert instance (a rule and its group's labels).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    /// The instance's identity (the engine's fingerprint), stable while it fires.
    pub id: String,
    /// The rule that fired.
    pub rule: String,
    /// How serious.
    pub severity: Severity,
    /// The group's labels, e.g. `{"service": "auth"}`.
    pub labels: BTreeMap<String, String>,
    /// The series that triggered it.
    pub series: Vec<String>,
    /// One line for humans.
    pub summary: String,
    /// The value that triggered it.
    pub value: f64,
    /// The threshold crossed, for threshold rules.
    pub threshold: Option<f64>,
    /// When the condition started, epoch ms (event time).
    pub since_ms: i64,
}

impl Alert {
    /// The board's view of an engine event.
    pub fn from_event(event: &AlertEvent) -> Self {
        Alert {
            id: event.fingerprint.clone(),
            rule: event.rule.clone(),
            severity: event.severity,
            labels: event.labels.clone(),
            series: event.series.clone(),
            summary: event.summary.clone(),
            value: event.value,
            threshold: event.threshold,
            since_ms: event.started_at_ms,
        }
    }
}

/// What a silence mutes: every given field must match (at least one is given).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SilenceMatcher {
    /// One alert by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<String>,
    /// Every alert of a rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Every alert about a series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
}

impl SilenceMatcher {
    fn matches(&self, alert: &Alert) -> bool {
        self.matches_parts(&alert.id, &alert.rule, &alert.series)
    }

    fn matches_parts(&self, id: &str, rule: &str, series: &[String]) -> bool {
        self.alert_id.as_ref().is_none_or(|want| want == id)
            && self.rule.as_ref().is_none_or(|want| want == rule)
            && self.series.as_ref().is_none_or(|want| series.contains(want))
    }

    fn is_empty(&self) -> bool {
        self.alert_id.is_none() && self.rule.is_none() && self.series.is_none()
    }
}

/// A silence: matching alerts stay listed but are marked silenced until `until_ms`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Silence {
    /// Its id, to unsilence.
    pub id: String,
    /// What it mutes.
    pub matcher: SilenceMatcher,
    /// When it ends, epoch ms.
    pub until_ms: i64,
    /// Why, for the next operator.
    pub comment: String,
    /// Who set it (the API key's name).
    pub created_by: String,
    /// When it was set, epoch ms.
    pub created_ms: i64,
}

/// An active alert and whether a silence mutes it.
#[derive(Clone, Debug, Serialize)]
pub struct AlertView {
    /// The alert.
    #[serde(flatten)]
    pub alert: Alert,
    /// The silence muting it, if any.
    pub silenced_by: Option<String>,
}

/// A silence request was refused.
#[derive(Debug, Error, PartialEq)]
pub enum SilenceError {
    /// The matcher names nothing, which would mute every alert.
    #[error("a silence must name at least one of alert_id, rule or series")]
    EmptyMatcher,
    /// The end is not in the future.
    #[error("the silence would end at {until_ms}, which is not in the future")]
    InThePast {
        /// The requested end.
        until_ms: i64,
    },
    /// Too many silences.
    #[error("{MAX_SILENCES} silences are active; remove some first")]
    TooMany,
}

#[derive(Debug, Default)]
struct Board {
    active: BTreeMap<String, Alert>,
    silences: Vec<Silence>,
}

/// Active alerts and silences, shared by the live sink, the API and the live stream.
#[derive(Debug)]
pub struct AlertBoard {
    board: RwLock<Board>,
    next_silence: AtomicU64,
}

impl Default for AlertBoard {
    fn default() -> Self {
        AlertBoard {
            board: RwLock::new(Board::default()),
            next_silence: AtomicU64::new(1),
        }
    }
}

impl AlertBoard {
    /// Applies engine events under one write lock: firing ones become (or update) active
    /// alerts, resolved ones leave.
    pub fn apply(&self, events: &[AlertEvent]) {
        if events.is_empty() {
            return;
        }
        let mut board = self.board.write().unwrap_or_else(PoisonError::into_inner);
        for event in events {
            match event.state {
                AlertState::Firing => {
                    board.active.insert(event.fingerprint.clone(), Alert::from_event(event));
                }
                AlertState::Resolved => {
                    board.active.remove(&event.fingerprint);
                }
            }
        }
    }

    /// Active alerts, most severe first, each with the silence muting it at `now_ms`.
    pub fn active(&self, now_ms: i64) -> Vec<AlertView> {
        let board = self.board.read().unwrap_or_else(PoisonError::into_inner);
        let mut views: Vec<AlertView> = board
            .active
            .values()
            .map(|alert| AlertView {
                silenced_by: silence_for(&board.silences, alert, now_ms).map(|s| s.id.clone()),
                alert: alert.clone(),
            })
            .collect();
        views.sort_by(|a, b| {
            b.alert
                .severity
                .cmp(&a.alert.severity)
                .then(a.alert.id.cmp(&b.alert.id))
        });
        views
    }

    /// Whether a silence mutes `alert` at `now_ms`.
    pub fn is_silenced(&self, alert: &Alert, now_ms: i64) -> bool {
        let board = self.board.read().unwrap_or_else(PoisonError::into_inner);
        silence_for(&board.silences, alert, now_ms).is_some()
    }

    /// Whether a silence set through the API mutes an engine event at `now_ms`: the alert
    /// engine's stage asks this before notifying (before the live sink applies the event), so
    /// an API silence stops deliveries, not only the listing.
    pub fn mutes(&self, event: &AlertEvent, now_ms: i64) -> bool {
        let board = self.board.read().unwrap_or_else(PoisonError::into_inner);
        // A resolved event names no series (none is in trouble any more): match the series the
        // alert fired for, still on the board until the live sink applies the resolve.
        let series = match board.active.get(&event.fingerprint) {
            Some(alert) if event.series.is_empty() => &alert.series,
            _ => &event.series,
        };
        board
            .silences
            .iter()
            .any(|s| s.until_ms > now_ms && s.matcher.matches_parts(&event.fingerprint, &event.rule, series))
    }

    /// Adds a silence until `until_ms`.
    pub fn silence(
        &self,
        matcher: SilenceMatcher,
        until_ms: i64,
        comment: String,
        created_by: &str,
        now_ms: i64,
    ) -> Result<Silence, SilenceError> {
        if matcher.is_empty() {
            return Err(SilenceError::EmptyMatcher);
        }
        if until_ms <= now_ms {
            return Err(SilenceError::InThePast { until_ms });
        }
        let mut board = self.board.write().unwrap_or_else(PoisonError::into_inner);
        board.silences.retain(|s| s.until_ms > now_ms);
        if board.silences.len() >= MAX_SILENCES {
            return Err(SilenceError::TooMany);
        }
        let silence = Silence {
            id: format!("s{}", self.next_silence.fetch_add(1, Relaxed)),
            matcher,
            until_ms,
            comment,
            created_by: created_by.to_string(),
            created_ms: now_ms,
        };
        board.silences.push(silence.clone());
        Ok(silence)
    }

    /// Removes a silence; false if there is none with that id.
    pub fn unsilence(&self, id: &str) -> bool {
        let mut board = self.board.write().unwrap_or_else(PoisonError::into_inner);
        let before = board.silences.len();
        board.silences.retain(|s| s.id != id);
        board.silences.len() < before
    }

    /// Silences still in force at `now_ms`.
    pub fn silences(&self, now_ms: i64) -> Vec<Silence> {
        let board = self.board.read().unwrap_or_else(PoisonError::into_inner);
        board.silences.iter().filter(|s| s.until_ms > now_ms).cloned().collect()
    }
}

fn silence_for<'s>(silences: &'s [Silence], alert: &Alert, now_ms: i64) -> Option<&'s Silence> {
    silences
        .iter()
        .find(|s| s.until_ms > now_ms && s.matcher.matches(alert))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(fingerprint: &str, rule: &str, state: AlertState) -> AlertEvent {
        AlertEvent {
            id: format!("{fingerprint}-{state:?}"),
            fingerprint: fingerprint.into(),
            rule: rule.into(),
            severity: Severity::Warning,
            state,
            labels: BTreeMap::from([("host".to_string(), "a".to_string())]),
            series: vec!["cpu|host=a".into()],
            summary: "cpu high".into(),
            value: 97.0,
            threshold: Some(90.0),
            started_at_ms: 1000,
            ended_at_ms: None,
        }
    }

    #[test]
    fn firing_events_are_listed_until_resolved() {
        let board = AlertBoard::default();
        assert!(board.active(0).is_empty());
        board.apply(&[
            event("f1", "cpu", AlertState::Firing),
            event("f2", "disk", AlertState::Firing),
        ]);
        assert_eq!(board.active(0).len(), 2);
        board.apply(&[event("f1", "cpu", AlertState::Resolved)]);
        let active = board.active(0);
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].alert.id, "f2");
        assert_eq!(active[0].alert.labels["host"], "a");
    }

    #[test]
    fn silences_mute_matching_alerts_until_they_expire() {
        let board = AlertBoard::default();
        board.apply(&[
            event("f1", "cpu", AlertState::Firing),
            event("f2", "disk", AlertState::Firing),
        ]);
        let matcher = SilenceMatcher {
            rule: Some("cpu".into()),
            series: Some("cpu|host=a".into()),
            ..SilenceMatcher::default()
        };
        let silence = board.silence(matcher, 5000, "maintenance".into(), "ops", 1000).unwrap();
        let views = board.active(2000);
        let muted: Vec<_> = views
            .iter()
            .filter(|v| v.silenced_by.is_some())
            .map(|v| &v.alert.id)
            .collect();
        assert_eq!(muted, ["f1"]);
        let alert = Alert::from_event(&event("f1", "cpu", AlertState::Firing));
        assert!(board.is_silenced(&alert, 4999));
        assert!(!board.is_silenced(&alert, 5000));
        assert!(board.mutes(&event("f1", "cpu", AlertState::Resolved), 4999));
        assert!(!board.mutes(&event("f2", "disk", AlertState::Firing), 4999));
        assert!(!board.mutes(&event("f1", "cpu", AlertState::Firing), 5000));
        assert_eq!(board.silences(2000).len(), 1);
        assert!(board.unsilence(&silence.id));
        assert!(board.silences(2000).is_empty());
    }

    #[test]
    fn bad_silences_are_refused() {
        let board = AlertBoard::default();
        let empty = board.silence(SilenceMatcher::default(), 5000, String::new(), "ops", 1000);
        assert_eq!(empty.unwrap_err(), SilenceError::EmptyMatcher);
        let matcher = SilenceMatcher {
            alert_id: Some("a".into()),
            ..SilenceMatcher::default()
        };
        let past = board.silence(matcher, 500, String::new(), "ops", 1000);
        assert_eq!(past.unwrap_err(), SilenceError::InThePast { until_ms: 500 });
    }
}
