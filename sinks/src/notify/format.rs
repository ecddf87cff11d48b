//! Text shared by the Slack message and the email, so both read the same.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};
use tidemark_schemas::{AlertEvent, AlertState, Severity};

/// `FIRING` or `RESOLVED`.
pub fn state(state: AlertState) -> &'static str {
    match state {
        AlertState::Firing => "FIRING",
        AlertState::Resolved => "RESOLVED",
    }
}

/// `info`, `warning` or `critical`, as in the configuration.
pub fn severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

/// `{service=auth,zone=eu}`, the way series keys print tags; empty without labels.
pub fn labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", pairs.join(","))
}

/// `FIRING critical: high_latency {service=auth}`: what the alert is, in one line.
pub fn title(event: &AlertEvent) -> String {
    let mut title = format!("{} {}: {}", state(event.state), severity(event.severity), event.rule);
    let labels = labels(&event.labels);
    if !labels.is_empty() {
        title.push(' ');
        title.push_str(&labels);
    }
    title
}

/// An epoch-ms time as RFC 3339 UTC (`2024-11-22T00:00:00.000Z`).
pub fn time(ms: i64) -> String {
    match u64::try_from(ms) {
        Ok(ms) => {
            humantime_serde::re::humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        }
        Err(_) => format!("{ms} ms since the epoch"),
    }
}

/// The alert id as a header token: bytes outside `[A-Za-z0-9_-]` percent-encoded, so any id
/// fits a `Message-ID` or an HTTP header and different ids stay different. The ids tidemark
/// makes need no encoding.
pub fn header_token(id: &str) -> String {
    let mut token = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            token.push(byte as char);
        } else {
            token.push_str(&format!("%{byte:02X}"));
        }
    }
    token
}

/// `text` cut to at most `max` characters, with an ellipsis when cut (receivers limit sizes).
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((cut, _)) if text.chars().count() > max => format!("{}…", &text[..cut]),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_times_tokens_and_cuts() {
        let mut labels_map = BTreeMap::new();
        assert_eq!(labels(&labels_map), "");
        labels_map.insert("zone".to_string(), "eu".to_string());
        labels_map.insert("service".to_string(), "auth".to_string());
        assert_eq!(labels(&labels_map), "{service=auth,zone=eu}");
        assert_eq!(time(1_732_233_600_000), "2024-11-22T00:00:00.000Z");
        assert_eq!(header_token("a1-b_2"), "a1-b_2");
        assert_eq!(header_token("r@x y%"), "r%40x%20y%25");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abcd", 4), "abcd");
        assert_eq!(truncate("ééééé", 3), "éé…");
    }
}
