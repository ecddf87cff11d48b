//! The scanner proper: one pass over a line, recording member spans.

use tidemark_schemas::DeadLetterReason;

/// Deepest nesting accepted; deeper input is dead-lettered as `too_deep` rather than risking
/// the stack or quadratic work.
pub const MAX_DEPTH: usize = 32;

/// A byte range of the scanned line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// The spanned text.
    pub fn of<'a>(&self, line: &'a str) -> &'a str {
        &line[self.start as usize..self.end as usize]
    }
}

/// A member's value, by position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// A string: the span excludes the quotes; `escaped` says whether it contains `\`.
    Str { span: Span, escaped: bool },
    /// A number: `integer` when it has neither fraction nor exponent.
    Num { span: Span, integer: bool },
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// An object whose members are `nested[first..first + len]` of the scan.
    Object { first: u32, len: u32 },
    /// An array, or an object nested below the second level: validated, not recorded.
    Skipped,
}

/// One `"key": value` member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// The key, without quotes.
    pub key: Span,
    /// Whether the key contains escapes.
    pub key_escaped: bool,
    /// The value.
    pub value: Value,
}

/// A scan failure: the dead-letter reason and what was wrong where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanError {
    /// `invalid_json`, `too_deep`, `duplicate_key` or `non_finite`.
    pub reason: DeadLetterReason,
    /// What was found.
    pub detail: &'static str,
    /// Byte offset in the line.
    pub offset: usize,
}

/// The reusable result of scanning one line: top-level members and second-level members.
#[derive(Debug, Default)]
pub struct ObjectScan {
    /// Members of the top-level object, in input order.
    pub members: Vec<Member>,
    /// Members of objects nested one level down (see [`Value::Object`]).
    pub nested: Vec<Member>,
    scratch_a: String,
    scratch_b: String,
}

impl ObjectScan {
    /// Scans `line`, which must be one JSON object (surrounding whitespace allowed).
    pub fn scan(&mut self, line: &str) -> Result<(), ScanError> {
        self.members.clear();
        self.nested.clear();
        let mut cursor = Cursor {
            bytes: line.as_bytes(),
            pos: 0,
        };
        cursor.skip_ws();
        if cursor.peek() != Some(b'{') {
            return Err(cursor.error(DeadLetterReason::InvalidJson, "expected a JSON object"));
        }
        self.object(&mut cursor, 1)?;
        cursor.skip_ws();
        if cursor.pos != cursor.bytes.len() {
            return Err(cursor.error(DeadLetterReason::InvalidJson, "trailing characters after the object"));
        }
        self.check_duplicates(line)
    }

    /// The top-level member named `key`.
    pub fn get(&self, line: &str, key: &str) -> Option<Value> {
        find(&self.members, line, key)
    }

    /// The members of a nested object value.
    pub fn nested_members(&self, first: u32, len: u32) -> &[Member] {
        &self.nested[first as usize..(first + len) as usize]
    }

    fn object(&mut self, cursor: &mut Cursor<'_>, depth: usize) -> Result<(), ScanError> {
        cursor.pos += 1;
        cursor.skip_ws();
        if cursor.peek() == Some(b'}') {
            cursor.pos += 1;
            return Ok(());
        }
        loop {
            cursor.skip_ws();
            if cursor.peek() != Some(b'"') {
                return Err(cursor.error(DeadLetterReason::InvalidJson, "expected a member name"));
            }
            let (key, key_escaped) = cursor.string()?;
            cursor.skip_ws();
            if cursor.peek() != Some(b':') {
                return Err(cursor.error(DeadLetterReason::InvalidJson, "expected ':' after a member name"));
            }
            cursor.pos += 1;
            cursor.skip_ws();
            let value = if depth == 1 && cursor.peek() == Some(b'{') {
                self.nested_object(cursor)?
            } else {
                cursor.value(depth)?
            };
            let member = Member {
                key,
                key_escaped,
                value,
            };
            if depth == 1 {
                self.members.push(member);
            } else {
                self.nested.push(member);
            }
            cursor.skip_ws();
            match cursor.peek() {
                Some(b',') => cursor.pos += 1,
                Some(b'}') => {
                    cursor.pos += 1;
                    return Ok(());
                }
                _ => return Err(cursor.error(DeadLetterReason::InvalidJson, "expected ',' or '}'")),
            }
        }
    }

    fn nested_object(&mut self, cursor: &mut Cursor<'_>) -> Result<Value, ScanError> {
        let first = self.nested.len() as u32;
        self.object(cursor, 2)?;
        Ok(Value::Object {
            first,
            len: self.nested.len() as u32 - first,
        })
    }

    fn check_duplicates(&mut self, line: &str) -> Result<(), ScanError> {
        let (scratch_a, scratch_b) = (&mut self.scratch_a, &mut self.scratch_b);
        let nested = self.members.iter().filter_map(|m| match m.value {
            Value::Object { first, len } => Some(&self.nested[first as usize..(first + len) as usize]),
            _ => None,
        });
        for group in std::iter::once(&self.members[..]).chain(nested) {
            for (i, a) in group.iter().enumerate() {
                for b in &group[i + 1..] {
                    if same_key(line, a, b, scratch_a, scratch_b) {
                        return Err(ScanError {
                            reason: DeadLetterReason::DuplicateKey,
                            detail: "a member name appears twice in one object",
                            offset: b.key.start as usize,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// Finds the member named `key` (keys with escapes are compared after unescaping).
pub(crate) fn find(members: &[Member], line: &str, key: &str) -> Option<Value> {
    members.iter().find(|m| key_equals(line, m, key)).map(|m| m.value)
}

fn key_equals(line: &str, member: &Member, key: &str) -> bool {
    let raw = member.key.of(line);
    if !member.key_escaped {
        return raw == key;
    }
    let mut decoded = String::new();
    super::unescape_into(raw, &mut decoded) && decoded == key
}

fn same_key(line: &str, a: &Member, b: &Member, sa: &mut String, sb: &mut String) -> bool {
    let (ra, rb) = (a.key.of(line), b.key.of(line));
    if !a.key_escaped && !b.key_escaped {
        return ra == rb;
    }
    sa.clear();
    sb.clear();
    super::unescape_into(ra, sa) && super::unescape_into(rb, sb) && sa == sb
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn error(&self, reason: DeadLetterReason, detail: &'static str) -> ScanError {
        ScanError {
            reason,
            detail,
            offset: self.pos,
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Scans a string starting at its opening quote; returns the body span.
    fn string(&mut self) -> Result<(Span, bool), ScanError> {
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        loop {
            let Some(offset) = memchr::memchr2(b'"', b'\\', &self.bytes[self.pos..]) else {
                return Err(self.error(DeadLetterReason::InvalidJson, "unterminated string"));
            };
            let stop = self.pos + offset;
            if let Some(bad) = self.bytes[self.pos..stop].iter().position(|&b| b < 0x20) {
                self.pos += bad;
                return Err(self.error(DeadLetterReason::InvalidJson, "control character in a string"));
            }
            self.pos = stop;
            if self.bytes[stop] == b'"' {
                let span = Span {
                    start: start as u32,
                    end: stop as u32,
                };
                self.pos += 1;
                return Ok((span, escaped));
            }
            escaped = true;
            self.escape()?;
        }
    }

    fn escape(&mut self) -> Result<(), ScanError> {
        match self.bytes.get(self.pos + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 2;
                Ok(())
            }
            Some(b'u') => {
                let digits = self.bytes.get(self.pos + 2..self.pos + 6);
                if digits.is_some_and(|d| d.iter().all(u8::is_ascii_hexdigit)) {
                    self.pos += 6;
                    Ok(())
                } else {
                    Err(self.error(DeadLetterReason::InvalidJson, "bad \\u escape"))
                }
            }
            _ => Err(self.error(DeadLetterReason::InvalidJson, "bad escape in a string")),
        }
    }

    fn literal(&mut self, word: &[u8], value: Value) -> Result<Value, ScanError> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error(DeadLetterReason::InvalidJson, "unexpected characters"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ScanError> {
        match self.peek() {
            Some(b'"') => {
                let (span, escaped) = self.string()?;
                Ok(Value::Str { span, escaped })
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b'N' | b'I') => Err(self.error(DeadLetterReason::NonFinite, "NaN or Infinity is not a JSON number")),
            Some(b'{' | b'[') => {
                self.skip_container(depth + 1)?;
                Ok(Value::Skipped)
            }
            Some(_) => Err(self.error(
                DeadLetterReason::InvalidJson,
                "unexpected character where a value was expected",
            )),
            None => Err(self.error(DeadLetterReason::InvalidJson, "line ends where a value was expected")),
        }
    }

    /// Validates an array or object below the recorded levels without recording it.
    fn skip_container(&mut self, depth: usize) -> Result<(), ScanError> {
        if depth > MAX_DEPTH {
            return Err(self.error(DeadLetterReason::TooDeep, "nesting deeper than 32 levels"));
        }
        let is_object = self.peek() == Some(b'{');
        let close = if is_object { b'}' } else { b']' };
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            if is_object {
                if self.peek() != Some(b'"') {
                    return Err(self.error(DeadLetterReason::InvalidJson, "expected a member name"));
                }
                self.string()?;
                self.skip_ws();
                if self.peek() != Some(b':') {
                    return Err(self.error(DeadLetterReason::InvalidJson, "expected ':' after a member name"));
                }
                self.pos += 1;
                self.skip_ws();
            }
            self.value(depth)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(c) if c == close => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.error(DeadLetterReason::InvalidJson, "expected ',' or a closing bracket")),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Value, ScanError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
            if self.peek() == Some(b'I') {
                return Err(self.error(DeadLetterReason::NonFinite, "-Infinity is not a JSON number"));
            }
        }
        let leading_zero = self.peek() == Some(b'0');
        let int_digits = self.digits();
        if int_digits == 0 || (leading_zero && int_digits > 1) {
            return Err(self.error(DeadLetterReason::InvalidJson, "malformed number"));
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            integer = false;
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error(DeadLetterReason::InvalidJson, "malformed number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            integer = false;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error(DeadLetterReason::InvalidJson, "malformed number"));
            }
        }
        Ok(Value::Num {
            span: Span {
                start: start as u32,
                end: self.pos as u32,
            },
            integer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(line: &str) -> Result<ObjectScan, ScanError> {
        let mut s = ObjectScan::default();
        s.scan(line).map(|_| s)
    }

    fn reason(line: &str) -> DeadLetterReason {
        scan(line).expect_err(line).reason
    }

    #[test]
    fn records_members_and_nested_tags() {
        let line =
            r#"{"ts": 1732233600004, "metric": "api", "tags": {"service": "auth", "region": "us"}, "value": 7.604}"#;
        let s = scan(line).unwrap();
        assert_eq!(s.members.len(), 4);
        let Some(Value::Num { span, integer: true }) = s.get(line, "ts") else {
            panic!()
        };
        assert_eq!(span.of(line), "1732233600004");
        let Some(Value::Object { first, len }) = s.get(line, "tags") else {
            panic!()
        };
        let tags: Vec<_> = s
            .nested_members(first, len)
            .iter()
            .map(|m| match m.value {
                Value::Str { span, .. } => (m.key.of(line), span.of(line)),
                _ => panic!(),
            })
            .collect();
        assert_eq!(tags, vec![("service", "auth"), ("region", "us")]);
        let Some(Value::Num { integer: false, .. }) = s.get(line, "value") else {
            panic!()
        };
    }

    #[test]
    fn accepts_valid_odd_json() {
        for line in [
            "{}",
            " { \"a\" : [1, {\"b\": [true, false, null]}], \"c\": -0.5e-3 } ",
            r#"{"a\u0062": "\ud83d\ude00", "x": {"deep": {"deeper": []}}}"#,
        ] {
            scan(line).unwrap_or_else(|e| panic!("{line}: {e:?}"));
        }
    }

    #[test]
    fn rejects_malformed_json_with_reasons() {
        use DeadLetterReason::*;
        let cases = [
            ("", InvalidJson),
            ("[1,2]", InvalidJson),
            (r#"{"a": 1"#, InvalidJson),
            (r#"{"a": 1,}"#, InvalidJson),
            (r#"{"a": 01}"#, InvalidJson),
            (r#"{"a": 1.}"#, InvalidJson),
            (r#"{"a": "x"} x"#, InvalidJson),
            (r#"{"a": "\x"}"#, InvalidJson),
            ("{\"a\": \"tab\there\"}", InvalidJson),
            (r#"{"a": tru}"#, InvalidJson),
            (r#"{"value": NaN}"#, NonFinite),
            (r#"{"value": -Infinity}"#, NonFinite),
            (r#"{"a": 1, "a": 2}"#, DuplicateKey),
            (r#"{"a": 1, "\u0061": 2}"#, DuplicateKey),
            (r#"{"tags": {"k": "1", "k": "2"}}"#, DuplicateKey),
        ];
        for (line, want) in cases {
            assert_eq!(reason(line), want, "{line}");
        }
    }

    #[test]
    fn deep_nesting_is_too_deep_not_a_stack_overflow() {
        let line = format!("{{\"a\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(reason(&line), DeadLetterReason::TooDeep);
        let ok = format!("{{\"a\": {}{}}}", "[".repeat(30), "]".repeat(30));
        scan(&ok).unwrap();
    }
}
