//! The cardinality guard: a bound on the series one process keeps, per metric and in total.
//!
//! Every series costs memory for as long as the job runs (open windows, its key, analytics
//! state), so a producer that puts a request id or a timestamp into a tag would otherwise grow
//! the job until it is killed. The guard admits a series the first time a decoder meets it;
//! once a metric holds `max_series_per_metric` series (or the process `max_series`), lines
//! that would open a new series are dead-lettered with reason `cardinality_limit` — counted,
//! logged once, and kept with their bytes — while existing series carry on.
//!
//! The guard is shared by the decoders of all workers of a process and consulted only when a
//! decoder meets a series it has not seen before, never per event of a known series. (During
//! an explosion every refused line takes the lock once; dead-lettering the line costs more.)
//! In a cluster each process guards its own share, so the limits are per process.

use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use tidemark_schemas::SeriesId;

use crate::IdBuildHasher;

/// `[limits]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeriesLimits {
    /// Series one metric may have in this process (default 10 000).
    pub max_series_per_metric: u64,
    /// Series of all metrics together in this process (default 100 000).
    pub max_series: u64,
}

impl Default for SeriesLimits {
    fn default() -> Self {
        SeriesLimits {
            max_series_per_metric: 10_000,
            max_series: 100_000,
        }
    }
}

impl SeriesLimits {
    /// Checks the bounds; the message names the key and the fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_series_per_metric == 0 || self.max_series == 0 {
            return Err(
                "limits.max_series_per_metric and limits.max_series must be at least 1; \
                        the defaults are 10000 and 100000"
                    .into(),
            );
        }
        if self.max_series_per_metric > self.max_series {
            return Err(format!(
                "limits.max_series_per_metric ({}) is above limits.max_series ({}); raise max_series or lower the per-metric limit",
                self.max_series_per_metric, self.max_series
            ));
        }
        Ok(())
    }
}

/// Why a new series was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its metric has `max_series_per_metric` series.
    MetricFull(u64),
    /// The process has `max_series` series.
    ProcessFull(u64),
}

#[derive(Debug, Default)]
struct Admitted {
    series: HashSet<SeriesId, IdBuildHasher>,
    per_metric: HashMap<u64, u64, IdBuildHasher>,
}

/// The shared guard of one process.
#[derive(Debug, Default)]
pub struct CardinalityGuard {
    limits: SeriesLimits,
    admitted: Mutex<Admitted>,
    /// Series admitted so far (for `/metrics`; refused lines are counted as dead letters).
    pub series: AtomicU64,
}

impl CardinalityGuard {
    /// A guard enforcing `limits`.
    pub fn new(limits: SeriesLimits) -> Self {
        CardinalityGuard {
            limits,
            ..CardinalityGuard::default()
        }
    }

    /// The limits enforced.
    pub fn limits(&self) -> SeriesLimits {
        self.limits
    }

    /// Admits `series` of the metric whose name hashes to `metric`, or says why not. A series
    /// admitted before (by any worker) is admitted again.
    pub fn admit(&self, series: SeriesId, metric: u64) -> Result<(), Refusal> {
        let mut admitted = self.admitted.lock().unwrap_or_else(PoisonError::into_inner);
        if admitted.series.contains(&series) {
            return Ok(());
        }
        let count = admitted.per_metric.get(&metric).copied().unwrap_or(0);
        let refusal = if count >= self.limits.max_series_per_metric {
            Some(Refusal::MetricFull(self.limits.max_series_per_metric))
        } else if admitted.series.len() as u64 >= self.limits.max_series {
            Some(Refusal::ProcessFull(self.limits.max_series))
        } else {
            None
        };
        if let Some(refusal) = refusal {
            return Err(refusal);
        }
        admitted.series.insert(series);
        *admitted.per_metric.entry(metric).or_insert(0) += 1;
        self.series.fetch_add(1, Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_apply_per_metric_then_per_process() {
        let guard = CardinalityGuard::new(SeriesLimits {
            max_series_per_metric: 2,
            max_series: 3,
        });
        let id = SeriesId;
        assert_eq!(guard.admit(id(1), 10), Ok(()));
        assert_eq!(guard.admit(id(2), 10), Ok(()));
        assert_eq!(guard.admit(id(3), 10), Err(Refusal::MetricFull(2)));
        assert_eq!(guard.admit(id(1), 10), Ok(()), "known series stay admitted");
        assert_eq!(guard.admit(id(4), 11), Ok(()));
        assert_eq!(guard.admit(id(5), 12), Err(Refusal::ProcessFull(3)));
        assert_eq!(guard.series.load(Relaxed), 3);
    }

    #[test]
    fn validation_names_the_keys() {
        let zero = SeriesLimits {
            max_series_per_metric: 0,
            ..SeriesLimits::default()
        };
        assert!(zero.validate().unwrap_err().contains("limits.max_series_per_metric"));
        let inverted = SeriesLimits {
            max_series_per_metric: 10,
            max_series: 5,
        };
        assert!(inverted.validate().unwrap_err().contains("limits.max_series"));
        assert!(SeriesLimits::default().validate().is_ok());
    }
}
