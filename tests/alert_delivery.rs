//! Alert delivery against real receivers on 127.0.0.1: an HTTP server (here, on
//! `std::net::TcpListener`) that records Slack-format and generic webhook posts, and the
//! `aiosmtpd` SMTP server started by `scripts/test`. Shows the payloads as received, routing by
//! severity, delivery once a down receiver is back, refusals kept in `failed/` with the
//! response, and a `kill -9` between accept and delivery followed by a restart that delivers
//! every accepted alert exactly once.

#[path = "support/receivers.rs"]
mod receivers;

use receivers::{HttpReceiver, Posted, Responder, always_ok, free_port, mails_with_alert_id, smtp_server, wait_until};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};
use tidemark_schemas::{AlertEvent, AlertState, Severity};
use tidemark_sinks::notify::{Notifier, NotifyConfig, NotifyStats};

const PATIENCE: Duration = Duration::from_secs(20);

/// A `[notify]` section with short backoffs, so that retries happen within the test's seconds.
fn config_text(outbox: &Path, contact_points: &str) -> String {
    format!(
        "outbox_dir = {:?}\ntimeout = \"2s\"\n[retry]\ninitial_backoff = \"50ms\"\nmax_backoff = \"300ms\"\n{contact_points}",
        outbox.display().to_string()
    )
}

fn config(outbox: &Path, contact_points: &str) -> NotifyConfig {
    let text = config_text(outbox, contact_points);
    toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// An id no other test (or earlier run against the same SMTP server) uses.
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{}", std::process::id(), nanos % 1_000_000_000_000)
}

fn event(id: &str, severity: Severity, state: AlertState) -> AlertEvent {
    AlertEvent {
        id: id.to_string(),
        fingerprint: "high_latency{service=auth}".into(),
        rule: "high_latency".into(),
        severity,
        state,
        labels: BTreeMap::from([("service".to_string(), "auth".to_string())]),
        series: vec!["api.request.latency_ms|service=auth".into()],
        summary: "p95 of api.request.latency_ms{service=auth} = 412 > 250 for 2m".into(),
        value: 412.0,
        threshold: Some(250.0),
        started_at_ms: 1_732_233_600_000,
        ended_at_ms: (state == AlertState::Resolved).then_some(1_732_233_900_000),
    }
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| entries.count())
}

fn ids(posts: &[Posted]) -> Vec<String> {
    posts
        .iter()
        .map(|p| p.json()["id"].as_str().expect("an id").to_string())
        .collect()
}

#[test]
fn slack_and_webhook_posts_arrive_with_their_payloads_in_order_and_as_routed() {
    let receiver = HttpReceiver::start(0, always_ok());
    let dir = tempfile::tempdir().unwrap();
    let contact_points = format!(
        "[slack]\nurl = {:?}\n[webhook]\nurl = {:?}\nheaders = {{ \"X-Team\" = \"sre\" }}\n\
         [[routes]]\nseverity = \"critical\"\nto = [\"slack\", \"webhook\"]\n\
         [[routes]]\nseverity = \"info\"\nto = [\"webhook\"]\n",
        receiver.url("/services/T000/B000/XXXX"),
        receiver.url("/hook")
    );
    let notifier = Notifier::start(&config(dir.path(), &contact_points)).unwrap();
    let firing = event(&unique("crit"), Severity::Critical, AlertState::Firing);
    let resolved = event(&unique("crit-resolved"), Severity::Critical, AlertState::Resolved);
    let info = event(&unique("info"), Severity::Info, AlertState::Firing);
    let unrouted = event(&unique("warn"), Severity::Warning, AlertState::Firing);
    for e in [&firing, &resolved, &info, &unrouted] {
        notifier.accept(e).unwrap();
    }
    receiver.wait_for(5, PATIENCE);
    let stats = notifier.shutdown(Duration::from_secs(5));
    assert_eq!(
        stats,
        NotifyStats {
            delivered: 5,
            retries: 0,
            failed: 0,
            pending: 0
        }
    );
    let posts = receiver.stop();
    assert_eq!(posts.len(), 5, "the warning has no route and goes nowhere");

    let slack: Vec<&Posted> = posts.iter().filter(|p| p.path == "/services/T000/B000/XXXX").collect();
    assert_eq!(slack.len(), 2);
    for (post, sent, colour) in [(slack[0], &firing, "#E01E5A"), (slack[1], &resolved, "#2EB67D")] {
        assert_eq!(post.method, "POST");
        assert_eq!(post.header("content-type"), Some("application/json"));
        let body = post.json();
        let text = body["text"].as_str().unwrap();
        let state = if sent.state == AlertState::Firing {
            "FIRING"
        } else {
            "RESOLVED"
        };
        assert!(
            text.starts_with(&format!("{state} critical: high_latency {{service=auth}}: p95 of")),
            "{text}"
        );
        assert!(text.ends_with(&format!("(alert id {})", sent.id)), "{text}");
        let attachment = &body["attachments"][0];
        assert_eq!(attachment["color"], colour);
        let kinds: Vec<&str> = attachment["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["section", "section", "context"]);
        assert!(
            attachment["blocks"][2]["elements"][0]["text"]
                .as_str()
                .unwrap()
                .contains(&sent.id)
        );
    }

    let hook: Vec<&Posted> = posts.iter().filter(|p| p.path == "/hook").collect();
    assert_eq!(hook.len(), 3);
    for (post, sent) in hook.iter().zip([&firing, &resolved, &info]) {
        assert_eq!(post.header("content-type"), Some("application/json"));
        assert_eq!(post.header("x-team"), Some("sre"));
        assert_eq!(post.header("x-tidemark-alert-id"), Some(sent.id.as_str()));
        let received: AlertEvent = serde_json::from_slice(&post.body).expect("the body is an AlertEvent");
        assert_eq!(&received, sent);
        let body = post.json();
        assert_eq!(body["severity"], serde_json::to_value(sent.severity).unwrap());
        assert_eq!(body["state"], serde_json::to_value(sent.state).unwrap());
    }
    assert_eq!(
        files_in(&dir.path().join("webhook")) + files_in(&dir.path().join("slack")),
        0
    );
}

#[test]
fn mail_arrives_through_a_real_smtp_server_with_subject_and_id_headers() {
    let Some((host, port, maildir)) = smtp_server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let contact_points = format!(
        "[email]\nsmtp_host = {host:?}\nsmtp_port = {port}\ntls = \"none\"\n\
         from = \"tidemark <alerts@tidemark.test>\"\nto = [\"oncall@tidemark.test\", \"Ops <ops@tidemark.test>\"]\n"
    );
    let notifier = Notifier::start(&config(dir.path(), &contact_points)).unwrap();
    let firing = event(&unique("mail"), Severity::Critical, AlertState::Firing);
    let resolved = event(&unique("mail-resolved"), Severity::Critical, AlertState::Resolved);
    notifier.accept(&firing).unwrap();
    notifier.accept(&resolved).unwrap();
    wait_until(PATIENCE, "both mails in the Maildir", || {
        !mails_with_alert_id(&maildir, &resolved.id).is_empty()
    });
    let stats = notifier.shutdown(Duration::from_secs(5));
    assert_eq!((stats.delivered, stats.failed, stats.pending), (2, 0, 0));

    for (sent, state) in [(&firing, "FIRING"), (&resolved, "RESOLVED")] {
        let mails = mails_with_alert_id(&maildir, &sent.id);
        assert_eq!(mails.len(), 1, "one mail per alert event");
        let mail = &mails[0];
        assert_eq!(
            mail.header("Subject"),
            format!("[tidemark] {state} critical: high_latency {{service=auth}}")
        );
        assert_eq!(mail.header("Message-ID"), format!("<{}@tidemark>", sent.id));
        assert_eq!(mail.header("From"), "tidemark <alerts@tidemark.test>");
        assert_eq!(mail.header("X-MailFrom"), "alerts@tidemark.test", "the envelope sender");
        assert_eq!(
            mail.header("X-RcptTo"),
            "oncall@tidemark.test, ops@tidemark.test",
            "the envelope has every recipient"
        );
        assert!(mail.header("Content-Type").starts_with("text/plain"));
        assert!(mail.body.contains(&sent.summary), "{}", mail.body);
        assert!(
            mail.body.contains(&format!("Alert id:    {}", sent.id)),
            "{}",
            mail.body
        );
    }
    let resolved_mail = &mails_with_alert_id(&maildir, &resolved.id)[0];
    assert!(
        resolved_mail.body.contains("Resolved:    2024-11-22T00:05:00.000Z"),
        "{}",
        resolved_mail.body
    );
}

#[test]
fn a_receiver_that_is_down_gets_the_alert_once_it_is_back() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let contact_points = format!("[webhook]\nurl = \"http://127.0.0.1:{port}/hook\"\n");
    let notifier = Notifier::start(&config(dir.path(), &contact_points)).unwrap();
    let alert = event(&unique("down"), Severity::Warning, AlertState::Firing);
    let accepted = Instant::now();
    notifier.accept(&alert).unwrap();
    assert_eq!(
        files_in(&dir.path().join("webhook")),
        1,
        "accept returns with the file on disk"
    );

    std::thread::sleep(Duration::from_secs(2));
    let stats = notifier.stats();
    assert!(stats.retries >= 3, "retried while the receiver was down: {stats:?}");
    assert_eq!((stats.delivered, stats.pending), (0, 1));

    let receiver = HttpReceiver::start(port, always_ok());
    let posts = receiver.wait_for(1, PATIENCE);
    println!(
        "delivered {:?} after the accept, the receiver having been down for 2 s",
        accepted.elapsed()
    );
    assert_eq!(ids(&posts), std::slice::from_ref(&alert.id));
    let stats = notifier.shutdown(Duration::from_secs(5));
    assert_eq!((stats.delivered, stats.pending), (1, 0));
    assert_eq!(receiver.stop().len(), 1, "delivered once");
}

#[test]
fn a_refusal_is_kept_in_failed_with_the_response_and_the_alerts_behind_it_go_on() {
    let busy = Arc::new(AtomicU32::new(0));
    let answered = busy.clone();
    let responder: Responder = Arc::new(move |posted: &Posted| {
        let id = posted.json()["id"].as_str().unwrap_or_default().to_string();
        if id.starts_with("refused") {
            (400, "invalid_payload".into())
        } else if id.starts_with("busy") && answered.fetch_add(1, SeqCst) == 0 {
            (503, "try again".into())
        } else {
            (200, "ok".into())
        }
    });
    let receiver = HttpReceiver::start(0, responder);
    let dir = tempfile::tempdir().unwrap();
    let contact_points = format!("[webhook]\nurl = {:?}\n", receiver.url("/hook"));
    let notifier = Notifier::start(&config(dir.path(), &contact_points)).unwrap();
    let refused = event(&unique("refused"), Severity::Critical, AlertState::Firing);
    let busy_then_ok = event(&unique("busy"), Severity::Critical, AlertState::Firing);
    notifier.accept(&refused).unwrap();
    notifier.accept(&busy_then_ok).unwrap();
    let posts = receiver.wait_for(3, PATIENCE);
    let stats = notifier.shutdown(Duration::from_secs(5));
    assert_eq!(
        stats,
        NotifyStats {
            delivered: 1,
            retries: 1,
            failed: 1,
            pending: 0
        }
    );
    assert_eq!(
        ids(&posts),
        [refused.id.clone(), busy_then_ok.id.clone(), busy_then_ok.id.clone()],
        "the 400 is not retried, the 503 is"
    );
    assert_eq!(busy.load(SeqCst), 2);

    assert_eq!(files_in(&dir.path().join("webhook")), 0);
    let failed: Vec<_> = std::fs::read_dir(dir.path().join("failed"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(failed.len(), 1);
    let name = failed[0].file_name().to_string_lossy().into_owned();
    assert!(name.starts_with("webhook-") && name.ends_with(".json"), "{name}");
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(failed[0].path()).unwrap()).unwrap();
    assert_eq!(kept["contact_point"], "webhook");
    assert_eq!(kept["status"], 400);
    assert_eq!(kept["response"], "invalid_payload");
    assert_eq!(kept["attempts"], 1);
    let event: AlertEvent = serde_json::from_value(kept["event"].clone()).unwrap();
    assert_eq!(event, refused);
    receiver.stop();
}

/// Environment variable handing the child its configuration (TOML).
const CHILD_CONFIG: &str = "TIDEMARK_NOTIFY_CHILD_CONFIG";

/// What the child prints follows this marker; libtest prints its own text around it (even on
/// the same line: `test notifier_child_process ... ` comes first).
const CHILD_SAYS: &str = "notify-child:";

/// Runs a notifier in a child process, steered through stdin; a background thread forwards its
/// protocol lines.
struct Child {
    process: std::process::Child,
    said: std::sync::mpsc::Receiver<String>,
}

impl Child {
    fn start(config: &str) -> Child {
        let mut process = Command::new(std::env::current_exe().unwrap())
            .args([
                "notifier_child_process",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_CONFIG, config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the child");
        let (tx, said) = std::sync::mpsc::channel();
        let stdout = process.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some((_, said)) = line.split_once(CHILD_SAYS) {
                    let _ = tx.send(said.trim().to_string());
                }
            }
        });
        Child { process, said }
    }

    /// Sends a command and waits for the child's answer.
    fn ask(&mut self, command: &str) {
        let stdin = self.process.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
        let answer = self
            .said
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|e| panic!("no answer to {command}: {e}"));
        assert_eq!(answer, format!("done {command}"));
    }
}

#[test]
#[ignore = "the child process of alerts_accepted_before_a_kill_are_delivered_after_the_restart_exactly_once"]
fn notifier_child_process() {
    let text = std::env::var(CHILD_CONFIG).expect("run by the kill test, which sets the config");
    let config: NotifyConfig = toml::from_str(&text).unwrap();
    let notifier = Notifier::start(&config).unwrap();
    for line in std::io::stdin().lines() {
        let line = line.unwrap();
        match line.split_once(' ') {
            Some(("accept", id)) => notifier
                .accept(&event(id, Severity::Critical, AlertState::Firing))
                .unwrap(),
            Some(("delivered", n)) => {
                let n: u64 = n.parse().unwrap();
                wait_until(PATIENCE, "deliveries in the child", || notifier.stats().delivered >= n);
            }
            _ => panic!("unknown command {line}"),
        }
        println!("{CHILD_SAYS} done {line}");
    }
}

#[test]
fn alerts_accepted_before_a_kill_are_delivered_after_the_restart_exactly_once() {
    let receiver = HttpReceiver::start(0, always_ok());
    let port = receiver.port();
    let dir = tempfile::tempdir().unwrap();
    let webhook = format!("[webhook]\nurl = \"http://127.0.0.1:{port}/hook\"\n");
    let before: Vec<String> = (0..3).map(|i| unique(&format!("before-{i}"))).collect();
    let after: Vec<String> = (0..4).map(|i| unique(&format!("after-{i}"))).collect();

    let mut child = Child::start(&config_text(dir.path(), &webhook));
    for id in &before {
        child.ask(&format!("accept {id}"));
    }
    child.ask("delivered 3");
    let mut received = receiver.stop();
    for id in &after {
        child.ask(&format!("accept {id}"));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.process.kill().expect("kill -9 the child");
    child.process.wait().unwrap();
    assert_eq!(
        files_in(&dir.path().join("webhook")),
        after.len(),
        "the alerts accepted while the receiver was down wait on disk"
    );

    let notifier = Notifier::start(&config(dir.path(), &webhook)).unwrap();
    assert_eq!(
        notifier.stats().pending,
        after.len() as u64,
        "found in the outbox at start"
    );
    let receiver = HttpReceiver::start(port, always_ok());
    receiver.wait_for(after.len(), PATIENCE);
    let stats = notifier.shutdown(Duration::from_secs(5));
    assert_eq!(
        (stats.delivered, stats.failed, stats.pending),
        (after.len() as u64, 0, 0)
    );
    received.extend(receiver.stop());

    let got = ids(&received);
    let unique_ids: BTreeSet<&String> = got.iter().collect();
    assert_eq!(unique_ids.len(), got.len(), "no duplicate ids: {got:?}");
    let expected: BTreeSet<&String> = before.iter().chain(&after).collect();
    assert_eq!(unique_ids, expected);
    assert_eq!(
        &got[before.len()..],
        after.as_slice(),
        "redelivered in acceptance order"
    );
}
