//! The `/ws/live` protocol: JSON text messages, each with a `type`.
//!
//! Client → server: `subscribe` (metrics, series, tag filters, window size, update interval,
//! snapshot history, optional resume token), `unsubscribe`, `ping`.
//!
//! Server → client: `subscribed`, `snapshot` (recent state, when not resuming), `events`
//! (window updates, anomaly scores, forecasts, alert changes), `heartbeat`, `pong`, `error`.
//! Every `events` and `heartbeat` message carries a `resume` token: reconnecting with it
//! replays whatever the client missed since, as long as the server still retains it.

use crate::server::select::TagFilter;
use serde::{Deserialize, Serialize};
use tidemark_schemas::{Aggregates, AnomalyScore, ForecastPoint};
use tidemark_sinks::live::AlertView;

/// The update intervals a client may choose.
pub const INTERVALS: [(&str, u64); 4] = [("1s", 1000), ("5s", 5000), ("30s", 30_000), ("1m", 60_000)];

/// A message from the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Start (or replace) the subscription.
    Subscribe(Subscribe),
    /// Stop receiving events.
    Unsubscribe,
    /// Asks for a `pong`.
    Ping,
}

/// What to stream.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscribe {
    /// Metrics to stream (all when empty).
    #[serde(default)]
    pub metrics: Vec<String>,
    /// Exact series keys to stream (any when empty).
    #[serde(default)]
    pub series: Vec<String>,
    /// Tag filters.
    #[serde(default)]
    pub filters: Vec<TagFilter>,
    /// Only window updates of this size, e.g. `1m` (default: every size).
    #[serde(default)]
    pub window: Option<String>,
    /// At most one update per series and window size per interval: `1s`, `5s`, `30s`, `1m`.
    #[serde(default)]
    pub interval: Option<String>,
    /// Windows per series in the snapshot (default 60).
    #[serde(default)]
    pub history: Option<usize>,
    /// A token from an earlier connection.
    #[serde(default)]
    pub resume: Option<String>,
}

/// A window as it appears in snapshots: an upsert like the `window` events.
#[derive(Debug, Serialize)]
pub struct SnapshotWindow<'a> {
    /// Series key.
    pub series: &'a str,
    /// Window size in ms.
    pub window_ms: u64,
    /// Window start, epoch ms.
    pub window_start: i64,
    /// The aggregates.
    #[serde(flatten)]
    pub aggregates: &'a Aggregates,
}

/// A message to the client.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage<'a> {
    /// The subscription is in place.
    Subscribed {
        /// The update interval in ms.
        interval_ms: u64,
        /// Whether the resume token was honoured (no snapshot follows then).
        resumed: bool,
        /// Why a resume token was not honoured.
        #[serde(skip_serializing_if = "Option::is_none")]
        resume_refused: Option<&'static str>,
        /// The heartbeat period in ms.
        heartbeat_ms: u64,
    },
    /// Recent state of the subscribed series.
    Snapshot {
        /// Recent windows.
        windows: Vec<SnapshotWindow<'a>>,
        /// Recent anomaly scores.
        anomalies: Vec<&'a AnomalyScore>,
        /// Current forecasts.
        forecasts: Vec<&'a ForecastPoint>,
        /// Active alerts.
        alerts: Vec<AlertView>,
        /// Whether the snapshot was cut (too many series or windows).
        truncated: bool,
        /// Where the event stream continues from.
        resume: String,
    },
    /// Keep-alive, with the current resume token.
    Heartbeat {
        /// Server wall clock, epoch ms.
        ts: i64,
        /// Token to resume from.
        resume: String,
    },
    /// Answer to `ping`.
    Pong,
    /// The last message could not be used; the connection stays open.
    Error {
        /// What was wrong.
        message: String,
    },
}

impl ServerMessage<'_> {
    /// The JSON text.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("server messages serialize")
    }
}

/// The `events` message: `{"type":"events","events":[…],"resume":"…"}`, written from the
/// events' JSON as the journal encoded it once for every client (see
/// [`tidemark_sinks::live::Encoded`]), so sending costs a copy, not a serialization.
pub fn events_message<'a>(events: impl IntoIterator<Item = &'a str>, resume: ResumeToken) -> String {
    let mut text = String::with_capacity(4096);
    text.push_str(r#"{"type":"events","events":["#);
    for (i, event) in events.into_iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(event);
    }
    text.push_str(r#"],"resume":""#);
    text.push_str(&resume.encode());
    text.push_str(r#""}"#);
    text
}

/// A resume token: the server instance and a journal position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResumeToken {
    /// Which server process issued it (positions mean nothing to another).
    pub instance: u64,
    /// The journal position to continue from.
    pub seq: u64,
}

impl ResumeToken {
    /// The token's text.
    pub fn encode(self) -> String {
        format!("{:016x}-{}", self.instance, self.seq)
    }

    /// Parses a token's text.
    pub fn decode(text: &str) -> Option<Self> {
        let (instance, seq) = text.split_once('-')?;
        Some(ResumeToken {
            instance: u64::from_str_radix(instance, 16).ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

/// The interval in ms a label names.
pub fn interval_ms(label: Option<&str>) -> Result<u64, String> {
    let label = label.unwrap_or("1s");
    INTERVALS
        .iter()
        .find(|(name, _)| *name == label)
        .map(|(_, ms)| *ms)
        .ok_or_else(|| format!("interval {label:?} is not one of 1s, 5s, 30s, 1m"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let token = ResumeToken {
            instance: 0xabc,
            seq: 42,
        };
        assert_eq!(ResumeToken::decode(&token.encode()), Some(token));
        assert_eq!(ResumeToken::decode("garbage"), None);
    }

    #[test]
    fn events_messages_are_the_events_json_in_an_envelope() {
        use tidemark_schemas::AnomalyScore;
        use tidemark_sinks::live::{Encoded, LiveEvent};
        let events: Vec<LiveEvent> = ["cpu|host=\"a\"", "mem"]
            .into_iter()
            .map(|series| {
                LiveEvent::Anomaly(AnomalyScore {
                    series: series.into(),
                    window_ms: 1000,
                    window_start: 7,
                    field: "avg",
                    value: 2.5,
                    expected: 1.0,
                    score: 0.75,
                })
            })
            .collect();
        let encoded = Encoded::new(&events);
        let token = ResumeToken {
            instance: 0xabc,
            seq: 9,
        };
        let text = events_message([encoded.json(0), encoded.json(1)], token);
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        let expected = serde_json::json!({"type": "events", "events": events, "resume": token.encode()});
        assert_eq!(parsed, expected);
        let empty: serde_json::Value = serde_json::from_str(&events_message([], token)).unwrap();
        assert_eq!(empty["events"], serde_json::json!([]));
    }

    #[test]
    fn subscriptions_parse_strictly() {
        let message: ClientMessage =
            serde_json::from_str(r#"{"type":"subscribe","metrics":["cpu"],"interval":"5s"}"#).unwrap();
        assert!(matches!(message, ClientMessage::Subscribe(ref s) if s.metrics == ["cpu"]));
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"subscribe","metrcs":["cpu"]}"#).is_err());
        assert_eq!(interval_ms(Some("30s")), Ok(30_000));
        assert!(interval_ms(Some("2s")).is_err());
    }
}
