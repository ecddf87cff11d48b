//! `[notify]`: where alerts go, how hard to try, and where they wait meanwhile.
//!
//! ```toml
//! [notify]
//! outbox_dir = "tidemark-out/outbox"   # one file per (alert event, contact point) until delivered
//! timeout = "10s"                      # per request or SMTP session
//!
//! [notify.retry]                       # connection errors, HTTP 5xx/429/408, SMTP 4xx
//! initial_backoff = "1s"               # doubled per attempt up to max_backoff
//! max_backoff = "5m"
//! jitter = 0.5                         # each delay is drawn from [(1 - jitter) × step, step]
//!
//! [notify.slack]
//! url_env = "SLACK_WEBHOOK_URL"        # the variable holding the incoming-webhook URL
//!
//! [notify.webhook]
//! url = "https://alerts.example.com/tidemark"
//! headers = { "X-Team" = "sre" }
//! headers_env = { "Authorization" = "ALERT_WEBHOOK_AUTH" }   # header values read from variables
//!
//! [notify.email]
//! smtp_host = "smtp.example.com"
//! tls = "starttls"                     # none | starttls | tls; the port defaults to 25 / 587 / 465
//! username_env = "SMTP_USERNAME"
//! password_env = "SMTP_PASSWORD"
//! from = "tidemark <alerts@example.com>"
//! to = ["oncall@example.com"]
//!
//! [[notify.routes]]                    # without routes, every alert goes to every contact point
//! severity = "critical"
//! to = ["slack", "email"]
//! ```
//!
//! Secrets stay out of the file: the Slack URL (its path *is* the credential), secret webhook
//! headers and SMTP credentials are named by environment variable. `[notify.slack] url` is
//! accepted for local receivers, with a warning at start-up.

use super::contact_point::ContactPoint;
use super::validate::check_header;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;
use tidemark_schemas::Severity;

/// The typed `[notify]` section.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Where accepted alerts wait for delivery, and where refused ones are kept (`failed/`).
    pub outbox_dir: PathBuf,
    /// Longest one HTTP request or SMTP session may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Retries of transient failures.
    pub retry: RetryConfig,
    /// A Slack incoming webhook.
    pub slack: Option<SlackConfig>,
    /// A generic JSON webhook.
    pub webhook: Option<WebhookConfig>,
    /// Mail through an SMTP server.
    pub email: Option<EmailConfig>,
    /// Which severities go where; empty: every alert to every configured contact point.
    pub routes: Vec<Route>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            outbox_dir: PathBuf::from("tidemark-out/outbox"),
            timeout: Duration::from_secs(10),
            retry: RetryConfig::default(),
            slack: None,
            webhook: None,
            email: None,
            routes: Vec::new(),
        }
    }
}

/// `[notify.retry]`: exponential backoff with jitter.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Delay before the first retry.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Longest delay between retries.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Fraction of each delay that is random, in [0, 1].
    pub jitter: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            jitter: 0.5,
        }
    }
}

/// `[notify.slack]`: exactly one of `url_env` and `url`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The environment variable holding the incoming-webhook URL.
    pub url_env: Option<String>,
    /// The URL itself: a secret, so meant for local test receivers only.
    pub url: Option<String>,
}

/// `[notify.webhook]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where the alert events are posted.
    pub url: String,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Extra request headers whose values are read from environment variables (header → variable).
    #[serde(default)]
    pub headers_env: BTreeMap<String, String>,
}

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text: only for a relay on the same host or a trusted network.
    None,
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

impl SmtpTls {
    /// The usual port of each mode.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        }
    }
}

/// `[notify.email]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The SMTP server.
    pub smtp_host: String,
    /// Its port; default by `tls`: 25, 587 or 465.
    pub smtp_port: Option<u16>,
    /// Connection security.
    #[serde(default)]
    pub tls: SmtpTls,
    /// The environment variable holding the SMTP user name.
    pub username_env: Option<String>,
    /// The environment variable holding the SMTP password.
    pub password_env: Option<String>,
    /// The sender, e.g. `tidemark <alerts@example.com>`.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
}

impl EmailConfig {
    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.smtp_port.unwrap_or_else(|| self.tls.default_port())
    }
}

/// `[[notify.routes]]`: alerts of `severity` go to the contact points in `to`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The severity this route takes.
    pub severity: Severity,
    /// Where those alerts go.
    pub to: Vec<ContactPoint>,
}

/// A mistake in `[notify]`, naming the key and the fix.
#[derive(Debug, Error, PartialEq)]
#[error("notify.{key}: {problem}; {fix}")]
pub struct NotifyConfigError {
    /// The key under `[notify]`.
    pub key: String,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

pub(super) fn problem(key: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> NotifyConfigError {
    NotifyConfigError {
        key: key.into(),
        problem: problem.into(),
        fix: fix.into(),
    }
}

/// The value of environment variable `name`, named by `key`.
fn env(key: &str, name: &str) -> Result<String, NotifyConfigError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value.trim().to_string()),
        _ => Err(problem(
            key,
            format!("the environment variable {name} is not set or empty"),
            format!("export {name} before starting tidemark (secrets never go in the config file)"),
        )),
    }
}

impl NotifyConfig {
    /// Whether `contact_point` has a section.
    pub fn configured(&self, contact_point: ContactPoint) -> bool {
        match contact_point {
            ContactPoint::Slack => self.slack.is_some(),
            ContactPoint::Webhook => self.webhook.is_some(),
            ContactPoint::Email => self.email.is_some(),
        }
    }

    /// The contact points an alert of `severity` goes to, in [`ContactPoint::ALL`] order.
    pub fn destinations(&self, severity: Severity) -> Vec<ContactPoint> {
        ContactPoint::ALL
            .into_iter()
            .filter(|cp| self.configured(*cp))
            .filter(|cp| {
                self.routes.is_empty()
                    || self
                        .routes
                        .iter()
                        .any(|route| route.severity == severity && route.to.contains(cp))
            })
            .collect()
    }

    /// The Slack webhook URL, from its variable or the file.
    pub fn slack_url(&self) -> Result<String, NotifyConfigError> {
        match self.slack.as_ref().map(|s| (&s.url_env, &s.url)) {
            Some((Some(name), None)) => env("slack.url_env", name),
            Some((None, Some(url))) => Ok(url.clone()),
            Some(_) => Err(problem(
                "slack.url_env",
                "exactly one of url_env and url must be set",
                "set url_env = \"SLACK_WEBHOOK_URL\" and export the webhook URL in that variable",
            )),
            None => Err(problem("slack", "is not configured", "add [notify.slack]")),
        }
    }

    /// The webhook's extra headers, secret ones read from their variables.
    pub fn webhook_headers(&self) -> Result<Vec<(String, String)>, NotifyConfigError> {
        let Some(webhook) = &self.webhook else {
            return Ok(Vec::new());
        };
        let mut headers = Vec::new();
        for (name, value) in &webhook.headers {
            check_header("webhook.headers", name, value)?;
            headers.push((name.clone(), value.clone()));
        }
        for (name, variable) in &webhook.headers_env {
            let value = env("webhook.headers_env", variable)?;
            check_header("webhook.headers_env", name, &value)?;
            headers.push((name.clone(), value));
        }
        Ok(headers)
    }

    /// SMTP user name and password, when the server wants them.
    pub fn smtp_credentials(&self) -> Result<Option<(String, String)>, NotifyConfigError> {
        let Some(email) = &self.email else {
            return Ok(None);
        };
        match (&email.username_env, &email.password_env) {
            (None, None) => Ok(None),
            (Some(user), Some(password)) => Ok(Some((
                env("email.username_env", user)?,
                env("email.password_env", password)?,
            ))),
            _ => Err(problem(
                "email.password_env",
                "username_env and password_env go together",
                "set both (e.g. SMTP_USERNAME and SMTP_PASSWORD), or neither for a server without authentication",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> NotifyConfig {
        toml::from_str(text).expect("valid TOML")
    }

    const WEBHOOK: &str = "[webhook]\nurl = \"http://127.0.0.1:9/hook\"\n";

    #[test]
    fn defaults_apply_and_everything_goes_everywhere_without_routes() {
        let config = parse(&format!(
            "{WEBHOOK}[email]\nsmtp_host = \"127.0.0.1\"\ntls = \"none\"\nfrom = \"a@b.test\"\nto = [\"c@d.test\"]\n"
        ));
        config.validate().unwrap();
        assert_eq!(config.outbox_dir, PathBuf::from("tidemark-out/outbox"));
        assert_eq!(config.retry.initial_backoff, Duration::from_secs(1));
        assert_eq!(config.retry.max_backoff, Duration::from_secs(300));
        assert_eq!(config.email.as_ref().unwrap().port(), 25);
        assert_eq!(
            config.destinations(Severity::Info),
            vec![ContactPoint::Webhook, ContactPoint::Email]
        );
    }

    #[test]
    fn routes_send_each_severity_to_its_contact_points_only() {
        let config = parse(&format!(
            "{WEBHOOK}[slack]\nurl = \"http://127.0.0.1:9/s\"\n\
             [[routes]]\nseverity = \"critical\"\nto = [\"slack\", \"webhook\"]\n\
             [[routes]]\nseverity = \"warning\"\nto = [\"webhook\"]\n"
        ));
        config.validate().unwrap();
        assert_eq!(
            config.destinations(Severity::Critical),
            vec![ContactPoint::Slack, ContactPoint::Webhook]
        );
        assert_eq!(config.destinations(Severity::Warning), vec![ContactPoint::Webhook]);
        assert!(config.destinations(Severity::Info).is_empty());
    }
}
