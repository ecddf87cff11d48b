//! A journal chunk prepared once for every subscriber: each event's JSON text and an index of
//! the events by metric.
//!
//! Without it, every WebSocket client would parse every event's series key to filter it and
//! serialize what it keeps on its own — work that grows with clients × events. With it, a
//! chunk is encoded once (by the first client that reads it, never by the pipeline), a client
//! subscribed to some metrics visits only their events, and sending is copying text.

use super::event::LiveEvent;
use std::collections::HashMap;
use tidemark_schemas::series::split_key;

/// A chunk's events as JSON, with their positions grouped by metric.
#[derive(Debug)]
pub struct Encoded {
    /// Every event's JSON, one after the other.
    text: String,
    /// Where each event's JSON ends in `text`.
    ends: Vec<u32>,
    /// Positions of the events of each metric, ascending; sorted by metric.
    metrics: Vec<(Box<str>, Vec<u32>)>,
    /// Positions of the events about no single metric (alert changes): every subscriber
    /// wants them.
    unkeyed: Vec<u32>,
}

impl Encoded {
    /// Encodes `events`.
    pub fn new(events: &[LiveEvent]) -> Self {
        let mut text = Vec::with_capacity(events.len() * 256);
        let mut ends = Vec::with_capacity(events.len());
        let mut metrics: Vec<(Box<str>, Vec<u32>)> = Vec::new();
        let mut slot_of: HashMap<&str, usize> = HashMap::new();
        let mut unkeyed = Vec::new();
        for (position, event) in events.iter().enumerate() {
            // Writing into memory cannot fail, and every live event is plain data.
            serde_json::to_writer(&mut text, event).expect("live events serialize");
            ends.push(text.len() as u32);
            let metric = match event {
                LiveEvent::Alert(_) => None,
                other => other.series().map(|key| split_key(key).0),
            };
            let position = position as u32;
            match metric {
                None => unkeyed.push(position),
                Some(metric) => {
                    let slot = *slot_of.entry(metric).or_insert_with(|| {
                        metrics.push((metric.into(), Vec::new()));
                        metrics.len() - 1
                    });
                    metrics[slot].1.push(position);
                }
            }
        }
        metrics.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Encoded {
            text: String::from_utf8(text).expect("serde_json writes UTF-8"),
            ends,
            metrics,
            unkeyed,
        }
    }

    /// The JSON of event `position`.
    pub fn json(&self, position: usize) -> &str {
        let start = position.checked_sub(1).map_or(0, |p| self.ends[p] as usize);
        &self.text[start..self.ends[position] as usize]
    }

    /// Appends to `out` (cleared first) the positions of the events of any of `metrics` and of
    /// the events about no single metric, ascending.
    pub fn positions_of(&self, metrics: &[String], out: &mut Vec<u32>) {
        out.clear();
        out.extend_from_slice(&self.unkeyed);
        let mut lists = 0;
        for metric in metrics {
            if let Ok(found) = self.metrics.binary_search_by(|(m, _)| (**m).cmp(metric.as_str())) {
                out.extend_from_slice(&self.metrics[found].1);
                lists += 1;
            }
        }
        if lists > 1 || (lists == 1 && !self.unkeyed.is_empty()) {
            out.sort_unstable();
        }
    }

    /// Bytes of text and index.
    pub fn bytes(&self) -> usize {
        self.text.capacity()
            + self.ends.capacity() * 4
            + self.unkeyed.capacity() * 4
            + self
                .metrics
                .iter()
                .map(|(m, p)| m.len() + p.capacity() * 4 + size_of::<(Box<str>, Vec<u32>)>())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::{Alert, AlertChange};
    use tidemark_schemas::{AlertState, AnomalyScore, Severity};

    fn anomaly(series: &str) -> LiveEvent {
        LiveEvent::Anomaly(AnomalyScore {
            series: series.into(),
            window_ms: 1000,
            window_start: 0,
            field: "avg",
            value: 1.5,
            expected: 1.0,
            score: 0.25,
        })
    }

    fn alert() -> LiveEvent {
        LiveEvent::Alert(AlertChange {
            state: AlertState::Firing,
            alert: Alert {
                id: "a1".into(),
                rule: "r".into(),
                severity: Severity::Warning,
                labels: [("host".to_string(), "a".to_string())].into(),
                series: vec!["cpu|host=a".into()],
                summary: "s".into(),
                value: 2.0,
                threshold: Some(1.0),
                since_ms: 5,
            },
        })
    }

    #[test]
    fn each_event_is_its_own_serialization_and_metrics_index_their_events() {
        let events = vec![
            anomaly("cpu|host=a"),
            anomaly("mem|host=a"),
            alert(),
            anomaly("cpu|host=b"),
            anomaly("disk"),
        ];
        let encoded = Encoded::new(&events);
        for (i, event) in events.iter().enumerate() {
            assert_eq!(encoded.json(i), serde_json::to_string(event).unwrap());
        }
        let mut out = Vec::new();
        encoded.positions_of(&["cpu".into()], &mut out);
        assert_eq!(out, [0, 2, 3], "cpu's events and the alert, in order");
        encoded.positions_of(&["disk".into(), "mem".into(), "none".into()], &mut out);
        assert_eq!(out, [1, 2, 4]);
        encoded.positions_of(&[], &mut out);
        assert_eq!(out, [2], "alert changes go to every subscriber");
        assert!(encoded.bytes() > encoded.json(0).len() * 5);
    }
}
