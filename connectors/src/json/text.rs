//! Converting scanned spans to values: unescaping strings and parsing numbers.

/// Appends the unescaped content of a JSON string body (the bytes between the quotes, already
/// validated by the scanner) to `out`. Returns `false` for a lone UTF-16 surrogate.
pub fn unescape_into(raw: &str, out: &mut String) -> bool {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let Some(offset) = memchr::memchr(b'\\', &bytes[i..]) else {
            out.push_str(&raw[i..]);
            break;
        };
        out.push_str(&raw[i..i + offset]);
        i += offset;
        let escape = bytes[i + 1];
        i += 2;
        let ch = match escape {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            _ => {
                let high = hex4(&bytes[i..i + 4]);
                i += 4;
                if (0xD800..0xDC00).contains(&high) {
                    if bytes.get(i) != Some(&b'\\') || bytes.get(i + 1) != Some(&b'u') || i + 6 > bytes.len() {
                        return false;
                    }
                    let low = hex4(&bytes[i + 2..i + 6]);
                    if !(0xDC00..0xE000).contains(&low) {
                        return false;
                    }
                    i += 6;
                    let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                    match char::from_u32(code) {
                        Some(c) => c,
                        None => return false,
                    }
                } else {
                    match char::from_u32(high) {
                        Some(c) => c,
                        None => return false,
                    }
                }
            }
        };
        out.push(ch);
    }
    true
}

fn hex4(digits: &[u8]) -> u32 {
    digits.iter().fold(0, |acc, d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => d - b'A' + 10,
        };
        (acc << 4) | u32::from(v)
    })
}

/// Parses a validated JSON number as `f64`; `None` when it overflows to infinity.
pub fn parse_f64(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Parses a validated JSON integer (no fraction or exponent) as `i64`; `None` on overflow.
pub fn parse_i64(text: &str) -> Option<i64> {
    text.parse::<i64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unescape(raw: &str) -> Option<String> {
        let mut out = String::new();
        unescape_into(raw, &mut out).then_some(out)
    }

    #[test]
    fn simple_escapes() {
        assert_eq!(unescape(r#"a\"b\\c\/d\n\t"#).unwrap(), "a\"b\\c/d\n\t");
    }

    #[test]
    fn unicode_escapes_and_surrogate_pairs() {
        assert_eq!(unescape(r"\u00e9t\u00E9").unwrap(), "été");
        assert_eq!(unescape(r"\ud83d\ude00").unwrap(), "😀");
        assert_eq!(unescape(r"\ud83d"), None);
        assert_eq!(unescape(r"\ude00"), None);
        assert_eq!(unescape(r"\ud83d\u0041"), None);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_f64("7.604"), Some(7.604));
        assert_eq!(parse_f64("-1e3"), Some(-1000.0));
        assert_eq!(parse_f64("1e400"), None);
        assert_eq!(parse_i64("1732233600004"), Some(1_732_233_600_004));
        assert_eq!(parse_i64("99999999999999999999"), None);
    }
}
