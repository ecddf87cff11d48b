//! Kafka in and out, against a real broker (tansu, started by scripts/test): every window on the
//! output topic equals the independent computation, bad messages land on the dead-letter topic
//! with their reasons, committed offsets reach the end offsets, and a restart converges.

mod support;

use serde_json::Value;
use std::path::Path;
use support::kafka::{
    assert_matches_oracle, broker, committed_and_end, create_topic, final_windows, json_value, produce_lines, read_all,
    source_section, unique,
};
use support::*;

const BAD_LINES: [(&str, &str); 4] = [
    ("{\"ts\":1732233600000,\"metric\":\"m\"", "invalid_json"),
    ("{\"ts\":1732233600000,\"metric\":\"m\",\"value\":\"x\"}", "wrong_type"),
    ("{\"metric\":\"m\",\"value\":1}", "missing_field"),
    ("{\"ts\":1732233600000,\"metric\":\"m\",\"value\":NaN}", "non_finite"),
];

struct Topics {
    input: String,
    windows: String,
    dead_letters: String,
    group: String,
}

fn topics(broker: &str) -> Topics {
    let topics = Topics {
        input: unique("events"),
        windows: unique("windows"),
        dead_letters: unique("dlq"),
        group: unique("tidemark"),
    };
    create_topic(broker, &topics.input, 4);
    create_topic(broker, &topics.windows, 2);
    create_topic(broker, &topics.dead_letters, 1);
    topics
}

fn config(dir: &Path, broker: &str, topics: &Topics, idle: &str, pipeline: &str) -> std::path::PathBuf {
    let path = dir.join("kafka.toml");
    std::fs::write(
        &path,
        format!(
            r#"
{source}
[pipeline]
{pipeline}

[sinks.kafka]
brokers = "{broker}"
windows_topic = "{windows}"
dead_letter_topic = "{dlq}"
idempotent = false
"#,
            source = source_section(broker, &topics.input, &topics.group, idle, &dir.join("state")),
            windows = topics.windows,
            dlq = topics.dead_letters
        ),
    )
    .unwrap();
    path
}

fn run(config: &Path, seconds: u32) {
    succeed(tidemark().args(["run", "--config"]).arg(config).args([
        "--workers",
        "2",
        "--duration",
        &format!("{seconds}s"),
    ]));
}

#[test]
fn windows_dead_letters_and_offsets_through_a_real_broker() {
    let Some(broker) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topics = topics(&broker);
    let events = metric_events(20_000, 30, 0.05, 0.0, 11);
    let mut lines = events.clone();
    for (i, (bad, _)) in BAD_LINES.iter().enumerate() {
        lines.insert(1000 * (i + 1), bad.to_string());
    }
    produce_lines(dir.path(), &broker, &topics.input, &lines);
    // A short idle timeout: once the topic is drained, event time follows the wall clock, every
    // window closes, and every offset becomes committable.
    run(&config(dir.path(), &broker, &topics, "2s", "rollups = [\"5m\"]"), 15);

    assert_matches_oracle(&final_windows(&broker, &topics.windows, &mut json_value), &events);

    let letters = read_all(&broker, &topics.dead_letters);
    let mut reasons: Vec<(String, String)> = letters
        .iter()
        .map(|r| (String::from_utf8(r.value.clone()).unwrap(), r.headers["reason"].clone()))
        .collect();
    reasons.sort();
    let mut want: Vec<(String, String)> = BAD_LINES.iter().map(|(l, r)| (l.to_string(), r.to_string())).collect();
    want.sort();
    assert_eq!(reasons, want);
    for letter in &letters {
        assert_eq!(letter.headers["source"], format!("kafka:{}", topics.input));
        assert!(letter.headers.contains_key("partition") && letter.headers.contains_key("offset"));
    }

    for (partition, (committed, end)) in committed_and_end(&broker, &topics.input, &topics.group)
        .iter()
        .enumerate()
    {
        assert_eq!(
            committed, end,
            "partition {partition}: committed offset must reach the end offset"
        );
    }
}

#[test]
fn a_restart_resumes_from_committed_offsets_and_converges() {
    let Some(broker) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topics = topics(&broker);
    // About 220 s of event time; the first run sees 140 s of it and is stopped (not idle), so
    // it commits only input whose windows closed and passed the correction horizon; the second
    // run replays the rest and the output converges to the batch result over all events.
    let events = metric_events(40_000, 20, 0.05, 0.0, 12);
    let (first, second) = events.split_at(25_000);
    let pipeline = "rollups = []\ncorrection_horizon = \"5s\"";
    let config = config(dir.path(), &broker, &topics, "60s", pipeline);

    produce_lines(dir.path(), &broker, &topics.input, first);
    run(&config, 8);
    let after_first: u64 = committed_and_end(&broker, &topics.input, &topics.group)
        .iter()
        .map(|(c, _)| (*c).max(0) as u64)
        .sum();
    assert!(after_first > 0, "the first run committed nothing");

    produce_lines(dir.path(), &broker, &topics.input, second);
    run(&config, 8);
    assert_matches_oracle(&final_windows(&broker, &topics.windows, &mut json_value), &events);
}

/// Avro through the schema registry: half the events written with tidemark's schema, half with
/// an evolved one (an extra optional field with a default); both decode, every window equals the
/// independent computation, and a message with an unknown schema id is dead-lettered.
#[test]
fn avro_with_a_schema_registry_and_schema_evolution() {
    let Some(broker) = broker() else { return };
    let registry = support::kafka::Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let topics = topics(&broker);
    let events = metric_events(12_000, 15, 0.05, 0.0, 13);
    let (old, new) = events.split_at(6_000);

    let bundled = include_str!("../schemas/avro/metric_event.avsc");
    let mut evolved: Value = serde_json::from_str(bundled).unwrap();
    evolved["fields"].as_array_mut().unwrap().push(serde_json::json!(
        {"name": "host_group", "type": ["null", "string"], "default": null}
    ));
    let evolved_path = dir.path().join("metric_event_v2.avsc");
    std::fs::write(&evolved_path, evolved.to_string()).unwrap();
    let mut client = tidemark_connectors::avro::SchemaRegistry::new(&registry.url);
    let subject = format!("{}-value", topics.input);

    let avro = ["--registry", registry.url.as_str()];
    let produce_avro = |lines: &[String], schema: Option<&Path>| {
        let file = dir.path().join(format!("avro-{}.ndjson", unique("p")));
        write_lines(&file, lines);
        let mut command = tidemark();
        command
            .args([
                "produce",
                "--brokers",
                &broker,
                "--topic",
                &topics.input,
                "--partitions",
                "4",
            ])
            .args(avro);
        if let Some(schema) = schema {
            command.arg("--schema").arg(schema);
        }
        succeed(command.arg(&file));
    };
    produce_avro(old, None);
    assert!(
        client.is_compatible(&subject, &evolved.to_string()).unwrap(),
        "adding an optional field is compatible"
    );
    let mut incompatible = evolved.clone();
    incompatible["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "must", "type": "string"}));
    assert!(!client.is_compatible(&subject, &incompatible.to_string()).unwrap());
    produce_avro(new, Some(&evolved_path));
    let unknown_id = [vec![0u8, 0, 0, 0x27, 0x0f], b"whatever".to_vec()].concat();
    support::kafka::produce_raw(&broker, &topics.input, std::slice::from_ref(&unknown_id));

    let config = config(dir.path(), &broker, &topics, "2s", "rollups = []");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "idle_timeout",
        &format!("avro = {{ registry = {{ url = \"{}\" }} }}\nidle_timeout", registry.url),
    );
    std::fs::write(&config, text).unwrap();
    run(&config, 15);

    assert_matches_oracle(&final_windows(&broker, &topics.windows, &mut json_value), &events);
    let letters = read_all(&broker, &topics.dead_letters);
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].headers["reason"], "unknown_schema");
    assert_eq!(letters[0].value, unknown_id);
}

/// Timely's cluster mode: two processes with one worker each read the topic's partitions
/// between them and produce the same windows as one process.
#[test]
fn two_processes_produce_the_same_windows_as_one() {
    let Some(broker) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topics = topics(&broker);
    let events = metric_events(12_000, 20, 0.05, 0.0, 14);
    produce_lines(dir.path(), &broker, &topics.input, &events);
    let config = config(dir.path(), &broker, &topics, "2s", "rollups = [\"5m\"]");
    let hostfile = dir.path().join("hosts");
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    std::fs::write(
        &hostfile,
        ports.iter().map(|p| format!("127.0.0.1:{p}\n")).collect::<String>(),
    )
    .unwrap();
    let children: Vec<_> = (0..2)
        .map(|process| {
            tidemark()
                .args(["run", "--config"])
                .arg(&config)
                .args([
                    "--workers",
                    "1",
                    "--duration",
                    "15s",
                    "--processes",
                    "2",
                    "--process",
                    &process.to_string(),
                ])
                .arg("--hostfile")
                .arg(&hostfile)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("starting a process")
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    assert_matches_oracle(&final_windows(&broker, &topics.windows, &mut json_value), &events);
    for (committed, end) in committed_and_end(&broker, &topics.input, &topics.group) {
        assert_eq!(committed, end);
    }
}
