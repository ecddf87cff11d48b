//! Exponential backoff with jitter between retries.
//!
//! Delays double from the initial delay up to the maximum, and each is drawn uniformly from
//! its upper half ("equal jitter"): when a server comes back, the writers of every tidemark
//! process do not hit it in the same instant, yet no retry comes sooner than half its step.

use std::time::Duration;

/// The delays of one batch's retries.
pub struct Backoff {
    next: Duration,
    max: Duration,
    rng: u64,
}

impl Backoff {
    /// Starts at `initial`, capped at `max`; `seed` makes the jitter differ between writers.
    pub fn new(initial: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            next: initial,
            max,
            rng: seed | 1,
        }
    }

    /// The delay before the next attempt. A server's `Retry-After` wins when it asks for
    /// longer (capped at the maximum), so a rate-limiting server gets the pause it asked for.
    pub fn delay(&mut self, retry_after: Option<Duration>) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        let half = step / 2;
        let jitter = half.mul_f64(self.unit());
        let delay = half + jitter;
        match retry_after {
            Some(asked) if asked > delay => asked.min(self.max),
            _ => delay,
        }
    }

    /// xorshift64*: plenty for spreading retries, and no dependency for it.
    fn unit(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_their_jitter_band_up_to_the_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000), 7);
        let mut step = 100u64;
        for _ in 0..8 {
            let delay = backoff.delay(None).as_millis() as u64;
            assert!(
                (step / 2..=step).contains(&delay),
                "{delay} not in [{}, {step}]",
                step / 2
            );
            step = (step * 2).min(1000);
        }
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(5), 1);
        assert_eq!(backoff.delay(Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert_eq!(backoff.delay(Some(Duration::from_secs(60))), Duration::from_secs(5));
    }

    #[test]
    fn writers_with_different_seeds_spread_out() {
        let delays: Vec<_> = (1..6)
            .map(|seed| Backoff::new(Duration::from_secs(1), Duration::from_secs(1), seed).delay(None))
            .collect();
        let first = delays[0];
        assert!(delays.iter().any(|d| *d != first), "{delays:?}");
    }
}
