//! Checks of `[notify]` that serde cannot make: ranges, URLs, addresses, routes, and that
//! every environment variable named is set — so a mistake stops the start-up with the key and
//! the fix instead of surfacing as a failed delivery hours later.

use super::config::{EmailConfig, NotifyConfig, NotifyConfigError, SmtpTls, problem};
use lettre::message::Mailbox;
use std::time::Duration;

fn within(key: &str, value: Duration, min: Duration, max: Duration) -> Result<(), NotifyConfigError> {
    if value < min || value > max {
        let show = |d| humantime_serde::re::humantime::format_duration(d).to_string();
        return Err(problem(
            key,
            format!("{} is outside {}..={}", show(value), show(min), show(max)),
            "use a duration such as \"500ms\", \"1s\" or \"5m\"",
        ));
    }
    Ok(())
}

/// Checks an http(s) URL without echoing it: it may carry a secret.
fn check_url(key: &str, url: &str) -> Result<(), NotifyConfigError> {
    let rest = if let Some(rest) = url.strip_prefix("http://") {
        rest
    } else if let Some(rest) = url.strip_prefix("https://") {
        if !cfg!(feature = "tls") {
            return Err(problem(
                key,
                "https needs TLS support, which this build leaves out",
                "build with `cargo build --release --features tidemark-sinks/tls`, or use http:// to a local receiver",
            ));
        }
        rest
    } else {
        return Err(problem(
            key,
            "is not an http:// or https:// URL",
            "give the receiver's full URL",
        ));
    };
    if rest.is_empty() || rest.starts_with('/') || rest.contains(char::is_whitespace) {
        return Err(problem(
            key,
            "has no host, or contains whitespace",
            "give the receiver's full URL",
        ));
    }
    Ok(())
}

/// An HTTP header name is a token; a value has no control characters (no header injection).
pub(super) fn check_header(key: &str, name: &str, value: &str) -> Result<(), NotifyConfigError> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(problem(
            key,
            format!("\"{name}\" is not a valid header name"),
            "use letters, digits and dashes",
        ));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(problem(
            key,
            format!("the value of {name} contains control characters"),
            "remove newlines and other control characters from the value",
        ));
    }
    Ok(())
}

pub(super) fn mailbox(key: &str, text: &str) -> Result<Mailbox, NotifyConfigError> {
    text.parse().map_err(|e| {
        problem(
            key,
            format!("\"{text}\" is not a mail address: {e}"),
            "write \"name@example.com\" or \"Name <name@example.com>\"",
        )
    })
}

impl NotifyConfig {
    /// Checks what serde cannot, including that every environment variable named is set.
    pub fn validate(&self) -> Result<(), NotifyConfigError> {
        if self.slack.is_none() && self.webhook.is_none() && self.email.is_none() {
            return Err(problem(
                "slack",
                "no contact point is configured",
                "add at least one of [notify.slack], [notify.webhook] and [notify.email]",
            ));
        }
        if self.outbox_dir.as_os_str().is_empty() {
            return Err(problem(
                "outbox_dir",
                "is empty",
                "name a directory, e.g. \"tidemark-out/outbox\"",
            ));
        }
        within(
            "timeout",
            self.timeout,
            Duration::from_millis(100),
            Duration::from_secs(600),
        )?;
        let retry = &self.retry;
        within(
            "retry.initial_backoff",
            retry.initial_backoff,
            Duration::from_millis(1),
            Duration::from_secs(600),
        )?;
        within(
            "retry.max_backoff",
            retry.max_backoff,
            retry.initial_backoff,
            Duration::from_secs(86_400),
        )?;
        if !(0.0..=1.0).contains(&retry.jitter) {
            return Err(problem(
                "retry.jitter",
                format!("{} is outside 0..=1", retry.jitter),
                "use 0.5 (each delay drawn from the upper half of its step), or 0 for none",
            ));
        }
        if self.slack.is_some() {
            check_url("slack.url", &self.slack_url()?)?;
        }
        if let Some(webhook) = &self.webhook {
            check_url("webhook.url", &webhook.url)?;
            self.webhook_headers()?;
        }
        if let Some(email) = &self.email {
            self.validate_email(email)?;
        }
        self.validate_routes()
    }

    fn validate_email(&self, email: &EmailConfig) -> Result<(), NotifyConfigError> {
        if email.smtp_host.trim().is_empty() {
            return Err(problem(
                "email.smtp_host",
                "is empty",
                "name the SMTP server, e.g. \"smtp.example.com\"",
            ));
        }
        if email.port() == 0 {
            return Err(problem(
                "email.smtp_port",
                "is 0",
                "leave it out for the default of the tls mode",
            ));
        }
        if email.tls != SmtpTls::None && !cfg!(feature = "tls") {
            return Err(problem(
                "email.tls",
                "STARTTLS and TLS need TLS support, which this build leaves out",
                "build with `cargo build --release --features tidemark-sinks/tls`, or use tls = \"none\" to a local relay",
            ));
        }
        mailbox("email.from", &email.from)?;
        if email.to.is_empty() {
            return Err(problem("email.to", "is empty", "list at least one recipient"));
        }
        for (i, to) in email.to.iter().enumerate() {
            mailbox(&format!("email.to[{i}]"), to)?;
        }
        self.smtp_credentials()?;
        Ok(())
    }

    fn validate_routes(&self) -> Result<(), NotifyConfigError> {
        for (i, route) in self.routes.iter().enumerate() {
            if route.to.is_empty() {
                return Err(problem(
                    format!("routes[{i}].to"),
                    "is empty",
                    "name contact points, or drop the route (severities without a route are not delivered)",
                ));
            }
            if let Some(missing) = route.to.iter().find(|cp| !self.configured(**cp)) {
                return Err(problem(
                    format!("routes[{i}].to"),
                    format!("\"{missing}\" is not configured"),
                    format!("add [notify.{missing}], or remove it from the route"),
                ));
            }
        }
        Ok(())
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
    fn mistakes_name_the_key() {
        let cases = [
            ("", "slack"),
            (&format!("timeout = \"1ms\"\n{WEBHOOK}"), "timeout"),
            (&format!("[retry]\njitter = 2.0\n{WEBHOOK}"), "retry.jitter"),
            (
                &format!("[retry]\ninitial_backoff = \"10s\"\nmax_backoff = \"1s\"\n{WEBHOOK}"),
                "retry.max_backoff",
            ),
            ("[webhook]\nurl = \"127.0.0.1:9\"\n", "webhook.url"),
            (
                "[webhook]\nurl = \"http://h/\"\nheaders = { \"X Bad\" = \"v\" }\n",
                "webhook.headers",
            ),
            ("[slack]\n", "slack.url_env"),
            ("[slack]\nurl_env = \"TIDEMARK_TEST_UNSET_SLACK\"\n", "slack.url_env"),
            (
                &format!("{WEBHOOK}[[routes]]\nseverity = \"info\"\nto = [\"email\"]\n"),
                "routes[0].to",
            ),
            (
                &format!("{WEBHOOK}[[routes]]\nseverity = \"info\"\nto = []\n"),
                "routes[0].to",
            ),
            (
                "[email]\nsmtp_host = \"h\"\ntls = \"none\"\nfrom = \"not an address\"\nto = [\"c@d.test\"]\n",
                "email.from",
            ),
            (
                "[email]\nsmtp_host = \"h\"\ntls = \"none\"\nfrom = \"a@b.test\"\nto = []\n",
                "email.to",
            ),
            (
                "[email]\nsmtp_host = \"h\"\ntls = \"none\"\nfrom = \"a@b.test\"\nto = [\"c@d.test\"]\nusername_env = \"U\"\n",
                "email.password_env",
            ),
        ];
        for (text, key) in cases {
            let err = parse(text).validate().unwrap_err();
            assert_eq!(err.key, key, "{text}: {err}");
            assert!(err.to_string().starts_with(&format!("notify.{key}: ")), "{err}");
        }
    }

    #[test]
    fn secrets_in_the_file_are_refused_and_urls_are_not_echoed() {
        let err = toml::from_str::<NotifyConfig>(
            "[email]\nsmtp_host = \"h\"\npassword = \"x\"\nfrom = \"a@b.test\"\nto = []\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `password`"), "{err}");
        let err = parse("[slack]\nurl = \"hooks.example/T000/B000/XXXX\"\n")
            .validate()
            .unwrap_err();
        assert!(!err.to_string().contains("XXXX"), "{err}");
    }

    #[test]
    fn tls_modes_without_the_tls_feature_name_the_fix() {
        let config = parse("[email]\nsmtp_host = \"h\"\nfrom = \"a@b.test\"\nto = [\"c@d.test\"]\n");
        assert_eq!(config.email.as_ref().unwrap().port(), 587);
        if cfg!(feature = "tls") {
            config.validate().unwrap();
        } else {
            let err = config.validate().unwrap_err();
            assert_eq!(err.key, "email.tls", "{err}");
            assert!(err.fix.contains("--features tidemark-sinks/tls"), "{err}");
        }
    }
}
