//! A silence set through `POST /api/v1/alerts` mutes the alert engine's notifications, not only
//! the listing: a `tidemark run` reading a real Kafka topic (`TIDEMARK_TEST_KAFKA`, fed in
//! stages by the test), with an alert rule grouped by host and a real webhook receiver on
//! 127.0.0.1.
//! While one host's alert is silenced it still fires and resolves (the API lists it, marked
//! silenced) but nothing is posted for it, while the other host's alert is delivered; after
//! unsilencing, its next firing and resolve are delivered again.
//!
//! Each stage's events are stamped a few seconds ahead of the wall clock, and a `tick` event
//! stamped with the clock is produced every 100 ms besides, so the watermark follows the clock
//! and closes the stage's windows.

mod support;

#[path = "support/receivers.rs"]
#[allow(dead_code)]
mod receivers;

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use receivers::{HttpReceiver, Posted, always_ok, wait_until};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::kafka::{broker, create_topic, source_section, unique};
use support::running::{Running, now_ms};
use tidemark_schemas::{Aggregates, OutputBatch, SeriesId, UpdateKind, WindowUpdate};
use tidemark_sinks::Stage;
use tidemark_sinks::alerting::{AlertEngine, AlertStage, AlertsConfig};
use tidemark_sinks::live::{Live, LiveSettings, SilenceMatcher};
use tidemark_sinks::notify::{Notifier, NotifyConfig};

const PATIENCE: Duration = Duration::from_secs(30);
const SILENCED: &str = "hot{host=h0}";
const OTHER: &str = "hot{host=h1}";

/// Produces records and waits until the broker has them.
struct Input {
    producer: BaseProducer,
    topic: String,
    /// The earliest start of the next stage: after the previous stage's windows, which the
    /// watermark (allowed lateness 0) has already passed — an earlier stamp would be late.
    next_stage_ms: i64,
}

impl Input {
    fn send(&self, lines: &[String]) {
        for line in lines {
            self.producer
                .send(BaseRecord::<(), str>::to(&self.topic).payload(line.as_str()))
                .expect("queueing a record");
        }
        self.producer.flush(Duration::from_secs(30)).expect("flushing");
    }
}

/// Two seconds of events per host, from three seconds ahead of the wall clock (so that they
/// are never behind the ticks' watermark) and after every earlier stage, hot or not; returns
/// the first window's start.
fn stage(input: &Mutex<Input>, hot: bool) -> i64 {
    let mut input = input.lock().unwrap();
    let start = (now_ms() / 1000 * 1000 + 3000).max(input.next_stage_ms);
    input.next_stage_ms = start + 3000;
    let value = if hot { 90 } else { 10 };
    let lines: Vec<String> = (0..2)
        .flat_map(|second| {
            ["h0", "h1"].map(|host| {
                let ts = start + second * 1000;
                format!(r#"{{"ts":{ts},"metric":"temp","tags":{{"host":"{host}"}},"value":{value}}}"#)
            })
        })
        .collect();
    input.send(&lines);
    start
}

/// Produces a `tick` event stamped with the wall clock every 100 ms until `stop`.
fn ticks(input: Arc<Mutex<Input>>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Relaxed) {
            let line = format!(r#"{{"ts":{},"metric":"tick","value":0}}"#, now_ms());
            input.lock().unwrap().send(&[line]);
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// `(state, started_at_ms)` of the posts about one alert instance, in arrival order.
fn delivered(posts: &[Posted], fingerprint: &str) -> Vec<(String, i64)> {
    posts
        .iter()
        .map(Posted::json)
        .filter(|event| event["fingerprint"] == fingerprint)
        .map(|event| {
            (
                event["state"].as_str().unwrap().to_string(),
                event["started_at_ms"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn wait_for_delivery(server: &Running, receiver: &HttpReceiver, fingerprint: &str, want: &[(&str, i64)]) {
    let want: Vec<(String, i64)> = want.iter().map(|(s, t)| (s.to_string(), *t)).collect();
    let deadline = std::time::Instant::now() + PATIENCE;
    while delivered(&receiver.posts(), fingerprint) != want {
        assert!(
            std::time::Instant::now() < deadline,
            "waiting for {want:?} for {fingerprint}; posted: {:?}; active: {}; series: {}",
            receiver
                .posts()
                .iter()
                .map(|p| {
                    let event = p.json();
                    format!("{} {} {}", event["fingerprint"], event["state"], event["started_at_ms"])
                })
                .collect::<Vec<_>>(),
            active(server),
            server.get("/api/v1/series?metric=temp", None).body
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn active(server: &Running) -> Value {
    let list = server.get("/api/v1/alerts", None).json();
    list["alerts"].clone()
}

/// A silence on the board the API writes to mutes the stage's deliveries, through a real
/// notifier and webhook receiver: the same objects `tidemark run` wires together.
#[test]
fn board_silences_mute_the_alert_stage() {
    let receiver = HttpReceiver::start(0, always_ok());
    let dir = tempfile::tempdir().unwrap();
    let notify: NotifyConfig = toml::from_str(&format!(
        "outbox_dir = {:?}\n[retry]\ninitial_backoff = \"50ms\"\nmax_backoff = \"300ms\"\n[webhook]\nurl = {:?}\n",
        dir.path().display().to_string(),
        receiver.url("/hook")
    ))
    .unwrap();
    let rules: AlertsConfig = toml::from_str(
        "[[rules]]\nname = \"hot\"\nmetric = \"temp\"\nwindow = \"1s\"\nfield = \"max\"\n\
         condition = { above = 50.0 }\nseverity = \"critical\"\ngroup_by = [\"host\"]\n",
    )
    .unwrap();
    let live = Live::new(LiveSettings::default());
    let mut stage = AlertStage::new(AlertEngine::new(&rules), Some(Notifier::start(&notify).unwrap()))
        .with_board(live.alert_board());
    let silence = live
        .alerts()
        .silence(
            SilenceMatcher {
                alert_id: Some(SILENCED.into()),
                ..SilenceMatcher::default()
            },
            now_ms() + 3_600_000,
            "maintenance".into(),
            "test",
            now_ms(),
        )
        .unwrap();
    let mut second = 0;
    let mut window = |hot: bool| {
        let rows = ["h0", "h1"]
            .map(|host| {
                let key = format!("temp|host={host}");
                let value = if hot { 90.0 } else { 10.0 };
                WindowUpdate {
                    series_id: SeriesId::of_key(&key),
                    series: key.into(),
                    window_ms: 1000,
                    window_start: second * 1000,
                    kind: UpdateKind::Final,
                    aggregates: Aggregates {
                        count: 1,
                        sum: value,
                        min: value,
                        max: value,
                        avg: value,
                        p50: None,
                        p95: None,
                        p99: None,
                        distinct: None,
                    },
                }
            })
            .to_vec();
        second += 1;
        let mut batch = OutputBatch {
            windows: rows,
            ..OutputBatch::default()
        };
        stage.process(&mut batch).unwrap();
        live.alerts().apply(&batch.alerts);
        batch.alerts.len()
    };
    assert_eq!(window(true), 2, "both fire");
    assert_eq!(window(false), 2, "both resolve");
    assert!(live.alerts().unsilence(&silence.id));
    assert_eq!(window(true), 2);
    assert_eq!(window(false), 2);
    receiver.wait_for(6, PATIENCE);
    std::thread::sleep(Duration::from_millis(300));
    let posts = receiver.stop();
    assert_eq!(
        delivered(&posts, SILENCED),
        [("firing".to_string(), 2000), ("resolved".to_string(), 2000)],
        "only the events after the unsilence"
    );
    assert_eq!(
        delivered(&posts, OTHER),
        [
            ("firing".to_string(), 0),
            ("resolved".to_string(), 0),
            ("firing".to_string(), 2000),
            ("resolved".to_string(), 2000)
        ]
    );
}

/// The same through `tidemark run` and its HTTP API.
#[test]
fn api_silences_mute_notifications_until_removed() {
    let Some(broker) = broker() else { return };
    let topic = unique("silences");
    create_topic(&broker, &topic, 1);
    let producer = ClientConfig::new().set("bootstrap.servers", &broker).create().unwrap();
    let input = Arc::new(Mutex::new(Input {
        producer,
        topic: topic.clone(),
        next_stage_ms: 0,
    }));
    let receiver = HttpReceiver::start(0, always_ok());
    let outbox = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
{source}
[pipeline]
base = "1s"
rollups = []
allowed_lateness = "0s"

[analytics]
enabled = false

[[alerts.rules]]
name = "hot"
metric = "temp"
window = "1s"
field = "max"
condition = {{ above = 50.0 }}
severity = "critical"
group_by = ["host"]

[notify]
outbox_dir = {outbox:?}

[notify.retry]
initial_backoff = "50ms"
max_backoff = "300ms"

[notify.webhook]
url = {hook:?}
"#,
        source = source_section(&broker, &topic, &unique("tidemark"), "5s", &outbox.path().join("state")),
        outbox = outbox.path().join("outbox").display().to_string(),
        hook = receiver.url("/hook")
    );
    let server = Running::start(&config);
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = ticks(input.clone(), stop.clone());

    let body = format!(r#"{{"action":"silence","alert_id":"{SILENCED}","duration":"1h","comment":"maintenance"}}"#);
    let created = server.post("/api/v1/alerts", &body, None);
    assert_eq!(created.status, 201, "{}", created.body);
    let silence_id = created.json()["silence"]["id"].as_str().unwrap().to_string();

    // Both hosts run hot in seconds 2 and 3: both alerts fire when window 2 closes.
    // Both hosts run hot: both alerts fire.
    let first = stage(&input, true);
    wait_for_delivery(&server, &receiver, OTHER, &[("firing", first)]);
    let alerts = active(&server);
    let silenced: Vec<(&str, &Value)> = alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["id"].as_str().unwrap(), &a["silenced_by"]))
        .collect();
    assert_eq!(
        silenced,
        [(SILENCED, &Value::from(silence_id.as_str())), (OTHER, &Value::Null)],
        "the engine fired both; the API marks the silenced one"
    );

    // They cool down: both resolve.
    stage(&input, false);
    wait_for_delivery(&server, &receiver, OTHER, &[("firing", first), ("resolved", first)]);
    wait_until(PATIENCE, "no active alerts", || {
        active(&server).as_array().is_some_and(Vec::is_empty)
    });
    assert_eq!(
        delivered(&receiver.posts(), SILENCED),
        [],
        "nothing was posted for the silenced alert, firing or resolved"
    );

    let removed = server.post(
        "/api/v1/alerts",
        &format!(r#"{{"action":"unsilence","silence_id":"{silence_id}"}}"#),
        None,
    );
    assert_eq!(removed.status, 200, "{}", removed.body);

    // Hot again, then cool: both alerts are delivered again.
    let second = stage(&input, true);
    wait_for_delivery(&server, &receiver, SILENCED, &[("firing", second)]);
    stage(&input, false);
    wait_for_delivery(
        &server,
        &receiver,
        SILENCED,
        &[("firing", second), ("resolved", second)],
    );
    wait_for_delivery(
        &server,
        &receiver,
        OTHER,
        &[
            ("firing", first),
            ("resolved", first),
            ("firing", second),
            ("resolved", second),
        ],
    );
    stop.store(true, Relaxed);
    ticker.join().unwrap();
    let posts = receiver.stop();
    assert_eq!(posts.len(), 6, "exactly the unsilenced events, once each");
}
