//! Quantiles: the exact type-7 definition and a mergeable sketch that approximates it.
//!
//! tidemark reports quantiles with one definition everywhere, Hyndman–Fan type 7 (R's default,
//! numpy's `linear`, DuckDB's `quantile_cont`), so that a number from the live pipeline can be
//! checked against the same query run over the raw events. [`quantile_type7`] computes it
//! exactly from sorted values; [`QuantileSketch`] estimates it from a bounded-memory summary.
//!
//! The sketch is DDSketch (Masson, Rim & Lee, VLDB 2019): values are counted in logarithmic
//! buckets whose width grows with the value, so every bucket's representative is within a
//! relative error α of every value it holds. Relative error is the guarantee that suits
//! latencies and sizes, whose tails span orders of magnitude, and unlike rank-error sketches
//! (t-digest, KLL) two DDSketches merge by adding bucket counts: the merge is exact,
//! commutative and associative, so windows and workers can be combined in any order and the
//! result is identical to a sketch built from the union of their values.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

/// Default relative accuracy of [`QuantileSketch`]: 0.5 %.
///
/// At this accuracy a bucket spans 1 % of its value, so one decade of values needs about 230
/// buckets and the default bucket limit covers about nine decades per sign.
pub const DEFAULT_ALPHA: f64 = 0.005;

/// Smallest accepted relative accuracy.
///
/// Bucket keys are `i32`. Every positive `f64` has |ln x| ≤ 745, so |key| ≤ 745 / ln γ ≈
/// 745 / (2α) ≈ 3.7·10⁸ at this bound, well inside `i32`.
const MIN_ALPHA: f64 = 1e-6;

/// Magnitudes below this count as zero.
///
/// Logarithmic buckets cannot hold zero, and magnitudes near the bottom of the `f64` range
/// would need keys that are far from all others and waste buckets. Such values are counted in
/// the zero bucket and estimated as exactly 0, an absolute error below 10⁻³⁰⁰.
const ZERO_THRESHOLD: f64 = 1e-300;

/// The Hyndman–Fan type-7 quantile of values sorted ascending (DuckDB's `quantile_cont`).
///
/// With n values x₀ ≤ … ≤ xₙ₋₁: h = (n−1)·q, lo = ⌊h⌋, hi = min(lo+1, n−1), and the result is
/// x_lo + (h−lo)·(x_hi − x_lo).
///
/// `sorted` must be non-empty and sorted ascending; neither is checked in release builds
/// (emptiness is a debug assertion), and an empty slice returns NaN rather than panicking.
/// `q` is clamped to [0, 1]; a NaN `q` returns NaN.
pub fn quantile_type7(sorted: &[f64], q: f64) -> f64 {
    debug_assert!(!sorted.is_empty(), "quantile of an empty slice");
    if sorted.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    let (lo, hi, frac) = type7_position(sorted.len() as u64, q);
    // Both indices are < n, which is a usize.
    interpolate(sorted[lo as usize], sorted[hi as usize], frac)
}

/// The two order statistics type 7 interpolates between, and the weight of the upper one.
///
/// `n` must be at least 1.
fn type7_position(n: u64, q: f64) -> (u64, u64, f64) {
    let last = n - 1;
    let h = last as f64 * q.clamp(0.0, 1.0);
    // h ≤ n−1, so the floor is already in range; min() only guards against float surprises.
    let lo = (h.floor() as u64).min(last);
    let hi = (lo + 1).min(last);
    (lo, hi, h - lo as f64)
}

/// x_lo + frac·(x_hi − x_lo), returning x_lo itself when frac is 0.
///
/// The shortcut keeps exact answers exact (q = 0, q = 1, and whole-number positions), and
/// avoids 0·∞ = NaN when x_hi − x_lo overflows for values near ±`f64::MAX`.
fn interpolate(x_lo: f64, x_hi: f64, frac: f64) -> f64 {
    if frac == 0.0 { x_lo } else { x_lo + frac * (x_hi - x_lo) }
}

/// A mergeable quantile sketch with relative-error guarantees (DDSketch).
///
/// A positive value x goes to bucket k = ⌈ln x / ln γ⌉ with γ = (1+α)/(1−α), so bucket k holds
/// (γᵏ⁻¹, γᵏ]. Its representative 2γᵏ/(γ+1) is within relative error α of both ends, hence of
/// every value in the bucket. Negative values use a mirrored store keyed by |x|, and values
/// with |x| < 10⁻³⁰⁰ are counted as zeros. The exact minimum and maximum are kept besides.
///
/// # Accuracy
///
/// * [`value_at_rank`](Self::value_at_rank): the true order statistic of that rank lies in the
///   bucket the walk stops in, so the estimate is within relative error α of it, with the same
///   sign (up to floating-point rounding of the bucket key at bucket boundaries). Clamping to
///   the exact [min, max] only moves the estimate towards the true value; ranks 0 and n−1
///   return the exact extremes.
/// * [`quantile_type7`](Self::quantile_type7) interpolates two such estimates with
///   non-negative weights 1−w and w. The error is at most α·((1−w)·|x_lo| + w·|x_hi|). When
///   x_lo and x_hi have the same sign that equals α·|true type-7 value|: the same relative
///   bound α. When they straddle zero the true value may be near 0 and no relative bound
///   holds; the absolute error is still at most α·max(|x_lo|, |x_hi|).
/// * Values counted as zero (|x| < 10⁻³⁰⁰) are estimated as 0.
/// * Collapsing (see below) voids the bound for the collapsed buckets only.
///
/// # Memory
///
/// Each sign keeps a dense run of bucket counts, at most `max_buckets` long (default
/// [`Self::DEFAULT_MAX_BUCKETS`]: 16 KiB per sign, reached only by data spanning about nine
/// decades at the default α). When a new value would make the run longer, the buckets with the
/// lowest keys, i.e. the smallest magnitudes on that side of zero, are folded into the lowest
/// remaining bucket, as in DDSketch's collapsing-lowest store. Only the accuracy of the values
/// nearest to zero suffers; the upper tail, which quantile queries on latencies and sizes care
/// about, keeps its bound. The resulting state depends only on the multiset of values
/// inserted, not on their order, so merge stays exact and order-independent.
///
/// # Ordering
///
/// `Eq`, `Ord` and `Hash` compare the state field by field (floats by bit pattern via
/// `total_cmp`), which differential dataflow needs to arrange sketches. Because the state is a
/// canonical function of (α, bucket limit, multiset of values), equal sketches summarise
/// indistinguishable data; the order itself has no statistical meaning.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "QuantileSketchWire")]
pub struct QuantileSketch {
    alpha: f64,
    max_buckets: u32,
    /// Total number of values, zeros included.
    count: u64,
    zero_count: u64,
    /// Exact extremes; both 0 while the sketch is empty, so the empty state is canonical.
    min: f64,
    max: f64,
    /// Buckets of positive values, keyed by ⌈ln x / ln γ⌉.
    positive: Store,
    /// Buckets of negative values, keyed by ⌈ln |x| / ln γ⌉.
    negative: Store,
    /// Constants derived from `alpha`: not serialised (deserialisation rebuilds them from α)
    /// and not part of the identity.
    #[serde(skip)]
    mapping: Mapping,
}

impl Default for QuantileSketch {
    fn default() -> Self {
        Self::new(DEFAULT_ALPHA)
    }
}

impl QuantileSketch {
    /// Default bucket limit per sign.
    pub const DEFAULT_MAX_BUCKETS: u32 = 2048;

    /// An empty sketch with relative accuracy `alpha` and the default bucket limit.
    ///
    /// # Panics
    ///
    /// If `alpha` is not in [10⁻⁶, 1): a configuration error, caught at construction so that
    /// inserting never has to check.
    pub fn new(alpha: f64) -> Self {
        Self::with_max_buckets(alpha, Self::DEFAULT_MAX_BUCKETS)
    }

    /// An empty sketch with relative accuracy `alpha` and at most `max_buckets` buckets per
    /// sign.
    ///
    /// # Panics
    ///
    /// If `alpha` is not in [10⁻⁶, 1) or `max_buckets` is 0.
    pub fn with_max_buckets(alpha: f64, max_buckets: u32) -> Self {
        assert!(valid_alpha(alpha), "relative accuracy {alpha} is not in [1e-6, 1)");
        assert!(max_buckets > 0, "a quantile sketch needs at least one bucket per sign");
        Self {
            alpha,
            max_buckets,
            count: 0,
            zero_count: 0,
            min: 0.0,
            max: 0.0,
            positive: Store::default(),
            negative: Store::default(),
            mapping: Mapping::new(alpha),
        }
    }

    /// The relative accuracy α.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// The bucket limit per sign.
    pub fn max_buckets(&self) -> u32 {
        self.max_buckets
    }

    /// Number of values inserted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether no value has been inserted.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The exact smallest value, if any.
    pub fn exact_min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    /// The exact largest value, if any.
    pub fn exact_max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    /// Adds one value. The caller guarantees it is finite.
    pub fn insert(&mut self, x: f64) {
        self.insert_n(x, 1);
    }

    /// Adds `n` copies of a value, e.g. a pre-aggregated count. The caller guarantees `x` is
    /// finite; in release builds a non-finite value is ignored rather than corrupting the
    /// extremes or growing the store towards an infinite key.
    pub fn insert_n(&mut self, x: f64, n: u64) {
        debug_assert!(x.is_finite(), "quantile sketch input {x} is not finite");
        if n == 0 || !x.is_finite() {
            return;
        }
        // Adding +0.0 turns -0.0 into +0.0, so that equal inputs give equal (Eq) sketches.
        let x = x + 0.0;
        if self.count == 0 {
            self.min = x;
            self.max = x;
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        self.count += n;
        let magnitude = x.abs();
        if magnitude < ZERO_THRESHOLD {
            self.zero_count += n;
            return;
        }
        let key = self.mapping.key(magnitude);
        let store = if x > 0.0 {
            &mut self.positive
        } else {
            &mut self.negative
        };
        store.add(key, n, self.max_buckets as usize);
    }

    /// Adds values sorted ascending. Positive values are counted in runs that share a bucket,
    /// so building a sketch from a sorted window costs about one comparison per value and one
    /// logarithm per bucket instead of one logarithm per value. The result is identical to
    /// inserting the values one by one.
    pub fn insert_sorted(&mut self, sorted: &[f64]) {
        debug_assert!(
            sorted.windows(2).all(|w| w[0] <= w[1]),
            "insert_sorted needs ascending values"
        );
        let mut i = 0;
        while i < sorted.len() {
            let x = sorted[i];
            if !(x.is_finite() && x >= ZERO_THRESHOLD) {
                self.insert(x);
                i += 1;
                continue;
            }
            let key = self.mapping.key(x);
            // Values below the bucket's upper edge γ^key share its key; the margin keeps
            // rounding in ln/exp from ever putting a value in the wrong bucket (values in the
            // margin take the exact path on the next iteration).
            let below_edge = self.mapping.upper_edge(key) * (1.0 - 1e-9);
            let run = 1 + sorted[i + 1..].iter().take_while(|&&y| y <= below_edge).count();
            if self.count == 0 {
                self.min = x;
                self.max = x;
            }
            self.min = self.min.min(x);
            self.max = self.max.max(sorted[i + run - 1]);
            self.count += run as u64;
            self.positive.add(key, run as u64, self.max_buckets as usize);
            i += run;
        }
    }

    /// Adds the values summarised by `other`.
    ///
    /// Both sketches must have the same α (debug assertion; in release a mismatch gives
    /// meaningless buckets). If their bucket limits differ the smaller one is kept, so merging
    /// stays commutative. The result equals, bucket for bucket, the sketch of the union.
    pub fn merge(&mut self, other: &Self) {
        debug_assert!(
            self.alpha.to_bits() == other.alpha.to_bits(),
            "merging sketches with relative accuracy {} and {}",
            self.alpha,
            other.alpha
        );
        self.max_buckets = self.max_buckets.min(other.max_buckets);
        let limit = self.max_buckets as usize;
        if other.count > 0 {
            if self.count == 0 {
                self.min = other.min;
                self.max = other.max;
            } else {
                self.min = self.min.min(other.min);
                self.max = self.max.max(other.max);
            }
            self.count += other.count;
            self.zero_count += other.zero_count;
        }
        // Merging empty stores still enforces a lowered limit on our own buckets.
        self.positive.merge(&other.positive, limit);
        self.negative.merge(&other.negative, limit);
    }

    /// Estimate of the `rank`-th smallest value (0-based): the representative of the bucket
    /// holding that rank, clamped to the exact [min, max]. Ranks 0 and count−1 return the
    /// exact minimum and maximum.
    ///
    /// Ranks past the end return the maximum; an empty sketch returns NaN.
    pub fn value_at_rank(&self, rank: u64) -> f64 {
        if self.count == 0 {
            return f64::NAN;
        }
        let rank = rank.min(self.count - 1);
        // The extreme order statistics are the exact extremes; nothing to estimate.
        if rank == 0 {
            return self.min;
        }
        if rank == self.count - 1 {
            return self.max;
        }
        // max/min rather than clamp: clamp panics on NaN bounds, and this never may.
        self.bucket_value_at_rank(rank).max(self.min).min(self.max)
    }

    /// The type-7 quantile (see [`quantile_type7`](fn@quantile_type7)) of the summarised
    /// values, with the two order statistics estimated by [`value_at_rank`](Self::value_at_rank).
    ///
    /// `q` is clamped to [0, 1]; an empty sketch or a NaN `q` returns NaN. See the type-level
    /// documentation for the error bound.
    pub fn quantile_type7(&self, q: f64) -> f64 {
        if self.count == 0 || q.is_nan() {
            return f64::NAN;
        }
        let (lo, hi, frac) = type7_position(self.count, q);
        let x_lo = self.value_at_rank(lo);
        if frac == 0.0 || hi == lo {
            return x_lo;
        }
        interpolate(x_lo, self.value_at_rank(hi), frac)
    }

    /// Walks the buckets in ascending order of value (most negative first, then zeros, then
    /// positives) until `rank` (< count) is covered, and returns that bucket's representative.
    fn bucket_value_at_rank(&self, rank: u64) -> f64 {
        let mut seen = 0u64;
        for (key, n) in self.negative.buckets().rev() {
            seen += n;
            if seen > rank {
                return -self.mapping.value(key);
            }
        }
        seen += self.zero_count;
        if seen > rank {
            return 0.0;
        }
        for (key, n) in self.positive.buckets() {
            seen += n;
            if seen > rank {
                return self.mapping.value(key);
            }
        }
        // Unreachable while the counts add up, which construction and deserialisation ensure.
        self.max
    }
}

fn valid_alpha(alpha: f64) -> bool {
    (MIN_ALPHA..1.0).contains(&alpha)
}

impl PartialEq for QuantileSketch {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for QuantileSketch {}

impl PartialOrd for QuantileSketch {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for QuantileSketch {
    /// Field by field; floats by `total_cmp`, which is equality of bit patterns. `mapping` is
    /// a function of `alpha` and is left out.
    fn cmp(&self, other: &Self) -> Ordering {
        self.alpha
            .total_cmp(&other.alpha)
            .then(self.max_buckets.cmp(&other.max_buckets))
            .then(self.count.cmp(&other.count))
            .then(self.zero_count.cmp(&other.zero_count))
            .then(self.min.total_cmp(&other.min))
            .then(self.max.total_cmp(&other.max))
            .then_with(|| self.negative.cmp(&other.negative))
            .then_with(|| self.positive.cmp(&other.positive))
    }
}

impl Hash for QuantileSketch {
    /// Hashes exactly what `cmp` compares, floats as bit patterns, so `a == b` implies equal
    /// hashes.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.alpha.to_bits().hash(state);
        self.max_buckets.hash(state);
        self.count.hash(state);
        self.zero_count.hash(state);
        self.min.to_bits().hash(state);
        self.max.to_bits().hash(state);
        self.negative.hash(state);
        self.positive.hash(state);
    }
}

/// Constants of the logarithmic mapping, derived from α once rather than on every insert.
#[derive(Clone, Copy, Debug)]
struct Mapping {
    /// 1 / ln γ: keys are computed with a multiplication.
    inv_ln_gamma: f64,
    ln_gamma: f64,
    /// ln(2 / (γ+1)): the representative 2γᵏ/(γ+1) is exp(k·ln γ + this).
    ln_representative_factor: f64,
}

impl Mapping {
    fn new(alpha: f64) -> Self {
        let gamma = (1.0 + alpha) / (1.0 - alpha);
        let ln_gamma = gamma.ln();
        Self {
            inv_ln_gamma: ln_gamma.recip(),
            ln_gamma,
            ln_representative_factor: (2.0 / (gamma + 1.0)).ln(),
        }
    }

    /// Bucket key of a magnitude ≥ [`ZERO_THRESHOLD`].
    fn key(&self, magnitude: f64) -> i32 {
        // In range for every finite magnitude given α ≥ MIN_ALPHA (see there).
        (magnitude.ln() * self.inv_ln_gamma).ceil() as i32
    }

    /// Upper edge γ^key of a bucket: every magnitude in the bucket is at most this.
    fn upper_edge(&self, key: i32) -> f64 {
        (f64::from(key) * self.ln_gamma).exp()
    }

    /// Representative magnitude of a bucket. Computed in log space so that it is finite
    /// wherever the bucket's values are; it can still exceed `f64::MAX` for the very top
    /// bucket, which the clamp to the exact maximum then corrects.
    fn value(&self, key: i64) -> f64 {
        (key as f64 * self.ln_gamma + self.ln_representative_factor).exp()
    }
}

/// Counts of one sign's buckets: `counts[i]` is the count of key `offset + i`.
///
/// Invariant (canonical form): either empty with offset 0, or the first and last counts are
/// non-zero and there are at most the limit of counts. Equal multisets therefore give equal
/// stores, which is what makes the derived `Eq` meaningful. Counts are `u64` so that no bucket
/// can overflow however long a window runs or however many sketches are merged.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Store {
    offset: i32,
    counts: Vec<u64>,
}

impl Store {
    /// Lowest and highest key, if any.
    fn bounds(&self) -> Option<(i64, i64)> {
        let lo = i64::from(self.offset);
        (!self.counts.is_empty()).then(|| (lo, lo + self.counts.len() as i64 - 1))
    }

    /// Non-empty buckets in ascending key order, as (key, count).
    fn buckets(&self) -> impl DoubleEndedIterator<Item = (i64, u64)> + '_ {
        let offset = i64::from(self.offset);
        self.counts
            .iter()
            .enumerate()
            .filter(|&(_, &n)| n > 0)
            .map(move |(i, &n)| (offset + i as i64, n))
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds `n` (> 0) to bucket `key`, growing the run and collapsing its low end if the run
    /// would exceed `limit` (> 0) buckets.
    fn add(&mut self, key: i32, n: u64, limit: usize) {
        let key = i64::from(key);
        let Some((lo, hi)) = self.bounds() else {
            self.offset = key as i32;
            self.counts.push(n);
            return;
        };
        if key > hi {
            self.grow_high(key, limit);
        } else if key < lo {
            // The run spans at most `limit`, so hi − limit + 1 ≤ lo: we never shrink here, and
            // a key below the collapse floor lands in the lowest bucket.
            let new_lo = key.max(hi - limit as i64 + 1);
            let extra = (lo - new_lo) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, extra));
            self.offset = new_lo as i32;
        }
        let index = (key.max(i64::from(self.offset)) - i64::from(self.offset)) as usize;
        self.counts[index] += n;
    }

    /// Extends the run up to `new_hi` (> current highest key), folding the buckets that fall
    /// out of a `limit`-long window into its lowest bucket.
    fn grow_high(&mut self, new_hi: i64, limit: usize) {
        let lo = i64::from(self.offset);
        let new_lo = lo.max(new_hi - limit as i64 + 1);
        if new_lo > lo {
            let cut = (new_lo - lo) as usize;
            if cut >= self.counts.len() {
                let total = self.total();
                self.counts.clear();
                self.counts.push(total);
            } else {
                let folded: u64 = self.counts.drain(..cut).sum();
                self.counts[0] += folded;
            }
            self.offset = new_lo as i32;
        }
        self.counts.resize((new_hi - new_lo + 1) as usize, 0);
    }

    /// Adds `other`'s counts. The result spans the union of both runs, cut to the top `limit`
    /// keys with everything below folded into the lowest bucket: the same state inserting all
    /// values one by one would reach.
    fn merge(&mut self, other: &Store, limit: usize) {
        let (lo, hi) = match (self.bounds(), other.bounds()) {
            (None, None) => return,
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (Some(a), Some(b)) => (a.0.min(b.0), a.1.max(b.1)),
        };
        let lo = lo.max(hi - limit as i64 + 1);
        if self.bounds() != Some((lo, hi)) {
            let mut counts = vec![0; (hi - lo + 1) as usize];
            for (key, n) in self.buckets() {
                counts[(key.max(lo) - lo) as usize] += n;
            }
            self.offset = lo as i32;
            self.counts = counts;
        }
        for (key, n) in other.buckets() {
            self.counts[(key.max(lo) - lo) as usize] += n;
        }
    }

    /// Whether the store is in canonical form for `limit` and its keys fit in `i32`.
    fn is_canonical(&self, limit: usize) -> bool {
        match (self.counts.first(), self.counts.last()) {
            (None, _) | (_, None) => self.offset == 0,
            (Some(&first), Some(&last)) => {
                first > 0
                    && last > 0
                    && self.counts.len() <= limit
                    && i64::from(self.offset) + self.counts.len() as i64 - 1 <= i64::from(i32::MAX)
            }
        }
    }
}

/// The serialised form of [`QuantileSketch`], checked before it becomes one.
///
/// Sketches are read back from checkpoints and from other processes; validating here means a
/// corrupt or hand-edited state is rejected at the boundary instead of producing wrong
/// quantiles (or index panics) later.
#[derive(Deserialize)]
struct QuantileSketchWire {
    alpha: f64,
    max_buckets: u32,
    count: u64,
    zero_count: u64,
    min: f64,
    max: f64,
    positive: Store,
    negative: Store,
}

impl TryFrom<QuantileSketchWire> for QuantileSketch {
    type Error = &'static str;

    fn try_from(wire: QuantileSketchWire) -> Result<Self, Self::Error> {
        if !valid_alpha(wire.alpha) {
            return Err("quantile sketch: relative accuracy not in [1e-6, 1)");
        }
        if wire.max_buckets == 0 {
            return Err("quantile sketch: bucket limit is 0");
        }
        let limit = wire.max_buckets as usize;
        if !wire.positive.is_canonical(limit) || !wire.negative.is_canonical(limit) {
            return Err("quantile sketch: bucket store is not canonical");
        }
        let total = [wire.positive.counts.iter(), wire.negative.counts.iter()]
            .into_iter()
            .flatten()
            .try_fold(wire.zero_count, |sum, &n| sum.checked_add(n));
        if total != Some(wire.count) {
            return Err("quantile sketch: bucket counts do not add up to the total");
        }
        let extremes_ok = if wire.count == 0 {
            wire.min.to_bits() == 0 && wire.max.to_bits() == 0
        } else {
            wire.min.is_finite() && wire.max.is_finite() && wire.min <= wire.max
        };
        if !extremes_ok {
            return Err("quantile sketch: inconsistent minimum and maximum");
        }
        Ok(Self {
            alpha: wire.alpha,
            max_buckets: wire.max_buckets,
            count: wire.count,
            zero_count: wire.zero_count,
            min: wire.min,
            max: wire.max,
            positive: wire.positive,
            negative: wire.negative,
            mapping: Mapping::new(wire.alpha),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    /// splitmix64: a tiny deterministic generator, so the tests need no dependency.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in (0, 1]: never 0, so its logarithm is finite.
        fn unit(&mut self) -> f64 {
            ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
        }

        /// Standard normal (Box–Muller).
        fn normal(&mut self) -> f64 {
            let (u, v) = (self.unit(), self.unit());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        }

        fn lognormal(&mut self, mu: f64, sigma: f64) -> f64 {
            (mu + sigma * self.normal()).exp()
        }
    }

    #[test]
    fn insert_sorted_equals_one_by_one() {
        let mut rng = Rng(7);
        let mut values: Vec<f64> = (0..20_000).map(|_| rng.lognormal(2.0, 1.5)).collect();
        values.extend([0.0, -3.5, -0.25, 1e-310, 5.0, 5.0, 5.0]);
        values.extend((0..500).map(|i| f64::from(i % 7)));
        values.sort_by(f64::total_cmp);
        let mut sorted = QuantileSketch::new(0.005);
        sorted.insert_sorted(&values);
        assert_eq!(sorted, sketch_of(&values));
    }

    fn sketch_of(values: &[f64]) -> QuantileSketch {
        let mut sketch = QuantileSketch::default();
        values.iter().for_each(|&x| sketch.insert(x));
        sketch
    }

    fn sorted(values: &[f64]) -> Vec<f64> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted
    }

    fn hash_of(sketch: &QuantileSketch) -> u64 {
        let mut hasher = DefaultHasher::new();
        sketch.hash(&mut hasher);
        hasher.finish()
    }

    fn assert_close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() <= 1e-12 * expected.abs().max(1.0),
            "{actual} vs {expected}"
        );
    }

    /// Relative bound α, plus slack for the rounding of ln at bucket boundaries.
    fn within_alpha(estimate: f64, exact: f64, alpha: f64) -> bool {
        (estimate - exact).abs() <= (alpha + 1e-12) * exact.abs()
    }

    const QS: [f64; 11] = [0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0];

    #[test]
    fn type7_single_value() {
        // n = 1: h = 0·q = 0, lo = hi = 0, so every quantile is the value.
        for q in [0.0, 0.5, 0.95, 0.99, 1.0] {
            assert_eq!(quantile_type7(&[7.0], q), 7.0);
        }
    }

    #[test]
    fn type7_two_values() {
        let x = [10.0, 20.0];
        // h = 1·q, lo = 0, hi = 1: 10 + q·(20 − 10).
        assert_close(quantile_type7(&x, 0.5), 15.0); // 10 + 0.5·10
        assert_close(quantile_type7(&x, 0.95), 19.5); // 10 + 0.95·10
        assert_close(quantile_type7(&x, 0.99), 19.9); // 10 + 0.99·10
        assert_eq!(quantile_type7(&x, 0.0), 10.0);
        assert_eq!(quantile_type7(&x, 1.0), 20.0); // h = 1, lo = hi = 1
    }

    #[test]
    fn type7_five_values() {
        let x = [1.0, 2.0, 3.0, 4.0, 10.0];
        // q = 0.5: h = 4·0.5 = 2 exactly, so x₂ = 3.
        assert_eq!(quantile_type7(&x, 0.5), 3.0);
        // q = 0.25: h = 1, so x₁ = 2.
        assert_eq!(quantile_type7(&x, 0.25), 2.0);
        // q = 0.95: h = 3.8, lo = 3, hi = 4: 4 + 0.8·(10 − 4) = 8.8.
        assert_close(quantile_type7(&x, 0.95), 8.8);
        // q = 0.99: h = 3.96: 4 + 0.96·6 = 9.76.
        assert_close(quantile_type7(&x, 0.99), 9.76);
        // q = 0.1: h = 0.4: 1 + 0.4·(2 − 1) = 1.4.
        assert_close(quantile_type7(&x, 0.1), 1.4);
        assert_eq!(quantile_type7(&x, 0.0), 1.0);
        assert_eq!(quantile_type7(&x, 1.0), 10.0);
    }

    #[test]
    fn type7_clamps_q_and_propagates_nan() {
        let x = [1.0, 2.0, 3.0];
        assert_eq!(quantile_type7(&x, -0.5), 1.0);
        assert_eq!(quantile_type7(&x, 1.5), 3.0);
        assert!(quantile_type7(&x, f64::NAN).is_nan());
    }

    #[test]
    fn type7_survives_extreme_values() {
        // x_hi − x_lo overflows to ∞; at q = 0 and q = 1 the answer must still be exact.
        let x = [-f64::MAX, f64::MAX];
        assert_eq!(quantile_type7(&x, 0.0), -f64::MAX);
        assert_eq!(quantile_type7(&x, 1.0), f64::MAX);
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "empty slice")]
    fn type7_of_empty_slice_is_a_debug_assertion() {
        quantile_type7(&[], 0.5);
    }

    #[cfg(not(debug_assertions))]
    #[test]
    fn type7_of_empty_slice_is_nan() {
        assert!(quantile_type7(&[], 0.5).is_nan());
    }

    #[test]
    fn empty_sketch_answers_nan() {
        let sketch = QuantileSketch::default();
        assert!(sketch.is_empty());
        assert_eq!(sketch.exact_min(), None);
        assert!(sketch.value_at_rank(0).is_nan());
        assert!(sketch.quantile_type7(0.5).is_nan());
    }

    #[test]
    fn single_value_is_exact() {
        for x in [42.5, -3.25, 0.0, 1e-310, 1e300] {
            let sketch = sketch_of(&[x]);
            assert_eq!(sketch.count(), 1);
            for q in QS {
                assert_eq!(sketch.quantile_type7(q), x);
            }
        }
    }

    #[test]
    fn lognormal_quantiles_within_alpha() {
        let mut rng = Rng(1);
        let values: Vec<f64> = (0..10_000).map(|_| rng.lognormal(3.0, 1.5)).collect();
        let sketch = sketch_of(&values);
        let exact = sorted(&values);
        for q in QS {
            let (estimate, truth) = (sketch.quantile_type7(q), quantile_type7(&exact, q));
            assert!(
                within_alpha(estimate, truth, DEFAULT_ALPHA),
                "q={q}: {estimate} vs {truth}"
            );
        }
        for (rank, &truth) in exact.iter().enumerate() {
            let estimate = sketch.value_at_rank(rank as u64);
            assert!(within_alpha(estimate, truth, DEFAULT_ALPHA), "rank {rank}");
        }
    }

    #[test]
    fn coarser_alpha_keeps_its_bound() {
        let mut rng = Rng(2);
        let values: Vec<f64> = (0..5_000).map(|_| rng.lognormal(0.0, 3.0)).collect();
        let mut sketch = QuantileSketch::new(0.02);
        values.iter().for_each(|&x| sketch.insert(x));
        let exact = sorted(&values);
        for q in QS {
            let (estimate, truth) = (sketch.quantile_type7(q), quantile_type7(&exact, q));
            assert!(within_alpha(estimate, truth, 0.02), "q={q}: {estimate} vs {truth}");
        }
    }

    /// Normals around 0 with exact zeros, negative zeros and sub-threshold magnitudes mixed in.
    fn mixed_values(rng: &mut Rng, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| match i % 10 {
                0 => 0.0,
                1 => -0.0,
                2 => 1e-310,
                _ => 100.0 * rng.normal(),
            })
            .collect()
    }

    #[test]
    fn negatives_and_zeros() {
        let mut rng = Rng(3);
        let values = mixed_values(&mut rng, 10_000);
        let sketch = sketch_of(&values);
        let exact = sorted(&values);
        for (rank, &truth) in exact.iter().enumerate() {
            let estimate = sketch.value_at_rank(rank as u64);
            if truth.abs() < ZERO_THRESHOLD {
                assert_eq!(estimate, 0.0, "rank {rank}");
            } else {
                assert!(within_alpha(estimate, truth, DEFAULT_ALPHA), "rank {rank}");
                assert_eq!(estimate.signum(), truth.signum(), "rank {rank}");
            }
        }
        let n = exact.len() as f64;
        for q in (0..=1000).map(|i| f64::from(i) / 1000.0) {
            let (estimate, truth) = (sketch.quantile_type7(q), quantile_type7(&exact, q));
            let h = (n - 1.0) * q;
            let (lo, hi) = (h.floor() as usize, (h.floor() as usize + 1).min(exact.len() - 1));
            let bound = DEFAULT_ALPHA * exact[lo].abs().max(exact[hi].abs()) + ZERO_THRESHOLD;
            assert!((estimate - truth).abs() <= bound * (1.0 + 1e-9), "q={q}");
            // Same sign, and neither counted as zero: the relative bound holds.
            let (x_lo, x_hi) = (exact[lo], exact[hi]);
            if x_lo.abs().min(x_hi.abs()) >= ZERO_THRESHOLD && x_lo.signum() == x_hi.signum() {
                assert!(within_alpha(estimate, truth, DEFAULT_ALPHA), "q={q}");
            }
        }
    }

    #[test]
    fn min_and_max_are_exact() {
        let mut rng = Rng(4);
        let values: Vec<f64> = (0..1000).map(|_| rng.lognormal(1.0, 2.0) - 5.0).collect();
        let sketch = sketch_of(&values);
        let exact = sorted(&values);
        let (min, max) = (exact[0], exact[exact.len() - 1]);
        assert_eq!(sketch.exact_min(), Some(min));
        assert_eq!(sketch.exact_max(), Some(max));
        assert_eq!(sketch.value_at_rank(0), min);
        assert_eq!(sketch.value_at_rank(999), max);
        assert_eq!(sketch.value_at_rank(u64::MAX), max);
        assert_eq!(sketch.quantile_type7(0.0), min);
        assert_eq!(sketch.quantile_type7(1.0), max);
    }

    #[test]
    fn merge_equals_sketch_of_union() {
        let mut rng = Rng(5);
        let a = mixed_values(&mut rng, 3000);
        let b: Vec<f64> = (0..2000).map(|_| rng.lognormal(5.0, 2.0)).collect();
        let union: Vec<f64> = a.iter().chain(&b).copied().collect();
        let (sa, sb) = (sketch_of(&a), sketch_of(&b));
        let mut ab = sa.clone();
        ab.merge(&sb);
        let mut ba = sb.clone();
        ba.merge(&sa);
        assert_eq!(ab, sketch_of(&union));
        assert_eq!(ab, ba);
        let mut with_empty = sa.clone();
        with_empty.merge(&QuantileSketch::default());
        assert_eq!(with_empty, sa);
        let mut from_empty = QuantileSketch::default();
        from_empty.merge(&sa);
        assert_eq!(from_empty, sa);
    }

    /// Values spanning ~40 decades on both sides, so that 64 buckets must collapse.
    fn wide_values(rng: &mut Rng, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let x = rng.lognormal(0.0, 20.0);
                if rng.next_u64().is_multiple_of(3) { -x } else { x }
            })
            .collect()
    }

    #[test]
    fn collapsing_bounds_memory_and_keeps_large_magnitudes_accurate() {
        // ln |x| spans about ±4, i.e. ~800 buckets per sign at α = 0.5 %; 256 must collapse.
        let mut rng = Rng(6);
        let values: Vec<f64> = (0..5000u64)
            .map(|i| rng.lognormal(0.0, 1.0) * if i.is_multiple_of(3) { -1.0 } else { 1.0 })
            .collect();
        let mut sketch = QuantileSketch::with_max_buckets(DEFAULT_ALPHA, 256);
        values.iter().for_each(|&x| sketch.insert(x));
        assert_eq!(sketch.count(), 5000);
        assert_eq!(sketch.positive.counts.len(), 256);
        assert_eq!(sketch.negative.counts.len(), 256);
        // Every value above its store's lowest (collapsed) bucket keeps the bound.
        let mut checked = 0;
        for (rank, &truth) in sorted(&values).iter().enumerate() {
            let store = if truth > 0.0 {
                &sketch.positive
            } else {
                &sketch.negative
            };
            if sketch.mapping.key(truth.abs()) > store.offset {
                let estimate = sketch.value_at_rank(rank as u64);
                assert!(within_alpha(estimate, truth, DEFAULT_ALPHA), "rank {rank}");
                checked += 1;
            }
        }
        // The top 2.56 units of ln |x| on each side: roughly the outer 14 % of each sign.
        assert!(checked >= 500, "only {checked} values checked");
    }

    #[test]
    fn collapsed_state_is_order_independent_and_merges_exactly() {
        let mut rng = Rng(7);
        let values = wide_values(&mut rng, 4000);
        let build = |values: &mut dyn Iterator<Item = f64>| {
            let mut sketch = QuantileSketch::with_max_buckets(DEFAULT_ALPHA, 64);
            values.for_each(|x| sketch.insert(x));
            sketch
        };
        let sorted_values = sorted(&values);
        let forward = build(&mut values.iter().copied());
        assert_eq!(forward, build(&mut sorted_values.iter().copied()));
        assert_eq!(forward, build(&mut sorted_values.iter().rev().copied()));
        let (a, b) = values.split_at(1234);
        let mut merged = build(&mut a.iter().copied());
        merged.merge(&build(&mut b.iter().copied()));
        assert_eq!(merged, forward);
    }

    #[test]
    fn merge_adopts_the_smaller_bucket_limit() {
        let mut rng = Rng(8);
        let values = wide_values(&mut rng, 2000);
        let mut big = QuantileSketch::default();
        values.iter().for_each(|&x| big.insert(x));
        let mut small = QuantileSketch::with_max_buckets(DEFAULT_ALPHA, 64);
        values.iter().for_each(|&x| small.insert(x));
        let mut merged = QuantileSketch::with_max_buckets(DEFAULT_ALPHA, 64);
        merged.merge(&big);
        assert_eq!(merged, small);
        let mut other_way = big.clone();
        other_way.merge(&QuantileSketch::with_max_buckets(DEFAULT_ALPHA, 64));
        assert_eq!(other_way, small);
    }

    #[test]
    fn ord_is_consistent_with_eq_and_hash() {
        let mut rng = Rng(9);
        let mut sketches = vec![
            QuantileSketch::default(),
            QuantileSketch::new(0.01),
            QuantileSketch::with_max_buckets(DEFAULT_ALPHA, 10),
            sketch_of(&[0.0]),
            sketch_of(&[-0.0]),
            sketch_of(&[1.0]),
            sketch_of(&[1.0, 1.0]),
            sketch_of(&[1.0, 1.001]),
            sketch_of(&[-1.0]),
        ];
        for _ in 0..5 {
            sketches.push(sketch_of(&mixed_values(&mut rng, 50)));
        }
        sketches.push(sketches[sketches.len() - 1].clone());
        for a in &sketches {
            for b in &sketches {
                assert_eq!(a.cmp(b) == Ordering::Equal, a == b);
                assert_eq!(a.cmp(b), b.cmp(a).reverse());
                assert_eq!(a.partial_cmp(b), Some(a.cmp(b)));
                if a == b {
                    assert_eq!(hash_of(a), hash_of(b));
                }
            }
        }
        // -0.0 is normalised, so it sketches like 0.0.
        assert_eq!(sketches[3], sketches[4]);
        assert_ne!(sketches[6], sketches[7]);
    }

    fn wire_of(sketch: &QuantileSketch) -> QuantileSketchWire {
        QuantileSketchWire {
            alpha: sketch.alpha,
            max_buckets: sketch.max_buckets,
            count: sketch.count,
            zero_count: sketch.zero_count,
            min: sketch.min,
            max: sketch.max,
            positive: sketch.positive.clone(),
            negative: sketch.negative.clone(),
        }
    }

    #[test]
    fn deserialisation_rejects_inconsistent_state() {
        let mut rng = Rng(10);
        let sketch = sketch_of(&mixed_values(&mut rng, 100));
        assert_eq!(QuantileSketch::try_from(wire_of(&sketch)), Ok(sketch.clone()));
        let corruptions: [fn(&mut QuantileSketchWire); 6] = [
            |w| w.alpha = 0.0,
            |w| w.max_buckets = 0,
            |w| w.count += 1,
            |w| w.min = f64::NAN,
            |w| w.positive.counts.push(0),
            |w| w.negative.counts.insert(0, 0),
        ];
        for corrupt in corruptions {
            let mut wire = wire_of(&sketch);
            corrupt(&mut wire);
            assert!(QuantileSketch::try_from(wire).is_err());
        }
    }
}
