//! Built-in event generator: realistic, reproducible NDJSON event streams.
//!
//! # Design
//!
//! **Output is a pure function of [`GeneratorSettings`].** Nothing reads the
//! clock or the OS RNG; randomness comes from our own xoshiro256** (see
//! `random.rs`), so a seed names a dataset, forever.
//!
//! **Shards make the union independent of the worker count.** The stream is
//! cut into [`SHARDS`] = 64 fixed shards. Shard `s` has its own PRNG seeded
//! from `(seed, s)`, its own Poisson arrival process at `1/64` of the rate,
//! its own hosts and users and its own id counters (`id = n * 64 + s + 1`).
//! Everything shards must agree on — calendar profiles, bursts, injected
//! anomalies, the catalog of products and hosts — is a stateless hash of the
//! seed and event time. A [`Generator`] for worker `w` of `n` runs the shards
//! with `s % n == w` and merges them by arrival time with a binary heap, so
//! `n = 1` yields every shard and the outputs of workers `0..n` together are
//! exactly the same multiset of lines for every `n`. (Only the interleaving
//! differs.)
//!
//! **Arrival time vs event time.** Each line has an *arrival* time (when the
//! source delivers it; returned by [`Generator::next_line`], non-decreasing
//! per generator) and an *event* time `ts` in the line. They are equal except
//! for a fraction `out_of_order_ratio` of events, whose `ts` is set back by
//! `U{0..max_disorder_ms-1}` ms: disorder is real but strictly bounded, so a
//! watermark lagging `max_disorder_ms` behind arrivals is never violated.
//!
//! **Realism.** Rates and values follow UTC hour-of-day and day-of-week
//! (`season.rs`), hours occasionally hold a short burst, 6-hour windows
//! occasionally hold an anomaly ([`injected_anomalies`] lists them as ground
//! truth), and an optional fraction of lines is malformed (`malformed.rs`).
//!
//! **Pacing.** The generator never sleeps. With [`Pace::Unlimited`] callers
//! simply pull lines as fast as they like and event time runs at
//! `events_per_second` of simulated time. With [`Pace::Realtime`] callers set
//! `start_ms` to now and compare [`Generator::peek_arrival`] with the wall
//! clock, sleeping until it is due; keeping the clock out of here is what
//! keeps the output deterministic and the generator testable.

mod anomaly;
mod catalog;
mod format;
mod kinds;
mod malformed;
mod random;
mod season;
mod shard;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

pub use anomaly::{ANOMALY_WINDOW_MS, Anomaly, AnomalyKind, injected_anomalies};

use catalog::{Catalog, HOSTS};
use season::{SECOND_MS, Seasonality};
use shard::{Common, Shard};

/// Number of independent sub-streams. Fixed forever: changing it changes the
/// output of every seed.
pub const SHARDS: usize = 64;

/// How fast events are produced in wall-clock terms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Event time follows the wall clock (the caller sleeps until
    /// [`Generator::peek_arrival`] is due): for live demos.
    Realtime,
    /// As fast as possible; event time advances at `events_per_second` of
    /// simulated time.
    Unlimited,
}

/// Everything the output depends on.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratorSettings {
    /// Names the dataset: same seed, same events.
    pub seed: u64,
    /// Mean event-time rate over all shards (weekly average; the actual rate
    /// follows the calendar and bursts).
    pub events_per_second: f64,
    /// Event time of the start of the stream (epoch ms). Realtime callers set
    /// it to the current time.
    pub start_ms: i64,
    /// Stop after this many lines over all shards (shard `s` gets
    /// `total / 64 + (s < total % 64)`); `None` = endless.
    pub total_events: Option<u64>,
    /// Share of events whose `ts` lags their arrival.
    pub out_of_order_ratio: f64,
    /// Exclusive upper bound of that lag, in ms.
    pub max_disorder_ms: i64,
    /// Share of lines that are deliberately malformed.
    pub malformed_ratio: f64,
    /// How the caller should pace consumption; see [`Pace`].
    pub pace: Pace,
}

impl Default for GeneratorSettings {
    fn default() -> Self {
        Self {
            seed: 42,
            events_per_second: 1000.0,
            start_ms: 1_732_233_600_000,
            total_events: None,
            out_of_order_ratio: 0.03,
            max_disorder_ms: 2000,
            malformed_ratio: 0.0,
            pace: Pace::Unlimited,
        }
    }
}

/// Latest supported event time: 9999-12-31T23:59:59.999Z.
const MAX_START_MS: i64 = 253_402_300_799_999;

impl GeneratorSettings {
    /// Checks every field; the message names the field and how to fix it.
    pub fn validate(&self) -> Result<(), String> {
        let eps = self.events_per_second;
        if !(eps.is_finite() && (0.001..=100_000_000.0).contains(&eps)) {
            return Err(format!(
                "events_per_second = {eps} is outside 0.001..=100000000; \
                 use a positive rate such as 1000.0"
            ));
        }
        if !(0..=MAX_START_MS).contains(&self.start_ms) {
            return Err(format!(
                "start_ms = {} is outside 0..={MAX_START_MS}; use epoch milliseconds \
                 (e.g. 1732233600000 for 2024-11-22T00:00:00Z)",
                self.start_ms
            ));
        }
        let ooo = self.out_of_order_ratio;
        if !(ooo.is_finite() && (0.0..=0.05).contains(&ooo)) {
            return Err(format!(
                "out_of_order_ratio = {ooo} is outside 0.0..=0.05; \
                 use a value between 0.01 and 0.05 (or 0.0 for perfectly ordered events)"
            ));
        }
        if !(1..=3_600_000).contains(&self.max_disorder_ms) {
            return Err(format!(
                "max_disorder_ms = {} is outside 1..=3600000; use a bound such as 2000",
                self.max_disorder_ms
            ));
        }
        let bad = self.malformed_ratio;
        if !(bad.is_finite() && (0.0..=1.0).contains(&bad)) {
            return Err(format!(
                "malformed_ratio = {bad} is outside 0.0..=1.0; \
                 use 0.0 for clean data or a small share such as 0.01"
            ));
        }
        Ok(())
    }
}

/// Hosts sample every 10 s, unless that would make `system_sample` more than
/// 5 % of the stream (at low rates), in which case they sample less often.
fn sample_interval_ms(events_per_second: f64) -> i64 {
    const NOMINAL_MS: i64 = 10 * SECOND_MS;
    const MAX_SHARE: f64 = 0.05;
    let for_share = HOSTS as f64 * SECOND_MS as f64 / (MAX_SHARE * events_per_second);
    NOMINAL_MS.max(for_share.ceil() as i64)
}

/// Produces the lines of the shards owned by one worker, in arrival order.
pub struct Generator {
    common: Common,
    shards: Vec<Shard>,
    /// Min-heap of (next arrival, index into `shards`); exhausted shards leave.
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    pace: Pace,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("seed", &self.common.seed)
            .field("shards", &self.shards.len())
            .field("next_arrival", &self.peek_arrival())
            .field("pace", &self.pace)
            .finish()
    }
}

impl Generator {
    /// Generator for worker `worker_index` of `worker_count`, owning shards
    /// `s` with `s % worker_count == worker_index` (none if
    /// `worker_index >= 64`).
    ///
    /// # Panics
    /// If the settings fail [`GeneratorSettings::validate`] (callers validate
    /// first and report the message), if `worker_count` is 0 or if
    /// `worker_index >= worker_count`.
    pub fn new(settings: &GeneratorSettings, worker_index: usize, worker_count: usize) -> Self {
        if let Err(e) = settings.validate() {
            panic!("invalid generator settings: {e}");
        }
        assert!(
            worker_index < worker_count,
            "worker_index {worker_index} must be below worker_count {worker_count}"
        );
        let interval = sample_interval_ms(settings.events_per_second);
        let sample_rate = HOSTS as f64 * SECOND_MS as f64 / interval as f64;
        let poisson_rate = settings.events_per_second - sample_rate;
        let common = Common {
            seed: settings.seed,
            start_ms: settings.start_ms,
            rate_per_ms: poisson_rate / SHARDS as f64 / SECOND_MS as f64,
            sample_interval_ms: interval,
            out_of_order_ratio: settings.out_of_order_ratio,
            max_disorder_ms: settings.max_disorder_ms,
            malformed_ratio: settings.malformed_ratio,
            season: Seasonality::new(),
            catalog: Catalog::new(settings.seed),
        };
        let shards: Vec<Shard> = (worker_index..SHARDS)
            .step_by(worker_count)
            .map(|s| {
                let quota = settings
                    .total_events
                    .map(|total| total / SHARDS as u64 + u64::from((s as u64) < total % SHARDS as u64));
                Shard::new(&common, s, quota)
            })
            .collect();
        let heap = shards
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.peek().map(|t| Reverse((t, i))))
            .collect();
        Self {
            common,
            shards,
            heap,
            pace: settings.pace,
        }
    }

    /// Appends the next line (no newline) to `out` and returns its arrival
    /// time (epoch ms, non-decreasing per generator), or `None` when this
    /// generator's shards are exhausted. Never blocks, whatever the pace.
    pub fn next_line(&mut self, out: &mut Vec<u8>) -> Option<i64> {
        let mut top = self.heap.peek_mut()?;
        let Reverse((arrival, i)) = *top;
        let shard = &mut self.shards[i];
        shard.emit(&self.common, out);
        match shard.peek() {
            Some(next) => *top = Reverse((next, i)),
            None => {
                std::collections::binary_heap::PeekMut::pop(top);
            }
        }
        Some(arrival)
    }

    /// Arrival time of the next line without generating it (`None` if
    /// exhausted); Realtime callers sleep until the wall clock reaches it.
    pub fn peek_arrival(&self) -> Option<i64> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    /// The pace the settings asked for (the caller implements it).
    pub fn pace(&self) -> Pace {
        self.pace
    }
}

#[cfg(test)]
mod tests;
