//! Avro output on the real broker (tansu, started by scripts/test) with the test schema registry:
//! tidemark registers its output schemas, frames every record in the Confluent wire format, and
//! what a consumer decodes — with `apache-avro` and the schema fetched by id, not with tidemark's
//! own decoder — equals the independent computation. Alert events land on the alerts topic,
//! keyed by the alert instance.

mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use support::kafka::{
    AvroValues, Registry, assert_matches_oracle, broker, create_topic, final_windows, read_all, source_section, unique,
};
use support::*;
use tidemark_connectors::avro::SchemaRegistry;

/// Input, windows and alerts topics, and a consumer group, unique to one test.
struct Topics {
    input: String,
    windows: String,
    alerts: String,
    group: String,
}

fn topics(broker: &str) -> Topics {
    let topics = Topics {
        input: unique("avro-in"),
        windows: unique("avro-windows"),
        alerts: unique("avro-alerts"),
        group: unique("tidemark"),
    };
    create_topic(broker, &topics.input, 4);
    create_topic(broker, &topics.windows, 2);
    create_topic(broker, &topics.alerts, 2);
    topics
}

/// A Kafka-in, Avro-out configuration; `extra` is appended (alert rules).
fn config(dir: &Path, broker: &str, registry: &str, topics: &Topics, extra: &str) -> PathBuf {
    let path = dir.join("kafka-avro.toml");
    let text = format!(
        r#"
{source}
[pipeline]
rollups = []

[sinks.kafka]
brokers = "{broker}"
windows_topic = "{windows}"
alerts_topic = "{alerts}"
format = "avro"
schema_registry = "{registry}"
idempotent = false
{extra}
"#,
        source = source_section(broker, &topics.input, &topics.group, "2s", &dir.join("state")),
        windows = topics.windows,
        alerts = topics.alerts,
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Produces `events` as JSON and runs tidemark with 2 workers until the topic is drained.
fn produce_and_run(dir: &Path, broker: &str, topics: &Topics, config: &Path, events: &[String]) {
    let file = dir.join("events.ndjson");
    write_lines(&file, events);
    succeed(
        tidemark()
            .args([
                "produce",
                "--brokers",
                broker,
                "--topic",
                &topics.input,
                "--partitions",
                "4",
            ])
            .arg(&file),
    );
    succeed(
        tidemark()
            .args(["run", "--config"])
            .arg(config)
            .args(["--workers", "2", "--duration", "12s"]),
    );
}

#[test]
fn avro_windows_decode_with_the_registry_schema_and_match_the_oracle() {
    let Some(broker) = broker() else { return };
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let topics = topics(&broker);
    let events = metric_events(12_000, 15, 0.05, 0.0, 21);
    let config = config(dir.path(), &broker, &registry.url, &topics, "");
    produce_and_run(dir.path(), &broker, &topics, &config, &events);

    let mut avro = AvroValues::new(&registry.url);
    let windows = final_windows(&broker, &topics.windows, &mut |bytes| avro.decode(bytes));
    assert_matches_oracle(&windows, &events);

    // One schema for the whole topic, registered under TopicNameStrategy's subject: registering
    // the bundled schema again there is idempotent and answers the id the records carry.
    let mut client = SchemaRegistry::new(&registry.url);
    let bundled = include_str!("../schemas/avro/window_update.avsc");
    let id = client.register(&format!("{}-value", topics.windows), bundled).unwrap();
    assert_eq!(avro.ids(), [id]);
}

/// One series of two crosses the threshold in minutes 1 and 2 of five: its alert fires when
/// minute 1 closes and resolves when minute 3 does; the other series never alerts.
#[test]
fn alerts_land_on_the_alerts_topic_keyed_by_alert_instance() {
    let Some(broker) = broker() else { return };
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let topics = topics(&broker);
    let start: i64 = 1_732_233_600_000;
    let events: Vec<String> = (0..300)
        .flat_map(|second| {
            ["h0", "h1"].map(|host| {
                let hot = host == "h0" && (60..180).contains(&second);
                let value = if hot { 900 + second % 7 } else { 100 + second % 5 };
                let ts = start + second * 1000;
                format!(r#"{{"ts":{ts},"metric":"lat","tags":{{"host":"{host}"}},"value":{value}}}"#)
            })
        })
        .collect();
    let rule = r#"
[[alerts.rules]]
name = "hot"
metric = "lat"
field = "max"
condition = { above = 500.0 }
severity = "critical"
group_by = ["host"]
"#;
    let config = config(dir.path(), &broker, &registry.url, &topics, rule);
    produce_and_run(dir.path(), &broker, &topics, &config, &events);

    let mut avro = AvroValues::new(&registry.url);
    let records = read_all(&broker, &topics.alerts);
    let alerts: Vec<Value> = records.iter().map(|r| avro.decode(&r.value)).collect();
    let fingerprint = "hot{host=h0}";
    for (record, alert) in records.iter().zip(&alerts) {
        assert_eq!(record.key.as_deref(), Some(fingerprint.as_bytes()));
        assert_eq!(record.headers["upsert-key"], fingerprint);
        assert_eq!(record.headers["alert-id"], alert["id"].as_str().unwrap());
    }
    let states: Vec<&str> = alerts.iter().map(|a| a["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["firing", "resolved"], "{alerts:#?}");

    let windows = batch_windows(&observations(&events), &[60_000]);
    let max_of_minute = |minute: i64| windows[&("lat|host=h0".to_string(), 60_000, start + minute * 60_000)].max;
    let minute_1 = max_of_minute(1);
    let firing = &alerts[0];
    for (field, want) in [
        ("fingerprint", json!(fingerprint)),
        ("rule", json!("hot")),
        ("severity", json!("critical")),
        ("labels", json!({"host": "h0"})),
        ("series", json!(["lat|host=h0"])),
        ("value", json!(minute_1)),
        ("threshold", json!(500.0)),
        ("ended_at_ms", Value::Null),
    ] {
        assert_eq!(firing[field], want, "{field} of {firing}");
    }
    let resolved = &alerts[1];
    assert_eq!(resolved["started_at_ms"], firing["started_at_ms"]);
    assert_eq!(
        resolved["value"],
        json!(max_of_minute(3)),
        "the value that resolved it: {resolved}"
    );
    assert!(resolved["ended_at_ms"].as_i64().unwrap() > firing["started_at_ms"].as_i64().unwrap());
    assert_ne!(resolved["id"], firing["id"]);
}
