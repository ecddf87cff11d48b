//! Minimal JSON number/string emitters writing straight into a byte buffer.
//!
//! Events are written field by field with literal key fragments rather than
//! through serde: there is nothing to escape (all strings come from the
//! catalog), and skipping a serializer keeps the hot path allocation-free and
//! several times faster. Floats are printed with a *fixed* number of decimals
//! (`63.0`, `59.90`), which both rounds them the way the schema describes and
//! guarantees a decimal point, so consumers always see a JSON float where a
//! float is documented, never an integer that happens to be whole.

/// Appends raw bytes (a key fragment such as `,"route":"`).
#[inline]
pub(crate) fn raw(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
}

/// Appends an integer.
#[inline]
pub(crate) fn int(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Appends an unsigned integer left-padded with zeros to `width` digits
/// (`t-000123`); wider numbers are printed in full, never truncated.
pub(crate) fn padded(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(v).as_bytes();
    for _ in digits.len()..width {
        out.push(b'0');
    }
    out.extend_from_slice(digits);
}

/// Appends the low `digits` nibbles of `v` as lowercase hex.
pub(crate) fn hex(out: &mut Vec<u8>, v: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        out.push(HEX[((v >> (4 * i)) & 0xF) as usize]);
    }
}

const POW10: [u64; 7] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000];
/// Magnitudes beyond this are clamped: far above any value the generator
/// produces, and small enough that scaling by 10^6 stays exact in i64.
const LIMIT: f64 = 1.0e12;

/// Appends `x` rounded to `decimals` (1..=6) places, e.g. `63.0`, `7.604`.
///
/// Non-finite input is written as `0.0…`: the only NaN that may ever appear
/// is the deliberate one of a malformed line, which is spliced in elsewhere.
pub(crate) fn fixed(out: &mut Vec<u8>, x: f64, decimals: usize) {
    debug_assert!((1..POW10.len()).contains(&decimals));
    let x = if x.is_finite() { x.clamp(-LIMIT, LIMIT) } else { 0.0 };
    let scale = POW10[decimals];
    let scaled = (x * scale as f64).round() as i64;
    if scaled < 0 {
        out.push(b'-');
    }
    let mag = scaled.unsigned_abs();
    out.extend_from_slice(itoa::Buffer::new().format(mag / scale).as_bytes());
    out.push(b'.');
    let mut frac = mag % scale;
    let mut digits = [b'0'; 6];
    for d in digits[..decimals].iter_mut().rev() {
        *d = b'0' + (frac % 10) as u8;
        frac /= 10;
    }
    out.extend_from_slice(&digits[..decimals]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn fixed_rounds_and_always_has_a_point() {
        assert_eq!(s(|o| fixed(o, 59.9, 2)), "59.90");
        assert_eq!(s(|o| fixed(o, 7.6044, 3)), "7.604");
        assert_eq!(s(|o| fixed(o, 63.0, 1)), "63.0");
        assert_eq!(s(|o| fixed(o, 0.05, 1)), "0.1");
        assert_eq!(s(|o| fixed(o, -0.004, 2)), "0.00");
        assert_eq!(s(|o| fixed(o, -2.5, 1)), "-2.5");
        assert_eq!(s(|o| fixed(o, 0.0001, 4)), "0.0001");
        assert_eq!(s(|o| fixed(o, f64::NAN, 2)), "0.00");
        assert_eq!(s(|o| fixed(o, f64::INFINITY, 1)), "0.0");
        assert_eq!(s(|o| fixed(o, 1e300, 1)), "1000000000000.0");
    }

    #[test]
    fn integers_ids_and_hex() {
        assert_eq!(s(|o| int(o, -17)), "-17");
        assert_eq!(s(|o| padded(o, 123, 6)), "000123");
        assert_eq!(s(|o| padded(o, 12_345_678, 6)), "12345678");
        assert_eq!(s(|o| hex(o, 0x9f3a21, 6)), "9f3a21");
        assert_eq!(s(|o| raw(o, ",\"a\":")), ",\"a\":");
    }
}
