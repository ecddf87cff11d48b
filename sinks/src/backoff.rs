//! Exponential backoff with jitter between retries, shared by the InfluxDB writer and the
//! alert notifiers.
//!
//! Delays double from the initial delay up to the maximum, and a fraction of each is random:
//! when a server comes back, the retries of every tidemark process do not hit it in the same
//! instant. The notifiers keep one backoff per receiver across alerts and `reset` it after a
//! delivery; the InfluxDB writer keeps one per batch.

use std::time::Duration;

/// The delays between attempts at one receiver.
pub struct Backoff {
    initial: Duration,
    next: Duration,
    max: Duration,
    jitter: f64,
    rng: u64,
}

impl Backoff {
    /// Starts at `initial`, doubling up to `max`; a fraction `jitter` of each delay is random.
    /// `seed` makes the jitter differ between threads and processes.
    pub fn new(initial: Duration, max: Duration, jitter: f64, seed: u64) -> Self {
        Backoff {
            initial,
            next: initial,
            max,
            jitter,
            rng: seed | 1,
        }
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }

    /// The delay before the next attempt: drawn from `[(1 - jitter) × step, step]`. A
    /// receiver's `Retry-After` wins when it asks for longer (capped at the maximum), so a
    /// rate-limiting receiver gets the pause it asked for.
    pub fn delay(&mut self, retry_after: Option<Duration>) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        let delay = step.mul_f64(1.0 - self.jitter * self.unit());
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
    fn delays_double_within_their_jitter_band_up_to_the_cap_and_reset() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000), 0.5, 7);
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
        backoff.reset();
        assert!(backoff.delay(None) <= Duration::from_millis(100));
    }

    #[test]
    fn without_jitter_delays_are_exact_and_retry_after_is_capped() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5), 0.0, 3);
        assert_eq!(backoff.delay(None), Duration::from_secs(1));
        assert_eq!(backoff.delay(None), Duration::from_secs(2));
        assert_eq!(backoff.delay(Some(Duration::from_secs(3))), Duration::from_secs(4));
        assert_eq!(backoff.delay(Some(Duration::from_secs(60))), Duration::from_secs(5));
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(5), 0.5, 1);
        assert_eq!(backoff.delay(Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert_eq!(backoff.delay(Some(Duration::from_secs(60))), Duration::from_secs(5));
    }

    #[test]
    fn writers_with_different_seeds_spread_out() {
        let delays: Vec<_> = (1..6)
            .map(|seed| Backoff::new(Duration::from_secs(1), Duration::from_secs(1), 0.5, seed).delay(None))
            .collect();
        let first = delays[0];
        assert!(delays.iter().any(|d| *d != first), "{delays:?}");
    }
}
