//! Mergeable per-window aggregate state.
//!
//! A [`Partial`] is what a window holds while it is open and what rollups and corrections merge:
//! count, a compensated sum, min, max, the value distribution and an optional distinct counter.
//! Everything in it merges associatively and commutatively, which is what lets a 1-hour window
//! be built from sixty 1-minute partials (never from the events again), and a late event be
//! folded into a closed window as a one-event partial.
//!
//! The distribution is kept **exactly** (the values themselves) while the window holds at most
//! [`QuantilePolicy::exact_limit`] values, so p50/p95/p99 equal the type-7 definition to the
//! last bit; beyond that it switches to a [`QuantileSketch`] whose type-7 estimate is within
//! relative error α of the exact one (see `sketch::quantile` for the argument).

use crate::sketch::{DistinctCounter, QuantileSketch, quantile_type7};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use tidemark_connectors::Tracking;
use tidemark_schemas::Aggregates;

/// When to give up exact quantiles for a sketch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantilePolicy {
    /// Most values a window keeps exactly (default 8192, i.e. 64 KiB per window and series).
    pub exact_limit: usize,
    /// Relative accuracy of the sketch beyond that (default 0.005).
    pub alpha: f64,
}

impl Default for QuantilePolicy {
    fn default() -> Self {
        QuantilePolicy {
            exact_limit: 8192,
            alpha: crate::sketch::DEFAULT_ALPHA,
        }
    }
}

/// The value distribution of a window.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Distribution {
    /// The series does not track quantiles.
    Untracked,
    /// Every value, unsorted.
    Exact(Vec<f64>),
    /// A relative-error sketch.
    Sketch(QuantileSketch),
}

/// Mergeable aggregate state of one series over one window.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Partial {
    count: u64,
    /// Neumaier-compensated sum: `sum + compensation` is the sum to ~1 ulp whatever the order,
    /// so merged rollups and differently-partitioned runs agree.
    sum: f64,
    compensation: f64,
    min: f64,
    max: f64,
    distribution: Distribution,
    distinct: Option<DistinctCounter>,
    /// The metric counts events (every value is 1).
    counted: bool,
}

impl Partial {
    /// An empty partial for a series tracking `tracking`.
    pub fn new(tracking: Tracking) -> Self {
        Partial {
            count: 0,
            sum: 0.0,
            compensation: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            distribution: if tracking.quantiles {
                Distribution::Exact(Vec::new())
            } else {
                Distribution::Untracked
            },
            distinct: tracking.distinct.then(DistinctCounter::default),
            counted: tracking.counted,
        }
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether the metric counts events (every value is 1).
    pub fn is_counted(&self) -> bool {
        self.counted
    }

    /// Adds one value (finite: the decoder guarantees it) and its distinct item hash.
    #[inline]
    pub fn insert(&mut self, value: f64, distinct: Option<u64>, policy: &QuantilePolicy) {
        self.count += 1;
        self.add_to_sum(value, 0.0);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        match &mut self.distribution {
            Distribution::Untracked => {}
            Distribution::Exact(values) => {
                values.push(value);
                if values.len() > policy.exact_limit {
                    self.distribution = Distribution::Sketch(sketch_of(values, policy.alpha));
                }
            }
            Distribution::Sketch(sketch) => sketch.insert(value),
        }
        if let (Some(counter), Some(hash)) = (&mut self.distinct, distinct) {
            counter.insert_hash(hash);
        }
    }

    /// Folds `other` into `self`.
    pub fn merge(&mut self, other: &Partial, policy: &QuantilePolicy) {
        self.count += other.count;
        self.add_to_sum(other.sum, other.compensation);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        let mine = std::mem::replace(&mut self.distribution, Distribution::Untracked);
        self.distribution = match (mine, &other.distribution) {
            (Distribution::Untracked, Distribution::Untracked) => Distribution::Untracked,
            (Distribution::Exact(mut values), Distribution::Exact(theirs)) => {
                values.extend_from_slice(theirs);
                if values.len() > policy.exact_limit {
                    Distribution::Sketch(sketch_of(&mut values, policy.alpha))
                } else {
                    Distribution::Exact(values)
                }
            }
            (Distribution::Exact(values), Distribution::Sketch(theirs)) => {
                let mut sketch = theirs.clone();
                values.iter().for_each(|v| sketch.insert(*v));
                Distribution::Sketch(sketch)
            }
            (Distribution::Sketch(mut sketch), Distribution::Exact(theirs)) => {
                theirs.iter().for_each(|v| sketch.insert(*v));
                Distribution::Sketch(sketch)
            }
            (Distribution::Sketch(mut sketch), Distribution::Sketch(theirs)) => {
                sketch.merge(theirs);
                Distribution::Sketch(sketch)
            }
            // A series' tracking is fixed by its metric definition, so mixed states only arise
            // if definitions change between runs; keep whatever distribution there is.
            (Distribution::Untracked, theirs) => theirs.clone(),
            (mine, Distribution::Untracked) => mine,
        };
        match (&mut self.distinct, &other.distinct) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (None, Some(theirs)) => self.distinct = Some(theirs.clone()),
            _ => {}
        }
    }

    /// The form kept for corrections: exact values become a sketch once there are more than
    /// `keep_exact` of them, since closed windows are held for the whole correction horizon.
    pub fn compacted(&mut self, keep_exact: usize, policy: &QuantilePolicy) -> Partial {
        let distribution = match &mut self.distribution {
            Distribution::Exact(values) if values.len() > keep_exact => {
                Distribution::Sketch(sketch_of(values, policy.alpha))
            }
            other => other.clone(),
        };
        Partial {
            count: self.count,
            sum: self.sum,
            compensation: self.compensation,
            min: self.min,
            max: self.max,
            distribution,
            distinct: self.distinct.clone(),
            counted: self.counted,
        }
    }

    /// The aggregates of this window. Sorts exact values in place (the order is not observable).
    pub fn aggregates(&mut self) -> Aggregates {
        let count = self.count;
        let sum = self.sum + self.compensation;
        let (p50, p95, p99) = match &mut self.distribution {
            Distribution::Untracked => (None, None, None),
            Distribution::Exact(values) => {
                // Stable sort: it merges natural runs, and a rollup's values are the sorted
                // runs of its closed children, so this is a cheap merge rather than a full sort.
                values.sort_by(f64::total_cmp);
                (
                    Some(quantile_type7(values, 0.50)),
                    Some(quantile_type7(values, 0.95)),
                    Some(quantile_type7(values, 0.99)),
                )
            }
            Distribution::Sketch(sketch) => (
                Some(sketch.quantile_type7(0.50)),
                Some(sketch.quantile_type7(0.95)),
                Some(sketch.quantile_type7(0.99)),
            ),
        };
        Aggregates {
            count,
            sum,
            min: self.min,
            max: self.max,
            avg: sum / count as f64,
            p50,
            p95,
            p99,
            distinct: self.distinct.as_ref().map(DistinctCounter::estimate),
        }
    }

    fn add_to_sum(&mut self, value: f64, compensation: f64) {
        let t = self.sum + value;
        self.compensation += if self.sum.abs() >= value.abs() {
            (self.sum - t) + value
        } else {
            (value - t) + self.sum
        };
        self.compensation += compensation;
        self.sum = t;
    }

    fn order_key(&self) -> (u64, u64, u64, u64, u64) {
        (
            self.count,
            self.sum.to_bits(),
            self.compensation.to_bits(),
            self.min.to_bits(),
            self.max.to_bits(),
        )
    }
}

/// A sketch of `values`, sorting them first (cheap when they are sorted already, as at window
/// close, or two sorted runs, as after a merge) so the sketch is built run by run.
fn sketch_of(values: &mut [f64], alpha: f64) -> QuantileSketch {
    values.sort_by(f64::total_cmp);
    let mut sketch = QuantileSketch::new(alpha);
    sketch.insert_sorted(values);
    sketch
}

// Differential dataflow keeps partials in arrangements, which need a total order. The order
// itself is meaningless; it only has to be total and agree with equality.
impl Ord for Partial {
    fn cmp(&self, other: &Self) -> Ordering {
        self.order_key()
            .cmp(&other.order_key())
            .then_with(|| cmp_distribution(&self.distribution, &other.distribution))
            .then_with(|| self.distinct.cmp(&other.distinct))
    }
}

impl PartialOrd for Partial {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Partial {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Partial {}

fn cmp_distribution(a: &Distribution, b: &Distribution) -> Ordering {
    let rank = |d: &Distribution| match d {
        Distribution::Untracked => 0,
        Distribution::Exact(_) => 1,
        Distribution::Sketch(_) => 2,
    };
    match (a, b) {
        (Distribution::Exact(x), Distribution::Exact(y)) => {
            x.iter().map(|v| v.to_bits()).cmp(y.iter().map(|v| v.to_bits()))
        }
        (Distribution::Sketch(x), Distribution::Sketch(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Tracking = Tracking {
        quantiles: true,
        distinct: true,
        counted: false,
    };

    fn partial_of(values: &[f64], policy: &QuantilePolicy) -> Partial {
        let mut p = Partial::new(ALL);
        for (i, v) in values.iter().enumerate() {
            p.insert(*v, Some((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)), policy);
        }
        p
    }

    #[test]
    fn exact_window_matches_hand_computed_aggregates() {
        let policy = QuantilePolicy::default();
        let mut p = partial_of(&[4.0, 1.0, 3.0, 2.0, 5.0], &policy);
        let a = p.aggregates();
        assert_eq!((a.count, a.sum, a.min, a.max, a.avg), (5, 15.0, 1.0, 5.0, 3.0));
        // type 7 on [1,2,3,4,5]: h = 4q; p50 = x[2] = 3; p95: h = 3.8 → 4 + 0.8·1 = 4.8.
        assert_eq!(a.p50, Some(3.0));
        assert!((a.p95.unwrap() - 4.8).abs() < 1e-12);
        assert_eq!(a.distinct, Some(5));
    }

    #[test]
    fn merging_halves_equals_the_whole() {
        let policy = QuantilePolicy::default();
        let values: Vec<f64> = (0..1000).map(|i| ((i * 7919) % 1000) as f64 / 10.0).collect();
        let mut whole = partial_of(&values, &policy);
        let mut left = partial_of(&values[..400], &policy);
        left.merge(&partial_of(&values[400..], &policy), &policy);
        let (a, b) = (whole.aggregates(), left.aggregates());
        assert_eq!(
            (a.count, a.min, a.max, a.p50, a.p95, a.p99),
            (b.count, b.min, b.max, b.p50, b.p95, b.p99)
        );
        assert!((a.sum - b.sum).abs() < 1e-9);
    }

    #[test]
    fn compensated_sum_survives_cancellation() {
        let policy = QuantilePolicy::default();
        let mut p = partial_of(&[1e16, 1.0, -1e16, 1.0], &policy);
        assert_eq!(p.aggregates().sum, 2.0);
    }

    #[test]
    fn large_windows_switch_to_a_sketch_within_alpha() {
        let policy = QuantilePolicy {
            exact_limit: 100,
            alpha: 0.005,
        };
        let values: Vec<f64> = (1..=10_000).map(|i| (i as f64).sqrt() * 3.0).collect();
        let mut p = partial_of(&values, &policy);
        assert!(matches!(p.distribution, Distribution::Sketch(_)));
        let a = p.aggregates();
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        for (got, q) in [(a.p50, 0.5), (a.p95, 0.95), (a.p99, 0.99)] {
            let want = quantile_type7(&sorted, q);
            assert!((got.unwrap() - want).abs() <= 0.005 * want, "q={q}: {got:?} vs {want}");
        }
        assert_eq!((a.min, a.max), (sorted[0], sorted[9_999]));
    }

    #[test]
    fn untracked_series_report_no_quantiles() {
        let policy = QuantilePolicy::default();
        let mut p = Partial::new(Tracking::default());
        p.insert(1.0, None, &policy);
        let a = p.aggregates();
        assert_eq!((a.p50, a.distinct), (None, None));
    }

    #[test]
    fn order_agrees_with_equality() {
        let policy = QuantilePolicy::default();
        let a = partial_of(&[1.0, 2.0], &policy);
        let b = partial_of(&[1.0, 2.0], &policy);
        let c = partial_of(&[1.0, 3.0], &policy);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.cmp(&c), c.cmp(&a).reverse());
    }
}
