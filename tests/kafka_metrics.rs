//! What an operator sees of a Kafka source, against a real broker: `/readyz` is ready on a
//! quiet topic (connected and caught up is not a stall), and `/metrics` shows per-partition
//! input, consumer lag and watermarks that match what was produced.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;
use support::kafka::{broker, create_topic, source_section, unique};
use support::running::Running;
use support::*;

const PARTITIONS: i32 = 4;
const LATENESS_MS: i64 = 2000;

/// `partition → value` of every sample of `name` in a Prometheus text exposition.
fn per_partition(text: &str, name: &str) -> BTreeMap<i32, f64> {
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix('{'))
        .filter_map(|rest| {
            let (labels, value) = rest.split_once("} ")?;
            let partition = labels.split(',').find_map(|l| l.strip_prefix("partition=\""))?;
            Some((partition.trim_end_matches('"').parse().ok()?, value.parse().ok()?))
        })
        .collect()
}

#[test]
fn readiness_on_a_quiet_topic_and_per_partition_metrics() {
    let Some(broker) = broker() else { return };
    let topic = unique("metrics-events");
    create_topic(&broker, &topic, PARTITIONS);
    let state = tempfile::tempdir().unwrap();
    let running = Running::start(&source_section(&broker, &topic, &unique("metrics"), "1s", state.path()));

    // Nothing has ever been produced: ready once the end offsets (all 0) are known.
    running.wait_for("/readyz on an empty topic", Duration::from_secs(30), || {
        (running.get("/readyz", None).status == 200).then_some(())
    });

    let events = metric_events(2_000, 8, 0.0, 0.0, 5);
    let file = running.dir.path().join("events.ndjson");
    write_lines(&file, &events);
    let partitions = PARTITIONS.to_string();
    succeed(
        tidemark()
            .args([
                "produce",
                "--brokers",
                &broker,
                "--topic",
                &topic,
                "--partitions",
                &partitions,
            ])
            .arg(&file),
    );
    // `produce --partitions 4` sends line i to partition i % 4.
    let mut count = BTreeMap::new();
    let mut newest = BTreeMap::new();
    for (i, line) in events.iter().enumerate() {
        let partition = (i % PARTITIONS as usize) as i32;
        let ts = serde_json::from_str::<serde_json::Value>(line).unwrap()["ts"]
            .as_i64()
            .unwrap();
        *count.entry(partition).or_insert(0.0) += 1.0;
        let max = newest.entry(partition).or_insert(i64::MIN);
        *max = (*max).max(ts);
    }

    let text = running.wait_for("every event counted per partition", Duration::from_secs(60), || {
        let text = running.get("/metrics", None).body;
        (per_partition(&text, "tidemark_events_in_total") == count).then_some(text)
    });
    let lag = running.wait_for("zero lag", Duration::from_secs(30), || {
        let lag = per_partition(&running.get("/metrics", None).body, "tidemark_kafka_consumer_lag");
        (lag.len() == PARTITIONS as usize && lag.values().all(|l| *l == 0.0)).then_some(lag)
    });
    assert_eq!(lag.len(), PARTITIONS as usize);
    let watermarks = per_partition(&text, "tidemark_partition_watermark_seconds");
    for (partition, ts) in &newest {
        assert_eq!(
            watermarks[partition],
            (ts - LATENESS_MS) as f64 / 1000.0,
            "partition {partition}"
        );
    }
    assert!(
        per_partition(&text, "tidemark_partition_dead_letters_total")
            .values()
            .all(|d| *d == 0.0)
    );
    assert_eq!(running.get("/readyz", None).status, 200);
}
