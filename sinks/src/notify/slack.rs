//! Slack incoming webhooks: a message with a one-line `text` (what notifications and
//! screen readers show) and an attachment whose colour stripe says the severity, holding
//! Block Kit sections with the summary, the numbers and the alert id.
//!
//! Text is Slack `mrkdwn`, where `&`, `<` and `>` must be escaped; sizes stay below Slack's
//! limits (3000 characters per section, 2000 per field, 10 fields).

use super::format::{self, truncate};
use super::http::HttpTarget;
use super::transport::{Outcome, Transport};
use serde_json::{Value, json};
use tidemark_schemas::{AlertEvent, AlertState, Severity};

/// Posts to one Slack incoming webhook.
pub struct Slack {
    http: HttpTarget,
}

impl Slack {
    /// A transport posting through `http`, whose URL is a secret and never logged.
    pub fn new(http: HttpTarget) -> Self {
        Slack { http }
    }
}

impl Transport for Slack {
    fn send(&mut self, event: &AlertEvent) -> Outcome {
        let body = serde_json::to_vec(&payload(event)).expect("JSON values serialize");
        self.http.post_json(&body, &[])
    }

    fn target(&self) -> &str {
        "the Slack incoming webhook"
    }
}

/// Escapes the three characters Slack's mrkdwn reserves.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The attachment's colour stripe: green once resolved, else by severity.
fn color(event: &AlertEvent) -> &'static str {
    match (event.state, event.severity) {
        (AlertState::Resolved, _) => "#2EB67D",
        (AlertState::Firing, Severity::Critical) => "#E01E5A",
        (AlertState::Firing, Severity::Warning) => "#ECB22E",
        (AlertState::Firing, Severity::Info) => "#36C5F0",
    }
}

fn field(name: &str, value: &str) -> Value {
    json!({ "type": "mrkdwn", "text": format!("*{name}*\n{}", truncate(&escape(value), 1900)) })
}

/// Series named in the message; the rest are counted.
const SERIES_SHOWN: usize = 5;

/// The webhook's JSON body for `event`.
pub fn payload(event: &AlertEvent) -> Value {
    let title = escape(&format::title(event));
    let summary = truncate(&escape(&event.summary), 2500);
    let id = escape(&event.id);
    let mut fields = vec![field("Value", &event.value.to_string())];
    if let Some(threshold) = event.threshold {
        fields.push(field("Threshold", &threshold.to_string()));
    }
    fields.push(field("Started", &format::time(event.started_at_ms)));
    if let Some(ended) = event.ended_at_ms {
        fields.push(field("Resolved", &format::time(ended)));
    }
    if !event.series.is_empty() {
        let mut series: Vec<&str> = event.series.iter().take(SERIES_SHOWN).map(String::as_str).collect();
        let more = event.series.len().saturating_sub(SERIES_SHOWN);
        let more_line = format!("… and {more} more");
        if more > 0 {
            series.push(&more_line);
        }
        fields.push(field("Series", &series.join("\n")));
    }
    json!({
        "text": format!("{title}: {summary} (alert id {id})"),
        "attachments": [{
            "color": color(event),
            "blocks": [
                { "type": "section", "text": { "type": "mrkdwn", "text": format!("*{title}*\n{summary}") } },
                { "type": "section", "fields": fields },
                { "type": "context", "elements": [
                    { "type": "mrkdwn", "text": truncate(&format!("alert id `{id}` · fingerprint `{}`", escape(&event.fingerprint)), 2900) }
                ] }
            ]
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn event() -> AlertEvent {
        AlertEvent {
            id: "a1".into(),
            fingerprint: "f1".into(),
            rule: "latency<high>".into(),
            severity: Severity::Warning,
            state: AlertState::Firing,
            labels: BTreeMap::from([("service".to_string(), "auth&co".to_string())]),
            series: (0..7).map(|i| format!("s{i}")).collect(),
            summary: "p95 > 250".into(),
            value: 412.5,
            threshold: Some(250.0),
            started_at_ms: 0,
            ended_at_ms: None,
        }
    }

    #[test]
    fn payload_escapes_colours_and_names_the_id() {
        let body = payload(&event());
        assert_eq!(
            body["text"],
            "FIRING warning: latency&lt;high&gt; {service=auth&amp;co}: p95 &gt; 250 (alert id a1)"
        );
        let attachment = &body["attachments"][0];
        assert_eq!(attachment["color"], "#ECB22E");
        let fields = attachment["blocks"][1]["fields"].as_array().unwrap();
        assert_eq!(fields[0]["text"], "*Value*\n412.5");
        assert_eq!(fields[1]["text"], "*Threshold*\n250");
        assert!(fields[3]["text"].as_str().unwrap().ends_with("s4\n… and 2 more"));
        assert!(
            attachment["blocks"][2]["elements"][0]["text"]
                .as_str()
                .unwrap()
                .contains("`a1`")
        );

        let mut resolved = event();
        resolved.state = AlertState::Resolved;
        resolved.ended_at_ms = Some(60_000);
        let body = payload(&resolved);
        assert_eq!(body["attachments"][0]["color"], "#2EB67D");
        assert!(body["text"].as_str().unwrap().starts_with("RESOLVED warning:"));
    }
}
