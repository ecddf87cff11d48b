//! Mail through SMTP with `lettre`'s blocking transport: one plain-text message per alert
//! event to every configured recipient.
//!
//! The subject reads `[tidemark] FIRING critical: <rule> <labels>` so mail filters and phone
//! notifications carry the gist. The alert id is in `Message-ID` (`<id@tidemark>`: a mail
//! client shows a redelivered alert once) and in `X-Tidemark-Alert-Id` (for scripts), both
//! as [`header_token`]. SMTP 5xx replies are final (the message moves to `failed/` with the
//! reply); 4xx replies and connection problems are retried.

use super::config::{EmailConfig, NotifyConfigError, SmtpTls, problem};
use super::format::{self, header_token};
use super::transport::{Outcome, Transport};
use super::validate::mailbox;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, SinglePart};
use lettre::transport::smtp::SmtpTransportBuilder;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Message, SmtpTransport, Transport as _};
use std::fmt::Write;
use std::time::Duration;
use tidemark_schemas::AlertEvent;

/// The header carrying the alert id.
const ALERT_ID: HeaderName = HeaderName::new_from_ascii_str("X-Tidemark-Alert-Id");

/// Sends alert mail through one SMTP server.
pub struct Email {
    smtp: SmtpTransport,
    from: Mailbox,
    to: Vec<Mailbox>,
    target: String,
}

/// Sets the connection security: STARTTLS that must succeed, or TLS from the first byte.
#[cfg(feature = "tls")]
fn secure(builder: SmtpTransportBuilder, mode: SmtpTls, host: &str) -> Result<SmtpTransportBuilder, NotifyConfigError> {
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    let parameters = || {
        TlsParameters::new(host.to_string()).map_err(|e| {
            problem(
                "email.smtp_host",
                format!("cannot set up TLS for \"{host}\": {e}"),
                "give the server's DNS name, as in its certificate",
            )
        })
    };
    Ok(builder.tls(match mode {
        SmtpTls::None => Tls::None,
        SmtpTls::Starttls => Tls::Required(parameters()?),
        SmtpTls::Tls => Tls::Wrapper(parameters()?),
    }))
}

/// Without a TLS backend lettre speaks plain SMTP only (validation already refused the rest).
#[cfg(not(feature = "tls"))]
fn secure(
    builder: SmtpTransportBuilder,
    mode: SmtpTls,
    _host: &str,
) -> Result<SmtpTransportBuilder, NotifyConfigError> {
    match mode {
        SmtpTls::None => Ok(builder),
        SmtpTls::Starttls | SmtpTls::Tls => Err(problem(
            "email.tls",
            "STARTTLS and TLS need TLS support, which this build leaves out",
            "build with `cargo build --release --features tidemark-sinks/tls`, or use tls = \"none\" to a local relay",
        )),
    }
}

impl Email {
    /// A transport for `config`; each session (connect, send, quit) takes at most `timeout`.
    pub fn new(
        config: &EmailConfig,
        credentials: Option<(String, String)>,
        timeout: Duration,
    ) -> Result<Self, NotifyConfigError> {
        let builder = SmtpTransport::builder_dangerous(config.smtp_host.as_str())
            .port(config.port())
            .timeout(Some(timeout));
        let mut builder = secure(builder, config.tls, &config.smtp_host)?;
        if let Some((user, password)) = credentials {
            builder = builder.credentials(Credentials::new(user, password));
        }
        let to = config
            .to
            .iter()
            .enumerate()
            .map(|(i, to)| mailbox(&format!("email.to[{i}]"), to))
            .collect::<Result<_, _>>()?;
        Ok(Email {
            smtp: builder.build(),
            from: mailbox("email.from", &config.from)?,
            to,
            target: format!("smtp://{}:{}", config.smtp_host, config.port()),
        })
    }
}

impl Transport for Email {
    fn send(&mut self, event: &AlertEvent) -> Outcome {
        let message = match message(event, &self.from, &self.to) {
            Ok(message) => message,
            Err(e) => {
                return Outcome::Refused {
                    status: None,
                    response: format!("building the message: {e}"),
                };
            }
        };
        match self.smtp.send(&message) {
            Ok(_) => Outcome::Delivered,
            Err(e) if e.is_permanent() || e.is_client() => Outcome::Refused {
                status: e.status().map(u16::from),
                response: e.to_string(),
            },
            Err(e) => Outcome::Transient {
                reason: e.to_string(),
                retry_after: None,
            },
        }
    }

    fn target(&self) -> &str {
        &self.target
    }
}

/// `[tidemark] FIRING critical: high_latency {service=auth}`.
pub fn subject(event: &AlertEvent) -> String {
    format!("[tidemark] {}", format::title(event))
}

/// The mail for `event`.
pub fn message(event: &AlertEvent, from: &Mailbox, to: &[Mailbox]) -> Result<Message, lettre::error::Error> {
    let token = header_token(&event.id);
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(subject(event))
        .message_id(Some(format!("<{token}@tidemark>")))
        .raw_header(HeaderValue::new(ALERT_ID, token))
        .user_agent(concat!("tidemark/", env!("CARGO_PKG_VERSION")).to_string());
    for to in to {
        builder = builder.to(to.clone());
    }
    builder.singlepart(SinglePart::plain(body(event)))
}

/// The plain-text body: the summary, then every field on its own line. Lines stay short, so
/// the usual body goes as plain 7-bit text rather than quoted-printable.
pub fn body(event: &AlertEvent) -> String {
    let mut text = format!("{}\n\n{}\n\n", format::title(event), event.summary);
    let mut line = |name: &str, value: &str| {
        let _ = writeln!(text, "{name:<12} {value}");
    };
    line("Rule:", &event.rule);
    line("Severity:", format::severity(event.severity));
    line("State:", &format::state(event.state).to_lowercase());
    line("Labels:", &format::labels(&event.labels));
    line("Value:", &event.value.to_string());
    if let Some(threshold) = event.threshold {
        line("Threshold:", &threshold.to_string());
    }
    line("Started:", &format::time(event.started_at_ms));
    if let Some(ended) = event.ended_at_ms {
        line("Resolved:", &format::time(ended));
    }
    for (i, series) in event.series.iter().enumerate() {
        line(if i == 0 { "Series:" } else { "" }, series);
    }
    line("Fingerprint:", &event.fingerprint);
    line("Alert id:", &event.id);
    text.push_str("\n-- \nSent by tidemark. A redelivered notification has the same alert id.\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tidemark_schemas::{AlertState, Severity};

    #[test]
    fn the_message_carries_subject_ids_and_summary() {
        let event = AlertEvent {
            id: "r1-f00d-1".into(),
            fingerprint: "r1{service=auth}".into(),
            rule: "high_latency".into(),
            severity: Severity::Critical,
            state: AlertState::Firing,
            labels: BTreeMap::from([("service".to_string(), "auth".to_string())]),
            series: vec!["api.request.latency_ms|service=auth".into()],
            summary: "p95 = 412 > 250 for 2m".into(),
            value: 412.0,
            threshold: Some(250.0),
            started_at_ms: 1_732_233_600_000,
            ended_at_ms: None,
        };
        assert_eq!(
            subject(&event),
            "[tidemark] FIRING critical: high_latency {service=auth}"
        );
        let from: Mailbox = "tidemark <alerts@example.test>".parse().unwrap();
        let to: Mailbox = "oncall@example.test".parse().unwrap();
        let text = String::from_utf8(message(&event, &from, &[to]).unwrap().formatted()).unwrap();
        assert!(text.contains("Message-ID: <r1-f00d-1@tidemark>\r\n"), "{text}");
        assert!(text.contains("X-Tidemark-Alert-Id: r1-f00d-1\r\n"), "{text}");
        assert!(text.contains("p95 = 412 > 250 for 2m"), "{text}");
        assert!(text.contains("MIME-Version: 1.0\r\n"), "{text}");
        assert!(text.contains("Content-Type: text/plain; charset=utf-8\r\n"), "{text}");
        assert!(text.contains("Content-Transfer-Encoding: 7bit\r\n"), "{text}");
        assert!(text.contains("Started:     2024-11-22T00:00:00.000Z"), "{text}");
    }
}
