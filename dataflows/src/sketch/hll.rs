//! Distinct counting: HyperLogLog with an exact sparse phase.
//!
//! Most series see few distinct values per window (a handful of users, status codes, hosts),
//! so a counter starts as an exact sorted set of hashes, which is smaller than the registers
//! and has no error. Only past [`SPARSE_LIMIT`] distinct hashes does it switch to HyperLogLog
//! (Flajolet et al., 2007) with 2¹² one-byte registers: 4 KiB whatever the cardinality, with a
//! standard error of 1.04/√4096 ≈ 1.6 %.
//!
//! Both forms merge exactly (set union, register-wise maximum), so counters from different
//! windows and workers combine in any order into the state a single counter over all the
//! input would have reached.

use serde::{Deserialize, Serialize};

/// Register index bits: m = 2¹² = 4096 registers.
const PRECISION: u32 = 12;

/// Number of registers, m.
const REGISTERS: usize = 1 << PRECISION;

/// Largest register value: 64 − p hash bits after the index, plus one.
const MAX_RANK: u8 = (64 - PRECISION + 1) as u8;

/// Most distinct hashes kept exactly. At 8 bytes each this is half the size of the registers.
const SPARSE_LIMIT: usize = 256;

/// The bias-correction constant α_m for m ≥ 128 (Flajolet et al., figure 3).
const ALPHA_M: f64 = 0.7213 / (1.0 + 1.079 / REGISTERS as f64);

/// Counts distinct items from their 64-bit hashes.
///
/// Exact up to 256 distinct hashes; beyond, a HyperLogLog estimate with p = 12 (standard
/// error [`Self::STANDARD_ERROR`] ≈ 1.6 %). The caller hashes items with a well-mixed 64-bit
/// hash (xxh3); items whose hashes collide count once, which for 64-bit hashes is negligible.
///
/// The state is a function of the set of hashes inserted: the sparse form holds the sorted
/// set itself, and the dense form is only reached once that set exceeds 256. So the derived
/// `Eq`, `Ord` and `Hash` compare summarised sets, as differential dataflow needs, and merging
/// is exactly commutative and associative.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "DistinctCounterWire")]
pub struct DistinctCounter {
    state: State,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum State {
    /// The distinct hashes, sorted ascending, at most [`SPARSE_LIMIT`].
    Sparse(Vec<u64>),
    /// [`REGISTERS`] registers, each the largest rank seen for its index (at most
    /// [`MAX_RANK`]).
    Dense(Vec<u8>),
}

impl Default for State {
    fn default() -> Self {
        State::Sparse(Vec::new())
    }
}

impl DistinctCounter {
    /// Relative standard error of the dense estimate, 1.04/√m.
    pub const STANDARD_ERROR: f64 = 1.04 / 64.0;

    /// An empty counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one item by its 64-bit hash.
    pub fn insert_hash(&mut self, hash: u64) {
        match &mut self.state {
            State::Dense(registers) => observe(registers, hash),
            State::Sparse(hashes) => {
                let Err(position) = hashes.binary_search(&hash) else {
                    return;
                };
                if hashes.len() < SPARSE_LIMIT {
                    hashes.insert(position, hash);
                } else {
                    let mut registers = densify(hashes);
                    observe(&mut registers, hash);
                    self.state = State::Dense(registers);
                }
            }
        }
    }

    /// Adds the items counted by `other`: the result is the counter of the union.
    ///
    /// Two sparse counters stay sparse if their union has at most 256 hashes.
    pub fn merge(&mut self, other: &Self) {
        match (&mut self.state, &other.state) {
            (State::Dense(mine), State::Dense(theirs)) => {
                for (a, &b) in mine.iter_mut().zip(theirs) {
                    *a = (*a).max(b);
                }
            }
            (State::Dense(mine), State::Sparse(theirs)) => {
                theirs.iter().for_each(|&hash| observe(mine, hash));
            }
            (State::Sparse(mine), State::Dense(theirs)) => {
                let mut registers = theirs.clone();
                mine.iter().for_each(|&hash| observe(&mut registers, hash));
                self.state = State::Dense(registers);
            }
            (State::Sparse(mine), State::Sparse(theirs)) => {
                let union = sorted_union(mine, theirs);
                self.state = if union.len() <= SPARSE_LIMIT {
                    State::Sparse(union)
                } else {
                    State::Dense(densify(&union))
                };
            }
        }
    }

    /// The number of distinct hashes: exact while sparse, else the HyperLogLog estimate.
    ///
    /// The dense estimate is `α_m·m² / Σ_j 2^−M[j]`, replaced by linear counting m·ln(m/V)
    /// when it is at most 2.5m and V > 0 registers are still empty. No large-range correction
    /// is needed: with 64-bit hashes, collisions only matter far beyond any realistic count.
    ///
    /// The raw estimate is biased upwards below about 3m (+2.7 % at 2.5m), and near the switch
    /// that bias decides which branch runs: between roughly 10 000 and 11 000 distinct hashes
    /// the error is about 2–3 % rms instead of 1.6 %.
    pub fn estimate(&self) -> u64 {
        match &self.state {
            State::Sparse(hashes) => hashes.len() as u64,
            // A dense counter has seen more than SPARSE_LIMIT distinct hashes, so an estimate
            // below that is known to be low; raising it keeps the count monotone across the
            // switch from exact to estimated.
            State::Dense(registers) => dense_estimate(registers).max(SPARSE_LIMIT as u64 + 1),
        }
    }

    /// Whether [`estimate`](Self::estimate) is exact (at most 256 distinct hashes so far).
    pub fn is_exact(&self) -> bool {
        matches!(self.state, State::Sparse(_))
    }
}

/// Registers for a set of hashes.
fn densify(hashes: &[u64]) -> Vec<u8> {
    let mut registers = vec![0; REGISTERS];
    hashes.iter().for_each(|&hash| observe(&mut registers, hash));
    registers
}

/// Raises the register the hash's top p bits select to the rank of its remaining bits: the
/// position of their first 1 bit, counting from 1.
fn observe(registers: &mut [u8], hash: u64) {
    let index = (hash >> (64 - PRECISION)) as usize;
    // A guard bit just below the 64 − p remaining bits caps the rank at MAX_RANK when they
    // are all zero.
    let rest = (hash << PRECISION) | (1 << (PRECISION - 1));
    let rank = rest.leading_zeros() as u8 + 1;
    registers[index] = registers[index].max(rank);
}

fn dense_estimate(registers: &[u8]) -> u64 {
    let m = REGISTERS as f64;
    let mut sum = 0.0;
    let mut empty = 0usize;
    for &rank in registers {
        // 2^−rank built from its exponent bits: exact, and much cheaper than exp2.
        sum += f64::from_bits((1023 - u64::from(rank)) << 52);
        empty += usize::from(rank == 0);
    }
    let raw = ALPHA_M * m * m / sum;
    let estimate = if raw <= 2.5 * m && empty > 0 {
        m * (m / empty as f64).ln()
    } else {
        raw
    };
    estimate.round() as u64
}

/// The sorted union of two sorted, duplicate-free slices.
fn sorted_union(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut union = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                union.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                union.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                union.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    union.extend_from_slice(&a[i..]);
    union.extend_from_slice(&b[j..]);
    union
}

/// The serialised form of [`DistinctCounter`], checked before it becomes one.
///
/// Counters are read back from checkpoints and other processes; a wrong register count would
/// make inserts panic, and an unsorted or oversized sparse set would break exactness and
/// equality, so both are rejected at the boundary.
#[derive(Deserialize)]
struct DistinctCounterWire {
    state: State,
}

impl TryFrom<DistinctCounterWire> for DistinctCounter {
    type Error = &'static str;

    fn try_from(wire: DistinctCounterWire) -> Result<Self, Self::Error> {
        match &wire.state {
            State::Sparse(hashes) => {
                if hashes.len() > SPARSE_LIMIT {
                    return Err("distinct counter: too many sparse hashes");
                }
                if !hashes.windows(2).all(|pair| pair[0] < pair[1]) {
                    return Err("distinct counter: sparse hashes are not sorted and distinct");
                }
            }
            State::Dense(registers) => {
                if registers.len() != REGISTERS {
                    return Err("distinct counter: wrong number of registers");
                }
                if registers.iter().any(|&rank| rank > MAX_RANK) {
                    return Err("distinct counter: register value out of range");
                }
            }
        }
        Ok(Self { state: wire.state })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    /// The splitmix64 output for state `i`: a bijection on u64, so distinct items give
    /// distinct, well-mixed hashes.
    fn splitmix64(i: u64) -> u64 {
        let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn counter_of(items: impl IntoIterator<Item = u64>) -> DistinctCounter {
        let mut counter = DistinctCounter::new();
        items.into_iter().for_each(|i| counter.insert_hash(splitmix64(i)));
        counter
    }

    fn relative_error(counter: &DistinctCounter, truth: u64) -> f64 {
        (counter.estimate() as f64 - truth as f64).abs() / truth as f64
    }

    #[test]
    fn exact_up_to_the_sparse_limit() {
        let mut counter = DistinctCounter::new();
        assert_eq!(counter.estimate(), 0);
        for i in 1..=SPARSE_LIMIT as u64 {
            counter.insert_hash(splitmix64(i));
            counter.insert_hash(splitmix64(i / 2 + 1)); // a repeat of an earlier item
            assert_eq!(counter.estimate(), i);
            assert!(counter.is_exact());
        }
        counter.insert_hash(splitmix64(0));
        assert!(!counter.is_exact());
        assert!(relative_error(&counter, 257) < 0.05);
    }

    #[test]
    fn within_five_percent_at_scale() {
        for n in [10_000u64, 100_000, 1_000_000] {
            let counter = counter_of(0..n);
            let error = relative_error(&counter, n);
            assert!(error < 0.05, "n={n}: estimate {} ({error:.4})", counter.estimate());
        }
    }

    #[test]
    fn merge_of_disjoint_halves_is_the_union() {
        for n in [200u64, 400, 20_000] {
            let mut merged = counter_of(0..n / 2);
            merged.merge(&counter_of(n / 2..n));
            let union = counter_of(0..n);
            assert_eq!(merged, union, "n={n}");
            assert!(relative_error(&merged, n) < 0.05, "n={n}");
        }
    }

    #[test]
    fn merge_is_commutative() {
        let small_a = counter_of(0..100);
        let small_b = counter_of(50..250);
        let large_a = counter_of(1000..6000);
        let large_b = counter_of(4000..9000);
        let all = [&small_a, &small_b, &counter_of(0..300), &large_a, &large_b];
        for a in all {
            for b in all {
                let mut ab = a.clone();
                ab.merge(b);
                let mut ba = b.clone();
                ba.merge(a);
                assert_eq!(ab, ba);
            }
        }
        let mut sparse = small_a.clone();
        sparse.merge(&small_b);
        assert!(sparse.is_exact());
        assert_eq!(sparse.estimate(), 250);
    }

    #[test]
    fn duplicates_do_not_change_the_state() {
        for n in [100u64, 50_000] {
            let once = counter_of(0..n);
            let twice = counter_of((0..n).chain(0..n));
            assert_eq!(once, twice);
            let mut self_merged = once.clone();
            self_merged.merge(&once);
            assert_eq!(self_merged, once);
        }
    }

    #[test]
    fn ord_is_consistent_with_eq() {
        let counters = [
            DistinctCounter::new(),
            counter_of(0..10),
            counter_of(0..11),
            counter_of(0..1000),
            counter_of(0..1001),
            counter_of(0..1000),
        ];
        for a in &counters {
            for b in &counters {
                assert_eq!(a.cmp(b) == Ordering::Equal, a == b);
                assert_eq!(a.cmp(b), b.cmp(a).reverse());
            }
        }
    }

    #[test]
    fn deserialisation_rejects_inconsistent_state() {
        let ok = |state| DistinctCounter::try_from(DistinctCounterWire { state }).is_ok();
        assert!(ok(State::Sparse(vec![1, 2, 3])));
        assert!(!ok(State::Sparse(vec![2, 1])));
        assert!(!ok(State::Sparse(vec![1, 1])));
        assert!(!ok(State::Sparse((0..=SPARSE_LIMIT as u64).collect())));
        assert!(ok(State::Dense(vec![MAX_RANK; REGISTERS])));
        assert!(!ok(State::Dense(vec![0; REGISTERS - 1])));
        assert!(!ok(State::Dense(vec![MAX_RANK + 1; REGISTERS])));
    }
}
