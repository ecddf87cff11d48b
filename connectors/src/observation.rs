//! What the decoder hands to the dataflow.

use serde::{Deserialize, Serialize};
use tidemark_schemas::SeriesId;

/// One value of one series at one event time: 40 bytes, no strings, so moving it between
/// workers is a copy. The series' key travels once, as a [`SeriesInfo`]; what the series
/// tracks travels with every observation, so the aggregator never waits for the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The series.
    pub series: SeriesId,
    /// Event time, epoch milliseconds.
    pub ts: i64,
    /// The value (finite).
    pub value: f64,
    /// xxh3-64 of the item counted by `distinct` (meaningful when `tracking.distinct`).
    pub distinct_hash: u64,
    /// What the series tracks.
    pub tracking: Tracking,
}

/// Which optional aggregates a series tracks (they cost memory, so only where asked for).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Tracking {
    /// p50/p95/p99.
    pub quantiles: bool,
    /// Distinct count.
    pub distinct: bool,
    /// Every value is 1 (the metric counts events): analytics look at the count, not the mean.
    pub counted: bool,
}

/// The first sighting of a series by a decoder: its key and what it tracks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesInfo {
    /// The series.
    pub series: SeriesId,
    /// Its canonical key.
    pub key: String,
    /// What it tracks.
    pub tracking: Tracking,
}

/// Receives what the decoder finds in a line.
pub trait ObservationSink {
    /// A series this decoder has not reported before.
    fn series(&mut self, info: SeriesInfo);
    /// One observation.
    fn observation(&mut self, observation: Observation);
}
