//! tidemark's dataflows, on timely and differential dataflow.
//!
//! The job ([`job`]) wires a per-worker [`source`] (read, decode, stamp with event time, hold
//! the frontier at the watermark) into the window operator ([`aggregate`]: tumbling windows of
//! every size, rollups from closed partials) and the corrections dataflow ([`corrections`]:
//! late events re-emit closed windows as upserts, maintained incrementally by differential).
//! [`partial`] is the mergeable window state and [`sketch`] its quantile and distinct-count
//! sketches; [`windows`] holds the windowing settings.

pub mod aggregate;
pub mod analytics;
pub mod anomaly;
pub mod corrections;
pub mod forecast;
pub mod job;
pub mod partial;
pub mod sketch;
pub mod source;
pub mod stats;
pub mod windows;

pub use analytics::AnalyticsSettings;
pub use job::{JobSettings, JobSummary, run_job};
pub use stats::{PartitionProgress, PipelineStats};
pub use windows::{LatePolicy, WindowSettings};
