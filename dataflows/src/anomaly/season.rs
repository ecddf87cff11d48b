//! A daily seasonal profile keyed by time of day, learnt online.
//!
//! Bucketing by the timestamp's phase in the day (rather than by a period counted in points)
//! keeps the state the same size whatever the series' step, survives gaps and irregular
//! sampling, and needs no period detection: most operational metrics that are seasonal at all
//! follow the clock. Each bucket holds an exponentially weighted offset from the series' level
//! and the typical size of the residual there, so a spike that recurs at the same time every
//! day (a nightly batch job) stops being surprising.

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// How fast a bucket's scale rises towards a larger residual: fast, so that a recurring daily
/// spike raises its bucket's scale within a few days, while it decays at the profile's weight.
const PEAK_WEIGHT: f64 = 0.3;

/// Per-bucket seasonal offsets and residual scales over one day.
#[derive(Clone, Debug, PartialEq)]
pub struct DailyProfile {
    buckets: Box<[Bucket]>,
    weight: f64,
    /// Visits (runs of consecutive points) a bucket needs before it is trusted.
    min_visits: u16,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Bucket {
    offset: f64,
    scale: f64,
    visits: u16,
}

impl DailyProfile {
    /// A profile of `buckets` equal slices of the day, each updated with weight `weight`.
    pub fn new(buckets: usize, weight: f64, min_visits: u16) -> Self {
        DailyProfile {
            buckets: vec![Bucket::default(); buckets].into_boxed_slice(),
            weight,
            min_visits,
        }
    }

    /// The bucket of a timestamp.
    pub fn bucket(&self, ts_ms: i64) -> usize {
        let phase = ts_ms.rem_euclid(DAY_MS);
        (phase as u128 * self.buckets.len() as u128 / DAY_MS as u128) as usize
    }

    /// The learnt offset of a bucket, or 0 until it has been visited often enough.
    pub fn offset(&self, bucket: usize) -> f64 {
        let b = &self.buckets[bucket];
        if b.visits >= self.min_visits { b.offset } else { 0.0 }
    }

    /// The typical absolute residual around a bucket (the largest of it and its two neighbours,
    /// as recurring events drift in time of day), or 0 until visited often enough.
    pub fn scale(&self, bucket: usize) -> f64 {
        let n = self.buckets.len();
        [(bucket + n - 1) % n, bucket, (bucket + 1) % n]
            .into_iter()
            .map(|i| &self.buckets[i])
            .filter(|b| b.visits >= self.min_visits)
            .fold(0.0, |scale, b| f64::max(scale, b.scale))
    }

    /// Moves a bucket's offset towards `deviation` (the value minus the level) and its scale
    /// towards `|residual|`; `new_visit` marks the first point of a run in this bucket.
    pub fn learn(&mut self, bucket: usize, deviation: f64, residual: f64, new_visit: bool) {
        let b = &mut self.buckets[bucket];
        if new_visit {
            b.visits = b.visits.saturating_add(1);
        }
        let weight = self.weight.max(1.0 / f64::from(b.visits.max(1)));
        b.offset += weight * (deviation - b.offset);
        let size = residual.abs();
        let scale_weight = if size > b.scale {
            PEAK_WEIGHT.max(weight)
        } else {
            weight
        };
        b.scale += scale_weight * (size - b.scale);
    }

    /// Bytes of heap state.
    pub fn heap_bytes(&self) -> usize {
        self.buckets.len() * size_of::<Bucket>()
    }
}
