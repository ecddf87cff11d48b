//! Injected anomalies: the ground truth that anomaly-detection dataflows are
//! tested against.
//!
//! Time is cut into fixed 6-hour windows; each window holds at most one
//! anomaly, whose kind, start, duration, target and magnitude are a hash of
//! (seed, window). Like bursts, this is a pure function of the seed and event
//! time, so every shard applies the same anomaly to the events it owns and the
//! schedule can be listed ([`injected_anomalies`]) without generating events.

use super::catalog::{HOSTS, SERVICES, host_label};
use super::random::{hash2, unit_of};
use super::season::HOUR_MS;

/// Length of the windows that each hold at most one anomaly.
pub const ANOMALY_WINDOW_MS: i64 = 6 * HOUR_MS;
/// Share of windows that contain an anomaly.
const ANOMALY_PROBABILITY: f64 = 0.7;
const ANOMALY_SALT: u64 = 0xA11_0BAD;
const MINUTE_MS: f64 = 60_000.0;

/// What goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AnomalyKind {
    /// One service's latencies (api_request and its duration metric) are
    /// multiplied by `magnitude` (5–12); its cache hit ratio collapses.
    LatencySpike,
    /// One host's `cpu_pct` jumps by `magnitude` points (20–35) for 1–3 h.
    CpuLevelShift,
    /// One service returns 5xx with probability `magnitude` (0.2–0.4), and
    /// task executions everywhere fail about as often.
    ErrorSurge,
    /// The sale rate drops to `magnitude` (0.1–0.25) times normal.
    SalesDrop,
}

const KINDS: [AnomalyKind; 4] = [
    AnomalyKind::LatencySpike,
    AnomalyKind::CpuLevelShift,
    AnomalyKind::ErrorSurge,
    AnomalyKind::SalesDrop,
];

/// An anomaly as the shards apply it (targets are catalog indices).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Planned {
    pub(crate) kind: AnomalyKind,
    pub(crate) start_ms: i64,
    pub(crate) end_ms: i64,
    /// Service index (latency, errors), host index (CPU), 0 (sales).
    pub(crate) target: usize,
    pub(crate) magnitude: f64,
}

impl Planned {
    /// Whether this anomaly of `kind` affects entity `target` at `ts`.
    pub(crate) fn hits(&self, kind: AnomalyKind, target: usize, ts: i64) -> bool {
        self.kind == kind && self.target == target && ts >= self.start_ms && ts < self.end_ms
    }

    /// Whether an anomaly of `kind` (any target) is in progress at `ts`.
    pub(crate) fn during(&self, kind: AnomalyKind, ts: i64) -> bool {
        self.kind == kind && ts >= self.start_ms && ts < self.end_ms
    }
}

/// The anomaly planned for window number `window`, if any.
pub(crate) fn planned_in_window(seed: u64, window: i64) -> Option<Planned> {
    let h = hash2(seed ^ ANOMALY_SALT, window as u64);
    if unit_of(h) >= ANOMALY_PROBABILITY {
        return None;
    }
    let r = |k: u64| unit_of(hash2(h, k));
    let kind = KINDS[(r(1) * KINDS.len() as f64) as usize];
    let (min_minutes, max_minutes, target, magnitude) = match kind {
        AnomalyKind::LatencySpike => (5.0, 20.0, pick(r(3), SERVICES.len()), 5.0 + 7.0 * r(4)),
        AnomalyKind::CpuLevelShift => (60.0, 180.0, pick(r(3), HOSTS), 20.0 + 15.0 * r(4)),
        AnomalyKind::ErrorSurge => (5.0, 15.0, pick(r(3), SERVICES.len()), 0.2 + 0.2 * r(4)),
        AnomalyKind::SalesDrop => (20.0, 60.0, 0, 0.1 + 0.15 * r(4)),
    };
    let duration = ((min_minutes + (max_minutes - min_minutes) * r(2)) * MINUTE_MS) as i64;
    let window_start = window * ANOMALY_WINDOW_MS;
    let start_ms = window_start + (r(5) * (ANOMALY_WINDOW_MS - duration) as f64) as i64;
    Some(Planned {
        kind,
        start_ms,
        end_ms: start_ms + duration,
        target,
        magnitude,
    })
}

fn pick(u: f64, n: usize) -> usize {
    ((u * n as f64) as usize).min(n - 1)
}

/// Per-shard memo of the current window's anomaly (recomputed only when event
/// time crosses into another window).
#[derive(Clone, Debug)]
pub(crate) struct AnomalyCache {
    seed: u64,
    window: i64,
    planned: Option<Planned>,
}

impl AnomalyCache {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            seed,
            window: i64::MIN,
            planned: None,
        }
    }

    /// The anomaly of the window containing `ts` (it may not be active yet).
    pub(crate) fn at(&mut self, ts: i64) -> Option<Planned> {
        let window = ts.div_euclid(ANOMALY_WINDOW_MS);
        if window != self.window {
            self.window = window;
            self.planned = planned_in_window(self.seed, window);
        }
        self.planned
    }
}

/// One injected anomaly, described for humans and test oracles.
#[derive(Clone, Debug, PartialEq)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    /// Event time at which it starts (inclusive, epoch ms).
    pub start_ms: i64,
    /// Event time at which it ends (exclusive, epoch ms).
    pub end_ms: i64,
    /// The affected service (`"auth"`) or host (`"web-03"`); `"*"` for sales.
    pub target: String,
    /// Strength; its meaning depends on `kind` (see [`AnomalyKind`]).
    pub magnitude: f64,
}

/// Every anomaly that the generator with this `seed` injects and that overlaps
/// event times `from_ms..to_ms`, in time order.
pub fn injected_anomalies(seed: u64, from_ms: i64, to_ms: i64) -> Vec<Anomaly> {
    let first = from_ms.div_euclid(ANOMALY_WINDOW_MS);
    let last = to_ms.div_euclid(ANOMALY_WINDOW_MS);
    (first..=last)
        .filter_map(|w| planned_in_window(seed, w))
        .filter(|p| p.end_ms > from_ms && p.start_ms < to_ms)
        .map(|p| Anomaly {
            kind: p.kind,
            start_ms: p.start_ms,
            end_ms: p.end_ms,
            target: match p.kind {
                AnomalyKind::LatencySpike | AnomalyKind::ErrorSurge => SERVICES[p.target].name.to_string(),
                AnomalyKind::CpuLevelShift => host_label(p.target),
                AnomalyKind::SalesDrop => "*".to_string(),
            },
            magnitude: p.magnitude,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_deterministic_and_contained_in_windows() {
        let from = 1_732_233_600_000;
        let to = from + 30 * 24 * HOUR_MS;
        let a = injected_anomalies(42, from, to);
        assert_eq!(a, injected_anomalies(42, from, to));
        assert_ne!(a, injected_anomalies(7, from, to));
        // 120 windows, ~70 % with an anomaly, every kind represented.
        assert!((60..110).contains(&a.len()), "{}", a.len());
        for kind in KINDS {
            assert!(a.iter().any(|x| x.kind == kind), "{kind:?}");
        }
        for x in &a {
            let w = x.start_ms.div_euclid(ANOMALY_WINDOW_MS);
            assert!(x.end_ms <= (w + 1) * ANOMALY_WINDOW_MS);
            assert!(x.end_ms - x.start_ms >= 5 * 60_000);
        }
    }

    #[test]
    fn cache_agrees_with_schedule() {
        let mut cache = AnomalyCache::new(42);
        for x in injected_anomalies(42, 0, 10 * ANOMALY_WINDOW_MS) {
            let p = cache.at(x.start_ms).expect("planned");
            assert!(p.during(x.kind, x.start_ms));
            assert!(!p.during(x.kind, x.end_ms));
            assert!(p.hits(x.kind, p.target, x.end_ms - 1));
        }
    }
}
