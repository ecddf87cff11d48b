//! Window sizes, lateness and what happens to late events.
//!
//! Windows are tumbling and aligned to the Unix epoch: `[start, start + size)` with
//! `start = ts − ts mod size`. The base size (1 minute by default) is computed from events;
//! each rollup size (5m, 15m, 1h, 1d) from the closed windows of the size below it, so sizes
//! must nest: every size a multiple of the one before.
//!
//! The watermark is `max event time − allowed lateness`, per source, combined across workers
//! by timely's frontier (the minimum). A window closes when the combined watermark passes its
//! end; an event whose window has already closed is *late* and, per [`LatePolicy`], either
//! corrects the closed windows (they are re-emitted as upserts) or is dead-lettered.

use serde::Deserialize;
use std::time::Duration;
use thiserror::Error;

/// What to do with an event whose window has already closed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatePolicy {
    /// Fold it into the closed windows and re-emit them as corrections (within the horizon).
    #[default]
    Correct,
    /// Route it to the dead-letter output.
    DeadLetter,
}

/// Windowing settings, as configured under `[pipeline]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowSettings {
    /// The window computed from events (default 1m).
    #[serde(with = "humantime_serde")]
    pub base: Duration,
    /// Rollup sizes computed from closed windows (default 5m, 15m, 1h, 1d).
    #[serde(with = "humantime_list")]
    pub rollups: Vec<Duration>,
    /// How far behind the newest event time the watermark trails (default 2s).
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// What to do with events whose window already closed (default `correct`).
    pub late_policy: LatePolicy,
    /// How long after a window closes corrections are still accepted (default 15m); later
    /// events are dead-lettered as `too_late`. Closed windows are kept this long.
    #[serde(with = "humantime_serde")]
    pub correction_horizon: Duration,
    /// Most values a window keeps for exact quantiles before switching to a sketch.
    pub exact_quantile_limit: usize,
}

impl Default for WindowSettings {
    fn default() -> Self {
        WindowSettings {
            base: Duration::from_secs(60),
            rollups: [300, 900, 3600, 86_400].map(Duration::from_secs).to_vec(),
            allowed_lateness: Duration::from_secs(2),
            late_policy: LatePolicy::Correct,
            correction_horizon: Duration::from_secs(900),
            exact_quantile_limit: 8192,
        }
    }
}

/// A windowing mistake, naming the key and the fix.
#[derive(Debug, Error, PartialEq)]
#[error("pipeline.{key}: {problem}; {fix}")]
pub struct WindowSettingsError {
    /// The key under `[pipeline]`.
    pub key: &'static str,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

/// The longest window size: a century, beyond the range of accepted event times anyway, and
/// small enough that sizes in milliseconds and the window arithmetic on them fit in 64 bits
/// ([`WindowSettings::sizes_ms`] narrows to `u64`; a rollup of `18446744073709551600s` used to
/// pass the nesting check in `u128` and then wrap — found by fuzzing the config loader).
const MAX_WINDOW: Duration = Duration::from_secs(36_525 * 86_400);

impl WindowSettings {
    /// Checks that sizes are whole milliseconds, nest, and that limits are sane.
    pub fn validate(&self) -> Result<(), WindowSettingsError> {
        let err = |key, problem: String, fix: &str| {
            Err(WindowSettingsError {
                key,
                problem,
                fix: fix.into(),
            })
        };
        if self.base.as_millis() == 0 || !self.base.subsec_nanos().is_multiple_of(1_000_000) {
            return err(
                "base",
                format!("{:?} is not a positive whole number of milliseconds", self.base),
                "use e.g. \"1m\"",
            );
        }
        for (key, size) in std::iter::once(("base", &self.base)).chain(self.rollups.iter().map(|s| ("rollups", s))) {
            if *size > MAX_WINDOW {
                return err(
                    key,
                    format!("{size:?} is longer than 100 years"),
                    "use sizes up to days or weeks, e.g. \"1d\"",
                );
            }
        }
        let mut previous = self.base;
        for size in &self.rollups {
            let (p, s) = (previous.as_millis(), size.as_millis());
            if s <= p || s % p != 0 {
                return err(
                    "rollups",
                    format!("{size:?} is not a multiple of the size before it ({previous:?})"),
                    "list rollups in increasing order, each a multiple of the previous, e.g. [\"5m\", \"15m\", \"1h\", \"1d\"]",
                );
            }
            previous = *size;
        }
        if self.allowed_lateness > Duration::from_secs(7 * 86_400) {
            return err(
                "allowed_lateness",
                format!("{:?} is more than a week", self.allowed_lateness),
                "use seconds to minutes: windows stay open this long",
            );
        }
        if self.exact_quantile_limit == 0 || self.exact_quantile_limit > 1 << 24 {
            return err(
                "exact_quantile_limit",
                format!("{} is outside 1..=16777216", self.exact_quantile_limit),
                "the default 8192 keeps 64 KiB per window and series",
            );
        }
        Ok(())
    }

    /// All sizes in milliseconds, base first.
    pub fn sizes_ms(&self) -> Vec<u64> {
        std::iter::once(self.base)
            .chain(self.rollups.iter().copied())
            .map(|d| d.as_millis() as u64)
            .collect()
    }
}

/// The start of the window of `size_ms` containing `ts` (both epoch ms, `ts ≥ 0`).
#[inline]
pub fn window_start(ts: u64, size_ms: u64) -> u64 {
    ts - ts % size_ms
}

mod humantime_list {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Duration>, D::Error> {
        Vec::<String>::deserialize(deserializer)?
            .iter()
            .map(|text| humantime_serde::re::humantime::parse_duration(text).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_to_the_epoch() {
        assert_eq!(window_start(1_732_233_600_004, 60_000), 1_732_233_600_000);
        assert_eq!(window_start(1_732_233_599_999, 60_000), 1_732_233_540_000);
    }

    #[test]
    fn defaults_are_valid_and_nesting_is_enforced() {
        WindowSettings::default().validate().unwrap();
        let bad = WindowSettings {
            rollups: vec![Duration::from_secs(300), Duration::from_secs(420)],
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().key, "rollups");
        let bad = WindowSettings {
            base: Duration::from_micros(1500),
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().key, "base");
    }

    /// Fuzzing regression (`fuzz/fuzz_targets/config_parse.rs`): a huge rollup nested with the
    /// base in `u128` milliseconds but not after `sizes_ms` narrowed it to `u64`.
    #[test]
    fn sizes_beyond_a_century_are_refused() {
        let settings = WindowSettings {
            rollups: vec![Duration::from_secs(18_446_744_073_709_551_600)],
            ..Default::default()
        };
        assert_eq!(settings.validate().unwrap_err().key, "rollups");
        let settings = WindowSettings {
            base: MAX_WINDOW + Duration::from_millis(1),
            rollups: Vec::new(),
            ..Default::default()
        };
        assert_eq!(settings.validate().unwrap_err().key, "base");
        let century = WindowSettings {
            rollups: vec![Duration::from_secs(86_400), MAX_WINDOW],
            ..Default::default()
        };
        century.validate().unwrap();
        let sizes = century.sizes_ms();
        assert!(sizes.windows(2).all(|p| p[1] % p[0] == 0), "{sizes:?}");
    }
}
