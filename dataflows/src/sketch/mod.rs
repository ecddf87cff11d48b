//! Sketches: bounded-memory, mergeable summaries for the aggregates that cannot be kept exactly.
//!
//! Counts, sums, minima and maxima fold into a few numbers, but quantiles and distinct counts
//! need, exactly computed, every value or every distinct item of a window. A long window over a
//! busy series would hold millions of them, per series, and combining windows or the partial
//! results of several workers would mean shipping and re-sorting all of them. The sketches here
//! replace that state with a summary that:
//!
//! * has bounded memory regardless of how many values arrive: a [`QuantileSketch`] holds at
//!   most a fixed number of buckets per sign (8 bytes each), a [`DistinctCounter`] at most
//!   4 KiB;
//! * merges exactly: merging two summaries gives bit-for-bit the summary of the union of their
//!   inputs, in any order, so sliding windows, pane combination and cross-worker exchange can
//!   all merge freely without changing results;
//! * states its error: quantile estimates are within relative error α (default 0.5 %) of the
//!   exact Hyndman–Fan type-7 value when the interpolated order statistics share a sign, and
//!   distinct counts are exact up to 256 and then carry a standard error of about 1.6 %.
//!
//! Both types implement `Ord` and `Hash` over their canonical state, as differential dataflow
//! requires of the data it arranges.

mod hll;
mod quantile;

pub use hll::DistinctCounter;
pub use quantile::{DEFAULT_ALPHA, QuantileSketch, quantile_type7};
