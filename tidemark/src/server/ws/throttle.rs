//! The update interval: at most one push per series and window size per interval.
//!
//! The first update of a series and size goes out at once — a window that just closed
//! reaches the client without waiting for a tick, which keeps delivery latency low — and
//! later ones within the interval are held and sent when it ends, newest value per window
//! (window results are upserts, so an older value of the same window is superseded).
//! Anomaly scores, forecasts and alert changes are rare and never held.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tidemark_sinks::live::LiveEvent;

type RateKey = (Arc<str>, u64);

/// One client's throttle.
pub struct Throttle {
    interval: Duration,
    sent: HashMap<RateKey, Instant>,
    held: HashMap<(RateKey, i64), (u64, LiveEvent)>,
}

impl Throttle {
    /// A throttle with the given interval.
    pub fn new(interval: Duration) -> Self {
        Throttle {
            interval,
            sent: HashMap::new(),
            held: HashMap::new(),
        }
    }

    /// Offers event `seq`; returns it if it may go out now, else holds it.
    pub fn offer(&mut self, seq: u64, event: &LiveEvent, now: Instant) -> Option<LiveEvent> {
        let LiveEvent::Window(window) = event else {
            return Some(event.clone());
        };
        let key = (window.series.clone(), window.window_ms);
        match self.sent.get(&key) {
            Some(at) if now.duration_since(*at) < self.interval => {
                self.held.insert((key, window.window_start), (seq, event.clone()));
                None
            }
            _ => {
                self.held.remove(&(key.clone(), window.window_start));
                self.sent.insert(key, now);
                Some(event.clone())
            }
        }
    }

    /// When the next held event falls due.
    pub fn next_due(&self) -> Option<Instant> {
        self.held
            .keys()
            .filter_map(|(key, _)| self.sent.get(key))
            .min()
            .map(|at| *at + self.interval)
    }

    /// Held events that are due at `now` with their journal positions, oldest first; forgets
    /// rate state that has expired.
    pub fn due(&mut self, now: Instant) -> Vec<(u64, LiveEvent)> {
        let interval = self.interval;
        let sent = &self.sent;
        let ready = |key: &RateKey| sent.get(key).is_none_or(|at| now.duration_since(*at) >= interval);
        let due_keys: Vec<(RateKey, i64)> = self.held.keys().filter(|(key, _)| ready(key)).cloned().collect();
        let mut out: Vec<(u64, LiveEvent)> = due_keys.iter().filter_map(|k| self.held.remove(k)).collect();
        out.sort_by_key(|(seq, _)| *seq);
        for (key, _) in due_keys {
            self.sent.insert(key, now);
        }
        self.sent.retain(|_, at| now.duration_since(*at) < interval);
        out
    }

    /// The oldest journal position still held (a resume token must not pass it).
    pub fn oldest_held(&self) -> Option<u64> {
        self.held.values().map(|(seq, _)| *seq).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_schemas::{Aggregates, SeriesId, UpdateKind, WindowUpdate};

    fn window(series: &str, start: i64, count: u64) -> LiveEvent {
        LiveEvent::Window(WindowUpdate {
            series: series.into(),
            series_id: SeriesId::of_key(series),
            window_ms: 1000,
            window_start: start,
            kind: UpdateKind::Final,
            aggregates: Aggregates {
                count,
                sum: 0.0,
                min: 0.0,
                max: 0.0,
                avg: 0.0,
                p50: None,
                p95: None,
                p99: None,
                distinct: None,
            },
        })
    }

    fn count(event: &LiveEvent) -> u64 {
        match event {
            LiveEvent::Window(w) => w.aggregates.count,
            _ => 0,
        }
    }

    #[test]
    fn first_update_goes_out_at_once_later_ones_wait_for_the_interval() {
        let t0 = Instant::now();
        let mut throttle = Throttle::new(Duration::from_secs(1));
        assert!(throttle.offer(1, &window("a", 0, 1), t0).is_some());
        assert!(
            throttle.offer(2, &window("b", 0, 1), t0).is_some(),
            "series are independent"
        );
        assert!(throttle.offer(3, &window("a", 0, 2), t0).is_none());
        assert!(throttle.offer(4, &window("a", 0, 3), t0).is_none());
        assert!(throttle.offer(5, &window("a", 1000, 1), t0).is_none());
        assert_eq!(throttle.oldest_held(), Some(4), "the superseded value no longer counts");
        assert_eq!(throttle.next_due(), Some(t0 + Duration::from_secs(1)));
        assert!(throttle.due(t0 + Duration::from_millis(500)).is_empty());
        let due = throttle.due(t0 + Duration::from_secs(1));
        assert_eq!(due.iter().map(|(_, e)| count(e)).collect::<Vec<_>>(), [3, 1]);
        assert_eq!(throttle.oldest_held(), None);
        assert!(
            throttle
                .offer(6, &window("a", 2000, 1), t0 + Duration::from_millis(1500))
                .is_none()
        );
        assert!(
            throttle
                .offer(7, &window("a", 3000, 1), t0 + Duration::from_secs(3))
                .is_some()
        );
    }
}
