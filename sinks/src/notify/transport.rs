//! One way of sending an alert event, and what came of an attempt.

use super::config::{NotifyConfig, NotifyConfigError};
use super::contact_point::ContactPoint;
use super::email::Email;
use super::http::HttpTarget;
use super::slack::Slack;
use super::webhook::Webhook;
use std::time::Duration;
use tidemark_schemas::AlertEvent;

/// What a receiver made of one attempt.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Taken (HTTP 2xx, SMTP accepted): the outbox file can go.
    Delivered,
    /// Worth retrying: no connection, a timeout, HTTP 5xx/429/408, SMTP 4xx.
    Transient {
        /// Why, for the log.
        reason: String,
        /// How long the receiver asked to wait (`Retry-After`).
        retry_after: Option<Duration>,
    },
    /// Refused for good (other HTTP 4xx, a redirect, SMTP 5xx): retrying would get the same
    /// answer, so the notification moves to `failed/` with the response.
    Refused {
        /// HTTP status or SMTP reply code, when the receiver answered.
        status: Option<u16>,
        /// The receiver's response.
        response: String,
    },
}

/// Sends alert events to one receiver. Runs on that contact point's delivery thread.
pub trait Transport: Send {
    /// One attempt.
    fn send(&mut self, event: &AlertEvent) -> Outcome;
    /// The receiver, for logs: never a secret (not the Slack URL, no query strings).
    fn target(&self) -> &str;
}

/// The transport of a configured contact point, with its secrets read from the environment.
pub fn for_contact_point(cp: ContactPoint, config: &NotifyConfig) -> Result<Box<dyn Transport>, NotifyConfigError> {
    let timeout = config.timeout;
    Ok(match (cp, &config.webhook, &config.email) {
        (ContactPoint::Slack, _, _) => Box::new(Slack::new(HttpTarget::new(config.slack_url()?, timeout))),
        (ContactPoint::Webhook, Some(webhook), _) => Box::new(Webhook::new(
            HttpTarget::new(webhook.url.clone(), timeout),
            &webhook.url,
            config.webhook_headers()?,
        )),
        (ContactPoint::Email, _, Some(email)) => Box::new(Email::new(email, config.smtp_credentials()?, timeout)?),
        (ContactPoint::Webhook | ContactPoint::Email, _, _) => {
            return Err(super::config::problem(
                cp.as_str(),
                "is not configured",
                format!("add [notify.{cp}]"),
            ));
        }
    })
}
