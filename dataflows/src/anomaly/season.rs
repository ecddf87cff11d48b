//! A seasonal profile keyed by the timestamp's phase in a clock period (a day or a week),
//! learnt online.
//!
//! Bucketing by the timestamp's phase in the period (rather than by a period counted in points)
//! keeps the state the same size whatever the series' step, survives gaps and irregular
//! sampling, and needs no period detection: most operational metrics that are seasonal at all
//! follow the clock. Each bucket holds an exponentially weighted offset from the series' level
//! and the typical size of the residual there, so a spike that recurs at the same time every
//! day (a nightly batch job) stops being surprising.

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;
/// Milliseconds in a week.
pub const WEEK_MS: i64 = 7 * DAY_MS;

/// How fast a bucket's scale rises towards a larger residual: fast, so that a recurring daily
/// spike raises its bucket's scale within a few days, while it decays at the profile's weight.
const PEAK_WEIGHT: f64 = 0.3;

/// Per-bucket seasonal offsets and residual scales over one period.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    buckets: Box<[Bucket]>,
    period_ms: i64,
    weight: f64,
    /// Visits (runs of consecutive points) a bucket needs before it is trusted.
    min_visits: u16,
}

/// Offsets and scales are stored as `f32` (arithmetic stays in `f64`): a weekly profile has
/// seven times the buckets of a daily one, and seven significant digits are far finer than
/// the noise the profile averages over, so halving the bytes costs no accuracy.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Bucket {
    offset: f32,
    scale: f32,
    visits: u16,
}

impl Profile {
    /// A profile of `buckets` equal slices of `period_ms`, each updated with weight `weight`.
    pub fn new(period_ms: i64, buckets: usize, weight: f64, min_visits: u16) -> Self {
        Profile {
            buckets: vec![Bucket::default(); buckets].into_boxed_slice(),
            period_ms,
            weight,
            min_visits,
        }
    }

    /// The bucket of a timestamp.
    pub fn bucket(&self, ts_ms: i64) -> usize {
        let phase = ts_ms.rem_euclid(self.period_ms);
        (phase as u128 * self.buckets.len() as u128 / self.period_ms as u128) as usize
    }

    /// Whether a bucket has been visited often enough to be trusted.
    pub fn trusted(&self, bucket: usize) -> bool {
        self.buckets[bucket].visits >= self.min_visits
    }

    /// The learnt offset of a bucket, or 0 until it has been visited often enough.
    pub fn offset(&self, bucket: usize) -> f64 {
        if self.trusted(bucket) {
            f64::from(self.buckets[bucket].offset)
        } else {
            0.0
        }
    }

    /// The typical absolute residual around a bucket (the largest of it and its two neighbours,
    /// as recurring events drift in time of day), or 0 until visited often enough.
    pub fn scale(&self, bucket: usize) -> f64 {
        let n = self.buckets.len();
        [(bucket + n - 1) % n, bucket, (bucket + 1) % n]
            .into_iter()
            .map(|i| &self.buckets[i])
            .filter(|b| b.visits >= self.min_visits)
            .fold(0.0, |scale, b| f64::max(scale, f64::from(b.scale)))
    }

    /// Moves a bucket's offset towards `deviation` (the value minus the level) and its scale
    /// towards `|residual|`; `new_visit` marks the first point of a run in this bucket.
    pub fn learn(&mut self, bucket: usize, deviation: f64, residual: f64, new_visit: bool) {
        let b = &mut self.buckets[bucket];
        if new_visit {
            b.visits = b.visits.saturating_add(1);
        }
        let weight = self.weight.max(1.0 / f64::from(b.visits.max(1)));
        let offset = f64::from(b.offset);
        b.offset = (offset + weight * (deviation - offset)) as f32;
        let size = residual.abs();
        let scale = f64::from(b.scale);
        let scale_weight = if size > scale { PEAK_WEIGHT.max(weight) } else { weight };
        b.scale = (scale + scale_weight * (size - scale)) as f32;
    }

    /// Bytes of heap state.
    pub fn heap_bytes(&self) -> usize {
        self.buckets.len() * size_of::<Bucket>()
    }
}
