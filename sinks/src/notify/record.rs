//! What the outbox files hold.
//!
//! A waiting file is `{"accepted_at_ms": …, "event": {AlertEvent}}`: the event, not a rendered
//! payload, so a restart with a corrected receiver configuration (a new webhook URL, another
//! SMTP relay) sends the waiting alerts the new way. A file in `failed/` adds why it failed.

use super::contact_point::ContactPoint;
use serde::{Deserialize, Serialize};
use tidemark_schemas::AlertEvent;

/// A waiting notification; `E` is `&AlertEvent` when writing and `AlertEvent` when reading.
#[derive(Serialize, Deserialize)]
pub struct Record<E> {
    /// When `accept` took it, epoch ms.
    pub accepted_at_ms: i64,
    /// The alert event.
    pub event: E,
}

/// A notification refused for good, as kept in `failed/`.
#[derive(Serialize)]
pub struct Failure<'a> {
    /// Where it was going.
    pub contact_point: ContactPoint,
    /// When `accept` took it, epoch ms (`None` when the file could not be read).
    pub accepted_at_ms: Option<i64>,
    /// When it was given up, epoch ms.
    pub failed_at_ms: i64,
    /// Attempts made.
    pub attempts: u32,
    /// The HTTP status or SMTP reply code, if the receiver answered.
    pub status: Option<u16>,
    /// The receiver's response (body or SMTP reply), or why the file could not be sent.
    pub response: &'a str,
    /// The event as it was stored: JSON, or the file's text if that was not JSON.
    pub event: serde_json::Value,
}

/// A file that cannot be sent: its contents as JSON (or text) and why.
pub struct Unreadable {
    /// The file's contents.
    pub contents: serde_json::Value,
    /// The parse error.
    pub reason: String,
}

/// Reads a waiting file. A file that does not parse — written by hand, or by a tidemark whose
/// `AlertEvent` had other fields — is reported, not retried: it would never parse.
pub fn decode(bytes: &[u8]) -> Result<Record<AlertEvent>, Unreadable> {
    serde_json::from_slice(bytes).map_err(|e| {
        let contents = serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|value| value.get("event").cloned().or(Some(value)))
            .unwrap_or_else(|| serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()));
        Unreadable {
            contents,
            reason: format!("unreadable outbox file: {e}"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_files_keep_their_contents() {
        let Err(bad) = decode(br#"{"accepted_at_ms": 1, "event": {"id": "x"}}"#) else {
            panic!("an event without its fields parsed");
        };
        assert_eq!(bad.contents["id"], "x");
        assert!(bad.reason.contains("missing field"), "{}", bad.reason);
        let Err(bad) = decode(b"not json") else {
            panic!("text parsed as a record");
        };
        assert_eq!(bad.contents, "not json");
    }
}
