//! Deliberately broken lines, to exercise parsing errors and dead-lettering.
//!
//! A defect is applied to an otherwise valid line after it has been written,
//! by editing the bytes in place; the result is always exactly one line (no
//! newline is ever introduced), because a corrupt record that also broke
//! framing would test something else entirely.

use super::random::Rng;

/// The kinds of damage a line can suffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Defect {
    /// Cut off mid-object, as after a crashed writer: never valid JSON.
    Truncated,
    /// `"ts":"1732233600004"`: valid JSON, wrong type.
    StringForNumber,
    /// `"value":NaN` on a metric line: not JSON at all (JSON has no NaN).
    NanValue,
    /// The `ts` field is missing: valid JSON, fails the schema.
    MissingTs,
}

impl Defect {
    pub(crate) fn pick(rng: &mut Rng) -> Self {
        match rng.below(4) {
            0 => Self::Truncated,
            1 => Self::StringForNumber,
            2 => Self::NanValue,
            _ => Self::MissingTs,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// End (exclusive) of the integer starting at `from`.
fn number_end(line: &[u8], from: usize) -> usize {
    from + line[from..]
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b'-')
        .count()
}

/// Damages the line occupying `out[start..]`. For [`Defect::NanValue`] the
/// line must be a metric (its last field is `value`).
pub(crate) fn corrupt(defect: Defect, out: &mut Vec<u8>, start: usize, rng: &mut Rng) {
    let len = out.len() - start;
    match defect {
        Defect::Truncated => {
            let keep = 1 + rng.below(len as u64 - 1) as usize;
            out.truncate(start + keep);
        }
        Defect::StringForNumber => {
            if let Some(p) = find(&out[start..], b"\"ts\":") {
                let digits = start + p + 5;
                let end = number_end(out, digits);
                out.insert(end, b'"');
                out.insert(digits, b'"');
            }
        }
        Defect::NanValue => {
            if let Some(colon) = out[start..].iter().rposition(|&b| b == b':') {
                out.truncate(start + colon + 1);
                out.extend_from_slice(b"NaN}");
            }
        }
        Defect::MissingTs => {
            if let Some(p) = find(&out[start..], b",\"ts\":") {
                let from = start + p;
                let end = number_end(out, from + 6);
                out.drain(from..end);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"kind":"metric","ts":1732233600004,"metric":"queue.depth","tags":{"region":"us","queue":"emails"},"value":7.604}"#;

    fn apply(d: Defect, seed: u64) -> String {
        let mut out = b"previous line".to_vec();
        let start = out.len();
        out.extend_from_slice(LINE.as_bytes());
        corrupt(d, &mut out, start, &mut Rng::seeded(seed));
        assert!(out.starts_with(b"previous line"));
        String::from_utf8(out[start..].to_vec()).unwrap()
    }

    #[test]
    fn each_defect_breaks_the_line_the_documented_way() {
        assert_eq!(
            apply(Defect::StringForNumber, 0),
            LINE.replace("1732233600004", "\"1732233600004\"")
        );
        assert_eq!(apply(Defect::NanValue, 0), LINE.replace("7.604", "NaN"));
        assert_eq!(apply(Defect::MissingTs, 0), LINE.replace(",\"ts\":1732233600004", ""));
        for seed in 0..200 {
            let t = apply(Defect::Truncated, seed);
            assert!(!t.is_empty() && t.len() < LINE.len() && LINE.starts_with(&t));
        }
    }
}
