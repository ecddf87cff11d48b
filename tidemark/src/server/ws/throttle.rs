//! The update interval: on average at most one push per series and window size per interval.
//!
//! Each series and size has a budget of pushes (a token bucket): it refills by one per
//! interval and holds at most [`BURST`]. An update that finds a push in the budget goes out at
//! once — a window that just closed reaches the client without waiting for a tick, which keeps
//! delivery latency low — and later ones are held and sent together when the budget has
//! refilled, newest value per window (window results are upserts, so an older value of the same
//! window is superseded). The burst of two matters when windows close once per interval (1-second
//! windows at a 1-second interval): their batches arrive a little early or late, and a budget
//! of exactly one would hold every early one until a full interval after the previous push —
//! ratcheting delivery later and later. Anomaly scores, forecasts and alert changes are rare
//! and never held.
//!
//! The throttle holds whatever handle the connection uses for an event (`T`), so holding an
//! event copies nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};
use tidemark_schemas::SeriesId;

/// Most pushes a series and size can save up.
const BURST: f64 = 2.0;

/// What the interval applies to: a series and a window size.
type RateKey = (SeriesId, u64);

/// Which window a window update is about: its series, size and start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WindowKey {
    /// The series.
    pub series: SeriesId,
    /// The window size in ms.
    pub window_ms: u64,
    /// The window start, epoch ms.
    pub window_start: i64,
}

impl WindowKey {
    fn rate(&self) -> RateKey {
        (self.series, self.window_ms)
    }
}

/// Pushes left for a series and size, as of `at`.
#[derive(Clone, Copy, Debug)]
struct Budget {
    pushes: f64,
    at: Instant,
}

impl Budget {
    /// The budget at `now`, refilled by one push per interval.
    fn at(self, now: Instant, interval: Duration) -> f64 {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() / interval.as_secs_f64();
        (self.pushes + refill).min(BURST)
    }

    /// When one whole push will be available.
    fn ready(self, interval: Duration) -> Instant {
        self.at + interval.mul_f64((1.0 - self.pushes).max(0.0))
    }
}

/// One client's throttle.
pub struct Throttle<T> {
    interval: Duration,
    budgets: HashMap<RateKey, Budget>,
    held: HashMap<WindowKey, (u64, T)>,
}

impl<T> Throttle<T> {
    /// A throttle with the given interval.
    pub fn new(interval: Duration) -> Self {
        Throttle {
            interval,
            budgets: HashMap::new(),
            held: HashMap::new(),
        }
    }

    /// Takes one push from the budget of `key` if there is one.
    fn spend(&mut self, key: RateKey, now: Instant) -> bool {
        let budget = self.budgets.entry(key).or_insert(Budget { pushes: BURST, at: now });
        let pushes = budget.at(now, self.interval);
        let spent = pushes >= 1.0;
        *budget = Budget {
            pushes: if spent { pushes - 1.0 } else { pushes },
            at: now,
        };
        spent
    }

    /// Offers event `seq` (`window`: which window it updates, `None` for other events);
    /// returns it if it may go out now, else holds it.
    pub fn offer(&mut self, window: Option<WindowKey>, seq: u64, event: T, now: Instant) -> Option<T> {
        let Some(window) = window else {
            return Some(event);
        };
        if self.spend(window.rate(), now) {
            self.held.remove(&window);
            Some(event)
        } else {
            self.held.insert(window, (seq, event));
            None
        }
    }

    /// When the next held event falls due.
    pub fn next_due(&self) -> Option<Instant> {
        self.held
            .keys()
            .filter_map(|window| self.budgets.get(&window.rate()))
            .map(|budget| budget.ready(self.interval))
            .min()
    }

    /// Held events that are due at `now` with their journal positions, oldest first (all held
    /// windows of a series and size go out together, for one push); forgets budgets that are
    /// full again.
    pub fn due(&mut self, now: Instant) -> Vec<(u64, T)> {
        let interval = self.interval;
        let budgets = &self.budgets;
        let ready = |key: &RateKey| budgets.get(key).is_none_or(|b| b.at(now, interval) >= 1.0);
        let due_keys: Vec<WindowKey> = self.held.keys().filter(|w| ready(&w.rate())).copied().collect();
        let mut out: Vec<(u64, T)> = due_keys.iter().filter_map(|k| self.held.remove(k)).collect();
        out.sort_by_key(|(seq, _)| *seq);
        let mut spent: Vec<RateKey> = due_keys.iter().map(WindowKey::rate).collect();
        spent.sort_unstable();
        spent.dedup();
        for key in spent {
            self.spend(key, now);
        }
        self.budgets.retain(|_, b| b.at(now, interval) < BURST);
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

    fn window(series: u64, start: i64) -> Option<WindowKey> {
        Some(WindowKey {
            series: SeriesId(series),
            window_ms: 1000,
            window_start: start,
        })
    }

    #[test]
    fn a_burst_goes_out_at_once_later_updates_wait_for_the_budget() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        let mut throttle = Throttle::new(second);
        assert_eq!(throttle.offer(window(1, 0), 1, "a0 v1", t0), Some("a0 v1"));
        assert_eq!(
            throttle.offer(window(1, 0), 2, "a0 v2", t0),
            Some("a0 v2"),
            "a burst of two"
        );
        assert!(
            throttle.offer(window(2, 0), 3, "b0", t0).is_some(),
            "series are independent"
        );
        assert_eq!(throttle.offer(window(1, 0), 4, "a0 v3", t0), None);
        assert_eq!(throttle.offer(window(1, 0), 5, "a0 v4", t0), None);
        assert_eq!(throttle.offer(window(1, 1000), 6, "a1", t0), None);
        assert_eq!(throttle.offer(None, 7, "score", t0), Some("score"), "other events pass");
        assert_eq!(throttle.oldest_held(), Some(5), "the superseded value no longer counts");
        assert_eq!(throttle.next_due(), Some(t0 + second));
        assert!(throttle.due(t0 + second / 2).is_empty());
        assert_eq!(
            throttle.due(t0 + second),
            [(5, "a0 v4"), (6, "a1")],
            "held windows go together"
        );
        assert_eq!(throttle.oldest_held(), None);
        assert_eq!(throttle.offer(window(1, 2000), 8, "a2", t0 + second * 3 / 2), None);
        assert_eq!(throttle.next_due(), Some(t0 + second * 2));
        assert!(throttle.offer(window(1, 3000), 9, "a3", t0 + second * 4).is_some());
    }

    #[test]
    fn windows_closing_once_per_interval_are_never_held_despite_jitter() {
        let t0 = Instant::now();
        let mut throttle = Throttle::new(Duration::from_secs(1));
        let mut held = 0;
        for k in 0..100i64 {
            let jitter = if k % 2 == 0 { 80 } else { -80 };
            let at = t0 + Duration::from_millis((1000 * k + 100 + jitter) as u64);
            held += usize::from(throttle.offer(window(1, 1000 * k), k as u64, k, at).is_none());
        }
        assert_eq!(held, 0);
    }

    #[test]
    fn the_average_rate_is_one_push_per_interval() {
        let t0 = Instant::now();
        let mut throttle = Throttle::new(Duration::from_secs(1));
        let mut pushes = 0;
        for ms in (0..60_000u64).step_by(100) {
            let now = t0 + Duration::from_millis(ms);
            pushes += usize::from(throttle.offer(window(1, ms as i64), ms, ms, now).is_some());
            pushes += usize::from(!throttle.due(now).is_empty());
        }
        assert!((60..=62).contains(&pushes), "{pushes} pushes in 60 s");
    }
}
