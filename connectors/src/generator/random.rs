//! Pseudo-random numbers and the few distributions the generator samples.
//!
//! We carry our own xoshiro256** (seeded through splitmix64) instead of a
//! `rand` dependency because the generator's output is part of its contract:
//! the same settings must yield the same bytes forever, on every platform and
//! across dependency upgrades. A 60-line PRNG whose algorithm is fixed here is
//! the cheapest way to keep that promise, and it is also faster than a
//! general-purpose RNG behind trait objects.
//!
//! Besides the stream generator [`Rng`] there are stateless hashes
//! ([`hash2`], [`hash3`], [`unit_of`]) used for schedules that every shard
//! must agree on (bursts, anomalies) and for per-entity attributes (a
//! product's price, a host's baseline CPU): those must not depend on which
//! shard happens to ask first.

/// One step of splitmix64: advances `state` and returns a well-mixed output.
///
/// Used to expand a 64-bit seed into xoshiro's 256-bit state, as its authors
/// recommend, so that nearby seeds (42, 43, shard 0, shard 1) give unrelated
/// streams.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    mix64(*state)
}

/// The splitmix64 finaliser: a bijective avalanche mix of one word.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Stateless hash of two words (order matters).
pub(crate) fn hash2(a: u64, b: u64) -> u64 {
    mix64(mix64(a ^ 0x6A09_E667_F3BC_C908) ^ b)
}

/// Stateless hash of three words (order matters).
pub(crate) fn hash3(a: u64, b: u64, c: u64) -> u64 {
    mix64(hash2(a, b) ^ c.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Maps a hash to a uniform float in `[0, 1)` using its top 53 bits.
pub(crate) fn unit_of(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// xoshiro256** stream with a cached spare normal deviate.
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    s: [u64; 4],
    /// Marsaglia's polar method yields normals in pairs; keeping the second
    /// halves the cost of the lognormal latencies that dominate the mix.
    spare_normal: Option<f64>,
}

impl Rng {
    /// Seeds the 256-bit state from splitmix64, so any `u64` (even 0) works.
    pub(crate) fn seeded(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Self { s, spare_normal: None }
    }

    /// Next raw 64-bit output (xoshiro256**).
    pub(crate) fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        unit_of(self.next_u64())
    }

    /// Uniform in `(0, 1]`: safe to take the logarithm of.
    pub(crate) fn open_unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `0..n` (Lemire's multiply-shift; the bias is below
    /// 2^-40 for the small `n` used here, far under anything observable).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform index into a collection of `n > 0` items.
    pub(crate) fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// Uniform in `[lo, hi)`.
    pub(crate) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Standard normal deviate (Marsaglia polar method).
    pub(crate) fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        loop {
            let u = 2.0 * self.unit() - 1.0;
            let v = 2.0 * self.unit() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let f = (-2.0 * s.ln() / s).sqrt();
                self.spare_normal = Some(v * f);
                return u * f;
            }
        }
    }

    /// Normal with the given mean and standard deviation.
    pub(crate) fn gaussian(&mut self, mean: f64, sd: f64) -> f64 {
        mean + sd * self.normal()
    }

    /// Lognormal parameterised by its median, which is how latencies and
    /// sizes are usually described ("p50 is 40 ms, with a long right tail").
    pub(crate) fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// Exponential with the given rate (mean `1 / rate`): Poisson gaps.
    pub(crate) fn exponential(&mut self, rate: f64) -> f64 {
        -self.open_unit().ln() / rate
    }

    /// Poisson count with small mean (Knuth's product method; the generator
    /// only needs means below ~10, where this is both exact and quick).
    pub(crate) fn poisson(&mut self, mean: f64) -> u64 {
        let limit = (-mean).exp();
        let mut k = 0;
        let mut p = self.unit();
        while p > limit && k < 1000 {
            k += 1;
            p *= self.unit();
        }
        k
    }

    /// Index in `0..n` skewed towards 0: `floor(n * u^power)`.
    ///
    /// A cheap stand-in for Zipf: with power 2 the first 10 % of items draw
    /// ~32 % of the picks, with power 3 ~46 %, which is the "few hot products,
    /// long tail" shape analytics demos need, without a lookup table.
    pub(crate) fn skewed(&mut self, n: usize, power: i32) -> usize {
        let i = (n as f64 * self.unit().powi(power)) as usize;
        i.min(n - 1)
    }

    /// Index drawn from cumulative weights (ascending, last entry = total).
    pub(crate) fn weighted(&mut self, cumulative: &[f64]) -> usize {
        let total = cumulative[cumulative.len() - 1];
        let x = self.unit() * total;
        cumulative.iter().position(|&c| x < c).unwrap_or(cumulative.len() - 1)
    }
}

/// Turns weights into the cumulative form [`Rng::weighted`] expects.
pub(crate) const fn cumulative<const N: usize>(weights: [f64; N]) -> [f64; N] {
    let mut out = [0.0; N];
    let mut acc = 0.0;
    let mut i = 0;
    while i < N {
        acc += weights[i];
        out[i] = acc;
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_reference_vector() {
        // Published reference outputs for seed 1234567.
        let mut s = 1_234_567;
        assert_eq!(splitmix64(&mut s), 6_457_827_717_110_365_317);
        assert_eq!(splitmix64(&mut s), 3_203_168_211_198_807_973);
        assert_eq!(splitmix64(&mut s), 9_817_491_932_198_370_423);
    }

    #[test]
    fn streams_are_reproducible_and_seed_sensitive() {
        let a: Vec<u64> = {
            let mut r = Rng::seeded(7);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::seeded(7);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let c: Vec<u64> = {
            let mut r = Rng::seeded(8);
            (0..8).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    fn mean_var(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
        (m, v)
    }

    #[test]
    fn samplers_have_the_documented_moments() {
        let mut r = Rng::seeded(1);
        let n = 200_000;
        let normals: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let (m, v) = mean_var(&normals);
        assert!(m.abs() < 0.01 && (v - 1.0).abs() < 0.02, "normal {m} {v}");

        let exps: Vec<f64> = (0..n).map(|_| r.exponential(4.0)).collect();
        let (m, _) = mean_var(&exps);
        assert!((m - 0.25).abs() < 0.005, "exponential mean {m}");

        let pois: Vec<f64> = (0..n).map(|_| r.poisson(2.5) as f64).collect();
        let (m, v) = mean_var(&pois);
        assert!((m - 2.5).abs() < 0.03 && (v - 2.5).abs() < 0.06, "poisson {m} {v}");

        let mut logs: Vec<f64> = (0..n).map(|_| r.lognormal(40.0, 0.8)).collect();
        logs.sort_by(f64::total_cmp);
        let median = logs[n / 2];
        assert!((median - 40.0).abs() < 1.0, "lognormal median {median}");

        let units: Vec<f64> = (0..n).map(|_| r.unit()).collect();
        assert!(units.iter().all(|&u| (0.0..1.0).contains(&u)));
        let (m, _) = mean_var(&units);
        assert!((m - 0.5).abs() < 0.005);
    }

    #[test]
    fn discrete_pickers_stay_in_range_and_skew() {
        let mut r = Rng::seeded(3);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[r.skewed(10, 2)] += 1;
            assert!(r.below(7) < 7);
        }
        assert!(counts[0] > 3 * counts[9], "{counts:?}");
        let cum = cumulative([1.0, 3.0]);
        let hits = (0..40_000).filter(|_| r.weighted(&cum) == 1).count();
        assert!((hits as f64 / 40_000.0 - 0.75).abs() < 0.01);
    }

    #[test]
    fn hashes_are_order_sensitive_units() {
        assert_ne!(hash2(1, 2), hash2(2, 1));
        assert_ne!(hash3(1, 2, 3), hash3(1, 3, 2));
        let u = unit_of(u64::MAX);
        assert!(u < 1.0);
    }
}
