//! Timestamps in requests: epoch milliseconds or RFC 3339 text, whichever a client has handy.

use super::error::ApiError;
use serde::Deserialize;
use std::time::{SystemTime, UNIX_EPOCH};

/// A timestamp as clients send it.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Timestamp {
    /// Epoch milliseconds.
    Millis(i64),
    /// RFC 3339, e.g. `2026-11-22T10:00:00Z`.
    Text(String),
}

impl Timestamp {
    /// Epoch milliseconds; `what` names the field in errors.
    pub fn millis(&self, what: &str) -> Result<i64, ApiError> {
        match self {
            Timestamp::Millis(ms) => Ok(*ms),
            Timestamp::Text(text) => parse(text, what),
        }
    }
}

/// Parses epoch milliseconds or RFC 3339 text.
pub fn parse(text: &str, what: &str) -> Result<i64, ApiError> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "{what}: {text:?} is not a timestamp; use epoch milliseconds or RFC 3339 such as 2026-11-22T10:00:00Z"
            ))
        })
}

/// The wall clock in epoch milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_and_rfc3339() {
        assert_eq!(parse("1732233600000", "start").unwrap(), 1_732_233_600_000);
        assert_eq!(parse("2024-11-22T00:00:00Z", "start").unwrap(), 1_732_233_600_000);
        assert!(parse("yesterday", "start").unwrap_err().message.contains("start"));
    }
}
