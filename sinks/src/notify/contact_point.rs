//! The kinds of receiver an alert can go to.
//!
//! Each contact point has its own outbox directory and its own delivery thread, so a receiver
//! that is down (or slow to time out) delays only its own alerts, never the others'.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where an alert is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContactPoint {
    /// A Slack incoming webhook.
    Slack,
    /// Any HTTP endpoint taking the alert event as JSON.
    Webhook,
    /// Mail through an SMTP server.
    Email,
}

impl ContactPoint {
    /// Every contact point, in a fixed order (the order of [`ContactPoint::index`]).
    pub const ALL: [ContactPoint; 3] = [ContactPoint::Slack, ContactPoint::Webhook, ContactPoint::Email];

    /// The name used in the configuration, the outbox directory and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ContactPoint::Slack => "slack",
            ContactPoint::Webhook => "webhook",
            ContactPoint::Email => "email",
        }
    }

    /// Position in [`ContactPoint::ALL`], for per-contact-point arrays.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ContactPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
