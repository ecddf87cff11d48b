//! One shard: an independent, self-contained slice of the event stream.
//!
//! A shard owns a PRNG seeded from (seed, shard), its own arrival process,
//! its hosts and users, and its id counters. Nothing in it reads another
//! shard's state, so its output is the same whichever worker runs it — the
//! property that makes the union of all workers independent of their number.
//!
//! Arrivals are a non-homogeneous Poisson process sampled by *thinning*:
//! candidates arrive at a constant upper-bound rate and are kept with
//! probability `rate(t) / bound`. The bound is recomputed per segment (a UTC
//! hour, split around its burst if it has one) so acceptance stays high, and
//! because Poisson processes are memoryless a candidate that would cross a
//! segment end is simply discarded and sampling restarts at the boundary.
//! Hosts, in contrast, sample on a fixed period with a per-host phase.

use super::SHARDS;
use super::anomaly::{AnomalyCache, AnomalyKind};
use super::catalog::{Catalog, HOSTS};
use super::kinds::{Ctx, KIND_CUMULATIVE, Kind, KindState, POISSON_KINDS, write_event, write_system_sample};
use super::malformed::{Defect, corrupt};
use super::random::{Rng, hash2};
use super::season::{HOUR_MS, Seasonality, burst_in_hour, bursts_apply_to};

pub(crate) const HOSTS_PER_SHARD: usize = HOSTS / SHARDS;
const _: () = assert!(HOSTS.is_multiple_of(SHARDS), "hosts must split evenly over shards");
const HOST_PHASE_SALT: u64 = 0x5A3E;

/// Read-only parameters shared by all shards of a generator.
#[derive(Clone, Debug)]
pub(crate) struct Common {
    pub(crate) seed: u64,
    pub(crate) start_ms: i64,
    /// Mean Poisson rate of one shard, in events per millisecond.
    pub(crate) rate_per_ms: f64,
    pub(crate) sample_interval_ms: i64,
    pub(crate) out_of_order_ratio: f64,
    pub(crate) max_disorder_ms: i64,
    pub(crate) malformed_ratio: f64,
    pub(crate) season: Seasonality,
    pub(crate) catalog: Catalog,
}

/// A stretch of time with a constant thinning bound.
#[derive(Clone, Debug)]
struct Segment {
    /// Times relative to `start_ms`, in ms.
    end_rel: f64,
    hour_start_rel: f64,
    /// Rate factor of each kind at the hour start, and its slope per ms.
    knot: [f64; POISSON_KINDS.len()],
    slope: [f64; POISSON_KINDS.len()],
    /// Burst multiplier in force for the whole segment (1.0 if none).
    burst: f64,
    bound: f64,
}

impl Segment {
    /// The segment containing relative time `t_rel`.
    fn at(c: &Common, t_rel: f64) -> Self {
        let abs = c.start_ms + t_rel as i64;
        let hour_start = abs - abs.rem_euclid(HOUR_MS);
        let mut end = hour_start + HOUR_MS;
        let mut burst = 1.0;
        if let Some(b) = burst_in_hour(c.seed, hour_start) {
            if abs < b.start_ms {
                end = b.start_ms;
            } else if abs < b.end_ms {
                end = b.end_ms;
                burst = b.multiplier;
            }
        }
        let mut knot = [0.0; POISSON_KINDS.len()];
        let mut slope = [0.0; POISSON_KINDS.len()];
        let mut bound: f64 = 0.0;
        for kind in POISSON_KINDS {
            let (a, b) = c.season.knots(kind, hour_start);
            let i = kind as usize;
            knot[i] = a;
            slope[i] = (b - a) / HOUR_MS as f64;
            let m = if bursts_apply_to(kind) { burst } else { 1.0 };
            bound = bound.max(a.max(b) * m);
        }
        Self {
            end_rel: (end - c.start_ms) as f64,
            hour_start_rel: (hour_start - c.start_ms) as f64,
            knot,
            slope,
            burst,
            bound,
        }
    }
}

/// Where the next event of a shard comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Poisson(Kind),
    /// Slot in the shard's host list.
    Host(usize),
}

pub(crate) struct Shard {
    rng: Rng,
    remaining: Option<u64>,
    /// Time of the last candidate arrival, relative to `start_ms`.
    t_rel: f64,
    segment: Segment,
    next_poisson: (i64, Kind),
    hosts: [usize; HOSTS_PER_SHARD],
    next_sample: [i64; HOSTS_PER_SHARD],
    state: KindState,
    anomalies: AnomalyCache,
}

impl Shard {
    pub(crate) fn new(c: &Common, index: usize, quota: Option<u64>) -> Self {
        let hosts: [usize; HOSTS_PER_SHARD] = std::array::from_fn(|k| index + k * SHARDS);
        let next_sample = hosts.map(|h| {
            let phase = hash2(c.seed ^ HOST_PHASE_SALT, h as u64) % c.sample_interval_ms as u64;
            c.start_ms + phase as i64
        });
        let mut shard = Self {
            rng: Rng::seeded(hash2(c.seed, index as u64)),
            remaining: quota,
            t_rel: 0.0,
            segment: Segment::at(c, 0.0),
            next_poisson: (c.start_ms, Kind::Metric),
            hosts,
            next_sample,
            state: KindState::new(index),
            anomalies: AnomalyCache::new(c.seed),
        };
        shard.next_poisson = shard.advance_poisson(c);
        shard
    }

    /// Arrival time of this shard's next event, `None` once its quota is used.
    pub(crate) fn peek(&self) -> Option<i64> {
        if self.remaining == Some(0) {
            return None;
        }
        Some(self.next_source().0)
    }

    fn next_source(&self) -> (i64, Source) {
        let mut best = (self.next_poisson.0, Source::Poisson(self.next_poisson.1));
        for (slot, &t) in self.next_sample.iter().enumerate() {
            // Ties go to hosts (any fixed rule keeps the output deterministic).
            if t <= best.0 {
                best = (t, Source::Host(slot));
            }
        }
        best
    }

    /// Draws the next accepted Poisson arrival by thinning.
    fn advance_poisson(&mut self, c: &Common) -> (i64, Kind) {
        loop {
            if self.t_rel >= self.segment.end_rel {
                self.segment = Segment::at(c, self.t_rel);
            }
            let seg = &self.segment;
            let t = self.t_rel + self.rng.exponential(c.rate_per_ms * seg.bound);
            if t >= seg.end_rel {
                self.t_rel = seg.end_rel;
                continue;
            }
            self.t_rel = t;
            let kind = POISSON_KINDS[self.rng.weighted(&KIND_CUMULATIVE)];
            let i = kind as usize;
            let mut rate = seg.knot[i] + seg.slope[i] * (t - seg.hour_start_rel);
            if bursts_apply_to(kind) {
                rate *= seg.burst;
            }
            let arrival = c.start_ms + t as i64;
            if kind == Kind::Sale
                && let Some(a) = self.anomalies.at(arrival)
                && a.during(AnomalyKind::SalesDrop, arrival)
            {
                rate *= a.magnitude;
            }
            if self.rng.unit() * seg.bound < rate {
                return (arrival, kind);
            }
        }
    }

    /// Writes the next event (no newline) and returns its arrival time.
    /// Must only be called while [`Shard::peek`] is `Some`.
    pub(crate) fn emit(&mut self, c: &Common, out: &mut Vec<u8>) -> i64 {
        let (arrival, source) = self.next_source();
        match source {
            Source::Host(slot) => self.next_sample[slot] += c.sample_interval_ms,
            Source::Poisson(_) => self.next_poisson = self.advance_poisson(c),
        }
        if let Some(r) = &mut self.remaining {
            *r -= 1;
        }

        let ts = if c.out_of_order_ratio > 0.0 && self.rng.chance(c.out_of_order_ratio) {
            arrival - self.rng.below(c.max_disorder_ms as u64) as i64
        } else {
            arrival
        };
        let defect = if c.malformed_ratio > 0.0 && self.rng.chance(c.malformed_ratio) {
            Some(Defect::pick(&mut self.rng))
        } else {
            None
        };
        let cx = Ctx {
            ts,
            season: &c.season,
            catalog: &c.catalog,
            anomaly: self.anomalies.at(ts),
            sample_interval_ms: c.sample_interval_ms,
        };
        let start = out.len();
        match (defect, source) {
            // The NaN defect needs a `value` field: it always hits a metric.
            (Some(Defect::NanValue), _) => {
                write_event(Kind::Metric, &cx, &mut self.state, &mut self.rng, out);
            }
            (_, Source::Host(slot)) => {
                write_system_sample(self.hosts[slot], &cx, &mut self.rng, out);
            }
            (_, Source::Poisson(kind)) => {
                write_event(kind, &cx, &mut self.state, &mut self.rng, out);
            }
        }
        if let Some(d) = defect {
            corrupt(d, out, start, &mut self.rng);
        }
        arrival
    }
}
