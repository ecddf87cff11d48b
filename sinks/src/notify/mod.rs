//! Alert delivery: the on-disk outbox and the notifiers for Slack, a generic JSON webhook and
//! email.
//!
//! ```text
//! rule engine ──accept(&AlertEvent)──▶ outbox/<contact point>/<seq>.json ──delivery thread──▶ receiver
//!               (returns once durable)   (one file per event and        (one per contact point:
//!                                         contact point, by route)       retries, backoff, failed/)
//! ```
//!
//! * **At least once.** [`Notifier::accept`] returns only after the notification's file is
//!   durable (written under a temporary name, fsynced, renamed, directory fsynced); from then
//!   on a crash or `kill -9` loses nothing: [`Notifier::start`] finds the files and sends
//!   them. A crash after a receiver took a notification but before its file was deleted sends
//!   it again, with the same id ([`AlertEvent::id`]) for the receiver to deduplicate on.
//! * **Retries.** Connection errors, timeouts, HTTP 5xx, 429 (honouring `Retry-After`) and 408,
//!   and SMTP 4xx are retried without limit, with exponential backoff and jitter per contact
//!   point (`[notify.retry]`). Any other refusal — HTTP 4xx or 3xx, SMTP 5xx — would be refused
//!   again: the notification moves to `outbox/failed/` with the response, and is logged.
//! * **Never blocks the engine, bounded memory.** `accept` writes files and nudges the
//!   delivery threads; the threads read the directories in bounded batches, so a receiver
//!   that is down for hours costs disk, not memory, and slows no one else.
//! * **Routing.** `[[notify.routes]]` send each severity to chosen contact points; without
//!   routes every alert goes to every configured contact point.
//!
//! Payloads are documented in `docs/alerts.md`. HTTP goes through `ureq` (blocking, like the
//! InfluxDB sink), SMTP through `lettre` with only its SMTP transport and message builder;
//! TLS for either comes with the crate's `tls` feature (rustls).

mod config;
mod contact_point;
mod delivery;
mod email;
mod format;
mod http;
mod outbox;
mod record;
mod signal;
mod slack;
mod stats;
mod transport;
mod validate;
mod webhook;

pub use config::{
    EmailConfig, NotifyConfig, NotifyConfigError, RetryConfig, Route, SlackConfig, SmtpTls, WebhookConfig,
};
pub use contact_point::ContactPoint;
pub use stats::NotifyStats;

use crate::backoff::Backoff;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use delivery::Courier;
use outbox::Outbox;
use record::Record;
use signal::Signal;
use stats::Counters;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use thiserror::Error;
use tidemark_schemas::{AlertEvent, Severity};
use tracing::{debug, error, info, warn};

/// Alert delivery could not start, or an alert could not be accepted.
#[derive(Debug, Error)]
pub enum NotifyError {
    /// The configuration is wrong (or names an unset environment variable).
    #[error(transparent)]
    Config(#[from] NotifyConfigError),
    /// The outbox directory could not be used.
    #[error("alert outbox: {what} {}: {error}", path.display())]
    Outbox {
        /// What was being done.
        what: &'static str,
        /// The directory.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A delivery thread could not be started.
    #[error("alert delivery: starting the {contact_point} thread: {error}")]
    Thread {
        /// Its contact point.
        contact_point: ContactPoint,
        /// Why.
        error: std::io::Error,
    },
    /// The event cannot be delivered as it is; nothing was written.
    #[error("alert event {id:?} not accepted: {problem}")]
    InvalidEvent {
        /// The event's id.
        id: String,
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// The outbox and its delivery threads. Share it by reference (it is `Sync`); see the module
/// documentation.
pub struct Notifier {
    outbox: Arc<Outbox>,
    routes: Vec<(Severity, Vec<ContactPoint>)>,
    next_seq: AtomicU64,
    counters: [Arc<Counters>; 3],
    signals: [Option<Arc<Signal>>; 3],
    threads: Vec<JoinHandle<()>>,
    done: Receiver<()>,
    timeout: Duration,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Non-finite numbers become JSON `null`, which does not read back as a number: such an event
/// would be stuck in the outbox, so it is refused up front where the caller can see it.
fn check(event: &AlertEvent) -> Result<(), NotifyError> {
    let problem = if event.id.is_empty() {
        "the id is empty (receivers deduplicate on it)"
    } else if !event.value.is_finite() {
        "the value is not a finite number"
    } else if event.threshold.is_some_and(|t| !t.is_finite()) {
        "the threshold is not a finite number"
    } else {
        return Ok(());
    };
    Err(NotifyError::InvalidEvent {
        id: event.id.clone(),
        problem,
    })
}

impl Notifier {
    /// Validates `config` (reading the secrets from the environment), opens the outbox and
    /// starts one delivery thread per configured contact point, which first send whatever an
    /// earlier run left in the outbox.
    pub fn start(config: &NotifyConfig) -> Result<Notifier, NotifyError> {
        config.validate()?;
        if config.slack.as_ref().is_some_and(|slack| slack.url.is_some()) {
            warn!("notify.slack.url is in the config file, but a Slack webhook URL is a secret: use url_env");
        }
        let (outbox, found) = Outbox::open(&config.outbox_dir).map_err(|error| NotifyError::Outbox {
            what: "opening",
            path: config.outbox_dir.clone(),
            error,
        })?;
        let counters = ContactPoint::ALL.map(|_| Arc::new(Counters::default()));
        for cp in ContactPoint::ALL {
            let waiting = found.pending[cp.index()];
            counters[cp.index()].queued(waiting);
            match (waiting, config.configured(cp)) {
                (0, _) => {}
                (n, true) => {
                    info!(contact_point = %cp, waiting = n, "sending alerts left in the outbox by an earlier run")
                }
                (n, false) => warn!(contact_point = %cp, waiting = n, dir = %outbox.dir(cp).display(),
                    "alerts wait in the outbox for a contact point that is no longer configured"),
            }
        }
        let (done_tx, done) = crossbeam_channel::bounded::<()>(0);
        let mut notifier = Notifier {
            outbox: Arc::new(outbox),
            routes: [Severity::Info, Severity::Warning, Severity::Critical]
                .into_iter()
                .map(|severity| (severity, config.destinations(severity)))
                .collect(),
            next_seq: AtomicU64::new(found.next_seq),
            counters,
            signals: [None, None, None],
            threads: Vec::new(),
            done,
            timeout: config.timeout,
        };
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id());
        for cp in ContactPoint::ALL.into_iter().filter(|cp| config.configured(*cp)) {
            let signal = Arc::new(Signal::default());
            let retry = &config.retry;
            let courier = Courier {
                contact_point: cp,
                transport: transport::for_contact_point(cp, config)?,
                outbox: notifier.outbox.clone(),
                counters: notifier.counters[cp.index()].clone(),
                signal: signal.clone(),
                backoff: Backoff::new(
                    retry.initial_backoff,
                    retry.max_backoff,
                    retry.jitter,
                    seed.wrapping_add(cp.index() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                ),
            };
            let done_tx = done_tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("tidemark-notify-{cp}"))
                .spawn(move || {
                    courier.run();
                    drop(done_tx);
                })
                .map_err(|error| NotifyError::Thread {
                    contact_point: cp,
                    error,
                })?;
            notifier.signals[cp.index()] = Some(signal);
            notifier.threads.push(thread);
        }
        Ok(notifier)
    }

    /// Takes `event` for delivery to the contact points its severity is routed to: one file
    /// each, durable when this returns `Ok` — the at-least-once boundary. Never waits for a
    /// receiver. On `Err` some contact points may already have the event; accepting it again
    /// is safe, receivers deduplicate on the id.
    pub fn accept(&self, event: &AlertEvent) -> Result<(), NotifyError> {
        check(event)?;
        let destinations = self
            .routes
            .iter()
            .find(|(severity, _)| *severity == event.severity)
            .map_or(&[][..], |(_, to)| to.as_slice());
        if destinations.is_empty() {
            debug!(id = %event.id, severity = ?event.severity, "no route takes this severity; not delivered");
            return Ok(());
        }
        let record = serde_json::to_vec(&Record {
            accepted_at_ms: now_ms(),
            event,
        })
        .expect("a checked event serializes");
        let seq = self.next_seq.fetch_add(1, Relaxed);
        for &cp in destinations {
            let counters = &self.counters[cp.index()];
            counters.queued(1);
            if let Err(error) = self.outbox.write(cp, seq, &record) {
                counters.withdrawn();
                return Err(NotifyError::Outbox {
                    what: "writing to",
                    path: self.outbox.dir(cp),
                    error,
                });
            }
            if let Some(signal) = &self.signals[cp.index()] {
                signal.nudge();
            }
        }
        Ok(())
    }

    /// Counters so far, summed over contact points.
    pub fn stats(&self) -> NotifyStats {
        let mut total = NotifyStats::default();
        for counters in &self.counters {
            counters.add_to(&mut total);
        }
        total
    }

    /// Delivers what it can within `grace`, then stops the delivery threads. What is still
    /// waiting stays in the outbox for the next start. An attempt already under way at the
    /// deadline may take up to `timeout` more to finish; a thread still busy after that is
    /// left behind. Returns the final counters (`pending` is what stays in the outbox).
    pub fn shutdown(mut self, grace: Duration) -> NotifyStats {
        let deadline = Instant::now() + grace;
        for signal in self.signals.iter().flatten() {
            signal.stop(deadline);
        }
        match self.done.recv_deadline(deadline + self.timeout) {
            Err(RecvTimeoutError::Disconnected) => {
                for thread in self.threads.drain(..) {
                    if thread.join().is_err() {
                        error!("an alert delivery thread panicked");
                    }
                }
            }
            Ok(()) | Err(RecvTimeoutError::Timeout) => {
                warn!("an alert delivery attempt was still running at shutdown; its alert stays in the outbox");
            }
        }
        let stats = self.stats();
        info!(
            delivered = stats.delivered,
            retries = stats.retries,
            failed = stats.failed,
            pending = stats.pending,
            "alert delivery stopped"
        );
        stats
    }
}

impl Drop for Notifier {
    /// Dropped without `shutdown` (the run failed elsewhere): the threads stop after their
    /// current attempt, and everything not delivered stays in the outbox.
    fn drop(&mut self) {
        let now = Instant::now();
        for signal in self.signals.iter().flatten() {
            signal.stop(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tidemark_schemas::AlertState;

    /// A webhook to a loopback port nobody listens on: every attempt is refused at once.
    fn unreachable(outbox: &std::path::Path) -> NotifyConfig {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let text = format!(
            "outbox_dir = {:?}\n[retry]\ninitial_backoff = \"20ms\"\nmax_backoff = \"50ms\"\n\
             [webhook]\nurl = \"http://127.0.0.1:{port}/hook\"\n\
             [[routes]]\nseverity = \"critical\"\nto = [\"webhook\"]\n",
            outbox.display().to_string()
        );
        toml::from_str(&text).unwrap()
    }

    fn event(id: &str, severity: Severity) -> AlertEvent {
        AlertEvent {
            id: id.into(),
            fingerprint: "f".into(),
            rule: "r".into(),
            severity,
            state: AlertState::Firing,
            labels: BTreeMap::new(),
            series: Vec::new(),
            summary: "s".into(),
            value: 1.0,
            threshold: None,
            started_at_ms: 0,
            ended_at_ms: None,
        }
    }

    #[test]
    fn the_notifier_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Notifier>();
    }

    #[test]
    fn events_that_would_not_read_back_are_refused_and_unrouted_ones_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let notifier = Notifier::start(&unreachable(dir.path())).unwrap();
        let mut nan = event("n", Severity::Critical);
        nan.value = f64::NAN;
        let mut infinite = event("i", Severity::Critical);
        infinite.threshold = Some(f64::INFINITY);
        for bad in [event("", Severity::Critical), nan, infinite] {
            let err = notifier.accept(&bad).unwrap_err();
            assert!(matches!(err, NotifyError::InvalidEvent { .. }), "{err}");
        }
        notifier.accept(&event("w", Severity::Warning)).unwrap();
        assert_eq!(notifier.stats(), NotifyStats::default());
        assert_eq!(std::fs::read_dir(dir.path().join("webhook")).unwrap().count(), 0);
        notifier.shutdown(Duration::ZERO);
    }

    #[test]
    fn shutdown_gives_up_at_the_deadline_and_leaves_the_rest_in_the_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let config = unreachable(dir.path());
        let notifier = Notifier::start(&config).unwrap();
        notifier.accept(&event("c1", Severity::Critical)).unwrap();
        let started = Instant::now();
        let stats = notifier.shutdown(Duration::from_millis(200));
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!((stats.delivered, stats.pending), (0, 1));
        assert!(stats.retries >= 1, "{stats:?}");

        let notifier = Notifier::start(&config).unwrap();
        assert_eq!(notifier.stats().pending, 1, "found again at start");
        notifier.accept(&event("c2", Severity::Critical)).unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path().join("webhook"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.contains(&"00000000000000000002.json".to_string()),
            "numbers go on: {names:?}"
        );
        notifier.shutdown(Duration::ZERO);
    }
}
